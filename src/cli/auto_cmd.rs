//! `prune --auto`: the budget search's options, parsed into the search's settings (the budget
//! per region among them), its validation cases and held-out cases, then one call to
//! `prune::auto_run::run_auto` (the search, checkpoint, plan and trace, the uniform grid beside
//! it, the held-out report) with its progress on stderr and the report printed.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;

use super::data_args::DataArgs;
use super::{defaults, print_json};
use crate::metrics::{RegionScores, RegionStats};
use crate::model::Checkpoint;
use crate::prune::PruneMethod;
use crate::prune::auto::{AutoEvent, AutoSettings};
use crate::prune::auto_run::{AutoJob, AutoReport, AutoRunEvent, run_auto};
use crate::prune::tuning::FineTuner;
use crate::report::{self, giga, thousands};

/// The search's options (with `--auto`).
#[derive(Args, Debug, Clone)]
pub struct AutoArgs {
    /// Search per-group ratios under --budget instead of pruning to --ratio.
    #[arg(long, conflicts_with_all = ["group_ratios", "global", "plan"])]
    pub auto: bool,
    /// Largest Dice drop allowed per region against the dense model on the validation cases,
    /// e.g. `wt=0.01,tc=0.02,et=0.02` (regions not named: 0.02).
    #[arg(long, default_value = "wt=0.02,tc=0.02,et=0.02", requires = "auto")]
    pub budget: String,
    /// Share of the dense MACs each step tries to remove.
    #[arg(long, default_value_t = 0.03, requires = "auto")]
    pub auto_step: f64,
    /// Steps at most.
    #[arg(long, default_value_t = 40, requires = "auto")]
    pub auto_max_steps: usize,
    /// Fine-tune after this many kept steps (0: never).
    #[arg(long, default_value_t = 3, requires = "auto")]
    pub auto_fine_tune_every: usize,
    /// Adam steps of each of the search's fine-tunes.
    #[arg(long, default_value_t = 40, requires = "auto")]
    pub auto_fine_tune_steps: usize,
    /// Validation cases (whole cases the kept steps are confirmed on): this BraTS folder...
    #[arg(long, requires = "auto")]
    pub val_data: Option<PathBuf>,
    /// ...or this many synthetic cases from --val-seed (apart from the fine-tuning cases 0..
    /// and the held-out cases the result is reported on).
    #[arg(long, default_value_t = 3, requires = "auto")]
    pub val_synthetic: usize,
    #[arg(long, default_value_t = 20_000, requires = "auto")]
    pub val_seed: u64,
    /// Tumour slices (of the validation cases) that rank the candidates.
    #[arg(long, default_value_t = 24, requires = "auto")]
    pub subset_slices: usize,
    /// Side of the square the subset's slices are cut to around the tumour (multiple of 16).
    #[arg(long, default_value_t = 128, requires = "auto")]
    pub subset_side: usize,
    /// Also prune uniformly on a grid of this step (0.05: 5 %, 10 %, ...), fine-tuned with the
    /// search's whole fine-tuning budget in one go, and report the largest ratio within the
    /// budget beside the search's result.
    #[arg(long, requires = "auto")]
    pub against_uniform: Option<f64>,
}

impl AutoArgs {
    /// The search's settings from these options.
    pub fn settings(&self, method: PruneMethod, mac_side: usize) -> Result<AutoSettings> {
        let PruneMethod::Structured(method) = method else {
            bail!("--auto removes channels: give a channel method (l2, bn-gamma, group-l2)");
        };
        let budget =
            parse_budget(&self.budget, 0.02).map_err(|e| anyhow::anyhow!("--budget: {e}"))?;
        let settings = AutoSettings {
            method,
            budget,
            step_share: self.auto_step,
            fine_tune_every: self.auto_fine_tune_every,
            max_steps: self.auto_max_steps,
            mac_side,
            ..AutoSettings::default()
        };
        settings.check()?;
        Ok(settings)
    }

    fn validation(&self, like: &DataArgs) -> DataArgs {
        DataArgs {
            data: self.val_data.clone(),
            synthetic: self.val_data.is_none().then_some(self.val_synthetic),
            synthetic_seed: self.val_seed,
            ..like.clone()
        }
    }
}

/// Parses a budget such as `wt=0.01,tc=0.02,et=0.02` (regions not named get `default`).
pub fn parse_budget(text: &str, default: f64) -> Result<RegionScores, String> {
    let mut budget = [default; 3];
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("expected region=drop (wt, tc, et), got {pair:?}"))?;
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            "wt" => 0,
            "tc" => 1,
            "et" => 2,
            other => return Err(format!("no region {other:?}; the regions are wt, tc, et")),
        };
        budget[slot] = value
            .trim()
            .parse()
            .map_err(|_| format!("{name}: {value:?} is not a number"))?;
    }
    Ok(RegionScores::from_array(budget))
}

/// Everything the command needs besides the search's settings.
pub struct AutoRun<'a> {
    pub dense: &'a Checkpoint,
    pub model_name: String,
    pub output: &'a Path,
    pub settings: AutoSettings,
    pub tuner: FineTuner,
    /// Held-out cases the result is reported on.
    pub held_out: &'a DataArgs,
    pub threshold: f32,
    pub json: bool,
}

/// Runs the search, writes checkpoint, plan and trace, and reports.
pub fn run(run: AutoRun, args: &AutoArgs, data_like: &DataArgs) -> Result<()> {
    super::check_size("--subset-side", args.subset_side)?;
    if let Some(step) = args.against_uniform
        && !(step > 0.0 && step < 1.0)
    {
        bail!("--against-uniform: the grid step is above 0 and below 1; got {step}");
    }
    let validation_data = args.validation(data_like);
    let validation = validation_data.load(|id| eprintln!("auto: loading validation case {id}"))?;
    let held_out = run.held_out;
    let job = AutoJob {
        dense: run.dense,
        model_name: run.model_name,
        output: run.output,
        settings: run.settings,
        tuner: run.tuner,
        fine_tune_steps: args.auto_fine_tune_steps,
        validation,
        subset_slices: args.subset_slices,
        subset_side: args.subset_side,
        against_uniform: args.against_uniform,
        held_out: Box::new(move || {
            defaults::data_or_held_out(held_out)
                .load(|id| eprintln!("auto: loading held-out case {id}"))
        }),
        threshold: run.threshold,
    };
    let report = run_auto(job, show_event)?;
    if run.json {
        return print_json(&report);
    }
    print!("{}", render(&report));
    Ok(())
}

/// The run's progress on stderr.
fn show_event(event: AutoRunEvent) {
    let dice = |d: &RegionScores| format!("WT {:.3} TC {:.3} ET {:.3}", d.wt, d.tc, d.et);
    match event {
        AutoRunEvent::Subset {
            cases,
            slices,
            side,
        } => eprintln!("auto: {cases} validation case(s), {slices} subset slices of {side}x{side}"),
        AutoRunEvent::Search(AutoEvent::Dense { confirmed, macs }) => {
            eprintln!(
                "auto: dense {} MACs, validation {}",
                giga(*macs),
                dice(confirmed)
            )
        }
        AutoRunEvent::Search(AutoEvent::Candidate { .. }) => {}
        AutoRunEvent::Search(AutoEvent::Kept(step)) => eprintln!(
            "auto: step {}: {} {} -> {} channels, {} MACs, validation {}",
            step.step,
            step.group,
            step.width_before,
            step.width_after,
            giga(step.macs),
            dice(&step.confirmed_dice)
        ),
        AutoRunEvent::Search(AutoEvent::FineTuned { confirmed }) => {
            eprintln!("auto: fine-tuned: validation {}", dice(confirmed))
        }
        AutoRunEvent::Uniform {
            ratio,
            dice,
            within_budget,
        } => eprintln!(
            "auto: uniform {ratio:.2}: validation WT {:.3} TC {:.3} ET {:.3}{}",
            dice.wt,
            dice.tc,
            dice.et,
            if within_budget {
                ""
            } else {
                " (over the budget)"
            }
        ),
        AutoRunEvent::HeldOut(name) => eprintln!("auto: held-out Dice of {name}"),
    }
}

fn render(r: &AutoReport) -> String {
    let dice = |d: &RegionScores| format!("{:.3}/{:.3}/{:.3}", d.wt, d.tc, d.et);
    let spread = |s: &RegionStats| match &s.sd {
        Some(sd) => format!(
            "{:.3}±{:.3}/{:.3}±{:.3}/{:.3}±{:.3}",
            s.mean.wt, sd.wt, s.mean.tc, sd.tc, s.mean.et, sd.et
        ),
        None => dice(&s.mean),
    };
    let dense_macs = r.rows.first().map_or(1, |row| row.macs) as f64;
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| {
            vec![
                row.model.clone(),
                thousands(row.params as u64),
                giga(row.macs),
                format!("{:.2}x", dense_macs / row.macs.max(1) as f64),
                dice(&row.validation_dice),
                spread(&row.held_out_dice),
            ]
        })
        .collect();
    let budget = r.trace.settings.budget;
    let mut text = format!(
        "auto-pruned {} under a Dice budget of WT {} / TC {} / ET {}: {} step(s), {} \
         fine-tuning Adam steps; stopped: {}\ncheckpoint {}, plan {}, trace {}\n\n{}",
        r.model,
        budget.wt,
        budget.tc,
        budget.et,
        r.trace.steps.len(),
        r.fine_tune_steps,
        r.trace.stopped,
        r.output.display(),
        r.plan.display(),
        r.trace_file.display(),
        report::table(
            &[
                "model",
                "params",
                "MACs",
                "MAC reduction",
                "validation Dice WT/TC/ET",
                &format!("held-out Dice ({} cases)", r.held_out_cases),
            ],
            &rows
        )
    );
    let widths: Vec<Vec<String>> = r
        .trace
        .steps
        .iter()
        .map(|s| {
            vec![
                s.step.to_string(),
                s.group.clone(),
                format!("{} -> {}", s.width_before, s.width_after),
                giga(s.macs),
                dice(&s.subset_dice),
                dice(&s.confirmed_dice),
            ]
        })
        .collect();
    if !r.uniform.is_empty() {
        let rows: Vec<Vec<String>> = r
            .uniform
            .iter()
            .map(|u| {
                vec![
                    format!("{:.2}", u.ratio),
                    giga(u.macs),
                    dice(&u.validation_dice),
                    if u.within_budget { "yes" } else { "no" }.into(),
                ]
            })
            .collect();
        text += &format!(
            "\nuniform ratios, each fine-tuned {} Adam steps:\n{}",
            r.fine_tune_steps,
            report::table(
                &["ratio", "MACs", "validation Dice", "within budget"],
                &rows
            )
        );
    }
    if !widths.is_empty() {
        text += &format!(
            "\n{}",
            report::table(
                &[
                    "step",
                    "group",
                    "channels",
                    "MACs",
                    "subset Dice",
                    "validation Dice"
                ],
                &widths
            )
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_per_region_and_name_what_is_wrong() {
        let budget = parse_budget("wt=0.01, TC=0.03", 0.02).unwrap();
        assert_eq!(budget.as_array(), [0.01, 0.03, 0.02]);
        assert!(parse_budget("nc=0.1", 0.02).unwrap_err().contains("\"nc\""));
        assert!(
            parse_budget("wt", 0.02)
                .unwrap_err()
                .contains("region=drop")
        );
        assert!(parse_budget("et=abc", 0.02).unwrap_err().contains("abc"));
    }
}

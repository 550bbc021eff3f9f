//! `prune --auto`: per-group ratios found under a per-region Dice budget (the search in
//! `prune::auto`), written as a checkpoint, a plan and a trace; optionally set beside the best
//! uniform ratio that meets the same budget with the same fine-tuning.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use super::data_args::DataArgs;
use super::fine_tune::{DiceEvaluator, FineTuner};
use super::{defaults, print_json};
use crate::backend;
use crate::inference::InferenceOptions;
use crate::metrics::{RegionScores, RegionStats};
use crate::model::{Checkpoint, save_checkpoint};
use crate::prune::auto::{
    AutoEvent, AutoHooks, AutoSettings, AutoTrace, TumourSlices, auto_prune, macs_of, parse_budget,
    within_budget,
};
use crate::prune::{
    FineTuneRecord, PruneError, PruneMethod, Ratios, parameter_counts, prune_checkpoint,
};
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

/// The search's hooks on the command line: the subset, the validation cases, the fine-tuner.
struct CliAutoHooks<'a> {
    subset: TumourSlices,
    validation: DiceEvaluator,
    tuner: &'a mut FineTuner,
    tuning: bool,
    threshold: f32,
}

impl AutoHooks for CliAutoHooks<'_> {
    fn score_subset(&mut self, checkpoint: &Checkpoint) -> Result<RegionScores> {
        Ok(self
            .subset
            .dice(checkpoint, &self.validation.cases, self.threshold)?)
    }

    fn confirm(&mut self, checkpoint: &Checkpoint) -> Result<RegionScores> {
        Ok(self.validation.dice(checkpoint)?.mean)
    }

    fn fine_tune(&mut self, checkpoint: &Checkpoint) -> Result<Option<Checkpoint>> {
        if !self.tuning {
            return Ok(None);
        }
        Ok(Some(self.tuner.fine_tune(checkpoint)?))
    }

    fn on_event(&mut self, event: &AutoEvent) {
        let dice = |d: &RegionScores| format!("WT {:.3} TC {:.3} ET {:.3}", d.wt, d.tc, d.et);
        match event {
            AutoEvent::Dense { confirmed, macs } => {
                eprintln!(
                    "auto: dense {} MACs, validation {}",
                    giga(*macs),
                    dice(confirmed)
                )
            }
            AutoEvent::Candidate { .. } => {}
            AutoEvent::Kept(step) => eprintln!(
                "auto: step {}: {} {} -> {} channels, {} MACs, validation {}",
                step.step,
                step.group,
                step.width_before,
                step.width_after,
                giga(step.macs),
                dice(&step.confirmed_dice)
            ),
            AutoEvent::FineTuned { confirmed } => {
                eprintln!("auto: fine-tuned: validation {}", dice(confirmed))
            }
        }
    }

    fn cancelled(&self) -> bool {
        self.tuner.cancelled()
    }
}

/// One model of the report: the search's result, the dense model or a uniform ratio.
#[derive(Serialize)]
struct ModelRow {
    model: String,
    params: usize,
    macs: u64,
    validation_dice: RegionScores,
    held_out_dice: RegionStats,
}

/// The search's report.
#[derive(Serialize)]
struct AutoReport {
    model: String,
    output: PathBuf,
    plan: PathBuf,
    trace_file: PathBuf,
    fine_tune_steps: usize,
    held_out_cases: usize,
    rows: Vec<ModelRow>,
    /// Every uniform ratio tried (with `--against-uniform`): its validation Dice and whether it
    /// met the budget.
    uniform: Vec<UniformPoint>,
    trace: AutoTrace,
}

#[derive(Serialize)]
struct UniformPoint {
    ratio: f64,
    macs: u64,
    validation_dice: RegionScores,
    within_budget: bool,
}

/// Runs the search, writes checkpoint, plan and trace, and reports.
pub fn run(mut run: AutoRun, args: &AutoArgs, data_like: &DataArgs) -> Result<()> {
    super::check_size("--subset-side", args.subset_side)?;
    if let Some(step) = args.against_uniform
        && !(step > 0.0 && step < 1.0)
    {
        bail!("--against-uniform: the grid step is above 0 and below 1; got {step}");
    }
    let validation_data = args.validation(data_like);
    let cases = validation_data.load(|id| eprintln!("auto: loading validation case {id}"))?;
    let subset = TumourSlices::pick(&cases, args.subset_slices, args.subset_side);
    if subset.is_empty() {
        bail!("the validation cases have no tumour to score candidates on");
    }
    let options = InferenceOptions {
        threshold: run.threshold,
        ..InferenceOptions::default()
    };
    run.tuner.set_steps_per_run(args.auto_fine_tune_steps);
    eprintln!(
        "auto: {} validation case(s), {} subset slices of {}x{}",
        cases.len(),
        subset.len(),
        args.subset_side,
        args.subset_side
    );
    let mut hooks = CliAutoHooks {
        subset,
        validation: DiceEvaluator { cases, options },
        tuner: &mut run.tuner,
        tuning: args.auto_fine_tune_steps > 0,
        threshold: run.threshold,
    };
    let result = auto_prune(run.dense, &run.settings, &mut hooks)?;
    let validation = hooks.validation;
    let fine_tune_steps = run.tuner.steps_trained();
    save_checkpoint(run.output, &result.checkpoint)?;
    let plan_path = sibling(run.output, "plan.json");
    let trace_path = sibling(run.output, "trace.json");
    let mut plan = result.plan.clone();
    plan.checkpoint = Some(run.output.to_path_buf());
    if let Some(search) = plan.budget_search.as_mut() {
        search.fine_tune_steps = fine_tune_steps;
    }
    plan.fine_tune = (fine_tune_steps > 0).then(|| FineTuneRecord {
        epochs: run.tuner.epochs_per_run(),
        learning_rate: run.tuner.learning_rate(),
        batches_per_epoch: run.tuner.batches_per_epoch(),
        device: "CPU".into(),
    });
    plan.write(&plan_path)?;
    let trace_json = serde_json::to_string_pretty(&result.trace)?;
    crate::atomic::write_bytes(&trace_path, trace_json.as_bytes())?;

    let uniform = match args.against_uniform {
        Some(step) => uniform_grid(
            run.dense,
            &run.settings,
            &mut run.tuner,
            &validation,
            step,
            fine_tune_steps,
        )?,
        None => Vec::new(),
    };
    let held_out_cases = defaults::data_or_held_out(run.held_out)
        .load(|id| eprintln!("auto: loading held-out case {id}"))?;
    let held_out = DiceEvaluator {
        cases: held_out_cases,
        options,
    };
    let device = backend::cpu_device();
    let mut models: Vec<(String, Checkpoint, RegionScores)> = vec![
        ("dense".into(), run.dense.clone(), result.trace.dense_dice),
        (
            "auto (this search)".into(),
            result.checkpoint.clone(),
            result.trace.dice,
        ),
    ];
    if let Some((best, checkpoint)) = best_uniform(&uniform) {
        models.push((
            format!("uniform {:.2} (best within budget)", best.ratio),
            checkpoint.clone(),
            best.validation_dice,
        ));
    }
    let mut rows = Vec::new();
    for (name, checkpoint, validation_dice) in models {
        eprintln!("auto: held-out Dice of {name}");
        rows.push(ModelRow {
            model: name,
            params: parameter_counts(&checkpoint).0,
            macs: macs_of(&checkpoint, run.settings.mac_side, &device)?,
            validation_dice,
            held_out_dice: held_out.dice(&checkpoint)?,
        });
    }
    let report = AutoReport {
        model: run.model_name.clone(),
        output: run.output.to_path_buf(),
        plan: plan_path,
        trace_file: trace_path,
        fine_tune_steps,
        held_out_cases: held_out.cases.len(),
        rows,
        uniform: uniform.into_iter().map(|(p, _)| p).collect(),
        trace: result.trace,
    };
    if run.json {
        return print_json(&report);
    }
    print!("{}", render(&report));
    Ok(())
}

/// Uniform ratios `step`, `2 step`, ... pruned one-shot and fine-tuned with `fine_tune_steps`
/// Adam steps, until two in a row miss the budget.
fn uniform_grid(
    dense: &Checkpoint,
    settings: &AutoSettings,
    tuner: &mut FineTuner,
    validation: &DiceEvaluator,
    step: f64,
    fine_tune_steps: usize,
) -> Result<Vec<(UniformPoint, Checkpoint)>> {
    let dense_dice = validation.dice(dense)?.mean;
    let device = backend::cpu_device();
    if fine_tune_steps > 0 {
        tuner.set_steps_per_run(fine_tune_steps);
    }
    let mut points = Vec::new();
    let mut misses = 0;
    for k in 1.. {
        let ratio = (k as f64 * step * 1e6).round() / 1e6;
        if ratio >= 1.0 || misses == 2 || tuner.cancelled() {
            break;
        }
        let pruned = match prune_checkpoint(
            dense,
            PruneMethod::Structured(settings.method),
            &Ratios::Uniform(ratio),
            None,
        ) {
            Ok(pruned) => pruned,
            // Past this ratio some group would keep no channel: the grid ends.
            Err(PruneError::EmptyGroup(_)) => break,
            Err(e) => return Err(e.into()),
        };
        let model = if fine_tune_steps > 0 {
            tuner.fine_tune(&pruned)?
        } else {
            pruned
        };
        let dice = validation.dice(&model)?.mean;
        let within = within_budget(&settings.budget, &dense_dice, &dice);
        eprintln!(
            "auto: uniform {ratio:.2}: validation WT {:.3} TC {:.3} ET {:.3}{}",
            dice.wt,
            dice.tc,
            dice.et,
            if within { "" } else { " (over the budget)" }
        );
        misses = if within { 0 } else { misses + 1 };
        points.push((
            UniformPoint {
                ratio,
                macs: macs_of(&model, settings.mac_side, &device)?,
                validation_dice: dice,
                within_budget: within,
            },
            model,
        ));
    }
    Ok(points)
}

/// The largest uniform ratio within the budget.
fn best_uniform(points: &[(UniformPoint, Checkpoint)]) -> Option<&(UniformPoint, Checkpoint)> {
    points
        .iter()
        .filter(|(p, _)| p.within_budget)
        .max_by(|(a, _), (b, _)| a.ratio.total_cmp(&b.ratio))
}

/// `model.safetensors` -> `model.<suffix>` beside it.
fn sibling(output: &Path, suffix: &str) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "auto".into());
    output.with_file_name(format!("{stem}.{suffix}"))
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

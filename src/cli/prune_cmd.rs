//! `prune`: pruning a checkpoint (or the embedded model) by any method and schedule, with the
//! measured effect: parameters, MACs, CPU latency and held-out Dice before and after each step.

use crate::precision::Precision;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::auto_cmd::{AutoArgs, AutoRun};
use super::data_args::DataArgs;
use super::fine_tune::{FineTuneArgs, step_hooks};
use super::{defaults, print_json};
use crate::backend;
use crate::inference::InferenceOptions;
use crate::metrics::{Region, RegionScores};
use crate::model::summary::summarize;
use crate::model::{Checkpoint, save_checkpoint};
use crate::prune::tuning::{DiceEvaluator, FineTuner};
use crate::prune::{
    ChannelGraph, PruneMethod, PrunePlan, Ratios, Schedule, StepRecord, run_schedule,
};
use crate::report::{self, giga, thousands};
use crate::timing::{Timing, compare_forward};

/// The schedules as the command line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// Prune to the ratio at once.
    OneShot,
    /// `--steps` equal increments, fine-tuning after each.
    Iterative,
    /// One channel group (channel methods) or module (mask methods) at a time, fine-tuning
    /// after each.
    LayerWise,
}

/// How a ratio is reached, as `prune` and `sweep` take it.
#[derive(Args, Debug, Clone, Copy)]
pub struct ScheduleArgs {
    /// How the ratio is reached.
    #[arg(long, value_enum, default_value_t = ScheduleKind::OneShot)]
    pub schedule: ScheduleKind,
    /// Steps of an iterative schedule.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
}

impl ScheduleArgs {
    /// The options that give `schedule` (fixed increments are the classifiers' and have none).
    pub fn of(schedule: Schedule) -> Result<ScheduleArgs> {
        Ok(match schedule {
            Schedule::OneShot => ScheduleArgs {
                schedule: ScheduleKind::OneShot,
                steps: 3,
            },
            Schedule::Iterative { steps } => ScheduleArgs {
                schedule: ScheduleKind::Iterative,
                steps,
            },
            Schedule::LayerWise => ScheduleArgs {
                schedule: ScheduleKind::LayerWise,
                steps: 3,
            },
            Schedule::Increments { .. } => bail!("a plan's schedule cannot be {}", schedule.name()),
        })
    }

    pub fn schedule(self) -> Schedule {
        match self.schedule {
            ScheduleKind::OneShot => Schedule::OneShot,
            ScheduleKind::Iterative => Schedule::Iterative { steps: self.steps },
            ScheduleKind::LayerWise => Schedule::LayerWise,
        }
    }
}

/// How `prune` and `sweep` measure a pruned model: latency, MACs, Dice, optional fine-tuning.
#[derive(Args, Debug)]
pub struct MeasureArgs {
    /// Slices per timed forward: 8 is what whole-volume inference runs at once.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Input side for MACs and latency (multiple of 16).
    #[arg(long, default_value_t = 192)]
    pub size: usize,
    /// Timed forward runs per model (interleaved, after a first call).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Cases the Dice is measured on (default: the held-out synthetic cases).
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// Number format the Dice is scored in: what an export of each model in that precision
    /// computes (fp16: weights rounded to half; int8: static INT8, activations calibrated per
    /// model, as `export --onnx --precision int8` writes it). Pruning and fine-tuning run in
    /// float32 either way.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    #[command(flatten)]
    pub fine_tune: FineTuneArgs,
}

impl MeasureArgs {
    /// The Dice scoring these options ask for, its cases loaded (`command` names the log).
    pub fn evaluator(&self, command: &str) -> Result<DiceEvaluator> {
        let cases = defaults::data_or_held_out(&self.data)
            .load(|id| eprintln!("{command}: loading {id}"))?;
        let options = InferenceOptions {
            threshold: self.threshold,
            ..InferenceOptions::default()
        };
        Ok(DiceEvaluator::new(cases, options).in_precision(self.precision))
    }
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// A checkpoint; the embedded default model when omitted.
    pub model: Option<PathBuf>,
    /// How channels (l2, bn-gamma, group-l2) or single weights (l1, l1-global, snip) are ranked.
    #[arg(long, value_parser = PruneMethod::parse, default_value = "l2")]
    pub method: PruneMethod,
    /// Share removed: of every channel group not named in --group-ratios (channel methods), or
    /// of the conv weights (mask methods; per layer for l1).
    #[arg(long, default_value_t = 0.5)]
    pub ratio: f64,
    /// Per-group ratios, e.g. `enc5.out=0.7,dec2=0.2` (names as `info` and the app show them).
    #[arg(long, conflicts_with = "global")]
    pub group_ratios: Option<String>,
    /// A pruning plan (JSON, as the app's plan tree exports it): its method, ratios, hand-picked
    /// channels, schedule and fine-tuning replace the options above (fine-tuning options given
    /// here win).
    #[arg(long, conflicts_with_all = ["group_ratios", "global"])]
    pub plan: Option<PathBuf>,
    /// Treat --ratio as a share of all channels, with one importance threshold across groups
    /// (each group's importances divided by their mean), instead of the same share per group.
    #[arg(long)]
    pub global: bool,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Where the pruned checkpoint goes.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub measure: MeasureArgs,
    #[command(flatten)]
    pub auto: AutoArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct GroupChange {
    name: String,
    ratio: f64,
    before: usize,
    after: usize,
}

#[derive(Serialize)]
struct PruneReport {
    model: String,
    output: PathBuf,
    method: PruneMethod,
    schedule: Schedule,
    groups: Vec<GroupChange>,
    params_before: usize,
    params_after: usize,
    /// Parameters not masked to zero (equal to `params_after` for channel methods).
    nonzero_params_after: usize,
    macs_before: u64,
    macs_after: u64,
    /// MACs before / after.
    mac_reduction: f64,
    latency_before: Timing,
    latency_after: Timing,
    /// Median latency before / after, measured in one run.
    speedup: f64,
    /// Mean Dice per region over the evaluation cases: dense, after the last pruning step,
    /// after its BN recalibration (with `--bn-recalibrate`) and (when fine-tuned) after its
    /// fine-tuning.
    dice_before: RegionScores,
    dice_after: RegionScores,
    /// The number format every Dice was scored in.
    precision: Precision,
    dice_recalibrated: Option<RegionScores>,
    dice_fine_tuned: Option<RegionScores>,
    /// Every step of the schedule with Dice before and after its fine-tune.
    steps: Vec<StepRecord>,
    fine_tune_epochs: usize,
    eval_cases: usize,
    /// Time to prune the first step (what the app's live preview pays, for one-shot).
    prune_secs: f64,
}

pub fn prune(mut args: PruneArgs) -> Result<()> {
    super::check_size("--size", args.measure.size)?;
    super::eval_cmd::check_threshold(args.measure.threshold)?;
    if args.measure.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (dense, model_name) = defaults::model_or_default(args.model.as_deref())?;
    if args.auto.auto {
        return prune_auto(&args, &dense, model_name);
    }
    let plan = args.plan.as_deref().map(PrunePlan::read).transpose()?;
    if let Some(plan) = &plan {
        args.method = plan.method;
        args.schedule = ScheduleArgs::of(plan.schedule)?;
        if let Some(tuned) = plan.fine_tune.as_ref()
            && args.measure.fine_tune.fine_tune_epochs == 0
        {
            args.measure.fine_tune.fine_tune_epochs = tuned.epochs;
            args.measure.fine_tune.fine_tune_lr = tuned.learning_rate;
            args.measure.fine_tune.fine_tune_batches = tuned.batches_per_epoch;
        }
    }
    // A plan's hand-picked channels go first; its ratios then prune what is left.
    let start = match &plan {
        Some(plan) => plan.without_picked(&dense)?,
        None => dense.clone(),
    };
    let ratios = if let Some(plan) = &plan {
        plan.ratios(&ChannelGraph::of(&start.config))?
    } else if args.global {
        Ratios::Global(args.ratio)
    } else if args.group_ratios.is_some() {
        parse_ratios(&dense, args.ratio, args.group_ratios.as_deref())?
    } else {
        Ratios::Uniform(args.ratio)
    };
    let schedule = args.schedule.schedule();
    // Prune once up front: an impossible ratio fails in milliseconds, and this times what the
    // app's live preview pays.
    let started = std::time::Instant::now();
    let mut tuner = args.measure.fine_tune.tuner_if_needed(
        &args.measure.data,
        args.measure.fine_tune.fine_tune_epochs > 0,
        &[args.method],
    )?;
    let snip = tuner.as_ref().map(FineTuner::snip_batch);
    crate::prune::prune_checkpoint(&start, args.method, &ratios, snip.as_ref())?;
    let prune_secs = started.elapsed().as_secs_f64();

    let evaluator = args.measure.evaluator("prune")?;
    let dice_before = evaluator.dice(&dense)?.mean;
    let mut hooks = step_hooks(&evaluator, tuner.as_mut(), "prune".into());
    eprintln!("prune: {} by {}", schedule.name(), args.method.name());
    let (pruned, steps) = run_schedule(
        &start,
        args.method,
        &ratios,
        schedule,
        snip.as_ref(),
        &mut hooks,
    )?;
    save_checkpoint(&args.output, &pruned)?;

    let device = backend::cpu_device();
    let (dense_model, pruned_model) = (dense.build(&device)?, pruned.build(&device)?);
    let before = summarize(
        &dense.config,
        &dense_model,
        args.measure.size,
        args.measure.size,
    )?;
    let after = summarize(
        &pruned.config,
        &pruned_model,
        args.measure.size,
        args.measure.size,
    )?;
    eprintln!(
        "prune: timing both models ({} runs each)",
        args.measure.runs
    );
    let [latency_before, latency_after] = compare_forward(
        &[&dense_model.folded(), &pruned_model.folded()],
        [args.measure.batch, args.measure.size, args.measure.size],
        args.measure.runs,
        &device,
    );
    let last = steps.last().expect("a schedule has at least one step");
    let report = PruneReport {
        model: model_name,
        output: args.output.clone(),
        method: args.method,
        schedule,
        groups: group_changes(&dense, &pruned),
        params_before: before.params,
        params_after: after.params,
        nonzero_params_after: last.nonzero_params,
        macs_before: before.macs,
        macs_after: after.macs,
        mac_reduction: before.macs as f64 / after.macs.max(1) as f64,
        speedup: latency_before.median_secs / latency_after.median_secs,
        latency_before,
        latency_after,
        dice_before,
        dice_after: last.dice_pruned,
        precision: evaluator.precision,
        dice_recalibrated: last.dice_recalibrated,
        dice_fine_tuned: last.dice_fine_tuned,
        fine_tune_epochs: args.measure.fine_tune.fine_tune_epochs,
        eval_cases: evaluator.cases.len(),
        steps,
        prune_secs,
    };
    if args.json {
        return print_json(&report);
    }
    print!("{}", render(&report));
    Ok(())
}

/// `prune --auto`: the search under a Dice budget.
fn prune_auto(args: &PruneArgs, dense: &Checkpoint, model_name: String) -> Result<()> {
    let settings = args.auto.settings(args.method, args.measure.size)?;
    let tuner = args.measure.fine_tune.tuner(&args.measure.data)?;
    let run = AutoRun {
        dense,
        model_name,
        output: &args.output,
        settings,
        tuner,
        held_out: &args.measure.data,
        threshold: args.measure.threshold,
        json: args.json,
    };
    super::auto_cmd::run(run, &args.auto, &args.measure.data)
}

/// `--ratio` for every group, overridden per group by `name=ratio` pairs.
fn parse_ratios(dense: &Checkpoint, ratio: f64, per_group: Option<&str>) -> Result<Ratios> {
    let graph = ChannelGraph::of(&dense.config);
    let mut ratios = vec![ratio; graph.groups.len()];
    for pair in per_group
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--group-ratios: expected name=ratio, got {pair:?}");
        };
        let Some(g) = graph.group_index(name.trim()) else {
            let names: Vec<&str> = graph.groups.iter().map(|(n, _)| n.as_str()).collect();
            bail!(
                "--group-ratios: no channel group {name:?}; the groups are {}",
                names.join(", ")
            );
        };
        ratios[g] = value
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--group-ratios: {name}: {value:?} is not a number"))?;
    }
    Ok(Ratios::PerGroup(ratios))
}

fn group_changes(dense: &Checkpoint, pruned: &Checkpoint) -> Vec<GroupChange> {
    dense
        .config
        .plan
        .groups()
        .into_iter()
        .zip(pruned.config.plan.groups())
        .map(|((name, before), (_, after))| GroupChange {
            name,
            ratio: 1.0 - after as f64 / before as f64,
            before,
            after,
        })
        .collect()
}

fn render(r: &PruneReport) -> String {
    let change = |b: f64, a: f64| format!("{:.2}x", b / a.max(f64::MIN_POSITIVE));
    let mut rows = vec![
        vec![
            "params".into(),
            thousands(r.params_before as u64),
            thousands(r.params_after as u64),
            change(r.params_before as f64, r.params_after as f64),
        ],
        vec![
            "non-zero params".into(),
            thousands(r.params_before as u64),
            thousands(r.nonzero_params_after as u64),
            change(r.params_before as f64, r.nonzero_params_after as f64),
        ],
        vec![
            "MACs".into(),
            giga(r.macs_before),
            giga(r.macs_after),
            change(r.macs_before as f64, r.macs_after as f64),
        ],
        vec![
            "CPU forward (median)".into(),
            format!("{:.1} ms", r.latency_before.median_secs * 1e3),
            format!("{:.1} ms", r.latency_after.median_secs * 1e3),
            format!("{:.2}x", r.speedup),
        ],
    ];
    let mut dice_rows = |label: &str, after: &RegionScores| {
        for region in [Region::Wt, Region::Tc, Region::Et] {
            let (b, a) = (r.dice_before.get(region), after.get(region));
            rows.push(vec![
                format!("Dice {}{label}", region.name()),
                format!("{b:.4}"),
                format!("{a:.4}"),
                format!("{:+.4}", a - b),
            ]);
        }
    };
    dice_rows("", &r.dice_after);
    if let Some(recalibrated) = &r.dice_recalibrated {
        dice_rows(" after BN recalibration", recalibrated);
    }
    if let Some(tuned) = &r.dice_fine_tuned {
        dice_rows(
            &format!(" after {} fine-tune epoch(s)", r.fine_tune_epochs),
            tuned,
        );
    }
    let mut text = format!(
        "pruned {} with {}, {} -> {}\nfirst prune took {:.1} ms; Dice over {} case(s), scored \
         in {}; speedup / MAC reduction = {:.2}\n\n{}",
        r.model,
        r.method.name(),
        r.schedule.name(),
        r.output.display(),
        r.prune_secs * 1e3,
        r.eval_cases,
        r.precision.name(),
        r.speedup / r.mac_reduction,
        report::table(&["", "before", "after", "change"], &rows)
    );
    if r.steps.len() > 1 {
        text += &format!("\n{}", steps_table(&r.steps));
    }
    text
}

/// Dice before and after each step's fine-tune.
fn steps_table(steps: &[StepRecord]) -> String {
    let dice = |d: &RegionScores| format!("{:.3}/{:.3}/{:.3}", d.wt, d.tc, d.et);
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            vec![
                s.step.to_string(),
                s.label.clone(),
                thousands(s.nonzero_params as u64),
                dice(&s.dice_pruned),
                s.dice_recalibrated.as_ref().map(dice).unwrap_or("-".into()),
                s.dice_fine_tuned.as_ref().map(dice).unwrap_or("-".into()),
            ]
        })
        .collect();
    report::table(
        &[
            "step",
            "pruned",
            "non-zero params",
            "Dice WT/TC/ET pruned",
            "BN recalibrated",
            "fine-tuned",
        ],
        &rows,
    )
}

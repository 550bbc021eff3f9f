//! `classify prune` and `classify sweep`: L1 schedules with fine-tuning, one run or schedules x
//! sparsities x seeds.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use super::{DataOptions, SgdOptions, runs_bar};
use crate::backend;
use crate::classify::ClassifierCheckpoint;
use crate::classify::data::ClassData;
use crate::classify::prune::{
    ITERATIVE_PERCENT, PruneStep, Scope, run_schedule, weight_layers, weight_sparsity,
};
use crate::classify::train::{self, Sources};
use crate::cli::print_json;
use crate::cli::prune_cmd::ScheduleKind;
use crate::cli::train_cmd::print_above;
use crate::metrics::mean_and_sd;
use crate::prune::{Schedule, ScheduleHooks};

/// The pruning options `prune` and `sweep` share.
#[derive(Args, Debug, Clone)]
pub struct PruneOptions {
    /// Where one L1 threshold applies (layer-wise schedules always prune per layer).
    #[arg(long, value_enum, default_value_t = Scope::Global)]
    pub scope: Scope,
    /// Fine-tuning epochs after every pruning step (0: none).
    #[arg(long, default_value_t = 1)]
    pub fine_tune_epochs: usize,
    #[command(flatten)]
    pub sgd: SgdOptions,
}

#[derive(Args, Debug)]
pub struct ClassifyPruneArgs {
    /// The dense classifier checkpoint.
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataOptions,
    #[arg(long, value_enum, default_value_t = ScheduleKind::OneShot)]
    pub schedule: ScheduleKind,
    /// Share of the conv and linear weights to remove.
    #[arg(long)]
    pub sparsity: f64,
    #[command(flatten)]
    pub prune: PruneOptions,
    /// Seeds the fine-tuning.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ClassifySweepArgs {
    /// The dense classifier checkpoint.
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataOptions,
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ScheduleKind::OneShot, ScheduleKind::Iterative, ScheduleKind::LayerWise])]
    pub schedules: Vec<ScheduleKind>,
    #[arg(long, value_delimiter = ',', default_values_t = [0.5, 0.8])]
    pub sparsities: Vec<f64>,
    /// Fine-tuning seeds: every schedule and sparsity runs once per seed.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 1, 2])]
    pub seeds: Vec<u64>,
    #[command(flatten)]
    pub prune: PruneOptions,
    /// Writes `<output>.csv` (one row per run), `<output>.json` (runs and summary) and every
    /// pruned model as `<output>.<schedule>.<sparsity>.seed<N>.safetensors`.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// The schedule's name in tables and files.
fn schedule_key(kind: ScheduleKind) -> &'static str {
    match kind {
        ScheduleKind::OneShot => "one-shot",
        ScheduleKind::Iterative => "iterative",
        ScheduleKind::LayerWise => "layer-wise",
    }
}

fn schedule_of(kind: ScheduleKind) -> Schedule {
    match kind {
        ScheduleKind::OneShot => Schedule::OneShot,
        ScheduleKind::Iterative => Schedule::Increments {
            percent: ITERATIVE_PERCENT,
        },
        ScheduleKind::LayerWise => Schedule::LayerWise,
    }
}

/// Scores and fine-tunes on the data set's splits: top-1 on the test split, fine-tuning on the
/// training split.
struct Hooks<'a> {
    data: &'a ClassData,
    options: &'a PruneOptions,
    device: burn::prelude::Device,
    seed: u64,
    cancel: AtomicBool,
    fine_tune_epochs_run: usize,
    quiet: bool,
}

impl ScheduleHooks<ClassifierCheckpoint> for Hooks<'_> {
    fn evaluate(&mut self, checkpoint: &ClassifierCheckpoint) -> Result<f64> {
        let model = checkpoint.build(&self.device)?;
        let classes = checkpoint.config.classes();
        Ok(train::evaluate(&model, &self.data.test, classes, 128, &self.device).top1)
    }

    fn fine_tune(
        &mut self,
        checkpoint: &ClassifierCheckpoint,
        step: usize,
    ) -> Result<Option<ClassifierCheckpoint>> {
        if self.options.fine_tune_epochs == 0 {
            return Ok(None);
        }
        let mut tuned = checkpoint.clone();
        tuned.metadata.clear();
        let seed = self.seed.wrapping_mul(7919).wrapping_add(step as u64);
        let settings = self
            .options
            .sgd
            .settings(self.options.fine_tune_epochs, seed);
        self.device.seed(seed);
        let splits = Sources {
            train: &self.data.train,
            test: None,
            teacher: None,
        };
        train::train(
            &mut tuned,
            splits,
            &settings,
            &self.device,
            None,
            &self.cancel,
            |_| {},
        )?;
        self.fine_tune_epochs_run += self.options.fine_tune_epochs;
        // The pruned model takes the tuned weights, not the fine-tune's training state.
        tuned.metadata.clear();
        Ok(Some(tuned))
    }

    fn on_step(&mut self, r: &PruneStep, steps: usize) {
        if self.quiet {
            return;
        }
        let tuned = r
            .top1_fine_tuned
            .map(|t| format!(" -> {t:.3} fine-tuned"))
            .unwrap_or_default();
        eprintln!(
            "  step {}/{steps} {}: sparsity {:.4}, top-1 {:.3}{tuned}",
            r.step, r.label, r.sparsity, r.top1_pruned
        );
    }
}

/// One schedule run to one sparsity with one fine-tuning seed.
#[derive(Debug, Clone, Serialize)]
struct PruneRun {
    schedule: String,
    target: f64,
    seed: u64,
    sparsity: f64,
    top1_dense: f64,
    top1_pruned_final: f64,
    top1: f64,
    fine_tune_epochs: usize,
    steps: Vec<PruneStep>,
}

/// A dense model, its data and the pruning options: what every run of `prune` and `sweep`
/// starts from.
struct Study<'a> {
    dense: &'a ClassifierCheckpoint,
    data: &'a ClassData,
    options: &'a PruneOptions,
    top1_dense: f64,
}

impl<'a> Study<'a> {
    /// The study of `dense` on `data`, its dense top-1 measured (and shown) once.
    fn new(
        dense: &'a ClassifierCheckpoint,
        data: &'a ClassData,
        options: &'a PruneOptions,
    ) -> Result<Study<'a>> {
        let top1_dense = dense_top1(dense, data)?;
        eprintln!("dense top-1 {top1_dense:.3}");
        Ok(Study {
            dense,
            data,
            options,
            top1_dense,
        })
    }

    /// Prunes the dense model to `target` by `kind`, fine-tuning with `seed`.
    fn run(
        &self,
        kind: ScheduleKind,
        target: f64,
        seed: u64,
        quiet: bool,
    ) -> Result<(ClassifierCheckpoint, PruneRun)> {
        let mut hooks = Hooks {
            data: self.data,
            options: self.options,
            device: backend::resolve(self.options.sgd.device)
                .map_err(anyhow::Error::msg)?
                .0,
            seed,
            cancel: AtomicBool::new(false),
            fine_tune_epochs_run: 0,
            quiet,
        };
        let schedule = schedule_of(kind);
        let scope = self.options.scope;
        let (pruned, steps) = run_schedule(self.dense, target, schedule, scope, &mut hooks)?;
        let last = steps.last().expect("a schedule has a step");
        let sparsity = weight_sparsity(&pruned.weights, &weight_layers(&pruned));
        let run = PruneRun {
            schedule: schedule_key(kind).to_string(),
            target,
            seed,
            sparsity,
            top1_dense: self.top1_dense,
            top1_pruned_final: last.top1_pruned,
            top1: last.top1_fine_tuned.unwrap_or(last.top1_pruned),
            fine_tune_epochs: hooks.fine_tune_epochs_run,
            steps,
        };
        Ok((pruned, run))
    }
}

fn dense_top1(dense: &ClassifierCheckpoint, data: &ClassData) -> Result<f64> {
    let device = backend::cpu_device();
    let model = dense.build(&device)?;
    Ok(train::evaluate(&model, &data.test, dense.config.classes(), 128, &device).top1)
}

fn check_sparsity(target: f64) -> Result<()> {
    if !(0.0..1.0).contains(&target) {
        bail!("--sparsity {target} is impossible: it must be in [0, 1)");
    }
    Ok(())
}

pub(super) fn prune(args: ClassifyPruneArgs) -> Result<()> {
    check_sparsity(args.sparsity)?;
    let (dense, data) = (ClassifierCheckpoint::load(&args.model)?, args.data.open()?);
    let study = Study::new(&dense, &data, &args.prune)?;
    let (pruned, run) = study.run(args.schedule, args.sparsity, args.seed, args.json)?;
    pruned.save(&args.output)?;
    if args.json {
        return print_json(&run);
    }
    println!(
        "{}: {} to {:.1} % -> measured sparsity {:.4}, top-1 {:.3} (dense {:.3}, untuned {:.3}), \
         {} fine-tuning epochs",
        args.output.display(),
        run.schedule,
        args.sparsity * 100.0,
        run.sparsity,
        run.top1,
        run.top1_dense,
        run.top1_pruned_final,
        run.fine_tune_epochs
    );
    Ok(())
}

/// One schedule and sparsity over every seed.
#[derive(Debug, Serialize)]
struct SweepSummary {
    schedule: String,
    target: f64,
    top1_mean: f64,
    top1_sd: Option<f64>,
    sparsity_mean: f64,
    /// The largest |measured - target| over the seeds.
    sparsity_max_error: f64,
    fine_tune_epochs: usize,
}

#[derive(Serialize)]
struct SweepReport {
    model: PathBuf,
    top1_dense: f64,
    chance: f64,
    summary: Vec<SweepSummary>,
    runs: Vec<PruneRun>,
}

pub(super) fn sweep(args: ClassifySweepArgs) -> Result<()> {
    for &s in &args.sparsities {
        check_sparsity(s)?;
    }
    if args.seeds.is_empty() || args.schedules.is_empty() {
        bail!("--seeds and --schedules need at least one value each");
    }
    let (dense, data) = (ClassifierCheckpoint::load(&args.model)?, args.data.open()?);
    let study = Study::new(&dense, &data, &args.prune)?;
    let mut runs = Vec::new();
    let mut summary = Vec::new();
    let runs_total = args.schedules.len() * args.sparsities.len() * args.seeds.len();
    let bar = runs_bar(runs_total, "sweep");
    for &kind in &args.schedules {
        for &target in &args.sparsities {
            let mut group = Vec::new();
            for &seed in &args.seeds {
                let (pruned, run) = study.run(kind, target, seed, true)?;
                let name = format!(
                    "{}.{}.{target}.seed{seed}.safetensors",
                    args.output.display(),
                    run.schedule
                );
                pruned.save(Path::new(&name))?;
                let line = format!(
                    "{} {:.0} % seed {seed}: sparsity {:.4}, top-1 {:.3} (untuned {:.3})",
                    run.schedule,
                    target * 100.0,
                    run.sparsity,
                    run.top1,
                    run.top1_pruned_final
                );
                print_above(&bar, line);
                bar.inc(1);
                group.push(run);
            }
            summary.push(summarise(&group));
            runs.extend(group);
        }
    }
    bar.finish_and_clear();
    let report = SweepReport {
        model: args.model.clone(),
        top1_dense: study.top1_dense,
        chance: 1.0 / data.classes_present() as f64,
        summary,
        runs,
    };
    write_sweep(&args.output, &report)?;
    if args.json {
        return print_json(&report);
    }
    println!(
        "dense top-1 {:.3} (chance {:.3}); mean ± sd over seeds {:?}",
        report.top1_dense, report.chance, args.seeds
    );
    println!("schedule      target  sparsity (max error)  top-1            fine-tune epochs");
    for s in &report.summary {
        let sd = s.top1_sd.map(|v| format!("± {v:.3}")).unwrap_or_default();
        println!(
            "{:<12} {:>6.1} %  {:.4} ({:.4})       {:.3} {sd:<8} {}",
            s.schedule,
            s.target * 100.0,
            s.sparsity_mean,
            s.sparsity_max_error,
            s.top1_mean,
            s.fine_tune_epochs
        );
    }
    Ok(())
}

fn summarise(group: &[PruneRun]) -> SweepSummary {
    let top1: Vec<f64> = group.iter().map(|r| r.top1).collect();
    let sparsity: Vec<f64> = group.iter().map(|r| r.sparsity).collect();
    let (top1_mean, top1_sd) = mean_and_sd(&top1);
    let first = &group[0];
    SweepSummary {
        schedule: first.schedule.clone(),
        target: first.target,
        top1_mean,
        top1_sd,
        sparsity_mean: mean_and_sd(&sparsity).0,
        sparsity_max_error: group
            .iter()
            .map(|r| (r.sparsity - r.target).abs())
            .fold(0.0, f64::max),
        fine_tune_epochs: first.fine_tune_epochs,
    }
}

/// `<output>.csv`, one row per run, and `<output>.json` with the summary, each atomically.
fn write_sweep(output: &Path, report: &SweepReport) -> Result<()> {
    let mut csv = String::from(
        "schedule,target,seed,sparsity,top1_dense,top1_untuned,top1,fine_tune_epochs\n",
    );
    for r in &report.runs {
        csv += &format!(
            "{},{},{},{:.6},{:.6},{:.6},{:.6},{}\n",
            r.schedule,
            r.target,
            r.seed,
            r.sparsity,
            r.top1_dense,
            r.top1_pruned_final,
            r.top1,
            r.fine_tune_epochs
        );
    }
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", output.display()));
    for (path, bytes) in [
        (with("csv"), csv.into_bytes()),
        (with("json"), serde_json::to_vec_pretty(report)?),
    ] {
        crate::atomic::write_bytes(&path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

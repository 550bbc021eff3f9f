//! The data pipeline commands: `train`, `eval` and `predict`, with their data sources
//! (BraTS folders or synthetic cases generated in memory).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::{ModelArgs, print_json};
use crate::backend::{self, DeviceChoice};
use crate::baseline::ThresholdBaseline;
use crate::data::LabelConvention;
use crate::data::dataset::{CaseSource, PreparedCase, SliceDataset, SliceSelection, list_cases};
use crate::data::preprocess::split_patients;
use crate::data::synth::{SynthKind, SynthOptions};
use crate::data::{load_case, write_label_map};
use crate::inference::{InferenceOptions, evaluate_cases, labels_from_regions, predict_regions};
use crate::metrics::{CaseMetrics, HD95_REGIONS, Region, evaluate_case, mean_metrics};
use crate::model::{Checkpoint, load_checkpoint};
use crate::report;
use crate::train::{
    CheckpointPaths, Distillation, PlateauOptions, SliceSettings, StopReason, TrainEvent,
    TrainOptions, TrainState, fit,
};

/// Where cases come from: a BraTS folder or synthetic cases made in memory.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// A BraTS case folder, or a folder of case folders.
    #[arg(long, conflicts_with = "synthetic")]
    pub data: Option<PathBuf>,
    /// Use N synthetic cases generated in memory (seeds --synthetic-seed .. + N - 1).
    #[arg(long)]
    pub synthetic: Option<usize>,
    /// Seed of the first synthetic case.
    #[arg(long, default_value_t = 0)]
    pub synthetic_seed: u64,
    /// Generator of the synthetic cases.
    #[arg(long, value_enum, default_value_t = SynthKind::Realistic)]
    pub synthetic_kind: SynthKind,
    /// Voxel size of the synthetic cases in mm, over BraTS's field of view (default: 1 mm,
    /// BraTS's own 240x240x155 grid, for realistic cases; 1.875 mm for cartoons).
    #[arg(long)]
    pub synthetic_spacing: Option<f32>,
    /// Label convention; by default inferred from the file naming.
    #[arg(long, value_enum)]
    pub labels: Option<LabelConvention>,
}

impl DataArgs {
    /// The cases this names, not yet loaded.
    pub fn sources(&self) -> Result<Vec<CaseSource>> {
        match (&self.data, self.synthetic) {
            (Some(root), _) => Ok(list_cases(root)?),
            (None, Some(0)) => bail!("--synthetic needs at least one case"),
            (None, Some(n)) => {
                let options =
                    SynthOptions::over_brats_view(self.synthetic_kind, self.synthetic_spacing)
                        .map_err(|e| anyhow::anyhow!("--synthetic-spacing: {e}"))?;
                Ok((0..n as u64)
                    .map(|i| CaseSource::Synthetic {
                        seed: self.synthetic_seed.wrapping_add(i),
                        options,
                    })
                    .collect())
            }
            (None, None) => bail!("give --data <folder> or --synthetic <count>"),
        }
    }

    /// Loads every case into memory (small evaluation sets), reporting each id to `on_case`.
    pub fn load(&self, mut on_case: impl FnMut(&str)) -> Result<Vec<PreparedCase>> {
        self.sources()?
            .iter()
            .map(|source| {
                on_case(&source.id());
                Ok(source.load(self.labels)?)
            })
            .collect()
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The architecture of a fresh model, or a checkpoint whose weights training starts from.
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Where the best model (by validation Dice) goes; the last epoch goes beside it as
    /// `<name>.last.safetensors`.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Continue from a `.last.safetensors` checkpoint: weights, epoch, learning rate, split.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// ReduceLROnPlateau: epochs without improvement before the rate is cut.
    #[arg(long, default_value_t = 5)]
    pub lr_patience: usize,
    #[arg(long, default_value_t = 0.1)]
    pub lr_factor: f64,
    #[arg(long, default_value_t = 1e-5)]
    pub min_lr: f64,
    /// Early stopping: epochs without improvement before training stops.
    #[arg(long, default_value_t = 10)]
    pub early_stop: usize,
    /// Side of the square axial crop the network trains on (multiple of 16).
    #[arg(long, default_value_t = 192)]
    pub crop: usize,
    /// Share of tumour-free brain slices kept besides all tumour slices.
    #[arg(long, default_value_t = 0.1)]
    pub tumour_free_share: f32,
    /// Train on every N-th selected slice of each case (1: all).
    #[arg(long, default_value_t = 1)]
    pub slice_step: usize,
    /// Augment training slices: random left-right flips, per-modality gain and offset.
    #[arg(long)]
    pub augment: bool,
    /// Share of patients held out for validation (drives the schedule and "best").
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f32,
    /// Share of patients held out for testing (`eval --split test`).
    #[arg(long, default_value_t = 0.0)]
    pub test_fraction: f32,
    /// Seeds the split, slice choice, batch order and fresh weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop each epoch after this many batches (quick runs).
    #[arg(long)]
    pub max_batches: Option<usize>,
    /// Network slimming: L1 weight on every BN gamma (e.g. 1e-4), before BN-gamma pruning.
    #[arg(long, default_value_t = 0.0)]
    pub slimming_l1: f64,
    /// Knowledge distillation: a (pruned or dense) teacher checkpoint whose softened outputs
    /// the student also learns from.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Weight of the teacher term in [0, 1] (0: ground truth only, 1: teacher only).
    #[arg(long, default_value_t = 0.5)]
    pub kd_alpha: f64,
    /// Softening temperature of the teacher's and student's logits (> 0).
    #[arg(long, default_value_t = 2.0)]
    pub kd_temperature: f64,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Print the training history as JSON at the end.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct TrainReport<'a> {
    best: &'a Path,
    last: &'a Path,
    device: &'a str,
    stop: StopReason,
    train_slices: usize,
    val_slices: usize,
    state: &'a TrainState,
}

pub fn train(args: TrainArgs) -> Result<()> {
    check_train_args(&args)?;
    let resumed = args
        .resume
        .as_ref()
        .map(|p| -> Result<(Checkpoint, TrainState)> {
            let checkpoint = load_checkpoint(p)?;
            let state = TrainState::from_checkpoint(&checkpoint)?
                .with_context(|| format!("{}: holds no training state to resume", p.display()))?;
            Ok((checkpoint, state))
        })
        .transpose()?;
    let sources = args.data.sources()?;
    let mut state = resumed.as_ref().map(|(_, s)| s.clone()).unwrap_or_default();
    if resumed.is_none() {
        assign_split(&mut state, &sources, &args)?;
    }
    let settings = slice_settings(&mut state, &args);
    let (train_set, val_set) = slice_sets(&sources, &state, settings, args.data.labels)?;
    let (device, device_name) = backend::resolve(args.device).map_err(anyhow::Error::msg)?;
    let device = device.autodiff();
    let checkpoint = match resumed {
        Some((checkpoint, _)) => checkpoint,
        None => {
            device.seed(args.seed);
            args.model.checkpoint_on(&device)?
        }
    };
    let model = checkpoint.build(&device)?;
    eprintln!(
        "train: {} on {device_name}; {} training and {} validation slices ({}x{})",
        checkpoint.config.describe(),
        train_set.len(),
        val_set.len(),
        settings.crop,
        settings.crop
    );
    let mut options = train_options(&args);
    if let Some(path) = &args.teacher {
        let teacher = load_checkpoint(path)?;
        eprintln!(
            "train: distilling from {} (alpha {}, temperature {})",
            path.display(),
            args.kd_alpha,
            args.kd_temperature
        );
        // The teacher runs without autodiff: it is never trained.
        options.distillation = Some(Arc::new(Distillation {
            teacher: teacher.build(&device.clone().inner())?,
            teacher_head: teacher.config.head,
            alpha: args.kd_alpha,
            temperature: args.kd_temperature,
        }));
    }
    // A masked (unstructurally pruned) model trains under its masks and keeps them.
    options.masks = checkpoint.masks.clone();
    if !options.masks.is_empty() {
        eprintln!(
            "train: keeping {:.1}% of the conv weights masked to zero",
            100.0 * checkpoint.mask_sparsity()
        );
    }
    let paths = CheckpointPaths::beside(&args.output);
    let cancel = install_ctrl_c();
    let progress = TrainProgress::new();
    let outcome = fit(
        &checkpoint.config,
        model,
        &train_set,
        &val_set,
        &options,
        state,
        &paths,
        &cancel,
        |event| progress.show(&event),
    )?;
    progress.finish();
    let report = TrainReport {
        best: &paths.best,
        last: &paths.last,
        device: device_name,
        stop: outcome.stop,
        train_slices: train_set.len(),
        val_slices: val_set.len(),
        state: &outcome.state,
    };
    if args.json {
        return print_json(&report);
    }
    print!("{}", render_history(&report));
    Ok(())
}

fn check_train_args(args: &TrainArgs) -> Result<()> {
    super::check_size("--crop", args.crop)?;
    let fraction_ok = |f: f32| (0.0..1.0).contains(&f);
    if !fraction_ok(args.val_fraction)
        || !fraction_ok(args.test_fraction)
        || args.val_fraction + args.test_fraction >= 1.0
    {
        bail!(
            "--val-fraction and --test-fraction must each be in [0, 1) and leave patients to \
             train on (got {} and {})",
            args.val_fraction,
            args.test_fraction
        );
    }
    if !(0.0..=1.0).contains(&args.tumour_free_share) {
        bail!(
            "--tumour-free-share must be in [0, 1], got {}",
            args.tumour_free_share
        );
    }
    if args.epochs == 0
        || args.batch == 0
        || args.early_stop == 0
        || args.lr_patience == 0
        || args.slice_step == 0
    {
        bail!("--epochs, --batch, --early-stop, --lr-patience and --slice-step must be at least 1");
    }
    if !(args.slimming_l1.is_finite() && args.slimming_l1 >= 0.0) {
        bail!(
            "--slimming-l1 must be zero or positive, got {}",
            args.slimming_l1
        );
    }
    if !(0.0..=1.0).contains(&args.kd_alpha) {
        bail!("--kd-alpha must be in [0, 1], got {}", args.kd_alpha);
    }
    if !(args.kd_temperature.is_finite() && args.kd_temperature > 0.0) {
        bail!(
            "--kd-temperature must be positive, got {}",
            args.kd_temperature
        );
    }
    if !(args.lr_factor > 0.0 && args.lr_factor < 1.0) {
        bail!("--lr-factor must be in (0, 1), got {}", args.lr_factor);
    }
    Ok(())
}

/// Splits patients (seeded) and records the split in the training state.
fn assign_split(state: &mut TrainState, cases: &[CaseSource], args: &TrainArgs) -> Result<()> {
    if cases.len() < 2 {
        bail!(
            "training needs at least 2 cases (one to train on, one to validate), got {}",
            cases.len()
        );
    }
    let ids: Vec<String> = cases.iter().map(CaseSource::id).collect();
    let mut split = split_patients(&ids, args.val_fraction, args.test_fraction, args.seed);
    if split.val.is_empty() {
        // Two patients: split_patients keeps both for training; validation needs one.
        split.val.push(split.train.pop().expect("two or more ids"));
    }
    state.train_ids = split.train;
    state.val_ids = split.val;
    state.test_ids = split.test;
    Ok(())
}

/// The slice settings of this run: a resumed run keeps the ones it recorded (and says so when the
/// flags differ); a new run records the flags.
fn slice_settings(state: &mut TrainState, args: &TrainArgs) -> SliceSettings {
    let given = SliceSettings {
        crop: args.crop,
        tumour_free_share: args.tumour_free_share,
        slice_step: args.slice_step,
        seed: args.seed,
    };
    match state.slices {
        Some(recorded) => {
            if recorded != given {
                eprintln!(
                    "train: resuming with the recorded slice settings {recorded:?} \
                     (the flags gave {given:?})"
                );
            }
            recorded
        }
        None => *state.slices.insert(given),
    }
}

/// The training and validation slice datasets of the recorded split, loading one case at a time
/// (only the selected, cropped f16 slices stay in memory).
fn slice_sets(
    sources: &[CaseSource],
    state: &TrainState,
    settings: SliceSettings,
    labels: Option<LabelConvention>,
) -> Result<(SliceDataset, SliceDataset)> {
    let selection = SliceSelection {
        tumour_free_share: settings.tumour_free_share,
        slice_step: settings.slice_step,
        seed: settings.seed,
    };
    let build = |ids: &[String]| -> Result<SliceDataset> {
        let mut set = SliceDataset::empty(settings.crop);
        for (i, id) in ids.iter().enumerate() {
            let source = sources
                .iter()
                .find(|s| &s.id() == id)
                .with_context(|| format!("case {id} of the recorded split is not in the data"))?;
            eprintln!("train: loading {id}");
            set.add_case(&source.load(labels)?, selection, i)?;
        }
        Ok(set)
    };
    Ok((build(&state.train_ids)?, build(&state.val_ids)?))
}

fn train_options(args: &TrainArgs) -> TrainOptions {
    TrainOptions {
        epochs: args.epochs,
        batch_size: args.batch,
        learning_rate: args.lr,
        plateau: PlateauOptions {
            factor: args.lr_factor,
            patience: args.lr_patience,
            min_lr: args.min_lr,
        },
        early_stop_patience: args.early_stop,
        seed: args.seed,
        threshold: 0.5,
        max_batches_per_epoch: args.max_batches,
        slimming_l1: args.slimming_l1,
        augment: args.augment,
        masks: Default::default(),
        distillation: None,
    }
}

/// Ctrl-C raises the returned flag (training stops after the current batch); a second Ctrl-C
/// exits at once.
pub(crate) fn install_ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    let installed = ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: stopping after this batch; the last completed epoch's checkpoint \
             is kept (Ctrl-C again to quit now)"
        );
    });
    if let Err(e) = installed {
        eprintln!("warning: Ctrl-C handler not installed ({e})");
    }
    flag
}

/// The terminal progress bar of a training run.
pub(crate) struct TrainProgress {
    bar: ProgressBar,
}

impl TrainProgress {
    pub(crate) fn new() -> TrainProgress {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} batches {elapsed_precise} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        TrainProgress { bar }
    }

    pub(crate) fn show(&self, event: &TrainEvent) {
        match event {
            TrainEvent::Batch {
                epoch,
                batch,
                batches,
                loss,
            } => {
                self.bar.set_length(*batches as u64);
                self.bar.set_position(*batch as u64);
                self.bar.set_prefix(format!("epoch {epoch}"));
                self.bar.set_message(format!("loss {loss:.4}"));
            }
            TrainEvent::Validating { epoch } => {
                self.bar.set_message(format!("validating epoch {epoch}"));
            }
            TrainEvent::Epoch(r) => {
                let line = format!(
                    "epoch {:>3}: train loss {:.4}, val loss {:.4}, val Dice WT {:.3} TC {:.3} \
                     ET {:.3}, lr {:.0e}, {:.1} s",
                    r.epoch,
                    r.train_loss,
                    r.val_loss,
                    r.val_dice[0],
                    r.val_dice[1],
                    r.val_dice[2],
                    r.learning_rate,
                    r.elapsed_secs
                );
                // A hidden bar (stderr not a terminal) drops println; logs still want the line.
                if self.bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    self.bar.println(line);
                }
            }
            TrainEvent::Saved(path) => self.bar.set_message(format!("saved {}", path.display())),
        }
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn render_history(report: &TrainReport) -> String {
    let state = report.state;
    let stop = match report.stop {
        StopReason::Finished => "all epochs ran",
        StopReason::EarlyStopped => "early stopping (validation Dice stopped improving)",
        StopReason::Cancelled => "cancelled (the checkpoints of the last completed epoch are kept)",
    };
    format!(
        "trained on {} ({} training / {} validation slices); stopped: {stop}\n\
         epochs done: {}, best epoch: {} (mean val Dice {:.4})\nbest: {}\nlast: {}\n",
        report.device,
        report.train_slices,
        report.val_slices,
        state.epochs_done,
        state.best_epoch,
        state.best_score.unwrap_or(f64::NAN),
        report.best.display(),
        report.last.display()
    )
}

/// Which cases of the data `eval` scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalSplit {
    /// Every case given.
    All,
    /// Only the test patients recorded by `train --test-fraction`.
    Test,
}

/// A non-learned method `eval` scores beside the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineKind {
    /// Global thresholds on z-scored FLAIR (WT) and T1ce (TC, ET), fitted on training cases.
    Threshold,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint; the embedded default model when omitted.
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, value_enum, default_value_t = EvalSplit::All)]
    pub split: EvalSplit,
    /// Probability threshold per region.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// A case's predicted enhancing tumour smaller than this (ml) is relabelled necrosis
    /// (0 turns the rule off).
    #[arg(long, default_value_t = crate::inference::DEFAULT_MIN_ENHANCING_ML)]
    pub min_et_ml: f32,
    /// Also score a baseline on the same cases.
    #[arg(long, value_enum)]
    pub baseline: Option<BaselineKind>,
    /// Cases the baseline is fitted on: a BraTS folder (default: the default model's first
    /// synthetic training cases, seeds 0..--baseline-fit-cases, of the same generator and grid).
    #[arg(long)]
    pub baseline_fit_data: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    pub baseline_fit_cases: usize,
    /// Also write the per-case and mean metrics as JSON to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Also write one CSV row per case (and the mean) to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
pub struct EvalReport {
    pub model: String,
    pub threshold: f32,
    pub cases: Vec<CaseMetrics>,
    pub mean: CaseMetrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineReport>,
}

/// A baseline's thresholds and its metrics on the same cases as the model.
#[derive(Serialize)]
pub struct BaselineReport {
    pub kind: BaselineKind,
    pub thresholds: ThresholdBaseline,
    pub fitted_on: usize,
    pub cases: Vec<CaseMetrics>,
    pub mean: CaseMetrics,
}

/// Fits the threshold baseline on `args`' fitting cases; returns it and the number of cases.
fn fit_baseline(args: &EvalArgs, data: &DataArgs) -> Result<(ThresholdBaseline, usize)> {
    let fit_data = match &args.baseline_fit_data {
        Some(folder) => DataArgs {
            data: Some(folder.clone()),
            synthetic: None,
            ..data.clone()
        },
        None => DataArgs {
            data: None,
            synthetic: Some(args.baseline_fit_cases),
            synthetic_seed: 0,
            ..data.clone()
        },
    };
    eprintln!("eval: fitting the threshold baseline");
    let cases = fit_data.load(|id| eprintln!("  {id}"))?;
    if cases.iter().all(|c| c.regions.is_none()) {
        bail!("the baseline's fitting cases have no segmentations");
    }
    Ok((ThresholdBaseline::fit(&cases), cases.len()))
}

pub fn eval(args: EvalArgs) -> Result<()> {
    check_threshold(args.threshold)?;
    check_min_et_ml(args.min_et_ml)?;
    let (checkpoint, model_name) = super::defaults::model_or_default(args.model.as_deref())?;
    let data = super::defaults::data_or_held_out(&args.data);
    let mut sources = data.sources()?;
    if args.split == EvalSplit::Test {
        sources = test_cases(sources, &checkpoint, &model_name)?;
    }
    let (device, device_name) = backend::resolve(args.device).map_err(anyhow::Error::msg)?;
    let model = checkpoint.build(&device)?;
    let options = InferenceOptions {
        threshold: args.threshold,
        min_enhancing_ml: args.min_et_ml,
        ..InferenceOptions::default()
    };
    eprintln!(
        "eval: {model_name} on {device_name}, {} case(s)",
        sources.len()
    );
    let baseline = match args.baseline {
        Some(BaselineKind::Threshold) => Some(fit_baseline(&args, &data)?),
        None => None,
    };
    let bar = ProgressBar::new(sources.len() as u64);
    let mut scored = Vec::with_capacity(sources.len());
    let mut baseline_scored = Vec::new();
    // One case in memory at a time.
    for source in &sources {
        bar.set_message(source.id());
        let case = source.load(data.labels)?;
        if let (Some((thresholds, _)), Some(truth)) = (&baseline, &case.regions) {
            let predicted = thresholds.predict(&case);
            baseline_scored.push(evaluate_case(
                &case.id,
                &predicted,
                truth,
                case.dims,
                case.spacing_mm,
            ));
        }
        let head = checkpoint.config.head;
        scored.extend(evaluate_cases(
            &model,
            head,
            &[case],
            options,
            &device,
            |_| {},
        )?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = EvalReport {
        model: model_name,
        threshold: args.threshold,
        mean: mean_metrics(&scored),
        cases: scored,
        baseline: baseline.map(|(thresholds, fitted_on)| BaselineReport {
            kind: BaselineKind::Threshold,
            thresholds,
            fitted_on,
            mean: mean_metrics(&baseline_scored),
            cases: baseline_scored,
        }),
    };
    write_eval_files(&report, args.json_out.as_deref(), args.csv.as_deref())?;
    if args.json {
        return print_json(&report);
    }
    print!("{}", render_eval(&report));
    Ok(())
}

pub(crate) fn check_threshold(threshold: f32) -> Result<()> {
    if !(threshold > 0.0 && threshold < 1.0) {
        bail!("--threshold must be in (0, 1), got {threshold}");
    }
    Ok(())
}

pub(crate) fn check_min_et_ml(min_et_ml: f32) -> Result<()> {
    if !(min_et_ml.is_finite() && min_et_ml >= 0.0) {
        bail!("--min-et-ml must be a volume in ml, 0 or more, got {min_et_ml}");
    }
    Ok(())
}

/// Keeps the cases recorded as test patients in the checkpoint's training state.
fn test_cases(
    cases: Vec<CaseSource>,
    checkpoint: &Checkpoint,
    model_name: &str,
) -> Result<Vec<CaseSource>> {
    let state = TrainState::from_checkpoint(checkpoint)?
        .with_context(|| format!("{model_name}: records no training split (--split test)"))?;
    if state.test_ids.is_empty() {
        bail!("{model_name}: was trained without test patients (train --test-fraction)");
    }
    let kept: Vec<CaseSource> = cases
        .into_iter()
        .filter(|c| state.test_ids.contains(&c.id()))
        .collect();
    if kept.is_empty() {
        bail!(
            "none of the test patients {:?} is in the data given",
            state.test_ids
        );
    }
    Ok(kept)
}

/// Columns of the eval table and CSV: Dice and IoU per region, then HD95.
fn eval_columns() -> Vec<String> {
    let mut columns = vec!["case".to_string()];
    columns.extend(Region::ALL.iter().map(|r| format!("Dice {}", r.name())));
    columns.extend(Region::ALL.iter().map(|r| format!("IoU {}", r.name())));
    columns.extend(HD95_REGIONS.iter().map(|r| format!("HD95 {} mm", r.name())));
    columns
}

fn eval_row(m: &CaseMetrics) -> Vec<String> {
    let mut row = vec![m.case_id.clone()];
    row.extend(Region::ALL.iter().map(|r| format!("{:.4}", m.dice(*r))));
    row.extend(Region::ALL.iter().map(|r| format!("{:.4}", m.iou(*r))));
    row.extend(HD95_REGIONS.iter().map(|r| format!("{:.2}", m.hd95(*r))));
    row
}

fn render_eval(report: &EvalReport) -> String {
    let columns = eval_columns();
    let headers: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut rows: Vec<Vec<String>> = report.cases.iter().map(eval_row).collect();
    rows.push(eval_row(&report.mean));
    let mut text = format!(
        "model: {} (threshold {})\n\n{}",
        report.model,
        report.threshold,
        report::table(&headers, &rows)
    );
    if let Some(b) = &report.baseline {
        let t = &b.thresholds;
        let dice = |m: &CaseMetrics, r: Region| m.dice(r);
        text += &format!(
            "\nthreshold baseline (z-scores: WT FLAIR >= {:.2}, TC T1ce >= {:.2}, ET T1ce >= {:.2}; \
             fitted on {} case(s))\n",
            t.wt_flair, t.tc_t1ce, t.et_t1ce, b.fitted_on
        );
        let rows: Vec<Vec<String>> = [Region::Wt, Region::Tc, Region::Et]
            .iter()
            .map(|&r| {
                let (model, base) = (dice(&report.mean, r), dice(&b.mean, r));
                vec![
                    r.name().to_string(),
                    format!("{model:.3}"),
                    format!("{base:.3}"),
                    format!("{:+.3}", model - base),
                ]
            })
            .collect();
        text += &report::table(
            &["mean Dice", "model", "baseline", "model - baseline"],
            &rows,
        );
    }
    text
}

fn write_eval_files(report: &EvalReport, json: Option<&Path>, csv: Option<&Path>) -> Result<()> {
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report)?;
        crate::atomic::write_bytes(path, text.as_bytes())
            .with_context(|| path.display().to_string())?;
    }
    if let Some(path) = csv {
        let mut text = eval_columns().join(",") + "\n";
        for m in report.cases.iter().chain([&report.mean]) {
            text += &(eval_row(m).join(",") + "\n");
        }
        crate::atomic::write_bytes(path, text.as_bytes())
            .with_context(|| path.display().to_string())?;
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A BraTS case folder (four modalities; a seg, if present, is used to report Dice).
    pub case: PathBuf,
    /// Where to write the label map (.nii.gz or .nii).
    #[arg(short, long)]
    pub output: PathBuf,
    /// A checkpoint; the embedded default model when omitted.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// A case's predicted enhancing tumour smaller than this (ml) is relabelled necrosis
    /// (0 turns the rule off).
    #[arg(long, default_value_t = crate::inference::DEFAULT_MIN_ENHANCING_ML)]
    pub min_et_ml: f32,
    /// Label convention of the input and of the written labels; by default from the naming.
    #[arg(long, value_enum)]
    pub labels: Option<LabelConvention>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct PredictReport {
    case: PathBuf,
    output: PathBuf,
    model: String,
    voxels_per_region: Vec<(String, usize)>,
    metrics: Option<CaseMetrics>,
    elapsed_secs: f64,
}

pub fn predict(args: PredictArgs) -> Result<()> {
    check_threshold(args.threshold)?;
    check_min_et_ml(args.min_et_ml)?;
    let start = std::time::Instant::now();
    let (checkpoint, model_name) = super::defaults::model_or_default(args.model.as_deref())?;
    let source = load_case(&args.case, args.labels)?;
    let case = PreparedCase::from_brats(&source);
    let (device, _) = backend::resolve(args.device).map_err(anyhow::Error::msg)?;
    let model = checkpoint.build(&device)?;
    let options = InferenceOptions {
        threshold: args.threshold,
        min_enhancing_ml: args.min_et_ml,
        ..InferenceOptions::default()
    };
    let bar = ProgressBar::new(0);
    let regions = predict_regions(
        &model,
        checkpoint.config.head,
        &case,
        options,
        &device,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    );
    bar.finish_and_clear();
    let labels = labels_from_regions(&regions, case.convention);
    // The label map takes the first modality's header, so it overlays the input exactly.
    write_label_map(&args.output, &labels, &source.modalities[0])?;
    let report = PredictReport {
        case: args.case.clone(),
        output: args.output.clone(),
        model: model_name,
        voxels_per_region: [Region::Ncr, Region::Ed, Region::Et]
            .iter()
            .map(|r| {
                (
                    r.name().to_string(),
                    regions.iter().filter(|c| r.contains(**c)).count(),
                )
            })
            .collect(),
        metrics: case
            .regions
            .as_ref()
            .map(|truth| evaluate_case(&case.id, &regions, truth, case.dims, case.spacing_mm)),
        elapsed_secs: start.elapsed().as_secs_f64(),
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "wrote {} ({} labels, {:.2} s)",
        args.output.display(),
        match case.convention {
            LabelConvention::Brats2021 => "0/1/2/4",
            LabelConvention::Brats2023 => "0/1/2/3",
        },
        report.elapsed_secs
    );
    if let Some(m) = &report.metrics {
        println!(
            "against {}'s seg: Dice WT {:.4} TC {:.4} ET {:.4}",
            case.id,
            m.dice(Region::Wt),
            m.dice(Region::Tc),
            m.dice(Region::Et)
        );
    }
    Ok(())
}

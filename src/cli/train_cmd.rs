//! `train`: fit a model on BraTS folders or synthetic cases, with a progress bar, Ctrl-C that
//! stops after the current batch, and resumable checkpoints.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::data_args::DataArgs;
use super::{ModelArgs, print_json};
use crate::backend::{self, DeviceChoice};
use crate::data::LabelConvention;
use crate::data::dataset::{CaseSource, SliceDataset, SliceSelection};
use crate::data::preprocess::split_patients;
use crate::model::{Checkpoint, load_checkpoint};
use crate::train::{
    CheckpointPaths, Distillation, EpochFigures, PlateauOptions, SegmentationState, SliceSettings,
    StopReason, TrainEvent, TrainOptions, fit,
};

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
    state: &'a SegmentationState,
}

pub fn train(args: TrainArgs) -> Result<()> {
    check_train_args(&args)?;
    let resumed = args
        .resume
        .as_ref()
        .map(|p| -> Result<(Checkpoint, SegmentationState)> {
            let checkpoint = load_checkpoint(p)?;
            let state = SegmentationState::from_checkpoint(&checkpoint)?
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
        device: &device_name,
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
fn assign_split(
    state: &mut SegmentationState,
    cases: &[CaseSource],
    args: &TrainArgs,
) -> Result<()> {
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
    state.run.train_ids = split.train;
    state.run.val_ids = split.val;
    state.run.test_ids = split.test;
    Ok(())
}

/// The slice settings of this run: a resumed run keeps the ones it recorded (and says so when the
/// flags differ); a new run records the flags.
fn slice_settings(state: &mut SegmentationState, args: &TrainArgs) -> SliceSettings {
    let given = SliceSettings {
        crop: args.crop,
        tumour_free_share: args.tumour_free_share,
        slice_step: args.slice_step,
        seed: args.seed,
    };
    match state.run.slices {
        Some(recorded) => {
            if recorded != given {
                eprintln!(
                    "train: resuming with the recorded slice settings {recorded:?} \
                     (the flags gave {given:?})"
                );
            }
            recorded
        }
        None => *state.run.slices.insert(given),
    }
}

/// The training and validation slice datasets of the recorded split, loading one case at a time
/// (only the selected, cropped f16 slices stay in memory).
fn slice_sets(
    sources: &[CaseSource],
    state: &SegmentationState,
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
    Ok((build(&state.run.train_ids)?, build(&state.run.val_ids)?))
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

    /// Shows a training event of either task: batches on the bar, epochs as lines above it.
    pub(crate) fn show<M: EpochFigures>(&self, event: &TrainEvent<M>) {
        match event {
            TrainEvent::Batch {
                epoch,
                batch,
                batches,
                loss,
            } => self.batch(*epoch, *batch, *batches, *loss),
            TrainEvent::Validating { epoch } => {
                self.bar.set_message(format!("validating epoch {epoch}"));
            }
            TrainEvent::Epoch(record) => self.line(M::log_line(record)),
            TrainEvent::Saved(path) => self.bar.set_message(format!("saved {}", path.display())),
        }
    }

    /// Batch `batch` of `batches` in `epoch` is done with this loss.
    pub(crate) fn batch(&self, epoch: usize, batch: usize, batches: usize, loss: f64) {
        self.bar.set_length(batches as u64);
        self.bar.set_position(batch as u64);
        self.bar.set_prefix(format!("epoch {epoch}"));
        self.bar.set_message(format!("loss {loss:.4}"));
    }

    /// A line (an epoch's figures) above the bar.
    pub(crate) fn line(&self, line: String) {
        print_above(&self.bar, line);
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Prints `line` above `bar`; to stderr when the bar is hidden (stderr not a terminal drops
/// `println`, and logs still want the line).
pub(crate) fn print_above(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
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
        state.run.best_epoch,
        state.run.best_score.unwrap_or(f64::NAN),
        report.best.display(),
        report.last.display()
    )
}

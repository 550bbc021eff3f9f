//! What `prune` and `sweep` share around a pruning schedule: the fine-tuning settings and data,
//! the SNIP batch, and Dice on the evaluation cases (the schedule's hooks).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Result, bail};
use clap::Args;

use super::data_args::DataArgs;
use super::train_cmd::{TrainProgress, install_ctrl_c};
use crate::backend;
use crate::data::dataset::{PreparedCase, epoch_batches};
use crate::inference::{InferenceOptions, evaluate_cases};
use crate::metrics::{RegionScores, RegionStats};
use crate::model::Checkpoint;
use crate::prune::{PruneMethod, ScheduleHooks, SnipBatch, StepRecord, UnstructuredMethod};
use crate::train::fine_tune::{
    FINE_TUNE_CROP, FINE_TUNE_LEARNING_RATE, FineTuneData, FineTuneSettings, fine_tune,
};
use crate::train::recalibrate::{RecalibrationSettings, recalibrate_batch_norms};

/// Fine-tuning after each pruning step (and the data SNIP scores on).
#[derive(Args, Debug, Clone)]
pub struct FineTuneArgs {
    /// Fine-tuning epochs after each pruning step (0: none). Dice is then reported before and
    /// after.
    #[arg(long, default_value_t = 0)]
    pub fine_tune_epochs: usize,
    /// Fine-tuning learning rate (Adam).
    #[arg(long, default_value_t = FINE_TUNE_LEARNING_RATE)]
    pub fine_tune_lr: f64,
    /// Fine-tune on this BraTS folder instead of synthetic cases.
    #[arg(long)]
    pub fine_tune_data: Option<PathBuf>,
    /// Synthetic fine-tuning cases: seeds 0..N (the default model's own training cases).
    #[arg(long, default_value_t = 8)]
    pub fine_tune_cases: usize,
    /// Fine-tuning crop (multiple of 16; the training recipe's by default).
    #[arg(long, default_value_t = FINE_TUNE_CROP)]
    pub fine_tune_crop: usize,
    /// Caps the fine-tuning batches per epoch.
    #[arg(long)]
    pub fine_tune_batches: Option<usize>,
    /// Seeds the fine-tuning batch order.
    #[arg(long, default_value_t = 0)]
    pub fine_tune_seed: u64,
    /// BN recalibration after each cut: training-mode passes over this many fine-tuning
    /// slices recompute the batch norms' running statistics, before any fine-tuning (0: off).
    #[arg(long, default_value_t = 0)]
    pub bn_recalibrate: usize,
}

/// The fine-tuning slices and the settings to train on them, across a schedule's steps.
pub struct FineTuner {
    args: FineTuneArgs,
    data: FineTuneData,
    cancel: Arc<AtomicBool>,
    /// Adam steps taken by all fine-tunes so far.
    steps_trained: usize,
    /// The seed BN recalibration draws its slices with: the one given, whatever
    /// [`Self::set_seed`] later does to the fine-tunes (a point recalibrates alike alone or
    /// after others).
    recalibration_seed: u64,
}

impl FineTuner {
    /// Loads the fine-tuning cases (synthetic seeds 0.. of the evaluation data's generator and
    /// grid, or a BraTS folder) into slice sets.
    pub fn load(args: &FineTuneArgs, data: &DataArgs) -> Result<FineTuner> {
        super::check_size("--fine-tune-crop", args.fine_tune_crop)?;
        let source = DataArgs {
            data: args.fine_tune_data.clone(),
            synthetic: args
                .fine_tune_data
                .is_none()
                .then_some(args.fine_tune_cases),
            synthetic_seed: 0,
            ..data.clone()
        };
        let cases = source.load(|id| eprintln!("fine-tune: loading {id}"))?;
        Ok(FineTuner {
            args: args.clone(),
            data: FineTuneData::from_cases(&cases, args.fine_tune_crop)?,
            cancel: install_ctrl_c(),
            steps_trained: 0,
            recalibration_seed: args.fine_tune_seed,
        })
    }

    /// The fine-tuning cases when they are needed: to fine-tune (`tuning`) or for the batch SNIP
    /// scores weights on (when `methods` has it).
    pub fn load_if_needed(
        args: &FineTuneArgs,
        data: &DataArgs,
        tuning: bool,
        methods: &[PruneMethod],
    ) -> Result<Option<FineTuner>> {
        let snip = methods.contains(&PruneMethod::Unstructured(UnstructuredMethod::Snip));
        (tuning || snip || args.bn_recalibrate > 0)
            .then(|| FineTuner::load(args, data))
            .transpose()
    }

    /// Adam steps in one whole epoch over the fine-tuning slices.
    pub fn steps_per_epoch(&self) -> usize {
        self.data.steps_per_epoch()
    }

    /// Whether pruned models are fine-tuned (`--fine-tune-epochs` above 0).
    pub fn fine_tunes(&self) -> bool {
        self.args.fine_tune_epochs > 0
    }

    /// Whether pruned models get BN recalibration (`--bn-recalibrate` above 0).
    pub fn recalibrates(&self) -> bool {
        self.args.bn_recalibrate > 0
    }

    /// `checkpoint` with its batch norms' running statistics recomputed on the fine-tuning
    /// slices (on the CPU).
    pub fn recalibrate(&self, checkpoint: &Checkpoint) -> Result<Checkpoint> {
        let settings = RecalibrationSettings {
            slices: self.args.bn_recalibrate,
            seed: self.recalibration_seed,
            ..RecalibrationSettings::default()
        };
        Ok(recalibrate_batch_norms(
            checkpoint,
            &self.data.train,
            settings,
            &backend::cpu_device(),
        )?)
    }

    /// Adam steps one fine-tune takes with the current settings.
    pub fn steps_per_run(&self) -> usize {
        let per_epoch = self.steps_per_epoch();
        let capped = self
            .args
            .fine_tune_batches
            .map_or(per_epoch, |cap| cap.min(per_epoch));
        self.args.fine_tune_epochs * capped
    }

    /// Makes each later fine-tune about `steps` Adam steps: the fewest whole epochs that hold
    /// them, each capped to an equal share (a fixed budget split across a schedule's steps).
    pub fn set_steps_per_run(&mut self, steps: usize) {
        let epochs = steps.div_ceil(self.steps_per_epoch().max(1)).max(1);
        self.args.fine_tune_epochs = epochs;
        self.args.fine_tune_batches = Some(steps.div_ceil(epochs).max(1));
    }

    /// Seeds the batch order of later fine-tunes (a schedule repeated per seed).
    pub fn set_seed(&mut self, seed: u64) {
        self.args.fine_tune_seed = seed;
    }

    /// Whether Ctrl-C asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Epochs of each fine-tune, its learning rate and its cap on batches per epoch.
    pub fn epochs_per_run(&self) -> usize {
        self.args.fine_tune_epochs
    }

    pub fn learning_rate(&self) -> f64 {
        self.args.fine_tune_lr
    }

    pub fn batches_per_epoch(&self) -> Option<usize> {
        self.args.fine_tune_batches
    }

    /// Adam steps taken by every fine-tune so far (epochs actually finished).
    pub fn steps_trained(&self) -> usize {
        self.steps_trained
    }

    /// One seeded batch of 8 training slices on the autodiff CPU device, for SNIP.
    pub fn snip_batch(&self) -> SnipBatch {
        let device = backend::cpu_device().autodiff();
        let order = epoch_batches(self.data.train.len(), 8, true, 0);
        let (inputs, targets) = self.data.train.batch(&order[0], &device);
        SnipBatch {
            inputs,
            targets,
            device,
        }
    }

    /// Fine-tunes `pruned` (keeping its masks) on the CPU; returns the epoch with the best
    /// validation Dice.
    pub fn fine_tune(&mut self, pruned: &Checkpoint) -> Result<Checkpoint> {
        let steps_per_epoch = self.steps_per_run() / self.args.fine_tune_epochs.max(1);
        let settings = FineTuneSettings {
            epochs: self.args.fine_tune_epochs,
            learning_rate: self.args.fine_tune_lr,
            max_batches_per_epoch: self.args.fine_tune_batches,
            seed: self.args.fine_tune_seed,
        };
        let progress = TrainProgress::new();
        let tuned = fine_tune(
            pruned,
            &self.data,
            settings,
            &backend::cpu_device(),
            &self.cancel,
            |event| progress.show(&event),
        )?;
        progress.finish();
        let Some(best) = tuned.best else {
            bail!("fine-tuning was cancelled before its first epoch finished");
        };
        self.steps_trained += tuned.epochs_done * steps_per_epoch;
        Ok(best)
    }
}

/// Mean Dice per region of models on a fixed set of evaluation cases (CPU).
pub struct DiceEvaluator {
    pub cases: Vec<PreparedCase>,
    pub options: InferenceOptions,
}

impl DiceEvaluator {
    /// Mean Dice per region over the cases, with their spread.
    pub fn dice(&self, checkpoint: &Checkpoint) -> Result<RegionStats> {
        let device = backend::cpu_device();
        let model = checkpoint.build(&device)?;
        let head = checkpoint.config.head;
        let scored = evaluate_cases(&model, head, &self.cases, self.options, &device, |_| {})?;
        let per_case: Vec<RegionScores> = scored.iter().map(|c| c.dice.regions3()).collect();
        Ok(RegionStats::over(&per_case))
    }
}

/// The schedule's hooks on the command line: Dice on the evaluation cases, optional
/// BN recalibration and fine-tuning (as the tuner's options say), one progress line per step.
pub struct CliHooks<'a> {
    pub evaluator: &'a DiceEvaluator,
    pub tuner: Option<&'a mut FineTuner>,
    /// Prefix of the progress lines (`prune`, `sweep l2 0.5`).
    pub tag: String,
}

impl ScheduleHooks for CliHooks<'_> {
    fn evaluate(&mut self, checkpoint: &Checkpoint) -> Result<RegionStats> {
        self.evaluator.dice(checkpoint)
    }

    fn recalibrate(&mut self, checkpoint: &Checkpoint) -> Result<Option<Checkpoint>> {
        match self.tuner.as_deref() {
            Some(tuner) if tuner.recalibrates() => Ok(Some(tuner.recalibrate(checkpoint)?)),
            _ => Ok(None),
        }
    }

    fn fine_tune(&mut self, checkpoint: &Checkpoint, _step: usize) -> Result<Option<Checkpoint>> {
        match self.tuner.as_deref_mut() {
            Some(tuner) if tuner.fine_tunes() => Ok(Some(tuner.fine_tune(checkpoint)?)),
            _ => Ok(None),
        }
    }

    fn on_step(&mut self, record: &StepRecord, steps: usize) {
        let dice = |d: &RegionScores| format!("WT {:.3} TC {:.3} ET {:.3}", d.wt, d.tc, d.et);
        let then = |stage: &str, d: &Option<RegionScores>| {
            d.as_ref()
                .map(|d| format!(" -> {stage} {}", dice(d)))
                .unwrap_or_default()
        };
        eprintln!(
            "{}: {}/{steps} {}: Dice {}{}{}",
            self.tag,
            record.step,
            record.label,
            dice(&record.dice_pruned),
            then("BN recalibrated", &record.dice_recalibrated),
            then("fine-tuned", &record.dice_fine_tuned)
        );
    }
}

//! What a pruning schedule needs around it, shared by `prune`, `sweep`, `compare-schedules`,
//! `study` and the budget search: a fine-tuner (the fine-tuning slices and settings across a
//! schedule's steps: fine-tunes with masks kept, BN recalibration, the SNIP batch), Dice on a
//! fixed set of evaluation cases, and the schedule's hooks made of both. The caller gives the
//! settings, the cases, a cancel flag and where progress goes (the command line: its options,
//! Ctrl-C and a progress bar).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

use super::{PruneMethod, ScheduleHooks, SnipBatch, StepRecord, UnstructuredMethod};
use crate::backend;
use crate::data::dataset::PreparedCase;
use crate::inference::{InferenceOptions, dice_of_cases};
use crate::metrics::RegionStats;
use crate::model::Checkpoint;
use crate::precision::Precision;
use crate::train::fine_tune::{FineTuneData, FineTuneSettings, fine_tune};
use crate::train::recalibrate::{RecalibrationSettings, recalibrate_batch_norms};
use crate::train::{DiceFigures, TrainEvent};
use crate::util::batches::epoch_batches;

/// How pruned models are fine-tuned and recalibrated.
#[derive(Debug, Clone)]
pub struct TuningSettings {
    /// Fine-tuning epochs after each pruning step (0: none).
    pub epochs: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Side of the fine-tuning crops (a multiple of 16).
    pub crop: usize,
    /// Caps the fine-tuning batches per epoch.
    pub max_batches_per_epoch: Option<usize>,
    /// Seeds the fine-tuning batch order.
    pub seed: u64,
    /// Fine-tuning slices BN recalibration passes over after each cut (0: off).
    pub recalibration_slices: usize,
}

impl TuningSettings {
    /// Whether a schedule needs the fine-tuning cases: to fine-tune (`tuning`), to recalibrate,
    /// or for the batch SNIP scores weights on (when `methods` has it).
    pub fn needs_cases(&self, tuning: bool, methods: &[PruneMethod]) -> bool {
        let snip = methods.contains(&PruneMethod::Unstructured(UnstructuredMethod::Snip));
        tuning || snip || self.recalibration_slices > 0
    }
}

/// Where a fine-tuner's progress goes (a progress bar on the command line).
pub trait TuneProgress {
    /// A fine-tune starts.
    fn started(&mut self) {}
    /// One of its training events.
    fn event(&mut self, event: &TrainEvent<DiceFigures>);
    /// It finished (not called when it fails).
    fn finished(&mut self) {}
}

/// No progress shown.
pub struct NoProgress;

impl TuneProgress for NoProgress {
    fn event(&mut self, _event: &TrainEvent<DiceFigures>) {}
}

/// The fine-tuning slices and the settings to train on them, across a schedule's steps.
pub struct FineTuner {
    settings: TuningSettings,
    data: FineTuneData,
    cancel: Arc<AtomicBool>,
    progress: Box<dyn TuneProgress>,
    /// Adam steps taken by all fine-tunes so far.
    steps_trained: usize,
    /// The seed BN recalibration draws its slices with: the one given, whatever
    /// [`Self::set_seed`] later does to the fine-tunes (a point recalibrates alike alone or
    /// after others).
    recalibration_seed: u64,
}

impl FineTuner {
    /// The fine-tuner of `cases` (split by patient into `settings.crop` slice sets); `cancel`
    /// stops a fine-tune after its current batch.
    pub fn new(
        settings: TuningSettings,
        cases: &[PreparedCase],
        cancel: Arc<AtomicBool>,
        progress: Box<dyn TuneProgress>,
    ) -> Result<FineTuner> {
        Ok(FineTuner {
            data: FineTuneData::from_cases(cases, settings.crop)?,
            recalibration_seed: settings.seed,
            settings,
            cancel,
            progress,
            steps_trained: 0,
        })
    }

    /// Adam steps in one whole epoch over the fine-tuning slices.
    pub fn steps_per_epoch(&self) -> usize {
        self.data.steps_per_epoch()
    }

    /// Whether pruned models are fine-tuned (epochs above 0).
    pub fn fine_tunes(&self) -> bool {
        self.settings.epochs > 0
    }

    /// Whether pruned models get BN recalibration (slices above 0).
    pub fn recalibrates(&self) -> bool {
        self.settings.recalibration_slices > 0
    }

    /// `checkpoint` with its batch norms' running statistics recomputed on the fine-tuning
    /// slices (on the CPU).
    pub fn recalibrate(&self, checkpoint: &Checkpoint) -> Result<Checkpoint> {
        let settings = RecalibrationSettings {
            slices: self.settings.recalibration_slices,
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
            .settings
            .max_batches_per_epoch
            .map_or(per_epoch, |cap| cap.min(per_epoch));
        self.settings.epochs * capped
    }

    /// Makes each later fine-tune about `steps` Adam steps: the fewest whole epochs that hold
    /// them, each capped to an equal share (a fixed budget split across a schedule's steps).
    pub fn set_steps_per_run(&mut self, steps: usize) {
        let epochs = steps.div_ceil(self.steps_per_epoch().max(1)).max(1);
        self.settings.epochs = epochs;
        self.settings.max_batches_per_epoch = Some(steps.div_ceil(epochs).max(1));
    }

    /// Seeds the batch order of later fine-tunes (a schedule repeated per seed).
    pub fn set_seed(&mut self, seed: u64) {
        self.settings.seed = seed;
    }

    /// Whether the caller asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Epochs of each fine-tune, its learning rate and its cap on batches per epoch.
    pub fn epochs_per_run(&self) -> usize {
        self.settings.epochs
    }

    pub fn learning_rate(&self) -> f64 {
        self.settings.learning_rate
    }

    pub fn batches_per_epoch(&self) -> Option<usize> {
        self.settings.max_batches_per_epoch
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
        let steps_per_epoch = self.steps_per_run() / self.settings.epochs.max(1);
        let settings = FineTuneSettings {
            epochs: self.settings.epochs,
            learning_rate: self.settings.learning_rate,
            max_batches_per_epoch: self.settings.max_batches_per_epoch,
            seed: self.settings.seed,
        };
        self.progress.started();
        let progress = &mut self.progress;
        let tuned = fine_tune(
            pruned,
            &self.data,
            settings,
            &backend::cpu_device(),
            &self.cancel,
            |event| progress.event(&event),
        )?;
        self.progress.finished();
        let Some(best) = tuned.best else {
            bail!("fine-tuning was cancelled before its first epoch finished");
        };
        self.steps_trained += tuned.epochs_done * steps_per_epoch;
        Ok(best)
    }
}

/// Mean Dice per region of models on a fixed set of evaluation cases (CPU), each model scored
/// as an export in `precision` computes.
pub struct DiceEvaluator {
    pub cases: Vec<PreparedCase>,
    pub options: InferenceOptions,
    pub precision: Precision,
}

impl DiceEvaluator {
    /// Scores models in float32.
    pub fn new(cases: Vec<PreparedCase>, options: InferenceOptions) -> DiceEvaluator {
        DiceEvaluator {
            cases,
            options,
            precision: Precision::Fp32,
        }
    }

    /// Scores models as an export in `precision` computes (INT8: calibrated per model).
    pub fn in_precision(self, precision: Precision) -> DiceEvaluator {
        DiceEvaluator { precision, ..self }
    }

    /// Mean Dice per region over the cases, with their spread.
    pub fn dice(&self, checkpoint: &Checkpoint) -> Result<RegionStats> {
        let device = backend::cpu_device();
        let model = self.precision.simulate(&checkpoint.build(&device)?);
        let head = checkpoint.config.head;
        let per_case = dice_of_cases(&model, head, &self.cases, self.options, &device)?;
        Ok(RegionStats::over(&per_case))
    }
}

/// A schedule's hooks: Dice on the evaluation cases, optional BN recalibration and
/// fine-tuning (as the tuner's settings say), each step handed to `on_step`.
pub struct TuningHooks<'a, F: FnMut(&StepRecord, usize)> {
    pub evaluator: &'a DiceEvaluator,
    pub tuner: Option<&'a mut FineTuner>,
    /// Each step's record and the schedule's number of steps (a progress line).
    pub on_step: F,
}

impl<F: FnMut(&StepRecord, usize)> ScheduleHooks<Checkpoint> for TuningHooks<'_, F> {
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
        (self.on_step)(record, steps);
    }
}

//! The fine-tuning and BN-recalibration options `prune`, `sweep`, `compare-schedules` and
//! `study` share, turned into the domain's fine-tuner (`prune::tuning`: its settings, the cases
//! loaded, Ctrl-C as its cancel flag, a progress bar), and the schedule's progress line.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::data_args::DataArgs;
use super::train_cmd::{TrainProgress, install_ctrl_c};
use crate::metrics::RegionScores;
use crate::prune::tuning::{DiceEvaluator, FineTuner, TuneProgress, TuningHooks, TuningSettings};
use crate::prune::{PruneMethod, StepRecord};
use crate::train::fine_tune::{FINE_TUNE_CROP, FINE_TUNE_LEARNING_RATE};
use crate::train::{DiceFigures, TrainEvent};

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

impl FineTuneArgs {
    /// The domain's settings from these options.
    pub fn settings(&self) -> TuningSettings {
        TuningSettings {
            epochs: self.fine_tune_epochs,
            learning_rate: self.fine_tune_lr,
            crop: self.fine_tune_crop,
            max_batches_per_epoch: self.fine_tune_batches,
            seed: self.fine_tune_seed,
            recalibration_slices: self.bn_recalibrate,
        }
    }

    /// Loads the fine-tuning cases (synthetic seeds 0.. of the evaluation data's generator and
    /// grid, or a BraTS folder) into a fine-tuner that Ctrl-C stops, with a progress bar.
    pub fn tuner(&self, data: &DataArgs) -> Result<FineTuner> {
        super::check_size("--fine-tune-crop", self.fine_tune_crop)?;
        let source = DataArgs {
            data: self.fine_tune_data.clone(),
            synthetic: self
                .fine_tune_data
                .is_none()
                .then_some(self.fine_tune_cases),
            synthetic_seed: 0,
            ..data.clone()
        };
        let cases = source.load(|id| eprintln!("fine-tune: loading {id}"))?;
        FineTuner::new(
            self.settings(),
            &cases,
            install_ctrl_c(),
            Box::<BarProgress>::default(),
        )
    }

    /// The fine-tuner when it is needed: to fine-tune (`tuning`), to recalibrate, or for the
    /// batch SNIP scores weights on (when `methods` has it).
    pub fn tuner_if_needed(
        &self,
        data: &DataArgs,
        tuning: bool,
        methods: &[PruneMethod],
    ) -> Result<Option<FineTuner>> {
        self.settings()
            .needs_cases(tuning, methods)
            .then(|| self.tuner(data))
            .transpose()
    }
}

/// A fine-tune's progress as a terminal progress bar (a new one per fine-tune).
#[derive(Default)]
struct BarProgress(Option<TrainProgress>);

impl TuneProgress for BarProgress {
    fn started(&mut self) {
        self.0 = Some(TrainProgress::new());
    }

    fn event(&mut self, event: &TrainEvent<DiceFigures>) {
        if let Some(bar) = &self.0 {
            bar.show(event);
        }
    }

    fn finished(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish();
        }
    }
}

/// The schedule's hooks on the command line: Dice on the evaluation cases, optional BN
/// recalibration and fine-tuning (as the tuner's options say), one progress line per step
/// prefixed by `tag` (`prune`, `sweep l2 0.5`).
pub fn step_hooks<'a>(
    evaluator: &'a DiceEvaluator,
    tuner: Option<&'a mut FineTuner>,
    tag: String,
) -> TuningHooks<'a, impl FnMut(&StepRecord, usize) + use<>> {
    TuningHooks {
        evaluator,
        tuner,
        on_step: move |record: &StepRecord, steps: usize| {
            let dice = |d: &RegionScores| format!("WT {:.3} TC {:.3} ET {:.3}", d.wt, d.tc, d.et);
            let then = |stage: &str, d: &Option<RegionScores>| {
                d.as_ref()
                    .map(|d| format!(" -> {stage} {}", dice(d)))
                    .unwrap_or_default()
            };
            eprintln!(
                "{tag}: {}/{steps} {}: Dice {}{}{}",
                record.step,
                record.label,
                dice(&record.dice_pruned),
                then("BN recalibrated", &record.dice_recalibrated),
                then("fine-tuned", &record.dice_fine_tuned)
            );
        },
    }
}

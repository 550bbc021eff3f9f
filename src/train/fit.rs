//! The training loop: Adam with ReduceLROnPlateau and early stopping on validation Dice, an
//! atomic checkpoint after every epoch (best and last), resume from the last one, and a cancel
//! flag checked after every batch (Ctrl-C on the command line, the Cancel button in the app).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::epoch::{EpochFigures, EpochPass, EpochRecord, TrainEvent, TrainState, run_epoch};
use super::loss::bce_dice_loss;
use super::{StepExtras, TrainError, region_logits, train_step_with};
use crate::data::dataset::SliceDataset;
use crate::model::checkpoint::{Checkpoint, save_checkpoint};
use crate::model::{MaskMap, ModelConfig, ModelMasks, Raagr2Net};
use crate::util::batches::epoch_batches;

/// Metadata key holding [`TrainState`] JSON in checkpoints written by training.
pub const TRAIN_STATE_METADATA_KEY: &str = "raagr2.training";

/// ReduceLROnPlateau: multiply the learning rate by `factor` after `patience` epochs without a
/// better validation score, never going below `min_lr`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PlateauOptions {
    pub factor: f64,
    pub patience: usize,
    pub min_lr: f64,
}

impl Default for PlateauOptions {
    /// The PyTorch reference training's settings (ReduceLROnPlateau: factor 0.1, patience 5).
    fn default() -> Self {
        PlateauOptions {
            factor: 0.1,
            patience: 5,
            min_lr: 1e-5,
        }
    }
}

/// Settings of a training run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub plateau: PlateauOptions,
    /// Stop after this many epochs without a better validation score.
    pub early_stop_patience: usize,
    /// Seeds the batch order of every epoch.
    pub seed: u64,
    /// Probability threshold of the validation Dice.
    pub threshold: f32,
    /// Caps the batches per epoch (quick runs and tests); `None` takes every batch.
    pub max_batches_per_epoch: Option<usize>,
    /// Network slimming's L1 weight on BN gammas (0: off).
    #[serde(default)]
    pub slimming_l1: f64,
    /// Random flips and intensity changes of the training slices (see `SliceDataset::batch_with`).
    #[serde(default)]
    pub augment: bool,
    /// Unstructured pruning masks the model trains under: masked weights stay zero after every
    /// step, and every checkpoint carries the masks. Not part of the recorded options (the
    /// checkpoint stores them).
    #[serde(skip)]
    pub masks: MaskMap,
    /// Knowledge distillation from a teacher (`train --teacher`); not recorded in the state.
    #[serde(skip)]
    pub distillation: Option<std::sync::Arc<super::Distillation>>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 50,
            batch_size: 8,
            learning_rate: 1e-4,
            plateau: PlateauOptions::default(),
            early_stop_patience: 10,
            seed: 0,
            threshold: 0.5,
            max_batches_per_epoch: None,
            slimming_l1: 0.0,
            augment: false,
            masks: MaskMap::new(),
            distillation: None,
        }
    }
}

/// A segmentation epoch's own figures, beside its training loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiceFigures {
    pub val_loss: f64,
    /// Validation Dice of WT, TC, ET over all validation slices together.
    pub val_dice: [f64; 3],
    pub learning_rate: f64,
    pub elapsed_secs: f64,
}

impl EpochFigures for DiceFigures {
    fn log_line(r: &EpochRecord<DiceFigures>) -> String {
        let m = &r.metrics;
        format!(
            "epoch {:>3}: train loss {:.4}, val loss {:.4}, val Dice WT {:.3} TC {:.3} ET {:.3}, \
             lr {:.0e}, {:.1} s",
            r.epoch,
            r.train_loss,
            m.val_loss,
            m.val_dice[0],
            m.val_dice[1],
            m.val_dice[2],
            m.learning_rate,
            m.elapsed_secs
        )
    }
}

impl EpochRecord<DiceFigures> {
    /// The score that decides "best", plateaus and early stopping: mean validation Dice.
    pub fn score(&self) -> f64 {
        self.metrics.val_dice.iter().sum::<f64>() / 3.0
    }
}

/// What a segmentation run keeps beyond its epochs, to resume: where the schedule stands and
/// which cases went to which split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentationRun {
    pub learning_rate: f64,
    pub best_score: Option<f64>,
    pub best_epoch: usize,
    /// Epochs since the score last improved (drives both plateau and early stopping).
    pub epochs_without_improvement: usize,
    /// Epochs since the learning rate last changed or the score improved.
    pub plateau_wait: usize,
    /// Case ids of each split, so `eval --split test` can find the held-out patients.
    pub train_ids: Vec<String>,
    pub val_ids: Vec<String>,
    pub test_ids: Vec<String>,
    /// How the training slices were chosen, so a resumed run rebuilds the same sets.
    #[serde(default)]
    pub slices: Option<SliceSettings>,
}

/// The resumable state of a segmentation run.
pub type SegmentationState = TrainState<DiceFigures, SegmentationRun>;

/// The slice-building settings of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SliceSettings {
    pub crop: usize,
    pub tumour_free_share: f32,
    /// Every N-th selected slice (checkpoints from before this setting recorded none: 1).
    #[serde(default = "one")]
    pub slice_step: usize,
    pub seed: u64,
}

fn one() -> usize {
    1
}

impl TrainState<DiceFigures, SegmentationRun> {
    /// The state stored in a checkpoint's metadata, if training wrote it.
    pub fn from_checkpoint(checkpoint: &Checkpoint) -> Result<Option<Self>, TrainError> {
        Self::read(&checkpoint.metadata, TRAIN_STATE_METADATA_KEY)
    }
}

/// Why training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// All requested epochs ran.
    Finished,
    /// The validation score stopped improving.
    EarlyStopped,
    /// The cancel flag was raised; the last completed epoch's checkpoint is kept.
    Cancelled,
}

/// The result of [`fit`].
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub state: SegmentationState,
    pub stop: StopReason,
}

/// Where [`fit`] writes: the best model by validation score and the last completed epoch.
#[derive(Debug, Clone)]
pub struct CheckpointPaths {
    pub best: PathBuf,
    pub last: PathBuf,
}

impl CheckpointPaths {
    /// `model.safetensors` -> best at that path, last at `model.last.safetensors`.
    pub fn beside(best: &Path) -> CheckpointPaths {
        let stem = best
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        CheckpointPaths {
            best: best.to_path_buf(),
            last: best.with_file_name(format!("{stem}.last.safetensors")),
        }
    }
}

/// Trains `model` (on an autodiff device) from `state` onwards. Checks `cancel` after every batch;
/// a cancelled epoch is discarded and the previous checkpoints stay as they were.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    config: &ModelConfig,
    mut model: Raagr2Net,
    train: &SliceDataset,
    val: &SliceDataset,
    options: &TrainOptions,
    mut state: SegmentationState,
    paths: &CheckpointPaths,
    cancel: &AtomicBool,
    mut on_event: impl FnMut(TrainEvent<DiceFigures>),
) -> Result<TrainOutcome, TrainError> {
    check_inputs(train, val, options)?;
    if state.run.learning_rate <= 0.0 {
        state.run.learning_rate = options.learning_rate;
    }
    // Adam's moment estimates are not checkpointed: a resumed run restarts them.
    let mut optimizer: ModuleOptimizer = AdamConfig::new().init();
    let device = model.devices()[0].clone();
    while state.epochs_done < options.epochs {
        let epoch = state.epochs_done + 1;
        let start = Instant::now();
        let Some(pass) = train_epoch(
            config,
            model,
            &mut optimizer,
            train,
            options,
            &state,
            &device,
            cancel,
            &mut on_event,
        )?
        else {
            return Ok(TrainOutcome {
                state,
                stop: StopReason::Cancelled,
            });
        };
        let train_loss = pass.train_loss;
        model = pass.model;
        on_event(TrainEvent::Validating { epoch });
        let (val_loss, val_dice) = validate(config, &model, val, options, &device);
        // A non-finite loss would also make the saved training state unreadable (JSON has no NaN);
        // the epoch loop has already refused a non-finite training loss.
        if !val_loss.is_finite() {
            return Err(TrainError::Diverged {
                epoch,
                loss: val_loss,
            });
        }
        let record = EpochRecord {
            epoch,
            train_loss,
            metrics: DiceFigures {
                val_loss,
                val_dice,
                learning_rate: state.run.learning_rate,
                elapsed_secs: start.elapsed().as_secs_f64(),
            },
        };
        let improved = update_schedule(&mut state, &record, options);
        let masks = &options.masks;
        save_epoch(
            config,
            &model,
            masks,
            &state,
            paths,
            improved,
            &mut on_event,
        )?;
        on_event(TrainEvent::Epoch(record));
        if state.run.epochs_without_improvement >= options.early_stop_patience {
            return Ok(TrainOutcome {
                state,
                stop: StopReason::EarlyStopped,
            });
        }
    }
    Ok(TrainOutcome {
        state,
        stop: StopReason::Finished,
    })
}

fn check_inputs(
    train: &SliceDataset,
    val: &SliceDataset,
    options: &TrainOptions,
) -> Result<(), TrainError> {
    if train.is_empty() {
        return Err(TrainError::Data("no training slices".into()));
    }
    if val.is_empty() {
        return Err(TrainError::Data(
            "no validation slices (use more cases or a larger validation fraction)".into(),
        ));
    }
    if options.batch_size == 0 {
        return Err(TrainError::Options("batch size must be at least 1".into()));
    }
    if !(options.learning_rate.is_finite() && options.learning_rate > 0.0) {
        return Err(TrainError::Options(format!(
            "learning rate must be positive, got {}",
            options.learning_rate
        )));
    }
    Ok(())
}

/// One pass over the (shuffled) training slices, its masks kept at zero; `None` when cancelled
/// mid-epoch.
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    config: &ModelConfig,
    model: Raagr2Net,
    optimizer: &mut ModuleOptimizer,
    train: &SliceDataset,
    options: &TrainOptions,
    state: &SegmentationState,
    device: &Device,
    cancel: &AtomicBool,
    on_event: &mut impl FnMut(TrainEvent<DiceFigures>),
) -> Result<Option<EpochPass<Raagr2Net>>, TrainError> {
    let epoch = state.epochs_done + 1;
    let seed = options.seed.wrapping_add(epoch as u64);
    let mut batches = epoch_batches(train.len(), options.batch_size, true, seed);
    if let Some(max) = options.max_batches_per_epoch {
        batches.truncate(max.max(1));
    }
    let masks = ModelMasks::new(&options.masks, device);
    let extras = StepExtras {
        slimming_l1: options.slimming_l1,
        distillation: options.distillation.as_deref(),
    };
    let lr = state.run.learning_rate;
    let make_batch = |indices: &[usize], position: usize| {
        let augment_seed = options
            .augment
            .then(|| seed.wrapping_mul(0x9E37_79B9).wrapping_add(position as u64));
        train.batch_with(indices, device, augment_seed)
    };
    let step = |model, (x, y)| {
        let (next, loss) = train_step_with(config.head, model, optimizer, lr, x, y, &extras);
        (masks.apply(next), f64::from(loss))
    };
    let model = masks.apply(model);
    run_epoch(model, epoch, &batches, cancel, on_event, make_batch, step)
}

/// Validation loss (mean over batches) and WT/TC/ET Dice over all validation slices, in eval mode.
pub fn validate(
    config: &ModelConfig,
    model: &Raagr2Net,
    val: &SliceDataset,
    options: &TrainOptions,
    device: &Device,
) -> (f64, [f64; 3]) {
    let eval_model = model.valid();
    let eval_device = device.clone().inner();
    let batches = epoch_batches(val.len(), options.batch_size, false, 0);
    let mut loss_sum = 0.0;
    // Per region: intersection, predicted and true voxel counts.
    let mut counts = [[0.0f64; 3]; 3];
    for indices in &batches {
        let (x, y) = val.batch(indices, &eval_device);
        let logits = region_logits(&eval_model, config.head, x);
        loss_sum += bce_dice_loss(logits.clone(), y.clone()).into_scalar::<f32>() as f64;
        let predicted = burn::tensor::activation::sigmoid(logits)
            .greater_elem(options.threshold)
            .float();
        for (r, c) in counts.iter_mut().enumerate() {
            let p = predicted.clone().narrow(1, r, 1);
            let t = y.clone().narrow(1, r, 1);
            c[0] += p.clone().mul(t.clone()).sum().into_scalar::<f32>() as f64;
            c[1] += p.sum().into_scalar::<f32>() as f64;
            c[2] += t.sum().into_scalar::<f32>() as f64;
        }
    }
    let dice = counts.map(|[both, pred, truth]| {
        if pred + truth == 0.0 {
            1.0
        } else {
            2.0 * both / (pred + truth)
        }
    });
    (loss_sum / batches.len() as f64, dice)
}

/// Records the epoch and applies ReduceLROnPlateau; returns whether the score improved.
fn update_schedule(
    state: &mut SegmentationState,
    record: &EpochRecord<DiceFigures>,
    options: &TrainOptions,
) -> bool {
    let score = record.score();
    let improved = state.run.best_score.is_none_or(|best| score > best);
    state.epochs_done = record.epoch;
    state.history.push(record.clone());
    if improved {
        state.run.best_score = Some(score);
        state.run.best_epoch = record.epoch;
        state.run.epochs_without_improvement = 0;
        state.run.plateau_wait = 0;
    } else {
        state.run.epochs_without_improvement += 1;
        state.run.plateau_wait += 1;
        if state.run.plateau_wait >= options.plateau.patience {
            let reduced = state.run.learning_rate * options.plateau.factor;
            state.run.learning_rate = reduced.max(options.plateau.min_lr);
            state.run.plateau_wait = 0;
        }
    }
    improved
}

/// Writes the last-epoch checkpoint, and the best one when the score improved, atomically.
fn save_epoch(
    config: &ModelConfig,
    model: &Raagr2Net,
    masks: &MaskMap,
    state: &SegmentationState,
    paths: &CheckpointPaths,
    improved: bool,
    on_event: &mut impl FnMut(TrainEvent<DiceFigures>),
) -> Result<(), TrainError> {
    let mut checkpoint = Checkpoint::from_model(config, &model.valid());
    checkpoint.masks = masks.clone();
    state.write(&mut checkpoint.metadata, TRAIN_STATE_METADATA_KEY);
    save_checkpoint(&paths.last, &checkpoint)?;
    on_event(TrainEvent::Saved(paths.last.clone()));
    if improved {
        save_checkpoint(&paths.best, &checkpoint)?;
        on_event(TrainEvent::Saved(paths.best.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, dice: f64) -> EpochRecord<DiceFigures> {
        EpochRecord {
            epoch,
            train_loss: 1.0,
            metrics: DiceFigures {
                val_loss: 1.0,
                val_dice: [dice; 3],
                learning_rate: 0.0,
                elapsed_secs: 0.0,
            },
        }
    }

    #[test]
    fn plateau_reduces_the_rate_and_respects_the_floor() {
        let options = TrainOptions {
            learning_rate: 1e-3,
            plateau: PlateauOptions {
                factor: 0.1,
                patience: 2,
                min_lr: 5e-5,
            },
            ..TrainOptions::default()
        };
        let mut state = SegmentationState {
            run: SegmentationRun {
                learning_rate: 1e-3,
                ..SegmentationRun::default()
            },
            ..SegmentationState::default()
        };
        assert!(update_schedule(&mut state, &record(1, 0.5), &options));
        assert!(!update_schedule(&mut state, &record(2, 0.4), &options));
        assert_eq!(state.run.learning_rate, 1e-3);
        assert!(!update_schedule(&mut state, &record(3, 0.5), &options));
        assert!(
            (state.run.learning_rate - 1e-4).abs() < 1e-12,
            "reduced after 2 flat epochs"
        );
        update_schedule(&mut state, &record(4, 0.1), &options);
        update_schedule(&mut state, &record(5, 0.1), &options);
        assert_eq!(state.run.learning_rate, 5e-5, "never below the floor");
        assert_eq!(state.run.epochs_without_improvement, 4);
        assert!(update_schedule(&mut state, &record(6, 0.9), &options));
        assert_eq!(
            (state.run.best_epoch, state.run.epochs_without_improvement),
            (6, 0)
        );
    }

    #[test]
    fn last_checkpoint_sits_beside_the_best() {
        let p = CheckpointPaths::beside(Path::new("runs/model.safetensors"));
        assert_eq!(p.last, Path::new("runs/model.last.safetensors"));
    }
}

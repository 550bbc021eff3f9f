//! Fine-tuning a (pruned) checkpoint with its masks kept: the one setup that the command line's
//! pruning schedules and the app's worker share (data split, options, scratch checkpoints).
//! It follows the training recipe (192-pixel crops, the same share of tumour-free slices,
//! flips and intensity jitter): fine-tuning on tighter, tumour-only crops without augmentation
//! moved the batch norms' statistics and the weights away from whole slices, and cost the
//! dense default model 0.05-0.10 Dice per region in 40 steps (docs/results/fine-tuning.md).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use burn::prelude::*;

use super::{
    CheckpointPaths, DiceFigures, SegmentationRun, SegmentationState, TrainError, TrainEvent,
    TrainOptions, fit,
};
use crate::data::dataset::{PreparedCase, SliceDataset, SliceSelection};
use crate::data::preprocess::split_patients;
use crate::model::{Checkpoint, load_checkpoint};

/// Fine-tuning slices: every tumour slice and 15 % of the tumour-free ones, as training saw
/// them.
const SELECTION: SliceSelection = SliceSelection {
    tumour_free_share: 0.15,
    slice_step: 1,
    seed: 0,
};

/// The side of the fine-tuning crops: the training recipe's.
pub const FINE_TUNE_CROP: usize = 192;

/// The learning rate recovery fine-tunes default to: the training schedule's floor. A fresh
/// Adam at 1e-4 moves every weight of a converged model by about that much per step; 40 such
/// steps cost the embedded model 0.02-0.07 Dice per region on held-out cases, 1e-5 nothing
/// measurable (docs/results/fine-tuning.md).
pub const FINE_TUNE_LEARNING_RATE: f64 = 1e-5;

/// The fine-tuning slices, split by patient, and the split recorded for the checkpoints.
pub struct FineTuneData {
    pub train: SliceDataset,
    pub val: SliceDataset,
    state: SegmentationState,
}

impl FineTuneData {
    /// Splits `cases` by patient (a fifth, at least one, for validation) into `crop` x `crop`
    /// slice sets.
    pub fn from_cases(cases: &[PreparedCase], crop: usize) -> Result<FineTuneData, TrainError> {
        if cases.len() < 2 {
            return Err(TrainError::Data(format!(
                "fine-tuning needs at least 2 cases, got {}",
                cases.len()
            )));
        }
        let ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
        let mut split = split_patients(&ids, 0.2, 0.0, 0);
        if split.val.is_empty()
            && let Some(moved) = split.train.pop()
        {
            split.val.push(moved);
        }
        let pick = |ids: &[String]| -> Vec<PreparedCase> {
            cases
                .iter()
                .filter(|c| ids.contains(&c.id))
                .cloned()
                .collect()
        };
        let slices = |ids: &[String]| {
            SliceDataset::from_cases(&pick(ids), crop, SELECTION)
                .map_err(|e| TrainError::Data(e.to_string()))
        };
        Ok(FineTuneData {
            train: slices(&split.train)?,
            val: slices(&split.val)?,
            state: SegmentationState {
                run: SegmentationRun {
                    train_ids: split.train,
                    val_ids: split.val,
                    ..SegmentationRun::default()
                },
                ..SegmentationState::default()
            },
        })
    }

    /// Adam steps in one whole epoch over the training slices.
    pub fn steps_per_epoch(&self) -> usize {
        self.train
            .len()
            .div_ceil(TrainOptions::default().batch_size)
    }
}

/// How long and how fast to fine-tune.
#[derive(Debug, Clone, Copy)]
pub struct FineTuneSettings {
    pub epochs: usize,
    pub learning_rate: f64,
    /// Caps the batches of each epoch (`None`: whole epochs).
    pub max_batches_per_epoch: Option<usize>,
    /// Seeds the batch order (repeating a fine-tune with other seeds measures its spread).
    pub seed: u64,
}

/// What a fine-tune produced.
pub struct FineTuned {
    /// The checkpoint of the epoch with the best validation Dice; `None` when no epoch finished.
    pub best: Option<Checkpoint>,
    pub epochs_done: usize,
}

/// Trains `start` (its masks kept) on `data` on `device` (the plain device; gradients are
/// added here). Checkpoints go to a scratch folder that is removed afterwards.
pub fn fine_tune(
    start: &Checkpoint,
    data: &FineTuneData,
    settings: FineTuneSettings,
    device: &Device,
    cancel: &AtomicBool,
    on_event: impl FnMut(TrainEvent<DiceFigures>),
) -> Result<FineTuned, TrainError> {
    let folder = ScratchFolder::create()?;
    // Dropout draws from the backend's generator: seeded, a fine-tune repeats exactly (a
    // sweep's points give the same rows alone or together).
    device.seed(settings.seed);
    let device = device.clone().autodiff();
    let options = TrainOptions {
        epochs: settings.epochs,
        learning_rate: settings.learning_rate,
        max_batches_per_epoch: settings.max_batches_per_epoch,
        seed: settings.seed,
        masks: start.masks.clone(),
        augment: true,
        ..TrainOptions::default()
    };
    let paths = CheckpointPaths::beside(&folder.0.join("fine-tuned.safetensors"));
    let outcome = fit(
        &start.config,
        start.build(&device)?,
        &data.train,
        &data.val,
        &options,
        data.state.clone(),
        &paths,
        cancel,
        on_event,
    )?;
    let epochs_done = outcome.state.epochs_done;
    let best = if epochs_done > 0 {
        Some(load_checkpoint(&paths.best)?)
    } else {
        None
    };
    Ok(FineTuned { best, epochs_done })
}

/// A folder of its own for each fine-tune of this process (the app and a schedule may run
/// several), removed when dropped, whether the fine-tune ended well or not.
struct ScratchFolder(PathBuf);

impl ScratchFolder {
    fn create() -> Result<ScratchFolder, TrainError> {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("raagr2-fine-tune-{}-{run}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
        Ok(ScratchFolder(path))
    }
}

impl Drop for ScratchFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

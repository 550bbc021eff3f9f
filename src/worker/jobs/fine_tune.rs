//! Fine-tuning the previewed (pruned) model on synthetic cases, masks kept.

use std::sync::atomic::AtomicBool;

use crate::backend;
use crate::data::dataset::{PreparedCase, SliceDataset, SliceSelection, synthetic_case};
use crate::model::Checkpoint;
use crate::train::{CheckpointPaths, TrainEvent, TrainOptions, TrainState, fit};
use crate::worker::{FineTuneRequest, Response};

/// Synthetic training cases the app fine-tunes on (the default model's own seeds).
const FINE_TUNE_CASES: u64 = 4;

/// Fine-tunes `start` on synthetic cases (masks kept); returns the best model, the device's
/// name and the epochs completed.
pub(in crate::worker) fn fine_tune(
    start: Checkpoint,
    request: &FineTuneRequest,
    cancel: &AtomicBool,
    reply: &impl Fn(Response),
) -> Result<(Checkpoint, String, usize), String> {
    let (device, device_name) = backend::resolve(request.device)?;
    reply(Response::JobProgress {
        done: 0,
        total: request.epochs,
        label: format!("fine-tune: preparing data on {device_name}"),
    });
    let selection = SliceSelection {
        tumour_free_share: 0.05,
        slice_step: 1,
        seed: 0,
    };
    let cases: Vec<PreparedCase> = (0..FINE_TUNE_CASES).map(synthetic_case).collect();
    let (train_cases, val_cases) = cases.split_at(cases.len() - 1);
    let train = SliceDataset::from_cases(train_cases, 128, selection).map_err(|e| e.to_string())?;
    let val = SliceDataset::from_cases(val_cases, 128, selection).map_err(|e| e.to_string())?;
    let folder = std::env::temp_dir().join(format!("raagr2-app-fine-tune-{}", std::process::id()));
    std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    let paths = CheckpointPaths::beside(&folder.join("tuned.safetensors"));
    let device = device.autodiff();
    let model = start.build(&device).map_err(|e| e.to_string())?;
    let options = TrainOptions {
        epochs: request.epochs,
        learning_rate: request.learning_rate,
        max_batches_per_epoch: Some(request.batches_per_epoch),
        masks: start.masks.clone(),
        ..TrainOptions::default()
    };
    let epochs = request.epochs;
    let mut last_epoch_secs: Option<f64> = None;
    let outcome = fit(
        &start.config,
        model,
        &train,
        &val,
        &options,
        TrainState::default(),
        &paths,
        cancel,
        |event| match event {
            TrainEvent::Batch {
                epoch,
                batch,
                batches,
                loss,
            } => reply(Response::JobProgress {
                done: epoch - 1,
                total: epochs,
                label: format!(
                    "fine-tune on {device_name}: epoch {epoch}, batch {batch}/{batches}, loss {loss:.3}{}",
                    last_epoch_secs.map_or_else(String::new, |s| format!(", last epoch {s:.1} s"))
                ),
            }),
            TrainEvent::Epoch(record) => {
                last_epoch_secs = Some(record.elapsed_secs);
                reply(Response::TrainEpoch {
                    epoch: record.epoch,
                    train_loss: record.train_loss,
                    val_loss: record.val_loss,
                    val_dice: record.val_dice,
                    secs: record.elapsed_secs,
                })
            }
            _ => {}
        },
    )
    .map_err(|e| e.to_string())?;
    let epochs_done = outcome.state.epochs_done;
    let best = if epochs_done > 0 {
        crate::model::load_checkpoint(&paths.best).map_err(|e| e.to_string())?
    } else {
        start
    };
    let _ = std::fs::remove_dir_all(&folder);
    Ok((best, device_name.to_string(), epochs_done))
}

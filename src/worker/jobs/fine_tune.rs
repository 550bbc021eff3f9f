//! Fine-tuning the previewed (pruned) model on synthetic cases, masks kept.

use std::sync::atomic::AtomicBool;

use crate::backend;
use crate::data::dataset::{PreparedCase, synthetic_case};
use crate::model::Checkpoint;
use crate::train::TrainEvent;
use crate::train::fine_tune::{
    FINE_TUNE_CROP, FineTuneData, FineTuneSettings, fine_tune as fine_tune_checkpoint,
};
use crate::worker::{FineTuneRequest, Response};

/// Synthetic training cases the app fine-tunes on (the default model's own seeds).
const FINE_TUNE_CASES: u64 = 4;

/// The app's fine-tuning slices: crops of the synthetic training cases.
pub(super) fn fine_tune_data() -> Result<FineTuneData, String> {
    let cases: Vec<PreparedCase> = (0..FINE_TUNE_CASES).map(synthetic_case).collect();
    FineTuneData::from_cases(&cases, FINE_TUNE_CROP).map_err(|e| e.to_string())
}

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
    let data = fine_tune_data()?;
    let settings = FineTuneSettings {
        epochs: request.epochs,
        learning_rate: request.learning_rate,
        max_batches_per_epoch: Some(request.batches_per_epoch),
        seed: 0,
    };
    let epochs = request.epochs;
    let mut last_epoch_secs: Option<f64> = None;
    let tuned = fine_tune_checkpoint(&start, &data, settings, &device, cancel, |event| {
        match event {
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
                let figures = &record.metrics;
                last_epoch_secs = Some(figures.elapsed_secs);
                reply(Response::TrainEpoch {
                    epoch: record.epoch,
                    train_loss: record.train_loss,
                    val_loss: figures.val_loss,
                    val_dice: figures.val_dice,
                    secs: figures.elapsed_secs,
                })
            }
            _ => {}
        }
    })
    .map_err(|e| e.to_string())?;
    Ok((tuned.best.unwrap_or(start), device_name, tuned.epochs_done))
}

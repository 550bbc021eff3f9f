//! The epoch loop every training run shares (segmentation and classifier alike) and the record,
//! resumable state and progress events of a run, generic over the task's own figures (Dice for
//! segmentation, accuracy for the classifier: the metrics themselves stay with their tasks).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::TrainError;

/// A task's own figures of one epoch (validation Dice, test accuracy, timing...).
pub trait EpochFigures: Clone + Serialize + DeserializeOwned {
    /// The epoch as one line of a training log.
    fn log_line(record: &EpochRecord<Self>) -> String;
}

/// What one epoch achieved: the loss every task trains on and the task's own figures. The
/// figures are flattened so that a stored record stays one flat JSON object, as it always was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord<M> {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss per image.
    pub train_loss: f64,
    #[serde(flatten)]
    pub metrics: M,
}

/// Everything needed to resume a run, saved as JSON in every checkpoint training writes: the
/// epochs done and their records, and whatever else the task's schedule needs (flattened, `()`
/// for none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState<M, R = ()> {
    pub epochs_done: usize,
    pub history: Vec<EpochRecord<M>>,
    #[serde(flatten)]
    pub run: R,
}

// By hand: a derived Default would needlessly ask the figures for one too.
impl<M, R: Default> Default for TrainState<M, R> {
    fn default() -> Self {
        TrainState {
            epochs_done: 0,
            history: Vec::new(),
            run: R::default(),
        }
    }
}

impl<M: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned> TrainState<M, R> {
    /// The state stored under `key` in checkpoint metadata, if training wrote one there.
    pub fn read(
        metadata: &BTreeMap<String, String>,
        key: &str,
    ) -> Result<Option<Self>, TrainError> {
        metadata
            .get(key)
            .map(|json| {
                serde_json::from_str(json)
                    .map_err(|e| TrainError::Resume(format!("training state unreadable: {e}")))
            })
            .transpose()
    }

    /// Stores the state under `key` in checkpoint metadata.
    pub fn write(&self, metadata: &mut BTreeMap<String, String>, key: &str) {
        let json = serde_json::to_string(self).expect("training state serialises");
        metadata.insert(key.to_string(), json);
    }
}

/// Progress reported while training.
#[derive(Debug, Clone)]
pub enum TrainEvent<M> {
    Batch {
        epoch: usize,
        batch: usize,
        batches: usize,
        loss: f64,
    },
    Validating {
        epoch: usize,
    },
    Epoch(EpochRecord<M>),
    Saved(PathBuf),
}

/// What a pass over one epoch's batches leaves: the trained model and its mean loss per image.
pub struct EpochPass<Model> {
    pub model: Model,
    pub train_loss: f64,
}

/// One pass over `batches` (index lists into the training set) of epoch `epoch`: `make_batch`
/// builds a batch from its indices and 0-based position, `step` trains on it and returns the
/// model and the batch's mean loss. `cancel` is checked before every batch, so a cancel during
/// an epoch's last batch keeps that epoch; `Ok(None)`: cancelled, the epoch is discarded. A
/// non-finite batch loss stops the run (the checkpoints of earlier epochs stay as they were).
pub fn run_epoch<Model, Batch, M>(
    mut model: Model,
    epoch: usize,
    batches: &[Vec<usize>],
    cancel: &AtomicBool,
    on_event: &mut impl FnMut(TrainEvent<M>),
    mut make_batch: impl FnMut(&[usize], usize) -> Batch,
    mut step: impl FnMut(Model, Batch) -> (Model, f64),
) -> Result<Option<EpochPass<Model>>, TrainError> {
    let (mut loss_sum, mut images) = (0.0f64, 0usize);
    for (position, indices) in batches.iter().enumerate() {
        if cancel.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let batch = make_batch(indices, position);
        let (next, loss) = step(model, batch);
        model = next;
        if !loss.is_finite() {
            return Err(TrainError::Diverged { epoch, loss });
        }
        loss_sum += loss * indices.len() as f64;
        images += indices.len();
        on_event(TrainEvent::Batch {
            epoch,
            batch: position + 1,
            batches: batches.len(),
            loss,
        });
    }
    Ok(Some(EpochPass {
        model,
        train_loss: loss_sum / images.max(1) as f64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    struct Figures {
        score: f64,
    }

    fn pass(
        losses: &[f64],
        cancel_at: Option<usize>,
    ) -> (Result<Option<EpochPass<usize>>, TrainError>, usize) {
        let cancel = AtomicBool::new(false);
        let batches: Vec<Vec<usize>> = vec![vec![0, 1], vec![2]];
        let mut events = 0;
        let result = run_epoch(
            0usize,
            1,
            &batches[..losses.len()],
            &cancel,
            &mut |_: TrainEvent<Figures>| events += 1,
            |_, position| position,
            |steps, position| {
                if cancel_at == Some(position) {
                    cancel.store(true, Ordering::SeqCst);
                }
                (steps + 1, losses[position])
            },
        );
        (result, events)
    }

    #[test]
    fn the_epoch_loss_is_the_mean_per_image() {
        let (result, events) = pass(&[1.0, 4.0], None);
        let pass = result.unwrap().unwrap();
        assert_eq!((pass.model, events), (2, 2));
        assert!((pass.train_loss - 2.0).abs() < 1e-12);
    }

    #[test]
    fn a_cancel_discards_the_epoch_and_a_non_finite_loss_stops_the_run() {
        let (cancelled, _) = pass(&[1.0, 1.0], Some(0));
        assert!(cancelled.unwrap().is_none());
        let (diverged, events) = pass(&[f64::NAN, 1.0], None);
        assert!(matches!(
            diverged,
            Err(TrainError::Diverged { epoch: 1, .. })
        ));
        assert_eq!(events, 0);
    }

    #[test]
    fn a_state_keeps_its_flat_json() {
        let state: TrainState<Figures> = TrainState {
            epochs_done: 1,
            history: vec![EpochRecord {
                epoch: 1,
                train_loss: 0.5,
                metrics: Figures { score: 0.25 },
            }],
            run: (),
        };
        let mut metadata = BTreeMap::new();
        state.write(&mut metadata, "key");
        assert_eq!(
            metadata["key"],
            r#"{"epochs_done":1,"history":[{"epoch":1,"train_loss":0.5,"score":0.25}]}"#
        );
        assert_eq!(TrainState::read(&metadata, "key").unwrap(), Some(state));
        assert_eq!(
            TrainState::<Figures>::read(&metadata, "other").unwrap(),
            None
        );
    }
}

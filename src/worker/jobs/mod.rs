//! The worker's long jobs, each on its own thread so previews stay live: a Dice-vs-sparsity
//! sweep and a per-group sensitivity run on the open case, CKA between two models, and
//! fine-tuning of a pruned model (wgpu or CPU); all cancellable.

mod cka;
mod fine_tune;
mod sensitivity;
mod sweep;

pub(super) use cka::cka;
pub(super) use fine_tune::fine_tune;
pub(super) use sensitivity::sensitivity;
pub(super) use sweep::sweep;

use super::region_dice;
use crate::backend;
use crate::data::dataset::PreparedCase;
use crate::inference::{InferenceOptions, predict_regions};
use crate::model::Checkpoint;

/// Dice WT/TC/ET of `checkpoint` over the whole of `case` (which has a ground truth).
fn case_dice(checkpoint: &Checkpoint, case: &PreparedCase) -> anyhow::Result<[f64; 3]> {
    let truth = case.regions.as_ref().expect("checked by the caller");
    let device = backend::cpu_device();
    let model = checkpoint.build(&device)?;
    let options = InferenceOptions::default();
    let head = checkpoint.config.head;
    let codes = predict_regions(&model, head, case, options, &device, |_, _| {});
    Ok(region_dice(&codes, truth))
}

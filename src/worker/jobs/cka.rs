//! Layer x layer CKA between two models on the open case's tumour slices.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::analysis::cka::Kernel;
use crate::analysis::similarity::{SliceBatches, similarity};
use crate::backend;
use crate::data::dataset::PreparedCase;
use crate::model::Checkpoint;
use crate::worker::{CkaView, Response};

/// Tumour slices of the open case the app's CKA compares on, and their minibatch size.
const CKA_SLICES: usize = 32;
const CKA_BATCH: usize = 8;

/// Linear CKA between every level of `a` and every level of `b` on the open case's tumour
/// slices; replies with the matrix.
pub(in crate::worker) fn cka(
    a: &(Checkpoint, String),
    b: &(Checkpoint, String),
    case: &PreparedCase,
    cancel: &AtomicBool,
    reply: &impl Fn(Response),
) -> Result<(), String> {
    let batches =
        SliceBatches::tumour_slices(std::slice::from_ref(case), 128, CKA_SLICES, CKA_BATCH)
            .map_err(|e| format!("{}: {e}", case.id))?;
    let device = backend::cpu_device();
    let model_a = a.0.build(&device).map_err(|e| e.to_string())?;
    let model_b = b.0.build(&device).map_err(|e| e.to_string())?;
    let total = batches.order.len();
    let progress = batches.inputs(&device).enumerate().map(|(i, inputs)| {
        reply(Response::JobProgress {
            done: i,
            total,
            label: format!("CKA: {} vs {}, minibatch {}/{total}", a.1, b.1, i + 1),
        });
        inputs
    });
    // Stops taking minibatches once cancelled; the matrix then covers those already seen.
    let inputs = progress.take_while(|_| !cancel.load(Ordering::SeqCst));
    let matrix = similarity(&model_a, &model_b, inputs, Kernel::Linear);
    if cancel.load(Ordering::SeqCst) {
        return Ok(());
    }
    reply(Response::Cka(CkaView {
        title: format!("{} (rows) vs {}", a.1, b.1),
        rows: matrix.rows,
        columns: matrix.columns,
        values: matrix.values,
        slices: matrix.slices,
    }));
    Ok(())
}

//! The filter view's data-driven channel scores for one group of the dense model: SNIP on a
//! batch of training slices, sensitivity on the open slice, instability over a few
//! fine-tuning steps; each list is sent as soon as it is known.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::analysis::channel_scores::{instability, sensitivity_per_channel, snip_per_channel};
use crate::backend;
use crate::data::dataset::{PreparedCase, synthetic_case};
use crate::model::Checkpoint;
use crate::prune::{ChannelGraph, SnipBatch};
use crate::train::fine_tune::FineTuneData;
use crate::util::batches::epoch_batches;
use crate::worker::{ChannelScoresView, Response};

/// Fine-tuning steps whose importance spread is a channel's instability.
pub(in crate::worker) const INSTABILITY_STEPS: usize = 8;
/// Their learning rate (ten times the fine-tune default: a short run that moves the weights).
const INSTABILITY_LR: f64 = 1e-3;
/// Synthetic training cases the scores use (the default model's own seeds).
const TRAINING_CASES: u64 = 2;

/// Computes the three scores of `group`; returns whether it was cancelled.
pub(in crate::worker) fn channel_scores(
    dense: &Checkpoint,
    case: &PreparedCase,
    z: usize,
    group: &str,
    cancel: &AtomicBool,
    reply: &impl Fn(Response),
) -> Result<bool, String> {
    let graph = ChannelGraph::of(&dense.config);
    let g = graph
        .group_index(group)
        .ok_or_else(|| format!("no channel group {group:?} in this model"))?;
    let width = graph.groups[g].1;
    let total = 1 + width + INSTABILITY_STEPS;
    let progress = |done: usize, what: &str| {
        reply(Response::JobProgress {
            done,
            total,
            label: format!("channel scores of {group}: {what}"),
        })
    };
    let mut view = ChannelScoresView {
        group: group.to_string(),
        ..ChannelScoresView::default()
    };
    progress(0, "SNIP on training slices");
    let cases: Vec<PreparedCase> = (0..TRAINING_CASES).map(synthetic_case).collect();
    let data = FineTuneData::from_cases(&cases, 128).map_err(|e| e.to_string())?;
    let device = backend::cpu_device().autodiff();
    let first = epoch_batches(data.train.len(), 4, true, 0);
    let (inputs, targets) = data.train.batch(&first[0], &device);
    let batch = SnipBatch {
        inputs,
        targets,
        device,
    };
    view.snip = snip_per_channel(dense, &batch)?[g].clone();
    reply(Response::ChannelScores(view.clone()));
    view.sensitivity = sensitivity_per_channel(dense, case, z, g, |done, _| {
        progress(1 + done, &format!("sensitivity, channel {done}/{width}"));
        !cancel.load(Ordering::SeqCst)
    })?;
    if cancel.load(Ordering::SeqCst) {
        return Ok(true);
    }
    reply(Response::ChannelScores(view.clone()));
    let spread = instability(
        dense,
        &data.train,
        INSTABILITY_STEPS,
        INSTABILITY_LR,
        |done, _| {
            progress(
                1 + width + done,
                &format!("instability, step {done}/{INSTABILITY_STEPS}"),
            );
            !cancel.load(Ordering::SeqCst)
        },
    );
    match spread {
        Ok(spread) => view.instability = spread[g].clone(),
        Err(_) if cancel.load(Ordering::SeqCst) => return Ok(true),
        Err(e) => return Err(e),
    }
    reply(Response::ChannelScores(view));
    Ok(false)
}

//! The Dice-vs-sparsity sweep of the open case: every method at every ratio.

use std::sync::atomic::{AtomicBool, Ordering};

use super::case_dice;
use crate::data::dataset::PreparedCase;
use crate::metrics::RegionScores;
use crate::model::Checkpoint;
use crate::prune::schedule::parameter_counts;
use crate::prune::sweep::SweepPoint;
use crate::prune::{PruneMethod, Ratios, prune_checkpoint};
use crate::worker::Response;

/// Prunes the dense model by every method at every ratio and scores the whole open case;
/// returns whether it was cancelled.
pub(in crate::worker) fn sweep(
    dense: &Checkpoint,
    case: &PreparedCase,
    methods: &[PruneMethod],
    ratios: &[f64],
    cancel: &AtomicBool,
    reply: &impl Fn(Response),
) -> bool {
    let (dense_params, _) = parameter_counts(dense);
    let total = methods.len() * ratios.len();
    let mut done = 0;
    for &method in methods {
        for &ratio in ratios {
            if cancel.load(Ordering::SeqCst) {
                return true;
            }
            let label = format!("sweep: {} at {ratio}", method.key());
            reply(Response::JobProgress { done, total, label });
            let point = prune_checkpoint(dense, method, &Ratios::Uniform(ratio), None)
                .map_err(anyhow::Error::from)
                .and_then(|pruned| {
                    let (_, nonzero) = parameter_counts(&pruned);
                    let sparsity = 1.0 - nonzero as f64 / dense_params as f64;
                    Ok((sparsity, case_dice(&pruned, case)?))
                })
                .map_err(|e| e.to_string());
            match point {
                Ok((sparsity, dice)) => reply(Response::SweepPoint(SweepPoint::dice_only(
                    method,
                    ratio,
                    sparsity,
                    RegionScores::from_array(dice),
                ))),
                Err(e) => reply(Response::Error(format!("{} at {ratio}: {e}", method.key()))),
            }
            done += 1;
        }
    }
    reply(Response::JobProgress {
        done,
        total,
        label: "sweep done".into(),
    });
    false
}

//! The Dice-vs-sparsity sweep of the open case: every method at every ratio.

use std::sync::atomic::AtomicBool;

use super::case_dice;
use crate::data::dataset::PreparedCase;
use crate::metrics::RegionScores;
use crate::model::Checkpoint;
use crate::prune::schedule::parameter_counts;
use crate::prune::sweep::{SweepPoint, for_each_point};
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
    let measure = |method: PruneMethod, ratio: f64| -> anyhow::Result<SweepPoint> {
        let pruned = prune_checkpoint(dense, method, &Ratios::Uniform(ratio), None)?;
        let (_, nonzero) = parameter_counts(&pruned);
        let sparsity = 1.0 - nonzero as f64 / dense_params as f64;
        let dice = RegionScores::from_array(case_dice(&pruned, case)?);
        Ok(SweepPoint::dice_only(method, ratio, sparsity, dice))
    };
    let outcome = for_each_point(methods, ratios, cancel, |done, method, ratio| {
        let label = format!("sweep: {} at {ratio}", method.key());
        reply(Response::JobProgress { done, total, label });
        // A point that fails is reported and the sweep goes on with the others.
        reply(match measure(method, ratio) {
            Ok(point) => Response::SweepPoint(point),
            Err(e) => Response::Error(format!("{} at {ratio}: {e}", method.key())),
        });
        Ok::<(), std::convert::Infallible>(())
    });
    let cancelled = matches!(outcome, Ok(true));
    if !cancelled {
        reply(Response::JobProgress {
            done: total,
            total,
            label: "sweep done".into(),
        });
    }
    cancelled
}

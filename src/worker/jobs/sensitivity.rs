//! The per-group sensitivity of the open case: one channel group pruned at a time.

use std::sync::atomic::{AtomicBool, Ordering};

use super::case_dice;
use crate::analysis::sensitivity::sensitivity_grid;
use crate::data::dataset::PreparedCase;
use crate::metrics::{RegionScores, RegionStats};
use crate::model::Checkpoint;
use crate::prune::{ChannelGraph, PruneMethod};
use crate::worker::Response;

/// Prunes each channel group alone at each ratio and scores the open case, cell by cell;
/// returns whether it was cancelled.
pub(in crate::worker) fn sensitivity(
    dense: &Checkpoint,
    case: &PreparedCase,
    method: PruneMethod,
    ratios: &[f64],
    cancel: &AtomicBool,
    reply: &impl Fn(Response),
) -> Result<bool, String> {
    let graph = ChannelGraph::of(&dense.config);
    let groups: Vec<usize> = (0..graph.groups.len()).collect();
    let total = groups.len() * ratios.len();
    let mut done = 0;
    reply(Response::JobProgress {
        done,
        total,
        label: "sensitivity: starting".into(),
    });
    let outcome = sensitivity_grid(
        dense,
        method,
        groups.len(),
        &groups,
        ratios,
        |pruned| {
            let dice = RegionScores::from_array(case_dice(pruned, case)?);
            Ok(RegionStats::over(&[dice]))
        },
        |cell| {
            done += 1;
            let label = format!(
                "sensitivity: {} at {}",
                graph.groups[cell.group].0, cell.ratio
            );
            reply(Response::SensitivityCell(cell.clone()));
            reply(Response::JobProgress { done, total, label });
            !cancel.load(Ordering::SeqCst)
        },
    );
    outcome.map_err(|e| format!("sensitivity: {e}"))?;
    Ok(cancel.load(Ordering::SeqCst))
}

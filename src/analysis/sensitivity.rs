//! Per-group sensitivity: prune one channel group at a time (every other group intact) over a
//! grid of ratios and score each result, to see which layers a model cannot spare.

use anyhow::Result;
use serde::Serialize;

use crate::metrics::{RegionScores, RegionStats};
use crate::model::Checkpoint;
use crate::prune::{PruneMethod, Ratios, prune_checkpoint};

/// Dice WT/TC/ET of the model with only `group` pruned by `ratio`.
#[derive(Debug, Clone, Serialize)]
pub struct SensitivityCell {
    /// Index into the model's channel groups.
    pub group: usize,
    pub ratio: f64,
    /// Mean over the cases scored.
    pub dice: [f64; 3],
    /// Sample sd over those cases (none for one case).
    pub dice_sd: Option<[f64; 3]>,
}

/// Prunes each of `groups` alone at each of `ratios` (row by row, ratios in order) and scores
/// it with `score`; `on_cell` sees every cell as it completes and returns `false` to stop early.
/// Returns the cells computed.
pub fn sensitivity_grid(
    dense: &Checkpoint,
    method: PruneMethod,
    group_count: usize,
    groups: &[usize],
    ratios: &[f64],
    mut score: impl FnMut(&Checkpoint) -> Result<RegionStats>,
    mut on_cell: impl FnMut(&SensitivityCell) -> bool,
) -> Result<Vec<SensitivityCell>> {
    let mut cells = Vec::with_capacity(groups.len() * ratios.len());
    for &group in groups {
        for &ratio in ratios {
            let mut per_group = vec![0.0; group_count];
            per_group[group] = ratio;
            let pruned = prune_checkpoint(dense, method, &Ratios::PerGroup(per_group), None)?;
            let stats = score(&pruned)?;
            let cell = SensitivityCell {
                group,
                ratio,
                dice: stats.mean.as_array(),
                dice_sd: stats.sd.map(RegionScores::as_array),
            };
            let go_on = on_cell(&cell);
            cells.push(cell);
            if !go_on {
                return Ok(cells);
            }
        }
    }
    Ok(cells)
}

/// The cells as a group x ratio matrix of one region's Dice (`region`: 0 WT, 1 TC, 2 ET);
/// missing cells are NaN.
pub fn region_matrix(
    cells: &[SensitivityCell],
    groups: &[usize],
    ratios: &[f64],
    region: usize,
) -> Vec<Vec<f64>> {
    groups
        .iter()
        .map(|&g| {
            ratios
                .iter()
                .map(|&r| {
                    cells
                        .iter()
                        .find(|c| c.group == g && c.ratio == r)
                        .map_or(f64::NAN, |c| c.dice[region])
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use crate::model::config::{Head, Variant};
    use crate::prune::{ChannelGraph, StructuredMethod};

    #[test]
    fn each_cell_prunes_exactly_one_group() {
        let config = ModelConfig::with_width_multiplier(Variant::Base, Head::Regions3, 0.125);
        let device = crate::backend::cpu_device();
        let dense = Checkpoint::from_model(&config, &config.init(&device));
        let graph = ChannelGraph::of(&config);
        let n = graph.groups.len();
        let full = graph.groups[2].1;
        let mut seen = Vec::new();
        let cells = sensitivity_grid(
            &dense,
            PruneMethod::Structured(StructuredMethod::L2),
            n,
            &[2, 5],
            &[0.5],
            |pruned| {
                let widths = ChannelGraph::of(&pruned.config);
                let changed = (0..n)
                    .filter(|&g| widths.groups[g].1 != graph.groups[g].1)
                    .collect::<Vec<_>>();
                seen.push((changed, widths.groups[2].1));
                Ok(RegionStats::over(&[RegionScores::from_array([
                    1.0, 0.5, 0.0,
                ])]))
            },
            |_| true,
        )
        .unwrap();
        assert_eq!(cells.len(), 2);
        assert_eq!(seen[0], (vec![2], full / 2));
        assert_eq!(seen[1].0, vec![5]);
        let m = region_matrix(&cells, &[2, 5], &[0.5, 0.75], 1);
        assert_eq!(m[0][0], 0.5);
        assert!(m[1][1].is_nan());
    }
}

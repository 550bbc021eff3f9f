//! Channel importance per group, and which channels a ratio keeps.
//!
//! - Filter L2 norm (seed 1; Li et al. 2017, "Pruning Filters for Efficient ConvNets"): the L2
//!   norm of each channel's filters in every conv whose output axis carries it (the producer,
//!   the grouped/depthwise convs that follow it, the attention psi conv tied to a skip channel).
//! - BN gamma (network slimming; Liu et al. 2017, "Learning Efficient Convolutional Networks
//!   through Network Slimming"): the mean |gamma| of the channel over the batch norms on it.
//! - Group L2 (DepGraph; Fang et al. 2023, "DepGraph: Towards Any Structural Pruning"): the L2
//!   norm over every parameter coupled to the channel (producers, consumers, biases, BN affine).

use serde::{Deserialize, Serialize};

use super::PruneError;
use super::graph::{ChannelGraph, LayerKind, Segment, Span};
use crate::model::{HostTensor, WeightMap};

/// How channels are ranked for structured pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StructuredMethod {
    /// Filter L2 norm of the producing convs (seed 1).
    L2,
    /// |gamma| of the batch norms (network slimming).
    BnGamma,
    /// L2 norm over all coupled parameters (DepGraph).
    GroupL2,
}

impl StructuredMethod {
    /// The command-line spelling (`l2`, `bn-gamma`, `group-l2`), also used in CSV files.
    pub fn key(self) -> &'static str {
        match self {
            StructuredMethod::L2 => "l2",
            StructuredMethod::BnGamma => "bn-gamma",
            StructuredMethod::GroupL2 => "group-l2",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StructuredMethod::L2 => "filter L2",
            StructuredMethod::BnGamma => "BN gamma (slimming)",
            StructuredMethod::GroupL2 => "group L2 (DepGraph)",
        }
    }
}

/// Importance of every channel of every group (`[group][channel]`), higher = more important.
pub fn channel_importance(
    method: StructuredMethod,
    graph: &ChannelGraph,
    weights: &WeightMap,
) -> Result<Vec<Vec<f32>>, PruneError> {
    let mut scores: Vec<Vec<f64>> = graph.groups.iter().map(|(_, w)| vec![0.0; *w]).collect();
    let mut counts: Vec<Vec<f64>> = scores.clone();
    for layer in &graph.layers {
        let get = |child: &str| weights.get(&format!("{}.{child}", layer.name));
        let weight = get("weight")
            .ok_or_else(|| PruneError::MissingWeight(format!("{}.weight", layer.name)))?;
        let mut add_axis =
            |axis: &[Segment], values: &[f64]| add(&mut scores, &mut counts, graph, axis, values);
        match (method, layer.kind) {
            (StructuredMethod::L2, LayerKind::Conv) => add_axis(&layer.out, &row_energy(weight)),
            (StructuredMethod::BnGamma, LayerKind::Norm) => {
                let magnitudes: Vec<f64> = weight.values.iter().map(|g| g.abs() as f64).collect();
                add_axis(&layer.out, &magnitudes);
            }
            (StructuredMethod::GroupL2, _) => {
                add_axis(&layer.out, &row_energy(weight));
                if let Some(bias) = get("bias") {
                    add_axis(&layer.out, &row_energy(bias));
                }
                if let (Some(input), LayerKind::Conv) = (&layer.input, layer.kind) {
                    add_axis(input, &column_energy(weight));
                }
            }
            _ => {}
        }
    }
    Ok(scores
        .into_iter()
        .zip(counts)
        .map(|(s, c)| {
            s.iter()
                .zip(&c)
                .map(|(s, c)| match method {
                    StructuredMethod::BnGamma => (s / c.max(1.0)) as f32,
                    _ => s.sqrt() as f32,
                })
                .collect()
        })
        .collect())
}

/// Adds per-index `values` of an axis laid out as `segments` to the groups' channels.
fn add(
    scores: &mut [Vec<f64>],
    counts: &mut [Vec<f64>],
    graph: &ChannelGraph,
    segments: &[Segment],
    values: &[f64],
) {
    let mut offset = 0;
    for s in segments {
        match s.span {
            Span::Fixed(n) => offset += n * s.mult,
            Span::Group(g) => {
                for c in 0..graph.groups[g].1 {
                    for k in 0..s.mult {
                        scores[g][c] += values[offset + c * s.mult + k];
                        counts[g][c] += 1.0;
                    }
                }
                offset += graph.groups[g].1 * s.mult;
            }
        }
    }
}

/// Sum of squares of each slice along axis 0.
fn row_energy(t: &HostTensor) -> Vec<f64> {
    let row = t.values.len() / t.shape[0].max(1);
    t.values
        .chunks(row.max(1))
        .map(|r| r.iter().map(|v| (*v as f64) * (*v as f64)).sum())
        .collect()
}

/// Sum of squares of each slice along axis 1 of a `[out, in, ...]` tensor.
fn column_energy(t: &HostTensor) -> Vec<f64> {
    let n1 = t.shape[1];
    let inner: usize = t.shape.iter().skip(2).product();
    let mut out = vec![0.0; n1];
    for (i, v) in t.values.iter().enumerate() {
        out[(i / inner) % n1] += (*v as f64) * (*v as f64);
    }
    out
}

/// The channels kept when pruning `ratio` of a group by importance: the top
/// `round(width * (1 - ratio))`, in ascending index order (ties keep the lower index).
pub fn keep_top(name: &str, importance: &[f32], ratio: f64) -> Result<Vec<usize>, PruneError> {
    super::check_ratio(name, ratio)?;
    let keep = (importance.len() as f64 * (1.0 - ratio)).round() as usize;
    if keep == 0 {
        return Err(PruneError::EmptyGroup(name.to_string()));
    }
    Ok(super::channels::top_channels(importance, keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_important_channels_in_order() {
        let kept = keep_top("g", &[0.1, 0.9, 0.5, 0.7], 0.5).unwrap();
        assert_eq!(kept, vec![1, 3]);
        assert_eq!(keep_top("g", &[1.0; 4], 0.0).unwrap(), vec![0, 1, 2, 3]);
        assert!(matches!(
            keep_top("g", &[1.0; 4], 1.0),
            Err(PruneError::Invalid(_))
        ));
        assert!(matches!(
            keep_top("g", &[1.0; 4], 1.5),
            Err(PruneError::Invalid(_))
        ));
        // Below 1 but rounding to no channel at all.
        assert!(matches!(
            keep_top("g", &[1.0; 4], 0.9),
            Err(PruneError::EmptyGroup(_))
        ));
    }

    #[test]
    fn energies_along_both_axes() {
        let t = HostTensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(row_energy(&t), vec![14.0, 77.0]);
        assert_eq!(column_energy(&t), vec![17.0, 29.0, 45.0]);
    }
}

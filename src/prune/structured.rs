//! Structured pruning that physically removes channels: (config, weights) and the channels each
//! group keeps -> a smaller (config, weights) that is an ordinary model (save, load, train, run).

use super::PruneError;
use super::channels::slice_axis;
use super::graph::{ChannelGraph, LayerKind};
use crate::model::{HostTensor, ModelConfig, WeightMap};

/// Removes every channel not in `kept[g]` (sorted, unique indices per group, in
/// [`ChannelGraph::groups`] order) from every tensor the graph ties to it.
pub fn remove_channels(
    config: &ModelConfig,
    weights: &WeightMap,
    kept: &[Vec<usize>],
) -> Result<(ModelConfig, WeightMap), PruneError> {
    let graph = ChannelGraph::of(config);
    check_kept(&graph, kept)?;
    let mut pruned = WeightMap::new();
    for layer in &graph.layers {
        let out = graph.kept_indices(&layer.out, kept);
        let input = layer.input.as_ref().map(|s| graph.kept_indices(s, kept));
        let children: &[&str] = match layer.kind {
            LayerKind::Conv => &["weight", "bias"],
            LayerKind::Norm => &["weight", "bias", "running_mean", "running_var"],
        };
        for child in children {
            let key = format!("{}.{child}", layer.name);
            let Some(tensor) = weights.get(&key) else {
                if *child == "bias" {
                    continue; // bias-free conv
                }
                return Err(PruneError::MissingWeight(key));
            };
            let axis1 = if *child == "weight" && layer.kind == LayerKind::Conv {
                input.as_deref()
            } else {
                None
            };
            pruned.insert(key, select_channels(tensor, &out, axis1));
        }
    }
    let widths: Vec<usize> = kept.iter().map(Vec::len).collect();
    let mut smaller = config.clone();
    smaller.plan = config.plan.with_group_widths(&widths);
    smaller.validate()?;
    Ok((smaller, pruned))
}

/// The same model with every channel not in `kept[g]` silenced instead of removed: the rows
/// of every conv and batch norm that write it are zeroed (weight, bias, gamma, beta), so it
/// carries zeros everywhere. What [`remove_channels`] computes must equal this model's output
/// (the check that the graph ties every tensor a channel touches).
pub fn zero_channels(
    config: &ModelConfig,
    weights: &WeightMap,
    kept: &[Vec<usize>],
) -> Result<WeightMap, PruneError> {
    let graph = ChannelGraph::of(config);
    check_kept(&graph, kept)?;
    let mut zeroed = weights.clone();
    for layer in &graph.layers {
        let len = graph.axis_len(&layer.out);
        let live = graph.kept_indices(&layer.out, kept);
        let dead: Vec<usize> = (0..len)
            .filter(|i| live.binary_search(i).is_err())
            .collect();
        for child in ["weight", "bias"] {
            let key = format!("{}.{child}", layer.name);
            if let Some(tensor) = zeroed.get_mut(&key) {
                let row = tensor.values.len() / tensor.shape[0].max(1);
                for &r in &dead {
                    tensor.values[r * row..(r + 1) * row].fill(0.0);
                }
            }
        }
    }
    Ok(zeroed)
}

fn check_kept(graph: &ChannelGraph, kept: &[Vec<usize>]) -> Result<(), PruneError> {
    if kept.len() != graph.groups.len() {
        return Err(PruneError::Invalid(format!(
            "{} groups given, the model has {}",
            kept.len(),
            graph.groups.len()
        )));
    }
    for ((name, width), k) in graph.groups.iter().zip(kept) {
        if k.is_empty() {
            return Err(PruneError::EmptyGroup(name.clone()));
        }
        let sorted = k.windows(2).all(|w| w[0] < w[1]);
        if !sorted || k[k.len() - 1] >= *width {
            return Err(PruneError::Invalid(format!(
                "{name}: kept channels must be sorted, unique and below {width}"
            )));
        }
    }
    Ok(())
}

/// `tensor` with axis 0 restricted to `rows` and, if given, axis 1 to `cols`.
fn select_channels(tensor: &HostTensor, rows: &[usize], cols: Option<&[usize]>) -> HostTensor {
    let (mut values, mut shape) = slice_axis(&tensor.values, &tensor.shape, 0, rows);
    if let Some(cols) = cols.filter(|_| shape.len() >= 2) {
        (values, shape) = slice_axis(&values, &shape, 1, cols);
    }
    HostTensor::new(shape, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selecting_rows_and_columns_of_a_conv_weight() {
        // [3, 2, 1, 2]: value = 100 r + 10 c + k.
        let values = (0..12)
            .map(|i| (100 * (i / 4) + 10 * ((i / 2) % 2) + i % 2) as f32)
            .collect();
        let t = HostTensor::new(vec![3, 2, 1, 2], values);
        let s = select_channels(&t, &[0, 2], Some(&[1]));
        assert_eq!(s.shape, vec![2, 1, 1, 2]);
        assert_eq!(s.values, vec![10.0, 11.0, 210.0, 211.0]);
        let bias = HostTensor::new(vec![3], vec![1.0, 2.0, 3.0]);
        assert_eq!(select_channels(&bias, &[1], None).values, vec![2.0]);
    }
}

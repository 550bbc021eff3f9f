//! Per-channel scores the filter view ranks a group by, beyond the weight norms: SNIP summed
//! per channel, sensitivity (how much the slice's segmentation changes without the channel)
//! and instability (how much a channel's importance drifts over a few fine-tuning steps).

use burn::optim::{AdamConfig, ModuleOptimizer};

use crate::data::dataset::{PreparedCase, SliceDataset};
use crate::inference::{brain_window, predict_slice};
use crate::metrics::region_dice;
use crate::model::Checkpoint;
use crate::prune::graph::{LayerKind, Span};
use crate::prune::{ChannelGraph, SnipBatch, StructuredMethod, channel_importance};
use crate::prune::{unstructured::snip_scores, zero_channels};
use crate::util::batches::epoch_batches;

/// SNIP's `|dL/dw * w|` on one batch, summed over every weight that writes each channel
/// (the output rows of the convolutions tied to it), `[group][channel]`.
pub fn snip_per_channel(
    checkpoint: &Checkpoint,
    batch: &SnipBatch,
) -> Result<Vec<Vec<f32>>, String> {
    let scores = snip_scores(
        checkpoint,
        batch.inputs.clone(),
        batch.targets.clone(),
        &batch.device,
    )
    .map_err(|e| e.to_string())?;
    let graph = ChannelGraph::of(&checkpoint.config);
    let mut totals: Vec<Vec<f64>> = graph.groups.iter().map(|(_, w)| vec![0.0; *w]).collect();
    for layer in graph.layers.iter().filter(|l| l.kind == LayerKind::Conv) {
        let Some(tensor) = scores.get(&format!("{}.weight", layer.name)) else {
            continue;
        };
        let row = tensor.values.len() / tensor.shape[0].max(1);
        let mut offset = 0;
        for segment in &layer.out {
            let (g, width) = match segment.span {
                Span::Fixed(n) => {
                    offset += n * segment.mult;
                    continue;
                }
                Span::Group(g) => (g, graph.groups[g].1),
            };
            for (c, total) in totals[g].iter_mut().enumerate() {
                for k in 0..segment.mult {
                    let r = offset + c * segment.mult + k;
                    *total += tensor.values[r * row..(r + 1) * row]
                        .iter()
                        .map(|v| *v as f64)
                        .sum::<f64>();
                }
            }
            offset += width * segment.mult;
        }
    }
    Ok(totals
        .into_iter()
        .map(|g| g.into_iter().map(|v| v as f32).collect())
        .collect())
}

/// For each channel of group `group`: 1 - the mean WT/TC/ET Dice between the slice's
/// segmentation by `checkpoint` and by the same model with that channel silenced (0: the
/// channel changes nothing on this slice). `keep_going` is asked after each channel (cancel).
pub fn sensitivity_per_channel(
    checkpoint: &Checkpoint,
    case: &PreparedCase,
    z: usize,
    group: usize,
    mut keep_going: impl FnMut(usize, usize) -> bool,
) -> Result<Vec<f32>, String> {
    let device = crate::backend::cpu_device();
    let graph = ChannelGraph::of(&checkpoint.config);
    let window = brain_window(case);
    let head = checkpoint.config.head;
    let segment = |weights: &Checkpoint| -> Result<Vec<u8>, String> {
        let model = weights.build(&device).map_err(|e| e.to_string())?;
        Ok(predict_slice(&model, head, case, z, window, 0.5, &device))
    };
    let reference = segment(checkpoint)?;
    let width = graph.groups[group].1;
    let mut scores = Vec::with_capacity(width);
    for c in 0..width {
        let kept: Vec<Vec<usize>> = graph
            .groups
            .iter()
            .enumerate()
            .map(|(g, (_, w))| (0..*w).filter(|&i| g != group || i != c).collect())
            .collect();
        let silenced = zero_channels(&checkpoint.config, &checkpoint.weights, &kept)
            .map_err(|e| e.to_string())?;
        let codes = segment(&Checkpoint::new(checkpoint.config.clone(), silenced))?;
        let agreement = region_dice(&codes, &reference);
        scores.push((1.0 - agreement.iter().sum::<f64>() / 3.0) as f32);
        if !keep_going(c + 1, width) {
            break;
        }
    }
    Ok(scores)
}

/// Instability of every channel: the filter-L2 importance recorded after each of `steps` Adam
/// steps on `train` (batches of 4 in a seeded order), its sample sd over the steps divided by
/// its mean, `[group][channel]`. `keep_going` is asked after each step (cancel).
pub fn instability(
    checkpoint: &Checkpoint,
    train: &SliceDataset,
    steps: usize,
    learning_rate: f64,
    mut keep_going: impl FnMut(usize, usize) -> bool,
) -> Result<Vec<Vec<f32>>, String> {
    if steps < 2 {
        return Err("instability needs at least 2 fine-tuning steps".into());
    }
    let device = crate::backend::cpu_device().autodiff();
    let graph = ChannelGraph::of(&checkpoint.config);
    let mut model = checkpoint.build(&device).map_err(|e| e.to_string())?;
    let mut optimizer: ModuleOptimizer = AdamConfig::new().init();
    let order = epoch_batches(train.len(), 4, true, 0);
    if order.is_empty() {
        return Err("instability needs training slices".into());
    }
    let mut history: Vec<Vec<Vec<f32>>> = Vec::with_capacity(steps);
    for step in 0..steps {
        let (inputs, targets) = train.batch(&order[step % order.len()], &device);
        let (next, _) = crate::train::train_step(
            checkpoint.config.head,
            model,
            &mut optimizer,
            learning_rate,
            inputs,
            targets,
        );
        model = next;
        let weights = Checkpoint::from_model(&checkpoint.config, &model).weights;
        history.push(
            channel_importance(StructuredMethod::L2, &graph, &weights)
                .map_err(|e| e.to_string())?,
        );
        if !keep_going(step + 1, steps) {
            return Err("cancelled".into());
        }
    }
    Ok(relative_spread(&history))
}

/// Per `[group][channel]`: the sample sd over the records divided by their mean (0 for a
/// channel whose mean is 0).
fn relative_spread(history: &[Vec<Vec<f32>>]) -> Vec<Vec<f32>> {
    let n = history.len() as f64;
    history[0]
        .iter()
        .enumerate()
        .map(|(g, channels)| {
            (0..channels.len())
                .map(|c| {
                    let values: Vec<f64> = history.iter().map(|h| h[g][c] as f64).collect();
                    let mean = values.iter().sum::<f64>() / n;
                    let var =
                        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
                    if mean.abs() < 1e-12 {
                        0.0
                    } else {
                        (var.sqrt() / mean) as f32
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_spread_is_the_sd_over_the_mean() {
        let history = vec![vec![vec![1.0, 2.0]], vec![vec![3.0, 2.0]]];
        let spread = relative_spread(&history);
        // Channel 0: mean 2, sample sd sqrt(2); channel 1 never moves.
        assert!((spread[0][0] - (2.0f32.sqrt() / 2.0)).abs() < 1e-6);
        assert_eq!(spread[0][1], 0.0);
    }
}

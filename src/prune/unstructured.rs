//! Unstructured pruning: per-weight keep masks over the convolution kernels (L1 magnitude per
//! layer or global, SNIP's |gradient x weight| from one batch), and keeping a model's masked
//! weights at zero while it trains.

use std::collections::BTreeMap;

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::PruneError;
use crate::model::layers::{LayerSite, LayerVisitor, VisitLayers, key};
use crate::model::{Checkpoint, HostMask, HostTensor, MaskMap, WeightMap, apply_masks};
use crate::train::{bce_dice_loss, region_logits};

/// The output head's kernel: never pruned (it maps features to the tumour regions).
const HEAD_WEIGHT: &str = "final_conv.weight";

/// How individual weights are ranked for unstructured pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnstructuredMethod {
    /// |w|, the same share removed from every conv layer.
    L1,
    /// |w|, one threshold over all conv layers.
    L1Global,
    /// SNIP (Lee et al. 2019): |dL/dw * w| from one batch, one threshold over all conv layers.
    Snip,
}

impl UnstructuredMethod {
    /// The command-line spelling, also used in CSV files.
    pub fn key(self) -> &'static str {
        match self {
            UnstructuredMethod::L1 => "l1",
            UnstructuredMethod::L1Global => "l1-global",
            UnstructuredMethod::Snip => "snip",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            UnstructuredMethod::L1 => "L1 magnitude per layer",
            UnstructuredMethod::L1Global => "L1 magnitude, global",
            UnstructuredMethod::Snip => "SNIP saliency",
        }
    }

    /// Whether one threshold spans all layers (else each layer loses the same share).
    fn is_global(self) -> bool {
        !matches!(self, UnstructuredMethod::L1)
    }
}

/// The weights unstructured pruning may mask: every conv kernel except the output head's.
pub fn maskable_keys(weights: &WeightMap) -> Vec<String> {
    weights
        .iter()
        .filter(|(k, t)| k.ends_with(".weight") && t.shape.len() == 4 && *k != HEAD_WEIGHT)
        .map(|(k, _)| k.clone())
        .collect()
}

/// The top-level module a weight key belongs to (`enc3.conv1_1.0.weight` -> `enc3`).
pub fn module_of(key: &str) -> &str {
    key.split('.').next().unwrap_or(key)
}

/// The maskable modules in forward order: `enc1`..`enc5`, then per decoder level from the
/// deepest `up5`, `att5`, `dec5` to `dec2`.
pub fn maskable_modules(weights: &WeightMap) -> Vec<String> {
    let mut modules: Vec<String> = maskable_keys(weights)
        .iter()
        .map(|k| module_of(k).to_string())
        .collect();
    modules.sort_by_key(|m| forward_rank(m));
    modules.dedup();
    modules
}

/// Sort key placing a module name in forward order.
fn forward_rank(module: &str) -> (usize, usize, usize, String) {
    let split = module
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(module.len());
    let (kind, level) = module.split_at(split);
    let level: usize = level.parse().unwrap_or(0);
    match kind {
        "enc" => (0, level, 0, String::new()),
        "up" => (1, 9 - level, 0, String::new()),
        "att" => (1, 9 - level, 1, String::new()),
        "dec" => (1, 9 - level, 2, String::new()),
        _ => (2, 0, 0, module.to_string()),
    }
}

/// Only the scores of weights under one top-level module.
pub fn within_module(scores: WeightMap, module: &str) -> WeightMap {
    scores
        .into_iter()
        .filter(|(k, _)| module_of(k) == module)
        .collect()
}

/// Magnitude scores `|w|` of the maskable weights.
pub fn magnitude_scores(weights: &WeightMap) -> WeightMap {
    magnitude_scores_of(weights, &maskable_keys(weights))
}

/// Magnitude scores `|w|` of the weights under `keys`.
pub fn magnitude_scores_of(weights: &WeightMap, keys: &[String]) -> WeightMap {
    keys.iter()
        .cloned()
        .map(|k| {
            let t = &weights[&k];
            let values = t.values.iter().map(|v| v.abs()).collect();
            (k, HostTensor::new(t.shape.clone(), values))
        })
        .collect()
}

/// SNIP connection sensitivity `|dL/dw * w|` of the maskable weights on one batch (`inputs`
/// `[B, 4, H, W]`, WT/TC/ET `targets`) on an autodiff `device`, with the training loss.
pub fn snip_scores(
    checkpoint: &Checkpoint,
    inputs: Tensor<4>,
    targets: Tensor<4>,
    device: &Device,
) -> Result<WeightMap, PruneError> {
    let model = checkpoint.build(device)?;
    let loss = bce_dice_loss(
        region_logits(&model, checkpoint.config.head, inputs),
        targets,
    );
    let grads = loss.backward();
    let mut collector = GradCollector {
        grads: &grads,
        found: WeightMap::new(),
    };
    model
        .clone()
        .visit_layers("", LayerSite::at(1), &mut collector);
    let mut scores = WeightMap::new();
    for k in maskable_keys(&checkpoint.weights) {
        let grad = collector
            .found
            .get(&k)
            .ok_or_else(|| PruneError::MissingWeight(format!("a gradient for {k}")))?;
        let weight = &checkpoint.weights[&k];
        let values = grad
            .values
            .iter()
            .zip(&weight.values)
            .map(|(g, w)| (g * w).abs())
            .collect();
        scores.insert(k, HostTensor::new(weight.shape.clone(), values));
    }
    Ok(scores)
}

struct GradCollector<'a> {
    grads: &'a burn::tensor::Gradients,
    found: WeightMap,
}

impl LayerVisitor for GradCollector<'_> {
    fn conv(&mut self, name: &str, conv: &mut Conv2d, _site: LayerSite) {
        if let Some(grad) = conv.weight.val().grad(self.grads) {
            self.found
                .insert(key(name, "weight"), HostTensor::from_tensor(grad));
        }
    }

    fn norm(&mut self, _name: &str, _norm: &mut BatchNorm, _site: LayerSite) {}
}

/// Masks that remove `ratio` of the scored weights, lowest score first: per layer for
/// [`UnstructuredMethod::L1`], else under one threshold over all layers. Weights an `existing`
/// mask already removed stay removed (iterative schedules).
pub fn masks_from_scores(
    scores: &WeightMap,
    method: UnstructuredMethod,
    ratio: f64,
    existing: &MaskMap,
) -> Result<MaskMap, PruneError> {
    super::check_ratio("unstructured ratio", ratio)?;
    // An already-pruned weight scores below every live one, so it is removed first again.
    // (Each layer's maps are looked up once, not once per weight.)
    let layer_scores = |k: &str| -> Vec<f32> {
        let values = &scores[k].values;
        match existing.get(k) {
            Some(m) => values
                .iter()
                .zip(&m.keep)
                .map(|(v, keep)| if *keep { *v } else { -1.0 })
                .collect(),
            None => values.clone(),
        }
    };
    // Layers not scored this time keep the masks they have.
    let mut masks = existing.clone();
    for (k, t) in scores {
        let mask = HostMask {
            shape: t.shape.clone(),
            keep: vec![true; t.values.len()],
        };
        masks.insert(k.clone(), mask);
    }
    let layers: Vec<Vec<String>> = if method.is_global() {
        vec![scores.keys().cloned().collect()]
    } else {
        scores.keys().map(|k| vec![k.clone()]).collect()
    };
    for layer_keys in layers {
        // (score, layer, index) in one total order, ties broken by position for determinism:
        // the `remove` lowest are one set, which a selection finds without sorting all (a
        // full-width model has 9 M weights).
        let mut all: Vec<(f32, u32, u32)> = Vec::new();
        for (l, k) in layer_keys.iter().enumerate() {
            let values = layer_scores(k);
            all.extend(
                values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (v, l as u32, i as u32)),
            );
        }
        let remove = ((all.len() as f64 * ratio).round() as usize).min(all.len());
        if remove > 0 && remove < all.len() {
            all.select_nth_unstable_by(remove, |a, b| {
                a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
            });
        }
        let mut removed_per_layer: Vec<Vec<u32>> = vec![Vec::new(); layer_keys.len()];
        for &(_, l, i) in &all[..remove] {
            removed_per_layer[l as usize].push(i);
        }
        for (key, removed) in layer_keys.iter().zip(removed_per_layer) {
            let keep = &mut masks.get_mut(key).expect("scored key").keep;
            for i in removed {
                keep[i as usize] = false;
            }
        }
    }
    Ok(masks)
}

/// Applies `masks` to a copy of `checkpoint`: masked weights zeroed and the masks kept with it.
pub fn masked_checkpoint(
    checkpoint: &Checkpoint,
    masks: MaskMap,
) -> Result<Checkpoint, PruneError> {
    let mut weights = checkpoint.weights.clone();
    apply_masks(&mut weights, &masks)?;
    Ok(Checkpoint {
        config: checkpoint.config.clone(),
        weights,
        metadata: BTreeMap::new(),
        masks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(layers: &[(&str, Vec<f32>)]) -> WeightMap {
        layers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    HostTensor::new(vec![v.len(), 1, 1, 1], v.clone()),
                )
            })
            .collect()
    }

    #[test]
    fn per_layer_and_global_thresholds_remove_the_lowest_scores() {
        let s = scores(&[
            ("a.weight", vec![0.1, 0.2, 0.3, 0.4]),
            ("b.weight", vec![5.0, 6.0]),
        ]);
        let per_layer =
            masks_from_scores(&s, UnstructuredMethod::L1, 0.5, &MaskMap::new()).unwrap();
        assert_eq!(per_layer["a.weight"].keep, vec![false, false, true, true]);
        assert_eq!(per_layer["b.weight"].keep, vec![false, true]);
        let global =
            masks_from_scores(&s, UnstructuredMethod::L1Global, 0.5, &MaskMap::new()).unwrap();
        assert_eq!(global["a.weight"].keep, vec![false, false, false, true]);
        assert_eq!(global["b.weight"].keep, vec![true, true]);
        assert!(masks_from_scores(&s, UnstructuredMethod::L1, 1.0, &MaskMap::new()).is_err());
    }

    #[test]
    fn an_existing_mask_stays_removed() {
        let s = scores(&[("a.weight", vec![9.0, 0.2, 0.3, 0.4])]);
        let first = masks_from_scores(&s, UnstructuredMethod::L1, 0.0, &MaskMap::new()).unwrap();
        let mut existing = first.clone();
        existing.get_mut("a.weight").unwrap().keep[0] = false;
        let next = masks_from_scores(&s, UnstructuredMethod::L1, 0.5, &existing).unwrap();
        assert_eq!(next["a.weight"].keep, vec![false, false, true, true]);
    }
}

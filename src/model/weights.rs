//! Weights as a plain map from PyTorch key names to f32 tensors, moved in and out of a model.
//! This map is the common currency of checkpoints, PyTorch import and pruning.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::prelude::*;

use super::ModelError;
use super::layers::{LayerSite, LayerVisitor, VisitLayers, key};

/// A host-side f32 tensor: row-major values and their shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl HostTensor {
    pub fn new(shape: Vec<usize>, values: Vec<f32>) -> HostTensor {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        HostTensor { shape, values }
    }

    pub(crate) fn from_tensor<const D: usize>(tensor: Tensor<D>) -> HostTensor {
        let shape = tensor.dims().to_vec();
        let values = tensor
            .into_data()
            .try_to_vec_as::<f32>()
            .expect("model tensors are float");
        HostTensor { shape, values }
    }

    fn to_tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.values.clone(), self.shape.clone()),
            device,
        )
    }
}

/// PyTorch-named weights and buffers (`enc1.conv1_1.0.weight`, `...running_var`, ...).
pub type WeightMap = BTreeMap<String, HostTensor>;

/// A keep mask over one weight tensor (unstructured pruning): `false` entries are pruned and
/// stay zero.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMask {
    pub shape: Vec<usize>,
    pub keep: Vec<bool>,
}

impl HostMask {
    /// How many weights the mask keeps.
    pub fn kept(&self) -> usize {
        self.keep.iter().filter(|k| **k).count()
    }
}

/// Unstructured pruning masks by the key of the weight they cover.
pub type MaskMap = BTreeMap<String, HostMask>;

/// Share of the masked weights that `masks` remove; 0 without masks.
pub fn mask_sparsity(masks: &MaskMap) -> f64 {
    let total: usize = masks.values().map(|m| m.keep.len()).sum();
    let kept: usize = masks.values().map(HostMask::kept).sum();
    if total == 0 {
        0.0
    } else {
        1.0 - kept as f64 / total as f64
    }
}

/// Zeroes every masked-out weight. Every mask must cover a weight of exactly its shape.
pub fn apply_masks(weights: &mut WeightMap, masks: &MaskMap) -> Result<(), ModelError> {
    for (name, mask) in masks {
        let Some(tensor) = weights.get_mut(name) else {
            return Err(ModelError::MissingKey {
                key: name.clone(),
                expected: mask.shape.clone(),
            });
        };
        if tensor.shape != mask.shape {
            return Err(ModelError::ShapeMismatch {
                key: format!("mask of {name}"),
                found: mask.shape.clone(),
                expected: tensor.shape.clone(),
            });
        }
        for (value, keep) in tensor.values.iter_mut().zip(&mask.keep) {
            if !keep {
                *value = 0.0;
            }
        }
    }
    Ok(())
}

/// Keys PyTorch writes that carry no weights (BatchNorm's step counter).
pub fn is_ignored_key(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// Every weight and buffer of `model`, by PyTorch key name (linear weights as PyTorch's
/// `[out, in]`).
pub fn export_weights<M: VisitLayers + Clone>(model: &M) -> WeightMap {
    let mut exporter = Exporter::default();
    model
        .clone()
        .visit_layers("", LayerSite::at(1), &mut exporter);
    exporter.weights
}

/// The model's expected key names and shapes, without reading any values.
pub fn expected_shapes<M: VisitLayers + Clone>(model: &M) -> BTreeMap<String, Vec<usize>> {
    let mut lister = ShapeLister::default();
    model
        .clone()
        .visit_layers("", LayerSite::at(1), &mut lister);
    lister.shapes
}

/// Replaces every weight and buffer of `model` with the ones in `weights`. Every key the model
/// needs must be present with exactly its shape and finite values, and no other keys may be
/// present (PyTorch's `num_batches_tracked` is ignored).
pub fn import_weights<M: VisitLayers>(
    model: M,
    weights: &WeightMap,
    device: &Device,
) -> Result<M, ModelError> {
    let mut model = model;
    let mut importer = Importer {
        weights,
        device,
        used: BTreeSet::new(),
        error: None,
    };
    model.visit_layers("", LayerSite::at(1), &mut importer);
    if let Some(error) = importer.error {
        return Err(error);
    }
    let unexpected: Vec<String> = weights
        .keys()
        .filter(|k| !importer.used.contains(*k) && !is_ignored_key(k))
        .cloned()
        .collect();
    if !unexpected.is_empty() {
        return Err(ModelError::UnexpectedKeys(unexpected));
    }
    Ok(model)
}

#[derive(Default)]
struct Exporter {
    weights: WeightMap,
}

impl LayerVisitor for Exporter {
    fn conv(&mut self, name: &str, conv: &mut Conv2d, _site: LayerSite) {
        let w = HostTensor::from_tensor(conv.weight.val());
        self.weights.insert(key(name, "weight"), w);
        if let Some(bias) = &conv.bias {
            self.weights
                .insert(key(name, "bias"), HostTensor::from_tensor(bias.val()));
        }
    }

    fn norm(&mut self, name: &str, norm: &mut BatchNorm, _site: LayerSite) {
        let entries = [
            ("weight", norm.gamma.val()),
            ("bias", norm.beta.val()),
            ("running_mean", norm.running_mean.value()),
            ("running_var", norm.running_var.value()),
        ];
        for (child, tensor) in entries {
            self.weights
                .insert(key(name, child), HostTensor::from_tensor(tensor));
        }
    }

    fn linear(&mut self, name: &str, linear: &mut Linear) {
        // burn stores `[in, out]`; PyTorch's state_dict holds `[out, in]`.
        let w = HostTensor::from_tensor(linear.weight.val().transpose());
        self.weights.insert(key(name, "weight"), w);
        if let Some(bias) = &linear.bias {
            self.weights
                .insert(key(name, "bias"), HostTensor::from_tensor(bias.val()));
        }
    }
}

#[derive(Default)]
struct ShapeLister {
    shapes: BTreeMap<String, Vec<usize>>,
}

impl LayerVisitor for ShapeLister {
    fn conv(&mut self, name: &str, conv: &mut Conv2d, _site: LayerSite) {
        self.shapes.insert(
            key(name, "weight"),
            conv.weight.lazy_shape().dims::<4>().to_vec(),
        );
        if let Some(bias) = &conv.bias {
            let dims = bias.lazy_shape().dims::<1>().to_vec();
            self.shapes.insert(key(name, "bias"), dims);
        }
    }

    fn norm(&mut self, name: &str, norm: &mut BatchNorm, _site: LayerSite) {
        let dims = norm.gamma.lazy_shape().dims::<1>().to_vec();
        for child in ["weight", "bias", "running_mean", "running_var"] {
            self.shapes.insert(key(name, child), dims.clone());
        }
    }

    fn linear(&mut self, name: &str, linear: &mut Linear) {
        let [d_in, d_out] = linear.weight.lazy_shape().dims::<2>();
        self.shapes.insert(key(name, "weight"), vec![d_out, d_in]);
        if let Some(bias) = &linear.bias {
            self.shapes
                .insert(key(name, "bias"), bias.lazy_shape().dims::<1>().to_vec());
        }
    }
}

struct Importer<'a> {
    weights: &'a WeightMap,
    device: &'a Device,
    used: BTreeSet<String>,
    error: Option<ModelError>,
}

impl Importer<'_> {
    /// The tensor stored under `name`, checked against the shape the model expects.
    fn take<const D: usize>(&mut self, name: String, expected: &[usize]) -> Option<Tensor<D>> {
        if self.error.is_some() {
            return None;
        }
        let Some(found) = self.weights.get(&name) else {
            self.error = Some(ModelError::MissingKey {
                key: name,
                expected: expected.to_vec(),
            });
            return None;
        };
        if found.shape != expected {
            self.error = Some(ModelError::ShapeMismatch {
                key: name,
                found: found.shape.clone(),
                expected: expected.to_vec(),
            });
            return None;
        }
        if let Some(bad) = found.values.iter().find(|v| !v.is_finite()) {
            self.error = Some(ModelError::NonFinite {
                key: name,
                value: *bad,
            });
            return None;
        }
        let tensor = found.to_tensor(self.device);
        self.used.insert(name);
        Some(tensor)
    }
}

impl LayerVisitor for Importer<'_> {
    fn conv(&mut self, name: &str, conv: &mut Conv2d, _site: LayerSite) {
        // `lazy_shape`, not `dims`: reading the shape must not run the random initialiser of a
        // weight that is about to be replaced (a full-width model is 36 MB of throwaway work).
        let dims = conv.weight.lazy_shape().dims::<4>();
        if let Some(w) = self.take::<4>(key(name, "weight"), &dims) {
            conv.weight = Param::from_tensor(w);
        }
        if let Some(bias) = conv.bias.as_mut() {
            let dims = bias.lazy_shape().dims::<1>();
            if let Some(b) = self.take::<1>(key(name, "bias"), &dims) {
                *bias = Param::from_tensor(b);
            }
        }
    }

    fn norm(&mut self, name: &str, norm: &mut BatchNorm, _site: LayerSite) {
        let dims = norm.gamma.lazy_shape().dims::<1>();
        if let Some(t) = self.take::<1>(key(name, "weight"), &dims) {
            norm.gamma = Param::from_tensor(t);
        }
        if let Some(t) = self.take::<1>(key(name, "bias"), &dims) {
            norm.beta = Param::from_tensor(t);
        }
        if let Some(t) = self.take::<1>(key(name, "running_mean"), &dims) {
            norm.running_mean = RunningState::new(t);
        }
        if let Some(t) = self.take::<1>(key(name, "running_var"), &dims) {
            norm.running_var = RunningState::new(t);
        }
    }

    fn linear(&mut self, name: &str, linear: &mut Linear) {
        let [d_in, d_out] = linear.weight.lazy_shape().dims::<2>();
        if let Some(w) = self.take::<2>(key(name, "weight"), &[d_out, d_in]) {
            linear.weight = Param::from_tensor(w.transpose());
        }
        if let Some(bias) = linear.bias.as_mut() {
            let dims = bias.lazy_shape().dims::<1>();
            if let Some(b) = self.take::<1>(key(name, "bias"), &dims) {
                *bias = Param::from_tensor(b);
            }
        }
    }
}

//! Keeping a model's unstructurally pruned weights at zero on its device: the masks as 0/1
//! tensors, multiplied into the conv kernels (and linear weights) after every optimiser step.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::prelude::*;

use super::layers::{LayerSite, LayerVisitor, VisitLayers, key};
use super::weights::{HostMask, MaskMap};

/// Keeps a training model's masked weights at zero: the masks as 0/1 tensors on the model's
/// device, multiplied into the weights after every optimiser step.
#[derive(Clone)]
pub struct ModelMasks {
    convs: BTreeMap<String, Tensor<4>>,
    /// Linear masks in burn's `[in, out]` layout (the host masks are PyTorch's `[out, in]`).
    linears: BTreeMap<String, Tensor<2>>,
}

fn ones_and_zeros(mask: &HostMask) -> Vec<f32> {
    mask.keep.iter().map(|k| f32::from(u8::from(*k))).collect()
}

impl ModelMasks {
    pub fn new(masks: &MaskMap, device: &Device) -> ModelMasks {
        let tensor = |m: &HostMask| TensorData::new(ones_and_zeros(m), m.shape.clone());
        let convs = masks
            .iter()
            .filter(|(_, m)| m.shape.len() == 4)
            .map(|(k, m)| (k.clone(), Tensor::from_data(tensor(m), device)))
            .collect();
        let linears = masks
            .iter()
            .filter(|(_, m)| m.shape.len() == 2)
            .map(|(k, m)| {
                let t: Tensor<2> = Tensor::from_data(tensor(m), device);
                (k.clone(), t.transpose())
            })
            .collect();
        ModelMasks { convs, linears }
    }

    pub fn is_empty(&self) -> bool {
        self.convs.is_empty() && self.linears.is_empty()
    }

    /// The model with every masked weight set to zero; parameter ids (and so the optimiser's
    /// state) are kept.
    pub fn apply<M: VisitLayers>(&self, mut model: M) -> M {
        if self.is_empty() {
            return model;
        }
        model.visit_layers("", LayerSite::at(1), &mut MaskApplier(self));
        model
    }
}

/// `weight * mask`, taken off the autodiff graph and made a fresh leaf that requires grad again
/// (a product on the graph could not be made a leaf). Cloning a parameter shares its tensor and
/// keeps its id.
fn masked<const D: usize>(weight: &Param<Tensor<D>>, mask: &Tensor<D>) -> Param<Tensor<D>> {
    weight.clone().map(|w| {
        let (tracked, autodiff) = (w.is_require_grad(), w.is_autodiff());
        let product = w.inner().mul(mask.clone().inner());
        let product = if autodiff {
            product.autodiff()
        } else {
            product
        };
        if tracked {
            product.require_grad()
        } else {
            product
        }
    })
}

struct MaskApplier<'a>(&'a ModelMasks);

impl LayerVisitor for MaskApplier<'_> {
    fn conv(&mut self, name: &str, conv: &mut Conv2d, _site: LayerSite) {
        if let Some(mask) = self.0.convs.get(&key(name, "weight")) {
            conv.weight = masked(&conv.weight, mask);
        }
    }

    fn norm(&mut self, _name: &str, _norm: &mut BatchNorm, _site: LayerSite) {}

    fn linear(&mut self, name: &str, linear: &mut Linear) {
        if let Some(mask) = self.0.linears.get(&key(name, "weight")) {
            linear.weight = masked(&linear.weight, mask);
        }
    }
}

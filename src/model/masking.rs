//! Keeping a model's unstructurally pruned weights at zero on its device: the masks as 0/1
//! tensors, multiplied into the conv kernels after every optimiser step.

use std::collections::BTreeMap;

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::layers::{LayerSite, LayerVisitor, VisitLayers, key};
use super::net::Raagr2Net;
use super::weights::MaskMap;

/// Keeps a training model's masked weights at zero: the masks as 0/1 tensors on the model's
/// device, multiplied into the conv kernels after every optimiser step.
#[derive(Clone)]
pub struct ModelMasks {
    masks: BTreeMap<String, Tensor<4>>,
}

impl ModelMasks {
    pub fn new(masks: &MaskMap, device: &Device) -> ModelMasks {
        let masks = masks
            .iter()
            .filter(|(_, m)| m.shape.len() == 4)
            .map(|(k, m)| {
                let values: Vec<f32> = m.keep.iter().map(|k| f32::from(u8::from(*k))).collect();
                let tensor = Tensor::from_data(TensorData::new(values, m.shape.clone()), device);
                (k.clone(), tensor)
            })
            .collect();
        ModelMasks { masks }
    }

    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// The model with every masked weight set to zero; parameter ids (and so the optimiser's
    /// state) are kept.
    pub fn apply(&self, mut model: Raagr2Net) -> Raagr2Net {
        if self.masks.is_empty() {
            return model;
        }
        model.visit_layers("", LayerSite::at(1), &mut MaskApplier(self));
        model
    }
}

struct MaskApplier<'a>(&'a ModelMasks);

impl LayerVisitor for MaskApplier<'_> {
    fn conv(&mut self, name: &str, conv: &mut Conv2d, _site: LayerSite) {
        let Some(mask) = self.0.masks.get(&key(name, "weight")) else {
            return;
        };
        // Cloning a parameter shares its tensor and keeps its id.
        // The product is taken off the autodiff graph and comes back as a fresh leaf that
        // requires grad again (a product on the graph could not be made a leaf).
        conv.weight = conv.weight.clone().map(|w| {
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
        });
    }

    fn norm(&mut self, _name: &str, _norm: &mut BatchNorm, _site: LayerSite) {}
}

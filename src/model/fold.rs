//! Folding each inference-mode BatchNorm into the convolution that feeds it, so that inference
//! skips one pass over every normalised activation.
//!
//! In eval mode a batch norm is the per-channel affine map `y = s * (x - mean) + beta` with
//! `s = gamma / sqrt(var + eps)`; applied to a convolution's output it equals the convolution
//! with weights scaled by `s` per output channel and bias `s * (b - mean) + beta`.

use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::layers::{LayerSite, LayerVisitor, Norm, VisitLayers};
use super::net::Raagr2Net;

impl Raagr2Net {
    /// This model with every batch norm folded into the convolution before it: the same
    /// outputs in inference, fewer passes over memory. For inference only: a folded model
    /// neither trains (batch statistics are gone) nor exports its weights as PyTorch's.
    /// Folding a folded model changes nothing (its norms are skipped).
    pub fn folded(&self) -> Raagr2Net {
        let mut model = self.clone();
        // In every block of this network the layer visited just before a batch norm is the
        // convolution whose output that norm normalises (see `VisitLayers`), so the order of
        // the walk pairs them.
        let mut order = VisitOrder::default();
        model.visit_layers("", LayerSite::at(1), &mut order);
        let mut folder = Folder {
            order: order.0,
            position: 0,
        };
        model.visit_layers("", LayerSite::at(1), &mut folder);
        model
    }
}

/// What the walk meets, in order: a convolution, a batch norm's folding factors, or a batch
/// norm already folded (nothing left to fold into the convolution before it).
enum Visited {
    Conv,
    Norm(Box<Affine>),
    Folded,
}

/// A batch norm in eval mode as `x -> scale * x + shift` per channel.
struct Affine {
    scale: Tensor<1>,
    shift: Tensor<1>,
}

#[derive(Default)]
struct VisitOrder(Vec<Visited>);

impl LayerVisitor for VisitOrder {
    fn conv(&mut self, _name: &str, _conv: &mut Conv2d, _site: LayerSite) {
        self.0.push(Visited::Conv);
    }

    fn norm(&mut self, _name: &str, norm: &mut BatchNorm, _site: LayerSite) {
        let scale = norm.gamma.val() / (norm.running_var.value() + norm.epsilon).sqrt();
        let shift = norm.beta.val() - norm.running_mean.value() * scale.clone();
        self.0
            .push(Visited::Norm(Box::new(Affine { scale, shift })));
    }

    fn foldable_norm(&mut self, name: &str, norm: &mut Norm, site: LayerSite) {
        if norm.folded {
            self.0.push(Visited::Folded);
        } else {
            self.norm(name, &mut norm.bn, site);
        }
    }
}

/// Second walk: scales each convolution followed by a batch norm and marks that norm folded.
struct Folder {
    order: Vec<Visited>,
    position: usize,
}

impl LayerVisitor for Folder {
    fn conv(&mut self, _name: &str, conv: &mut Conv2d, _site: LayerSite) {
        if let Some(Visited::Norm(affine)) = self.order.get(self.position + 1) {
            fold_into(conv, affine.scale.clone(), affine.shift.clone());
        }
        self.position += 1;
    }

    fn norm(&mut self, _name: &str, _norm: &mut BatchNorm, _site: LayerSite) {
        unreachable!("models hand their norms to foldable_norm")
    }

    fn foldable_norm(&mut self, _name: &str, norm: &mut Norm, _site: LayerSite) {
        norm.folded = true;
        self.position += 1;
    }
}

/// `conv` followed by `x -> scale * x + shift` per output channel, as one convolution.
fn fold_into(conv: &mut Conv2d, scale: Tensor<1>, shift: Tensor<1>) {
    let channels = scale.dims()[0];
    let weight = conv.weight.val() * scale.clone().reshape([channels, 1, 1, 1]);
    let bias = match &conv.bias {
        Some(bias) => bias.val() * scale + shift,
        None => shift,
    };
    conv.weight = Param::from_tensor(weight);
    conv.bias = Some(Param::from_tensor(bias));
}

/// Fresh norms are the identity, which folding leaves unchanged: tests give every norm
/// statistics and affine terms, and every bias a value (deterministic, in [0.5, 1.5), positive
/// as variances must be), so that folding has something to fold.
#[cfg(test)]
pub(crate) fn give_norms_statistics(checkpoint: &mut crate::model::Checkpoint) {
    let mut k = 0usize;
    for (name, tensor) in checkpoint.weights.iter_mut() {
        let is_norm = ["running_mean", "running_var"]
            .iter()
            .any(|s| name.ends_with(s))
            || (tensor.shape.len() == 1 && name.ends_with("weight"));
        if is_norm || name.ends_with("bias") {
            for v in &mut tensor.values {
                k += 1;
                *v = 0.5 + (k * 37 % 101) as f32 / 101.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::BatchNorm;
    use burn::nn::conv::Conv2d;
    use burn::prelude::*;
    use burn::tensor::Distribution;

    use super::give_norms_statistics;
    use crate::backend::cpu_device;
    use crate::model::layers::{LayerSite, LayerVisitor, Norm, VisitLayers};
    use crate::model::{Checkpoint, Head, ModelConfig, Variant};

    /// Counts the norms a walk finds not folded.
    struct UnfoldedNorms(usize);

    impl LayerVisitor for UnfoldedNorms {
        fn conv(&mut self, _: &str, _: &mut Conv2d, _: LayerSite) {}
        fn norm(&mut self, _: &str, _: &mut BatchNorm, _: LayerSite) {}
        fn foldable_norm(&mut self, _: &str, norm: &mut Norm, _: LayerSite) {
            self.0 += usize::from(!norm.folded);
        }
    }

    #[test]
    fn a_folded_model_gives_the_same_output_and_skips_every_norm() {
        let device = cpu_device();
        for variant in [
            Variant::Base,
            Variant::DepthwiseShared,
            Variant::PairedShared,
        ] {
            let config = ModelConfig::with_width_multiplier(variant, Head::Regions3, 0.125);
            device.seed(3);
            let mut checkpoint = Checkpoint::from_model(&config, &config.init(&device));
            give_norms_statistics(&mut checkpoint);
            let model = checkpoint.build(&device).unwrap();
            let x = Tensor::<4>::random([2, 4, 32, 32], Distribution::Normal(0.0, 1.0), &device);
            let mut folded = model.folded();
            let twice = folded.folded();
            let [a, b, c] = [&model, &folded, &twice]
                .map(|m| m.forward_logits(x.clone()))
                .map(|t| t.into_data().try_to_vec_as::<f32>().unwrap());
            let scale = a.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (what, out) in [("folded", &b), ("folded twice", &c)] {
                let diff = crate::analysis::max_abs_diff(&a, out);
                assert!(
                    diff <= 1e-5 * scale,
                    "{variant:?} {what}: differs by {diff}"
                );
            }
            let mut unfolded = UnfoldedNorms(0);
            folded.visit_layers("", LayerSite::at(1), &mut unfolded);
            assert_eq!(unfolded.0, 0, "{variant:?}: norms left unfolded");
        }
    }
}

//! RAAGR2-Net (the dissertation's DLU-Net): five ReASPP3 encoder levels, four attention/RRCNN
//! decoder levels and a 1x1 sigmoid head, built from a [`ModelConfig`].

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use super::config::{ModelConfig, SPATIAL_MULTIPLE};
use super::decoder::DecoderLevel;
use super::encoder::Encoder;
use super::layers::{LayerSite, LayerVisitor, VisitLayers, conv};

#[derive(Module, Debug)]
pub struct Raagr2Net {
    pub encoders: Vec<Encoder>,
    /// `decoders[i]` is PyTorch level i + 2 and takes its skip from `encoders[i]`.
    pub decoders: Vec<DecoderLevel>,
    pub head: Conv2d,
    pub pool: MaxPool2d,
}

impl ModelConfig {
    /// Builds the network with fresh (PyTorch-default style) weights on `device`.
    /// The config must be valid (see `StoredConfig::validate`).
    pub fn init(&self, device: &Device) -> Raagr2Net {
        let plan = &self.plan;
        let encoders = plan
            .encoders
            .iter()
            .enumerate()
            .map(|(i, e)| Encoder::new(plan.encoder_in(i), e, self.variant, device))
            .collect();
        let decoders = plan
            .decoders
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let skip = plan.encoders[i].out;
                DecoderLevel::new(plan.decoder_deep_in(i), skip, d, self.dropout, device)
            })
            .collect();
        let last = plan.decoders[0].rec;
        Raagr2Net {
            encoders,
            decoders,
            head: conv([last, self.head.classes()], 1, 1, 1, true, device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        }
    }
}

impl crate::timing::TimedForward for Raagr2Net {
    const INPUT_CHANNELS: usize = 4;

    fn forward_read_back(&self, x: Tensor<4>) {
        let _ = self.forward(x).into_data();
    }
}

/// A network that segments slices: the float model, or a simulation of a reduced-precision
/// export of it (`crate::precision`).
pub trait Segmenter {
    /// A copy ready for inference (batch norms folded into their convolutions); inference
    /// prepares once per case, then segments batch after batch.
    fn prepared(&self) -> Self
    where
        Self: Sized;
    /// `[B, 4, H, W]` slices (H, W multiples of 16) -> per-region probabilities
    /// `[B, classes, H, W]`.
    fn segment(&self, x: Tensor<4>) -> Tensor<4>;
}

impl Segmenter for Raagr2Net {
    fn prepared(&self) -> Raagr2Net {
        self.folded()
    }

    fn segment(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward(x)
    }
}

impl Raagr2Net {
    /// `[B, 4, H, W]` (H, W multiples of 16) -> per-channel probabilities `[B, classes, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        sigmoid(self.forward_logits(x))
    }

    /// `[B, 4, H, W] -> [B, classes, H, W]` before the sigmoid (training uses these for BCE).
    pub fn forward_logits(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_tapped(x, &mut |_, _| {})
    }

    /// The output of every encoder level (`enc1`..`enc5`) and decoder level (`dec5`..`dec2`,
    /// PyTorch's names), in forward order, for `[B, 4, H, W]` inputs (layer analysis, CKA).
    pub fn layer_outputs(&self, x: Tensor<4>) -> Vec<(String, Tensor<4>)> {
        let mut outputs = Vec::new();
        self.forward_tapped(x, &mut |name, t| {
            if is_level(name) {
                outputs.push((name.to_string(), t.clone()));
            }
        });
        outputs
    }

    /// The intermediate outputs named in `wanted` (tap names: a channel group's name as
    /// [`crate::model::ChannelPlan::groups`] gives it, or `att{k}.psi` for an attention gate's
    /// gate), in forward order, and the logits.
    pub fn tapped_outputs(
        &self,
        x: Tensor<4>,
        wanted: &[&str],
    ) -> (Vec<(String, Tensor<4>)>, Tensor<4>) {
        let mut outputs = Vec::new();
        let logits = self.forward_tapped(x, &mut |name, t| {
            if wanted.contains(&name) {
                outputs.push((name.to_string(), t.clone()));
            }
        });
        (outputs, logits)
    }

    /// The forward pass to logits, handing intermediate outputs to `tap` on the way: each
    /// channel group's features under the group's name (`enc1.branch1`, `enc1.out`, `up5`,
    /// `att5`, `dec5`...), each gate's `att{k}.psi`, and each level's output as `enc{i}` /
    /// `dec{k}`.
    fn forward_tapped(&self, x: Tensor<4>, tap: &mut dyn FnMut(&str, &Tensor<4>)) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        debug_assert!(h % SPATIAL_MULTIPLE == 0 && w % SPATIAL_MULTIPLE == 0);
        let mut skips: Vec<Tensor<4>> = Vec::with_capacity(self.encoders.len());
        let mut feature = x;
        for (i, encoder) in self.encoders.iter().enumerate() {
            if i > 0 {
                feature = self.pool.forward(feature);
            }
            let level = format!("enc{}", i + 1);
            feature =
                encoder.forward_tapped(feature, &mut |part, t| tap(&format!("{level}.{part}"), t));
            tap(&format!("{level}.out"), &feature);
            tap(&level, &feature);
            skips.push(feature.clone());
        }
        let mut deep = skips.pop().expect("five encoder levels");
        for (i, level) in self.decoders.iter().enumerate().rev() {
            let k = i + 2;
            deep = level.forward_tapped(deep, skips[i].clone(), &mut |part, t| match part {
                "up" => tap(&format!("up{k}"), t),
                "joint" => tap(&format!("att{k}"), t),
                other => tap(&format!("att{k}.{other}"), t),
            });
            tap(&format!("dec{k}"), &deep);
        }
        self.head.forward(deep)
    }
}

/// Whether a tap name is a whole level's output (`enc3`, `dec4`), not a part of one.
fn is_level(name: &str) -> bool {
    (name.starts_with("enc") || name.starts_with("dec")) && !name.contains('.')
}

impl VisitLayers for Raagr2Net {
    fn visit_layers(&mut self, _prefix: &str, _site: LayerSite, v: &mut dyn LayerVisitor) {
        for (i, encoder) in self.encoders.iter_mut().enumerate() {
            encoder.visit_layers(&format!("enc{}", i + 1), LayerSite::at(1 << i), v);
        }
        for (i, level) in self.decoders.iter_mut().enumerate().rev() {
            level.visit(i + 2, LayerSite::at(1 << i), v);
        }
        v.conv("final_conv", &mut self.head, LayerSite::at(1));
    }
}

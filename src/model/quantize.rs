//! Weights rounded as a reduced-precision export stores them, so that this project's own
//! forward computes what the exported model computes: half precision, or 8-bit integers with
//! one symmetric scale per output channel (INT8 weights; activations stay float32). Both apply
//! to the folded network, whose convolutions are what an export writes.

use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::layers::{LayerSite, LayerVisitor, VisitLayers};
use super::net::Raagr2Net;

/// The largest INT8 code a symmetric scale maps the channel's largest |weight| to.
pub const INT8_MAX: f32 = 127.0;

/// How convolution weights are rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightRounding {
    /// To the nearest IEEE half (weights and biases).
    Half,
    /// To int8 codes times one scale per output channel (`max |w| / 127`); biases stay float32.
    Int8PerChannel,
}

/// Per-output-channel symmetric INT8 codes of `values` (`channels` equal rows, e.g. a
/// convolution's `[out, in, kh, kw]` weights) and each channel's scale; an all-zero channel
/// (a pruned one) gets scale 1 and codes 0.
pub fn quantize_per_channel(values: &[f32], channels: usize) -> (Vec<i8>, Vec<f32>) {
    let row = values.len() / channels.max(1);
    let mut codes = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(channels);
    for chunk in values.chunks(row.max(1)) {
        let largest = chunk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if largest > 0.0 {
            largest / INT8_MAX
        } else {
            1.0
        };
        codes.extend(
            chunk
                .iter()
                .map(|v| (v / scale).round().clamp(-INT8_MAX, INT8_MAX) as i8),
        );
        scales.push(scale);
    }
    (codes, scales)
}

impl Raagr2Net {
    /// This model folded, with every convolution's weights rounded by `rounding`: the network
    /// an export in that precision holds.
    pub fn with_rounded_weights(&self, rounding: WeightRounding) -> Raagr2Net {
        let mut model = self.folded();
        model.visit_layers("", LayerSite::at(1), &mut Rounder(rounding));
        model
    }
}

struct Rounder(WeightRounding);

impl LayerVisitor for Rounder {
    fn conv(&mut self, _name: &str, conv: &mut Conv2d, _site: LayerSite) {
        let weight = conv.weight.val();
        let (dims, device) = (weight.dims(), weight.device());
        let values = weight
            .into_data()
            .try_to_vec::<f32>()
            .expect("model weights are f32");
        let rounded: Vec<f32> = match self.0 {
            WeightRounding::Half => values.iter().map(|v| round_half(*v)).collect(),
            WeightRounding::Int8PerChannel => {
                let (codes, scales) = quantize_per_channel(&values, dims[0]);
                let row = codes.len() / dims[0];
                codes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| *c as f32 * scales[i / row])
                    .collect()
            }
        };
        conv.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(rounded, dims.to_vec()),
            &device,
        ));
        if self.0 == WeightRounding::Half
            && let Some(bias) = &conv.bias
        {
            let bias = bias.val();
            let (dims, device) = (bias.dims(), bias.device());
            let values: Vec<f32> = bias
                .into_data()
                .try_to_vec::<f32>()
                .expect("model weights are f32")
                .into_iter()
                .map(round_half)
                .collect();
            conv.bias = Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(values, dims.to_vec()),
                &device,
            )));
        }
    }

    /// The model is folded first: its norms are identities by now.
    fn norm(&mut self, _name: &str, _norm: &mut BatchNorm, _site: LayerSite) {}
}

fn round_half(value: f32) -> f32 {
    half::f16::from_f32(value).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_codes_span_each_channel_and_an_empty_channel_stays_zero() {
        let values = [0.5, -1.0, 0.25, 0.0, 0.0, 0.0, 2.0, 1.0, -0.01];
        let (codes, scales) = quantize_per_channel(&values, 3);
        assert_eq!(codes[..3], [64, -127, 32]);
        assert_eq!(codes[3..6], [0, 0, 0]);
        assert_eq!(scales[1], 1.0);
        assert_eq!(codes[6], 127);
        assert_eq!(codes[8], -1);
        let back: Vec<f32> = codes
            .iter()
            .enumerate()
            .map(|(i, c)| *c as f32 * scales[i / 3])
            .collect();
        for (v, b) in values.iter().zip(&back) {
            assert!((v - b).abs() <= 0.5 * 2.0 / 127.0, "{v} -> {b}");
        }
    }
}

//! The network rounded as a reduced-precision export stores it, so that this project's own
//! forward computes what the exported model computes: weights in half precision, or static INT8
//! (weights as 8-bit codes with one symmetric scale per output channel, every stored activation
//! on an 8-bit grid calibrated on example slices, biases on the int32 grid of input scale x
//! weight scale). Both apply to the folded network, whose convolutions are what an export
//! writes; the INT8 forward walks [`super::graph`], the sequence the exporter writes.

use std::convert::Infallible;

use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2dConfig;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use super::decoder::upsample2x;
use super::graph::{GraphOps, Grid, logits};
use super::layers::{LayerSite, LayerVisitor, VisitLayers};
use super::net::{Raagr2Net, Segmenter};

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

/// The largest code of an activation: activations are unsigned 8-bit, `0..=255`.
const UINT8_MAX: f32 = 255.0;

/// One stored activation's unsigned 8-bit affine grid: a code `q` in `0..=255` stands for
/// `(q - zero_point) * scale` (ONNX `QuantizeLinear` / `DequantizeLinear` with uint8).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActivationGrid {
    pub scale: f32,
    pub zero_point: u8,
}

impl ActivationGrid {
    /// `[0, 1]` in steps of 1/255, for a sigmoid's output.
    pub const PROBABILITY: ActivationGrid = ActivationGrid {
        scale: 1.0 / UINT8_MAX,
        zero_point: 0,
    };

    /// The grid spanning `[min, max]` widened to hold 0, so that zeros (padding, ReLU, pruned
    /// channels) stay exact; a constant-zero activation gets scale 1.
    pub fn spanning(min: f32, max: f32) -> ActivationGrid {
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        if !(hi - lo).is_finite() || hi - lo <= f32::MIN_POSITIVE {
            return ActivationGrid {
                scale: 1.0,
                zero_point: 0,
            };
        }
        let scale = (hi - lo) / UINT8_MAX;
        let zero_point = (-lo / scale).round().clamp(0.0, UINT8_MAX) as u8;
        ActivationGrid { scale, zero_point }
    }

    /// `x` quantized to this grid and back, as `QuantizeLinear` then `DequantizeLinear` do
    /// (round half to even, saturating). One pass over the values on the host: burn's
    /// element-wise round is a scalar call per value, and four tensor passes per activation
    /// made the INT8 forward three times slower than the float one.
    pub fn round<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let device = x.device();
        let mut data = x.into_data().convert::<f32>();
        if let Ok(values) = data.as_mut_slice::<f32>() {
            self.round_values(values);
        }
        Tensor::from_data(data, &device)
    }

    /// [`ActivationGrid::round`] in place on values.
    pub fn round_values(&self, values: &mut [f32]) {
        // Adding and subtracting 1.5 * 2^23 rounds a float of magnitude below 2^22 to the
        // nearest integer, ties to even (the FPU's rounding), in plain vector arithmetic.
        // Clamping first is the same as saturating after, as the bounds are integers.
        const ROUNDER: f32 = 12_582_912.0;
        let (low, high) = (
            -(self.zero_point as f32),
            UINT8_MAX - self.zero_point as f32,
        );
        for v in values.iter_mut() {
            let code = (*v / self.scale).clamp(low, high);
            *v = ((code + ROUNDER) - ROUNDER) * self.scale;
        }
    }
}

/// The range an activation took over the calibration slices.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    min: f32,
    max: f32,
}

/// The folded network as a static INT8 export computes it: INT8 weights, every stored
/// activation rounded to its calibrated grid (in the order of [`super::graph::logits`]), the
/// logits and the final sigmoid in float.
#[derive(Debug, Clone)]
pub struct QuantizedNet {
    net: Raagr2Net,
    grids: Vec<ActivationGrid>,
}

impl QuantizedNet {
    /// `model` folded with INT8 per-channel weights, its activations' grids spanning the
    /// ranges they take on `calibration` (batches of `[B, 4, H, W]` slices; min-max, as ONNX
    /// Runtime's default calibrator).
    pub fn calibrate(model: &Raagr2Net, calibration: &[Tensor<4>]) -> QuantizedNet {
        let net = model.with_rounded_weights(WeightRounding::Int8PerChannel);
        let mut ranges = Vec::new();
        for batch in calibration {
            let mut ops = TensorGraph::new(Mode::Calibrate(&mut ranges));
            let Ok(_) = logits(&net, &mut ops, Stored::float(batch.clone()));
        }
        let grids = ranges
            .iter()
            .map(|r| ActivationGrid::spanning(r.min, r.max))
            .collect();
        QuantizedNet { net, grids }
    }

    /// The folded network with its INT8-rounded weights.
    pub fn net(&self) -> &Raagr2Net {
        &self.net
    }

    /// Each stored activation's grid, in walk order.
    pub fn grids(&self) -> &[ActivationGrid] {
        &self.grids
    }

    /// `[B, 4, H, W]` -> per-region probabilities `[B, classes, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut ops = TensorGraph::new(Mode::Quantize(&self.grids));
        let Ok(logits) = logits(&self.net, &mut ops, Stored::float(x));
        sigmoid(logits.tensor)
    }
}

impl Segmenter for QuantizedNet {
    fn prepared(&self) -> QuantizedNet {
        self.clone()
    }

    fn segment(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward(x)
    }
}

/// The per-output-channel weight scales of a convolution's INT8 codes, as `[out]` on the
/// weight's device (what [`quantize_per_channel`] gives: `max |w| / 127`, or 1 for an all-zero
/// channel), recomputed from the rounded weights, whose largest magnitude is exactly 127 codes.
fn weight_scales(weight: Tensor<4>) -> Tensor<1> {
    let out = weight.dims()[0];
    let largest = weight
        .abs()
        .reshape([out as i32, -1])
        .max_dim(1)
        .reshape([out]);
    let empty = largest.clone().equal_elem(0.0).float();
    largest.div_scalar(INT8_MAX) + empty
}

/// What the evaluator does at each stored activation.
enum Mode<'a> {
    /// Nothing: the float network (for checking the walk against `Raagr2Net::forward`).
    #[cfg_attr(not(test), allow(dead_code))]
    Float,
    /// Widen each activation's range by what it takes on this batch.
    Calibrate(&'a mut Vec<Range>),
    /// Round each activation to its grid.
    Quantize(&'a [ActivationGrid]),
}

/// A tensor between operations and the grid it is on (None: float).
#[derive(Clone)]
struct Stored {
    tensor: Tensor<4>,
    grid: Option<ActivationGrid>,
}

impl Stored {
    fn float(tensor: Tensor<4>) -> Stored {
        Stored { tensor, grid: None }
    }
}

/// [`GraphOps`] on burn tensors.
struct TensorGraph<'a> {
    mode: Mode<'a>,
    /// How many calibrated activations the walk has passed.
    next: usize,
}

impl<'a> TensorGraph<'a> {
    fn new(mode: Mode<'a>) -> TensorGraph<'a> {
        TensorGraph { mode, next: 0 }
    }

    fn convolve(&self, conv: &Conv2d, x: &Stored, dilation: usize) -> Tensor<4> {
        let [kh, _] = conv.kernel_size;
        let pad = dilation * (kh - 1) / 2;
        let options = ConvOptions::new([1, 1], [pad, pad], [dilation, dilation], conv.groups);
        let weight = conv.weight.val();
        // A static INT8 graph stores the bias as int32 codes of (input scale x weight scale).
        let bias = conv.bias.as_ref().map(|b| match x.grid {
            Some(grid) => {
                let step = weight_scales(weight.clone()).mul_scalar(grid.scale);
                (b.val() / step.clone()).round() * step
            }
            None => b.val(),
        });
        conv2d(x.tensor.clone(), weight, bias, options)
    }
}

impl GraphOps for TensorGraph<'_> {
    type Value = Stored;
    type Error = Infallible;

    fn conv(&mut self, conv: &Conv2d, x: &Stored, dilation: usize) -> Result<Stored, Infallible> {
        Ok(Stored::float(self.convolve(conv, x, dilation)))
    }

    fn head(&mut self, conv: &Conv2d, x: &Stored) -> Result<Stored, Infallible> {
        Ok(Stored::float(self.convolve(conv, x, conv.dilation[0])))
    }

    fn relu(&mut self, x: &Stored) -> Stored {
        Stored::float(relu(x.tensor.clone()))
    }

    fn sigmoid(&mut self, x: &Stored) -> Stored {
        Stored::float(sigmoid(x.tensor.clone()))
    }

    fn add(&mut self, a: &Stored, b: &Stored) -> Stored {
        Stored::float(a.tensor.clone() + b.tensor.clone())
    }

    fn mul(&mut self, a: &Stored, b: &Stored) -> Stored {
        Stored::float(a.tensor.clone() * b.tensor.clone())
    }

    fn concat(&mut self, parts: &[Stored]) -> Stored {
        let tensors = parts.iter().map(|p| p.tensor.clone()).collect();
        Stored::float(Tensor::cat(tensors, 1))
    }

    fn max_pool(&mut self, x: &Stored) -> Stored {
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        Stored::float(pool.forward(x.tensor.clone()))
    }

    fn upsample(&mut self, x: &Stored) -> Stored {
        Stored::float(upsample2x(x.tensor.clone()))
    }

    fn activation(&mut self, x: Stored, grid: Grid<'_, Stored>) -> Stored {
        let calibrated = matches!(grid, Grid::Calibrated);
        let index = self.next;
        if calibrated {
            self.next += 1;
        }
        match &mut self.mode {
            Mode::Float => x,
            Mode::Calibrate(ranges) => {
                if calibrated {
                    let seen = Range {
                        min: x.tensor.clone().min().into_scalar(),
                        max: x.tensor.clone().max().into_scalar(),
                    };
                    match ranges.get_mut(index) {
                        Some(r) => {
                            *r = Range {
                                min: r.min.min(seen.min),
                                max: r.max.max(seen.max),
                            }
                        }
                        None => ranges.push(seen),
                    }
                }
                x
            }
            Mode::Quantize(grids) => {
                let grid = match grid {
                    Grid::Calibrated => grids.get(index).copied(),
                    Grid::SameAs(source) => source.grid,
                    Grid::Probability => Some(ActivationGrid::PROBABILITY),
                };
                match grid {
                    Some(grid) => Stored {
                        tensor: grid.round(x.tensor),
                        grid: Some(grid),
                    },
                    None => x,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::backend::cpu_device;
    use crate::model::{Checkpoint, Head, ModelConfig, Variant};

    /// A small model of `variant` whose norms have statistics to fold.
    fn model(variant: Variant, seed: u64) -> Raagr2Net {
        let config = ModelConfig::with_width_multiplier(variant, Head::Regions3, 0.125);
        let device = cpu_device();
        device.seed(seed);
        let mut checkpoint = Checkpoint::from_model(&config, &config.init(&device));
        crate::model::fold::give_norms_statistics(&mut checkpoint);
        checkpoint.build(&device).unwrap()
    }

    fn input(seed: u64) -> Tensor<4> {
        let device = cpu_device();
        device.seed(seed);
        Tensor::random([2, 4, 32, 32], Distribution::Normal(0.0, 1.0), &device)
    }

    #[test]
    fn the_graph_walk_in_float_is_the_forward_for_every_variant() {
        for variant in [
            Variant::Base,
            Variant::DepthwiseShared,
            Variant::PairedShared,
        ] {
            let model = model(variant, 3);
            let folded = model.folded();
            let mut ops = TensorGraph::new(Mode::Float);
            let Ok(walked) = logits(&folded, &mut ops, Stored::float(input(4)));
            let ours = sigmoid(walked.tensor)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let forward = model
                .forward(input(4))
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let diff = crate::analysis::max_abs_diff(&ours, &forward);
            assert!(diff <= 1e-5, "{variant:?}: walk vs forward {diff}");
        }
    }

    #[test]
    fn static_int8_rounds_activations_to_calibrated_grids_that_hold_zero() {
        let model = model(Variant::Base, 5);
        let quantized = QuantizedNet::calibrate(&model, &[input(6)]);
        assert!(
            quantized.grids().len() > 50,
            "one grid per stored activation"
        );
        for grid in quantized.grids() {
            assert!(grid.scale > 0.0 && grid.scale.is_finite());
        }
        // Zero is on every grid: (0 - zp) * scale rounds back to exactly 0.
        let zeros = Tensor::<1>::zeros([4], &cpu_device());
        for grid in quantized.grids() {
            let back = grid
                .round(zeros.clone())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            assert_eq!(back, vec![0.0; 4]);
        }
        let float = model
            .forward(input(7))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let int8 = quantized
            .forward(input(7))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let diff = crate::analysis::max_abs_diff(&float, &int8);
        assert!(diff > 1e-6, "activations are rounded");
        assert!(diff < 0.2, "and stay close to the float forward: {diff}");
    }

    #[test]
    fn an_activation_grid_spans_its_range_and_saturates_outside() {
        let grid = ActivationGrid::spanning(-1.0, 3.0);
        assert!((grid.scale - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(grid.zero_point, 64);
        let x = Tensor::<1>::from_floats([-5.0, 0.5, 10.0], &cpu_device());
        let back = grid.round(x).into_data().try_to_vec::<f32>().unwrap();
        assert!(
            (back[0] - (-64.0 * grid.scale)).abs() < 1e-6,
            "saturates low: {back:?}"
        );
        assert!((back[1] - 0.5).abs() <= grid.scale / 2.0);
        assert!(
            (back[2] - 191.0 * grid.scale).abs() < 1e-5,
            "saturates high: {back:?}"
        );
        assert_eq!(ActivationGrid::spanning(0.0, 0.0).scale, 1.0);
    }

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

//! Model metrics from the config and weights: parameters, multiply-accumulates for an input size,
//! bytes on disk and non-zero fraction, per layer, per block and in total.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::prelude::*;
use serde::Serialize;

use super::ModelError;
use super::checkpoint::Checkpoint;
use super::config::{ModelConfig, Variant};
use super::layers::{LayerSite, LayerVisitor, VisitLayers};
use super::net::Raagr2Net;

/// One convolution or batch norm.
#[derive(Debug, Clone, Serialize)]
pub struct LayerStats {
    /// PyTorch key prefix, e.g. `enc1.conv1_1.0`.
    pub name: String,
    /// `conv` or `batchnorm`.
    pub kind: &'static str,
    /// Weight shape (`[out, in/groups, kh, kw]` or `[channels]`).
    pub shape: Vec<usize>,
    /// Trainable parameters (weights + biases; BN gamma + beta).
    pub params: usize,
    /// Of which non-zero.
    pub nonzero: usize,
    /// Multiply-accumulates for one input of the summary's size (convolutions only).
    pub macs: u64,
}

/// Layers grouped by top-level block (`enc1`, `up5`, `att5`, `dec5`, `final_conv`).
#[derive(Debug, Clone, Serialize)]
pub struct BlockStats {
    pub name: String,
    pub params: usize,
    pub nonzero: usize,
    pub macs: u64,
}

/// Everything `info` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub model: String,
    /// The architecture variant (`base`, `depthwise-shared`, `paired-shared`).
    pub variant: Variant,
    /// The five encoder widths, e.g. `[16, 32, 64, 128, 256]` at half width.
    pub widths: [usize; 5],
    pub config: ModelConfig,
    /// `[batch, channels, height, width]` the MACs refer to.
    pub input: [usize; 4],
    pub params: usize,
    pub nonzero_params: usize,
    pub nonzero_fraction: f64,
    pub macs: u64,
    /// Size of the checkpoint file (f32 weights, BN running statistics, header with config).
    pub bytes_on_disk: u64,
    pub blocks: Vec<BlockStats>,
    pub layers: Vec<LayerStats>,
}

/// Computes the summary for one input of `height` x `width` (batch 1).
pub fn summarize(
    config: &ModelConfig,
    model: &Raagr2Net,
    height: usize,
    width: usize,
) -> Result<ModelSummary, ModelError> {
    let mut collector = StatsCollector {
        height,
        width,
        layers: Vec::new(),
    };
    model
        .clone()
        .visit_layers("", LayerSite::at(1), &mut collector);
    let layers = collector.layers;
    let bytes_on_disk = Checkpoint::from_model(config, model).to_bytes()?.len() as u64;
    let params: usize = layers.iter().map(|l| l.params).sum();
    let nonzero: usize = layers.iter().map(|l| l.nonzero).sum();
    Ok(ModelSummary {
        model: config.describe(),
        variant: config.variant,
        widths: config.encoder_widths(),
        config: config.clone(),
        input: [1, super::config::INPUT_CHANNELS, height, width],
        params,
        nonzero_params: nonzero,
        nonzero_fraction: nonzero as f64 / params.max(1) as f64,
        macs: layers.iter().map(|l| l.macs).sum(),
        bytes_on_disk,
        blocks: group_by_block(&layers),
        layers,
    })
}

/// Trainable parameters as PyTorch counts them (conv weights and biases, BN gamma and beta;
/// burn's `num_params` also counts BN running statistics).
pub fn count_params(model: &Raagr2Net) -> usize {
    let mut counter = ParamCounter(0);
    model
        .clone()
        .visit_layers("", LayerSite::at(1), &mut counter);
    counter.0
}

/// Multiply-accumulates of one `height` x `width` input through every convolution and linear
/// layer of any model (batch norms, pools and activations not counted).
pub fn count_macs<M: VisitLayers + Clone>(model: &M, height: usize, width: usize) -> u64 {
    let mut counter = MacCounter {
        height,
        width,
        macs: 0,
    };
    model
        .clone()
        .visit_layers("", LayerSite::at(1), &mut counter);
    counter.macs
}

/// A convolution's MACs: every weight once per output pixel and per use.
fn conv_macs(conv: &Conv2d, site: LayerSite, height: usize, width: usize) -> u64 {
    let weights: usize = conv.weight.lazy_shape().dims::<4>().iter().product();
    let pixels = (height / site.scale) * (width / site.scale);
    (weights * pixels * site.uses) as u64
}

struct MacCounter {
    height: usize,
    width: usize,
    macs: u64,
}

impl LayerVisitor for MacCounter {
    fn conv(&mut self, _name: &str, conv: &mut Conv2d, site: LayerSite) {
        self.macs += conv_macs(conv, site, self.height, self.width);
    }

    fn norm(&mut self, _name: &str, _norm: &mut BatchNorm, _site: LayerSite) {}

    fn linear(&mut self, _name: &str, linear: &mut Linear) {
        let [d_in, d_out] = linear.weight.lazy_shape().dims::<2>();
        self.macs += (d_in * d_out) as u64;
    }
}

struct ParamCounter(usize);

impl LayerVisitor for ParamCounter {
    fn conv(&mut self, _name: &str, conv: &mut Conv2d, _site: LayerSite) {
        self.0 += conv.weight.dims().iter().product::<usize>()
            + conv.bias.as_ref().map_or(0, |b| b.dims()[0]);
    }

    fn norm(&mut self, _name: &str, norm: &mut BatchNorm, _site: LayerSite) {
        self.0 += 2 * norm.gamma.dims()[0];
    }
}

fn group_by_block(layers: &[LayerStats]) -> Vec<BlockStats> {
    let mut blocks: Vec<BlockStats> = Vec::new();
    for layer in layers {
        let name = layer.name.split('.').next().unwrap_or(&layer.name);
        if blocks.last().is_none_or(|b| b.name != name) {
            blocks.push(BlockStats {
                name: name.to_string(),
                params: 0,
                nonzero: 0,
                macs: 0,
            });
        }
        let block = blocks.last_mut().expect("pushed above");
        block.params += layer.params;
        block.nonzero += layer.nonzero;
        block.macs += layer.macs;
    }
    blocks
}

struct StatsCollector {
    height: usize,
    width: usize,
    layers: Vec<LayerStats>,
}

fn count_nonzero<const D: usize>(tensor: Tensor<D>) -> usize {
    let values = tensor
        .into_data()
        .try_to_vec_as::<f32>()
        .unwrap_or_default();
    values.iter().filter(|v| **v != 0.0).count()
}

impl LayerVisitor for StatsCollector {
    fn conv(&mut self, name: &str, conv: &mut Conv2d, site: LayerSite) {
        let shape = conv.weight.dims().to_vec();
        let weight_count: usize = shape.iter().product();
        let bias_count = conv.bias.as_ref().map_or(0, |b| b.dims()[0]);
        let mut nonzero = count_nonzero(conv.weight.val());
        if let Some(bias) = &conv.bias {
            nonzero += count_nonzero(bias.val());
        }
        self.layers.push(LayerStats {
            name: name.to_string(),
            kind: "conv",
            params: weight_count + bias_count,
            nonzero,
            macs: conv_macs(conv, site, self.height, self.width),
            shape,
        });
    }

    fn norm(&mut self, name: &str, norm: &mut BatchNorm, _site: LayerSite) {
        let shape = norm.gamma.dims().to_vec();
        let nonzero = count_nonzero(norm.gamma.val()) + count_nonzero(norm.beta.val());
        self.layers.push(LayerStats {
            name: name.to_string(),
            kind: "batchnorm",
            params: 2 * shape[0],
            nonzero,
            macs: 0,
            shape,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{Head, Variant};

    fn params_of(variant: Variant, head: Head) -> usize {
        let config = ModelConfig::full(variant, head);
        let model = config.init(&crate::backend::cpu_device());
        summarize(&config, &model, 16, 16).unwrap().params
    }

    #[test]
    fn full_width_parameter_counts_match_the_reference() {
        assert_eq!(params_of(Variant::Base, Head::Reference5), 8_911_301);
        assert_eq!(
            params_of(Variant::DepthwiseShared, Head::Reference5),
            5_046_221
        );
        assert_eq!(
            params_of(Variant::PairedShared, Head::Reference5),
            5_051_061
        );
    }

    #[test]
    fn summary_params_agree_with_burns_own_count() {
        let config = ModelConfig::with_width_multiplier(Variant::Base, Head::Regions3, 0.25);
        let model = config.init(&crate::backend::cpu_device());
        let summary = summarize(&config, &model, 64, 64).unwrap();
        // burn also counts BN running mean and variance; PyTorch (and we) count parameters only.
        let running_stats: usize = summary
            .layers
            .iter()
            .filter(|l| l.kind == "batchnorm")
            .map(|l| l.params)
            .sum();
        assert_eq!(
            summary.params + running_stats,
            burn::module::Module::num_params(&model)
        );
        assert_eq!(count_params(&model), summary.params);
        assert_eq!(
            summary.blocks.iter().map(|b| b.params).sum::<usize>(),
            summary.params
        );
    }

    #[test]
    fn macs_scale_with_input_area() {
        let config = ModelConfig::with_width_multiplier(Variant::Base, Head::Regions3, 0.25);
        let model = config.init(&crate::backend::cpu_device());
        let small = summarize(&config, &model, 32, 32).unwrap().macs;
        let large = summarize(&config, &model, 64, 64).unwrap().macs;
        assert_eq!(large, 4 * small);
    }
}

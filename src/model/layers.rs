//! Building blocks shared by the encoder and decoder, and the named-layer visitor that maps them to
//! PyTorch key names (for weight I/O, pruning and per-layer metrics).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::prelude::*;

use super::fused::{After, conv_then};

/// Where a layer sits and how often it runs per forward pass, for MAC counting.
#[derive(Debug, Clone, Copy)]
pub struct LayerSite {
    /// Spatial downsampling factor of the layer's output relative to the input (1, 2, 4, 8, 16).
    pub scale: usize,
    /// How many times the layer's kernel is applied per forward (recurrent units: 3; shared
    /// depthwise kernels: once per dilation that uses them).
    pub uses: usize,
}

impl LayerSite {
    pub fn at(scale: usize) -> LayerSite {
        LayerSite { scale, uses: 1 }
    }

    pub fn times(self, uses: usize) -> LayerSite {
        LayerSite { uses, ..self }
    }
}

/// Receives every convolution and batch norm of a model with its PyTorch key prefix.
pub trait LayerVisitor {
    fn conv(&mut self, name: &str, conv: &mut Conv2d, site: LayerSite);
    fn norm(&mut self, name: &str, norm: &mut BatchNorm, site: LayerSite);

    /// The batch norm with its folding state (models call this one); visitors that only read or
    /// write its tensors keep this default, which hands them the batch norm.
    fn foldable_norm(&mut self, name: &str, norm: &mut Norm, site: LayerSite) {
        self.norm(name, &mut norm.bn, site);
    }

    /// A fully connected layer (the classifiers' heads; RAAGR2-Net has none). Visitors that only
    /// concern convolutions keep this default, which skips it.
    fn linear(&mut self, _name: &str, _linear: &mut Linear) {}
}

/// Modules whose layers can be walked by name.
pub trait VisitLayers {
    fn visit_layers(&mut self, prefix: &str, site: LayerSite, visitor: &mut dyn LayerVisitor);
}

/// Joins a key prefix and a child name the way PyTorch's state_dict does.
pub fn key(prefix: &str, child: &str) -> String {
    if prefix.is_empty() {
        child.to_string()
    } else {
        format!("{prefix}.{child}")
    }
}

/// A 3x3 or 1x1 convolution with "same" padding for its dilation.
pub fn conv(
    channels: [usize; 2],
    kernel: usize,
    dilation: usize,
    groups: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let pad = dilation * (kernel - 1) / 2;
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_dilation([dilation, dilation])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_groups(groups)
        .with_bias(bias)
        .init(device)
}

/// A foldable batch norm with PyTorch's BatchNorm2d defaults.
pub fn norm(channels: usize, device: &Device) -> Norm {
    Norm {
        bn: batch_norm(channels, device),
        folded: false,
    }
}

/// PyTorch's BatchNorm2d defaults (eps 1e-5, momentum 0.1).
pub fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(1e-5)
        .with_momentum(0.1)
        .init(device)
}

/// A batch norm that inference can fold into the convolution feeding it (see
/// [`super::fold`]); once folded, that convolution computes it and this is the identity.
#[derive(Module, Debug)]
pub struct Norm {
    pub bn: BatchNorm,
    pub folded: bool,
}

impl Norm {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if self.folded { x } else { self.bn.forward(x) }
    }

    /// The batch norm still to apply after its convolution: none once folded into it.
    pub fn pending(&self) -> Option<&BatchNorm> {
        (!self.folded).then_some(&self.bn)
    }
}

/// conv -> BN -> ReLU, stored as PyTorch's `nn.Sequential(conv, bn, relu)` (keys `.0`, `.1`).
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: Norm,
}

impl ConvBn {
    pub fn new(
        channels: [usize; 2],
        kernel: usize,
        dilation: usize,
        bias: bool,
        device: &Device,
    ) -> ConvBn {
        ConvBn {
            conv: conv(channels, kernel, dilation, 1, bias, device),
            bn: norm(channels[1], device),
        }
    }

    /// `[B, in, H, W] -> [B, out, H, W]`, without the activation.
    pub fn forward_linear(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_then(vec![x], vec![])
    }

    /// `[B, in, H, W] -> [B, out, H, W]`, ReLU applied.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_then(vec![x], vec![After::Relu])
    }

    /// conv -> BN over the channel concatenation of `inputs`, then `after` in order (one
    /// fused kernel where it can: see [`super::fused`]).
    pub fn forward_then(&self, inputs: Vec<Tensor<4>>, after: Vec<After>) -> Tensor<4> {
        conv_then(&self.conv, self.bn.pending(), inputs, after)
    }
}

impl VisitLayers for ConvBn {
    fn visit_layers(&mut self, prefix: &str, site: LayerSite, visitor: &mut dyn LayerVisitor) {
        visitor.conv(&key(prefix, "0"), &mut self.conv, site);
        visitor.foldable_norm(&key(prefix, "1"), &mut self.bn, site);
    }
}

//! DenseNet-BC (Huang et al.) as torchvision defines it: a 7x7 stride-2 stem and 3x3 max pool,
//! dense blocks of bottleneck layers (BN-ReLU-1x1 conv-BN-ReLU-3x3 conv, each adding `growth`
//! channels to the concatenation), transitions halving channels and side, a final batch norm,
//! global average pooling and one linear layer; weights under torchvision's key names.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::model::layers::{LayerSite, LayerVisitor, VisitLayers, batch_norm, conv, key};

/// A DenseNet's shape (torchvision's `DenseNet(growth_rate, block_config, num_init_features,
/// bn_size, num_classes)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseNetConfig {
    pub growth: usize,
    /// Dense layers per block.
    pub blocks: Vec<usize>,
    /// Channels out of the stem convolution.
    pub init_features: usize,
    /// Bottleneck width as a multiple of `growth`.
    pub bn_size: usize,
    pub classes: usize,
}

impl DenseNetConfig {
    /// DenseNet169: growth 32, blocks 6-12-32-32, 64 stem channels, bottleneck 4 x growth.
    pub fn densenet169(classes: usize) -> DenseNetConfig {
        DenseNetConfig {
            growth: 32,
            blocks: vec![6, 12, 32, 32],
            init_features: 64,
            bn_size: 4,
            classes,
        }
    }

    /// Growth and stem widths divided by `divisor` (at least 1 channel).
    pub fn narrowed(mut self, divisor: usize) -> DenseNetConfig {
        self.growth = (self.growth / divisor).max(1);
        self.init_features = (self.init_features / divisor).max(1);
        self
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.blocks.is_empty() || self.blocks.contains(&0) {
            return Err("every DenseNet block needs at least one layer".into());
        }
        if self.growth == 0 || self.init_features == 0 || self.bn_size == 0 {
            return Err("DenseNet widths must be positive".into());
        }
        Ok(())
    }

    /// Channels after each block (before its transition), in order.
    fn block_channels(&self) -> Vec<usize> {
        let mut channels = self.init_features;
        let mut out = Vec::new();
        for (b, &layers) in self.blocks.iter().enumerate() {
            channels += layers * self.growth;
            out.push(channels);
            if b + 1 < self.blocks.len() {
                channels /= 2;
            }
        }
        out
    }

    /// The model with freshly initialised weights (PyTorch's default initialisers).
    pub fn init(&self, device: &Device) -> DenseNet {
        let stem = Conv2dConfig::new([3, self.init_features], [7, 7])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
            .with_bias(false)
            .init(device);
        let bottleneck = self.bn_size * self.growth;
        let mut channels = self.init_features;
        let mut blocks = Vec::new();
        let mut transitions = Vec::new();
        for (b, &layers) in self.blocks.iter().enumerate() {
            let layers = (0..layers)
                .map(|l| {
                    let input = channels + l * self.growth;
                    DenseLayer {
                        norm1: batch_norm(input, device),
                        conv1: conv([input, bottleneck], 1, 1, 1, false, device),
                        norm2: batch_norm(bottleneck, device),
                        conv2: conv([bottleneck, self.growth], 3, 1, 1, false, device),
                    }
                })
                .collect();
            blocks.push(DenseBlock { layers });
            channels = self.block_channels()[b];
            if b + 1 < self.blocks.len() {
                transitions.push(Transition {
                    norm: batch_norm(channels, device),
                    conv: conv([channels, channels / 2], 1, 1, 1, false, device),
                });
                channels /= 2;
            }
        }
        DenseNet {
            conv0: stem,
            norm0: batch_norm(self.init_features, device),
            stem_pool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            blocks,
            transitions,
            transition_pool: AvgPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            norm5: batch_norm(channels, device),
            classifier: LinearConfig::new(channels, self.classes).init(device),
        }
    }
}

/// One bottleneck layer: BN-ReLU-1x1 conv to `bn_size * growth`, BN-ReLU-3x3 conv to `growth`.
#[derive(Module, Debug)]
pub struct DenseLayer {
    pub norm1: BatchNorm,
    pub conv1: Conv2d,
    pub norm2: BatchNorm,
    pub conv2: Conv2d,
}

impl DenseLayer {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv1.forward(relu(self.norm1.forward(x)));
        self.conv2.forward(relu(self.norm2.forward(x)))
    }
}

/// Dense layers, each reading the concatenation of the block's input and every earlier output.
#[derive(Module, Debug)]
pub struct DenseBlock {
    pub layers: Vec<DenseLayer>,
}

impl DenseBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut features = vec![x];
        for layer in &self.layers {
            let new = layer.forward(Tensor::cat(features.clone(), 1));
            features.push(new);
        }
        Tensor::cat(features, 1)
    }
}

/// BN-ReLU-1x1 conv halving the channels (then a 2x2 average pool).
#[derive(Module, Debug)]
pub struct Transition {
    pub norm: BatchNorm,
    pub conv: Conv2d,
}

/// A DenseNet: `[B, 3, H, W]` images to `[B, classes]` logits.
#[derive(Module, Debug)]
pub struct DenseNet {
    pub conv0: Conv2d,
    pub norm0: BatchNorm,
    stem_pool: MaxPool2d,
    pub blocks: Vec<DenseBlock>,
    pub transitions: Vec<Transition>,
    transition_pool: AvgPool2d,
    pub norm5: BatchNorm,
    pub classifier: Linear,
}

impl DenseNet {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_taps(x, &mut |_, _| {})
    }

    /// The forward pass, handing the stem's, each block's and each transition's output and the
    /// pooled features (`pool`, `[B, C, 1, 1]`) to `tap`.
    pub fn forward_taps(&self, x: Tensor<4>, tap: &mut dyn FnMut(&str, &Tensor<4>)) -> Tensor<2> {
        let x = relu(self.norm0.forward(self.conv0.forward(x)));
        let mut x = self.stem_pool.forward(x);
        tap("stem", &x);
        for (b, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            tap(&format!("block{}", b + 1), &x);
            if let Some(t) = self.transitions.get(b) {
                let y = t.conv.forward(relu(t.norm.forward(x)));
                x = self.transition_pool.forward(y);
                tap(&format!("transition{}", b + 1), &x);
            }
        }
        let x = relu(self.norm5.forward(x));
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2);
        tap("pool", &pooled);
        self.classifier.forward(pooled.reshape([batch, channels]))
    }
}

impl VisitLayers for DenseNet {
    fn visit_layers(&mut self, prefix: &str, _site: LayerSite, visitor: &mut dyn LayerVisitor) {
        let name = |child: &str| key(prefix, &format!("features.{child}"));
        visitor.conv(&name("conv0"), &mut self.conv0, LayerSite::at(2));
        visitor.norm(&name("norm0"), &mut self.norm0, LayerSite::at(2));
        let mut scale = 4;
        for (b, block) in self.blocks.iter_mut().enumerate() {
            let site = LayerSite::at(scale);
            for (l, layer) in block.layers.iter_mut().enumerate() {
                let at =
                    |child: &str| name(&format!("denseblock{}.denselayer{}.{child}", b + 1, l + 1));
                visitor.norm(&at("norm1"), &mut layer.norm1, site);
                visitor.conv(&at("conv1"), &mut layer.conv1, site);
                visitor.norm(&at("norm2"), &mut layer.norm2, site);
                visitor.conv(&at("conv2"), &mut layer.conv2, site);
            }
            if let Some(t) = self.transitions.get_mut(b) {
                let at = |child: &str| name(&format!("transition{}.{child}", b + 1));
                visitor.norm(&at("norm"), &mut t.norm, site);
                visitor.conv(&at("conv"), &mut t.conv, site);
                scale *= 2;
            }
        }
        visitor.norm(&name("norm5"), &mut self.norm5, LayerSite::at(scale));
        visitor.linear(&key(prefix, "classifier"), &mut self.classifier);
    }
}

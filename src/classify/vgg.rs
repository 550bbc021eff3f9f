//! VGG (Simonyan & Zisserman) as torchvision defines it: 3x3 convolutions (optionally with batch
//! norm) in stages closed by 2x2 max pooling, an adaptive average pool, and a three-layer
//! classifier; weights under torchvision's key names (`features.N`, `classifier.N`).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::model::layers::{LayerSite, LayerVisitor, VisitLayers, batch_norm, conv, key};

/// A VGG's shape: conv widths per stage, batch norm or not, and the classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VggConfig {
    /// Output channels of each 3x3 convolution, per stage; every stage ends in a 2x2 max pool.
    pub stages: Vec<Vec<usize>>,
    pub batch_norm: bool,
    /// Side of the adaptive average pool before the classifier: 7 (torchvision, ImageNet) or 1
    /// (the CIFAR head: a 32x32 input is 1x1 after five pools, and pooling to 7x7 would only
    /// copy it 49 times into a 49x larger first linear layer).
    pub pooled_side: usize,
    /// Width of the classifier's two hidden layers (4096 in torchvision).
    pub hidden: usize,
    pub classes: usize,
    /// Dropout before the second and third linear layers (0.5 in torchvision).
    pub dropout: f64,
}

/// Conv widths of VGG11 (configuration "A").
pub const VGG11_STAGES: [&[usize]; 5] = [&[64], &[128], &[256, 256], &[512, 512], &[512, 512]];
/// Conv widths of VGG16 (configuration "D").
pub const VGG16_STAGES: [&[usize]; 5] = [
    &[64, 64],
    &[128, 128],
    &[256, 256, 256],
    &[512, 512, 512],
    &[512, 512, 512],
];

impl VggConfig {
    /// torchvision's VGG with the ImageNet head (7x7 pool, 4096-wide hidden layers).
    pub fn imagenet(stages: &[&[usize]], batch_norm: bool, classes: usize) -> VggConfig {
        VggConfig {
            stages: stages.iter().map(|s| s.to_vec()).collect(),
            batch_norm,
            pooled_side: 7,
            hidden: 4096,
            classes,
            dropout: 0.5,
        }
    }

    /// The CIFAR head: global average pool to 1x1, then the same three linear layers 512 wide.
    pub fn cifar(stages: &[&[usize]], batch_norm: bool, classes: usize) -> VggConfig {
        VggConfig {
            pooled_side: 1,
            hidden: 512,
            ..VggConfig::imagenet(stages, batch_norm, classes)
        }
    }

    /// Every conv and hidden width divided by `divisor` (at least 1 channel).
    pub fn narrowed(mut self, divisor: usize) -> VggConfig {
        let narrow = |w: usize| (w / divisor).max(1);
        for stage in &mut self.stages {
            for width in stage.iter_mut() {
                *width = narrow(*width);
            }
        }
        self.hidden = narrow(self.hidden);
        self
    }

    /// Channels entering the classifier.
    fn features_out(&self) -> usize {
        self.stages.iter().flatten().last().copied().unwrap_or(3)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.stages.is_empty() || self.stages.iter().any(Vec::is_empty) {
            return Err("every VGG stage needs at least one convolution".into());
        }
        if self.stages.iter().flatten().any(|&w| w == 0) || self.hidden == 0 {
            return Err("VGG widths must be positive".into());
        }
        if self.pooled_side == 0 {
            return Err("the pooled side must be positive".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout {} is outside [0, 1)", self.dropout));
        }
        Ok(())
    }

    /// The model with freshly initialised weights (PyTorch's default initialisers).
    pub fn init(&self, device: &Device) -> Vgg {
        let mut convs = Vec::new();
        let mut pool_after = Vec::new();
        let mut channels = 3;
        for stage in &self.stages {
            for (i, &width) in stage.iter().enumerate() {
                convs.push(VggConv {
                    conv: conv([channels, width], 3, 1, 1, true, device),
                    bn: self.batch_norm.then(|| batch_norm(width, device)),
                });
                pool_after.push(i + 1 == stage.len());
                channels = width;
            }
        }
        let pooled = self.features_out() * self.pooled_side * self.pooled_side;
        let linear = |d_in, d_out| LinearConfig::new(d_in, d_out).init(device);
        Vgg {
            convs,
            pool_after,
            max_pool: MaxPoolHalf::new(),
            avg_pool: AdaptiveAvgPool2dConfig::new([self.pooled_side, self.pooled_side]).init(),
            fc1: linear(pooled, self.hidden),
            fc2: linear(self.hidden, self.hidden),
            fc3: linear(self.hidden, self.classes),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// One 3x3 convolution, its batch norm if the model has them, and the ReLU after.
#[derive(Module, Debug)]
pub struct VggConv {
    pub conv: Conv2d,
    pub bn: Option<BatchNorm>,
}

impl VggConv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x);
        let x = match &self.bn {
            Some(bn) => bn.forward(x),
            None => x,
        };
        relu(x)
    }
}

/// 2x2 max pooling with stride 2.
#[derive(Module, Debug)]
pub struct MaxPoolHalf {
    pool: MaxPool2d,
}

impl MaxPoolHalf {
    fn new() -> MaxPoolHalf {
        MaxPoolHalf {
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        }
    }
}

/// A VGG network: `[B, 3, H, W]` images to `[B, classes]` logits.
#[derive(Module, Debug)]
pub struct Vgg {
    pub convs: Vec<VggConv>,
    /// Whether a max pool follows each convolution (the last of each stage).
    pub pool_after: Vec<bool>,
    max_pool: MaxPoolHalf,
    avg_pool: AdaptiveAvgPool2d,
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
    dropout: Dropout,
}

impl Vgg {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_taps(x, &mut |_, _| {})
    }

    /// The forward pass, handing every convolution's output (after its ReLU: `conv1`, `conv2`,
    /// ...) and the two hidden linear layers' (`fc1`, `fc2`, as `[B, C, 1, 1]`) to `tap`.
    pub fn forward_taps(&self, x: Tensor<4>, tap: &mut dyn FnMut(&str, &Tensor<4>)) -> Tensor<2> {
        let mut x = x;
        for (index, (layer, pool)) in self.convs.iter().zip(&self.pool_after).enumerate() {
            x = layer.forward(x);
            tap(&format!("conv{}", index + 1), &x);
            if *pool {
                x = self.max_pool.pool.forward(x);
            }
        }
        let x = self.avg_pool.forward(x).flatten::<2>(1, 3);
        let as_map = |t: &Tensor<2>| t.clone().unsqueeze_dims::<4>(&[2, 3]);
        let x = relu(self.fc1.forward(x));
        tap("fc1", &as_map(&x));
        let x = relu(self.fc2.forward(self.dropout.forward(x)));
        tap("fc2", &as_map(&x));
        self.fc3.forward(self.dropout.forward(x))
    }
}

impl VisitLayers for Vgg {
    fn visit_layers(&mut self, prefix: &str, _site: LayerSite, visitor: &mut dyn LayerVisitor) {
        // torchvision numbers every module of `features`: conv, [bn], relu, and the pools.
        let mut index = 0;
        let mut scale = 1;
        for (layer, pool) in self.convs.iter_mut().zip(&self.pool_after) {
            let site = LayerSite::at(scale);
            visitor.conv(
                &key(prefix, &format!("features.{index}")),
                &mut layer.conv,
                site,
            );
            index += 1;
            if let Some(bn) = layer.bn.as_mut() {
                visitor.norm(&key(prefix, &format!("features.{index}")), bn, site);
                index += 1;
            }
            index += 1; // ReLU
            if *pool {
                index += 1;
                scale *= 2;
            }
        }
        visitor.linear(&key(prefix, "classifier.0"), &mut self.fc1);
        visitor.linear(&key(prefix, "classifier.3"), &mut self.fc2);
        visitor.linear(&key(prefix, "classifier.6"), &mut self.fc3);
    }
}

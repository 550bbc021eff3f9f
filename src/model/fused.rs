//! A convolution and what the network does right after it (its batch norm, ReLU, sigmoid, a
//! residual add, an input concatenation), in one place: on the Flex CPU backend outside
//! autodiff, with the norm folded, one fused kernel of the vendored backend
//! (`burn_flex::ops::conv_fused`) applies it all to each tile of output while it is in cache
//! and never builds the concatenation; anywhere else (training, wgpu, NdArray, an unfolded
//! norm) burn's separate operations run in the same order.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::ops::ConvOptions;
use burn_flex::ops::conv_fused::{EpilogueStep, conv2d_fused};
use burn_flex::{Flex, FlexTensor};

/// One operation applied to a convolution's output, in the network's order.
// A few per convolution, built and consumed once per forward: boxing the tensor buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum After {
    Relu,
    Sigmoid,
    /// A residual connection: `+ tensor` (the output's shape).
    Add(Tensor<4>),
}

/// Whether inference may take the fused kernel (on by default; `bench --unfused` turns it off
/// to measure what it gains).
static FUSED_INFERENCE: AtomicBool = AtomicBool::new(true);

/// Turns the fused kernel on or off for this process (`bench --unfused`). Tests compare the
/// kernel with NdArray, which never takes it (tests/suite/cpu_kernels.rs).
pub fn set_fused_inference(on: bool) {
    FUSED_INFERENCE.store(on, Ordering::Relaxed);
}

/// `conv(cat(inputs, channels))`, then `norm` when given (a batch norm not folded into `conv`:
/// see `layers::Norm::pending`), then `after` in order.
pub fn conv_then(
    conv: &Conv2d,
    norm: Option<&BatchNorm>,
    inputs: Vec<Tensor<4>>,
    after: Vec<After>,
) -> Tensor<4> {
    let device = inputs[0].device();
    // Every tensor must live on the Flex device outside autodiff for the kernel to take it:
    // the model's weights are where the input is (else burn's own convolution would refuse).
    let fusable = FUSED_INFERENCE.load(Ordering::Relaxed)
        && norm.is_none()
        && fixed_padding(conv).is_some()
        && !device.is_autodiff()
        && crate::backend::is_flex(&device)
        && conv.weight.val().device() == device;
    if fusable {
        return fused(conv, inputs, after);
    }
    let x = if inputs.len() == 1 {
        inputs.into_iter().next().expect("one input")
    } else {
        Tensor::cat(inputs, 1)
    };
    let y = conv.forward(x);
    let y = match norm {
        Some(norm) => norm.forward(y),
        None => y,
    };
    apply(y, after)
}

/// `after` as burn's separate operations.
pub fn apply(mut y: Tensor<4>, after: Vec<After>) -> Tensor<4> {
    for step in after {
        y = match step {
            After::Relu => relu(y),
            After::Sigmoid => sigmoid(y),
            After::Add(other) => y + other,
        };
    }
    y
}

/// The Flex kernel. Every tensor here lives on the Flex device outside autodiff (checked by
/// the caller), so each converts to the backend's own tensor.
fn fused(conv: &Conv2d, inputs: Vec<Tensor<4>>, after: Vec<After>) -> Tensor<4> {
    let padding = fixed_padding(conv).expect("the caller checked the padding");
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    let steps = after
        .into_iter()
        .map(|step| match step {
            After::Relu => EpilogueStep::Relu,
            After::Sigmoid => EpilogueStep::Sigmoid,
            After::Add(other) => EpilogueStep::Add(flex(other)),
        })
        .collect();
    let output = conv2d_fused(
        inputs.into_iter().map(flex).collect(),
        flex(conv.weight.val()),
        conv.bias.as_ref().map(|b| flex(b.val())),
        &options,
        steps,
    );
    Tensor::from_primitive::<Flex>(output)
}

/// The padding as ((top, bottom), (left, right)) where it does not depend on the input's size
/// (every convolution of this project's networks); `Same` padding takes burn's own path.
fn fixed_padding(conv: &Conv2d) -> Option<[(usize, usize); 2]> {
    match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some([(top, bottom), (left, right)]),
        PaddingConfig2d::Valid => Some([(0, 0), (0, 0)]),
        PaddingConfig2d::Same => None,
    }
}

fn flex<const D: usize>(tensor: Tensor<D>) -> FlexTensor {
    tensor
        .try_into_primitive::<Flex>()
        .expect("the caller checked the tensors are on the Flex device, outside autodiff")
}

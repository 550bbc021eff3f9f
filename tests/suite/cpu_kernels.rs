//! The project's CPU kernels (the patched Flex backend in vendor/burn-flex) against NdArray's,
//! which run burn's reference decompositions: convolution output and the gradients of input,
//! weight and bias, over the geometries the network and pruning produce (plain, dilated,
//! grouped, depthwise with a channel multiplier, strided, asymmetric padding, 1x1, tiles), and
//! batch normalisation for inference, for training and backward.

use burn::prelude::*;
use burn::tensor::module::{batch_norm, batch_norm_train, conv2d};
use burn::tensor::ops::ConvOptions;
use raagr2_lab::backend::{cpu_device, ndarray_device};

use crate::common;

/// One convolution to compare.
struct Case {
    x: [usize; 4],
    channels_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
    dilation: [usize; 2],
    groups: usize,
}

fn same(pad: usize) -> [(usize, usize); 2] {
    [(pad, pad), (pad, pad)]
}

fn cases() -> Vec<Case> {
    let case = |x, channels_out, kernel, stride, padding, dilation, groups| Case {
        x,
        channels_out,
        kernel,
        stride,
        padding,
        dilation,
        groups,
    };
    vec![
        case([2, 4, 13, 11], 6, [3, 3], [1, 1], same(1), [1, 1], 1),
        case([1, 8, 12, 12], 16, [3, 3], [1, 1], same(2), [2, 2], 1),
        case([1, 3, 14, 14], 5, [3, 3], [1, 1], same(6), [6, 6], 1),
        case([2, 4, 10, 9], 8, [3, 3], [1, 1], same(1), [1, 1], 4),
        case([1, 4, 9, 9], 4, [3, 3], [1, 1], same(1), [1, 1], 4),
        case([1, 6, 9, 9], 6, [3, 3], [2, 2], same(1), [1, 1], 2),
        case([1, 3, 8, 7], 5, [3, 3], [1, 1], [(1, 2), (0, 1)], [1, 1], 1),
        case(
            [1, 3, 10, 12],
            4,
            [3, 5],
            [1, 2],
            [(1, 1), (2, 2)],
            [1, 1],
            1,
        ),
        case([1, 5, 7, 7], 4, [1, 1], [1, 1], same(0), [1, 1], 1),
        // Enough rows for several tiles, so partial sums across tiles are exercised.
        case([1, 32, 40, 40], 64, [3, 3], [1, 1], same(1), [1, 1], 1),
    ]
}

/// Deterministic values in [-1, 1) (the same on both devices).
fn values(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn tensor<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let data = TensorData::new(values(shape.iter().product(), seed), shape);
    Tensor::from_data(data, device).require_grad()
}

fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap()
}

/// `sum(output * projection)` with a fixed projection, so every output element gets its own
/// gradient.
fn projected_sum(output: Tensor<4>, device: &Device) -> Tensor<1> {
    let projection = Tensor::<4>::from_data(
        TensorData::new(values(output.shape().num_elements(), 4), output.dims()),
        device,
    );
    (output * projection).sum()
}

/// Panics naming `what` unless `got` matches `want` to 1e-5 of `want`'s largest magnitude (a
/// NaN on either side fails).
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: sizes differ");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = common::max_abs_diff(got, want);
    assert!(
        worst <= 1e-5 * scale,
        "{what}: max difference {worst} (scale {scale})"
    );
}

/// Output and the gradients of x, weight and bias of `sum(conv(x) * projection)`.
fn run(case: &Case, device: &Device) -> [Vec<f32>; 4] {
    let device = device.clone().autodiff();
    let weight_shape = [
        case.channels_out,
        case.x[1] / case.groups,
        case.kernel[0],
        case.kernel[1],
    ];
    let x = tensor(case.x, 1, &device);
    let weight = tensor(weight_shape, 2, &device);
    let bias = tensor([case.channels_out], 3, &device);
    let options =
        ConvOptions::new_with_padding(case.stride, case.padding, case.dilation, case.groups);
    let output = conv2d(x.clone(), weight.clone(), Some(bias.clone()), options);
    let grads = projected_sum(output.clone(), &device).backward();
    [
        host(output),
        host(x.grad(&grads).expect("x has a gradient")),
        host(weight.grad(&grads).expect("weight has a gradient")),
        host(bias.grad(&grads).expect("bias has a gradient")),
    ]
}

#[test]
fn flex_convolutions_and_their_gradients_match_the_reference_backend() {
    for case in cases() {
        let flex = run(&case, &cpu_device());
        let reference = run(&case, &ndarray_device());
        for (name, (got, want)) in ["output", "x grad", "weight grad", "bias grad"]
            .iter()
            .zip(flex.iter().zip(&reference))
        {
            let what = format!(
                "{name} of x {:?}, {} out, kernel {:?}, stride {:?}, padding {:?}, dilation \
                 {:?}, groups {}",
                case.x,
                case.channels_out,
                case.kernel,
                case.stride,
                case.padding,
                case.dilation,
                case.groups
            );
            assert_close(&what, got, want);
        }
    }
}

/// Inference output, then training output, batch mean and variance, and the gradients of
/// input, gamma and beta, for activations offset from zero (as after a ReLU).
fn batch_norms(device: &Device) -> Vec<Vec<f32>> {
    let shape = [3, 5, 7, 6];
    let device = device.clone().autodiff();
    let offset: Vec<f32> = values(shape.iter().product(), 5)
        .iter()
        .map(|v| v + 2.0)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(offset, shape), &device).require_grad();
    let channel = |seed| tensor([5], seed, &device);
    let variance = channel(9).abs().add_scalar(0.1);
    let inference = batch_norm(
        x.clone(),
        channel(6),
        channel(7),
        channel(8),
        variance,
        1e-5,
    );
    let (gamma, beta) = (channel(10), channel(11));
    let train = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5);
    let grads = projected_sum(train.output.clone(), &device).backward();
    vec![
        host(inference),
        host(train.output),
        host(train.mean),
        host(train.variance),
        host(x.grad(&grads).expect("x has a gradient")),
        host(gamma.grad(&grads).expect("gamma has a gradient")),
        host(beta.grad(&grads).expect("beta has a gradient")),
    ]
}

#[test]
fn flex_batch_norm_matches_the_reference_backend_in_inference_training_and_backward() {
    let flex = batch_norms(&cpu_device());
    let reference = batch_norms(&ndarray_device());
    let names = [
        "inference output",
        "training output",
        "batch mean",
        "batch variance",
        "x grad",
        "gamma grad",
        "beta grad",
    ];
    for (name, (got, want)) in names.iter().zip(flex.iter().zip(&reference)) {
        assert_close(name, got, want);
    }
}

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
        // Depthwise planes past the row-at-a-time threshold (8192 outputs), where the three
        // taps of a kernel row are added in one pass: plain, and dilated with a multiplier.
        case([2, 3, 96, 100], 3, [3, 3], [1, 1], same(1), [1, 1], 3),
        case([1, 2, 92, 96], 4, [3, 3], [1, 1], same(3), [3, 3], 2),
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

/// The folded network on Flex, where each convolution runs the fused inference kernel (bias,
/// ReLU, sigmoid, residual adds and concatenated inputs applied in the gemm's output pass),
/// against the same network on NdArray, which runs burn's separate operations in the model's
/// order: every variant, channel counts made uneven by pruning 30 % of every group, several
/// tiles per plane.
#[test]
fn the_fused_inference_kernels_give_the_reference_backends_forward() {
    use raagr2_lab::model::{Checkpoint, Head, ModelConfig, Variant};
    use raagr2_lab::prune::{PruneMethod, Ratios, StructuredMethod, prune_checkpoint};
    let variants = [
        Variant::Base,
        Variant::DepthwiseShared,
        Variant::PairedShared,
    ];
    for (n, variant) in variants.into_iter().enumerate() {
        let config = ModelConfig::with_width_multiplier(variant, Head::Regions3, 0.125);
        let flex = cpu_device();
        flex.seed(20 + n as u64);
        let dense = Checkpoint::from_model(&config, &config.init(&flex));
        let method = PruneMethod::Structured(StructuredMethod::L2);
        let pruned = prune_checkpoint(&dense, method, &Ratios::Uniform(0.3), None).unwrap();
        let shape = [2, 4, 48, 64];
        let forward = |device: &Device| {
            let model = pruned.build(device).unwrap().folded();
            let x = Tensor::<4>::from_data(
                TensorData::new(values(shape.iter().product(), 9), shape),
                device,
            );
            host(model.forward(x))
        };
        let (fused, reference) = (forward(&flex), forward(&ndarray_device()));
        assert_close(&format!("{variant:?} forward"), &fused, &reference);
    }
}

/// One call of the fused kernel: input channels per concatenated part, output channels,
/// kernel, dilation, groups, and the input's batch, height and width.
struct FusedCase {
    parts: &'static [usize],
    out: usize,
    kernel: usize,
    dilation: usize,
    groups: usize,
    input: [usize; 3],
}

/// Every route of `conv2d_fused`: pointwise over one and over three parts (a gemm per part),
/// planar 3x3 dilated, planar grouped, over a concatenation, and the depthwise kernel with a
/// channel multiplier followed by one pass; planes of several tiles.
fn fused_cases() -> Vec<FusedCase> {
    let case = |parts, out, kernel, dilation, groups, input| FusedCase {
        parts,
        out,
        kernel,
        dilation,
        groups,
        input,
    };
    vec![
        case(&[7], 5, 1, 1, 1, [2, 9, 11]),
        case(&[3, 6, 2], 13, 1, 1, 1, [1, 72, 80]),
        case(&[6], 9, 3, 3, 1, [2, 40, 36]),
        case(&[8], 8, 3, 1, 2, [1, 16, 16]),
        case(&[5, 3], 7, 3, 1, 1, [1, 8, 8]),
        case(&[6], 12, 3, 2, 6, [2, 10, 14]),
    ]
}

/// What follows the convolution, in order; operands are seeded tensors of the output's shape.
#[derive(Clone, Copy, Debug)]
enum Then {
    Relu,
    Sigmoid,
    Add,
    Mul,
}

/// The convolution of `case` then `steps`, by the fused Flex kernel (`fused`) or by burn's
/// separate operations on `device`.
fn fused_call(case: &FusedCase, steps: &[Then], device: &Device, fused: bool) -> Vec<f32> {
    use burn::tensor::activation::{relu, sigmoid};
    use burn_flex::ops::conv_fused::{EpilogueStep, conv2d_fused};
    use burn_flex::{Flex, FlexTensor};
    let [batch, h, w] = case.input;
    let detached = |shape: [usize; 4], seed: u64| {
        let data = TensorData::new(values(shape.iter().product(), seed), shape);
        Tensor::<4>::from_data(data, device)
    };
    let inputs: Vec<Tensor<4>> = (case.parts.iter().enumerate())
        .map(|(i, &c)| detached([batch, c, h, w], 30 + i as u64))
        .collect();
    let c_in: usize = case.parts.iter().sum();
    let k = case.kernel;
    let weight = detached([case.out, c_in / case.groups, k, k], 40);
    let bias = Tensor::<1>::from_data(TensorData::new(values(case.out, 41), [case.out]), device);
    let pad = case.dilation * (k - 1) / 2;
    let options = ConvOptions::new([1, 1], [pad, pad], [case.dilation; 2], case.groups);
    let out = [batch, case.out, h, w];
    let operand = |i: usize| detached(out, 50 + i as u64);
    if fused {
        let flex = |t: Tensor<4>| -> FlexTensor { t.try_into_primitive::<Flex>().unwrap() };
        let steps = (steps.iter().enumerate())
            .map(|(i, step)| match step {
                Then::Relu => EpilogueStep::Relu,
                Then::Sigmoid => EpilogueStep::Sigmoid,
                Then::Add => EpilogueStep::Add(flex(operand(i))),
                Then::Mul => EpilogueStep::Mul(flex(operand(i))),
            })
            .collect();
        let bias = bias.try_into_primitive::<Flex>().unwrap();
        let inputs = inputs.into_iter().map(flex).collect();
        let y = conv2d_fused(inputs, flex(weight), Some(bias), &options, steps);
        return host(Tensor::<4>::from_primitive::<Flex>(y));
    }
    let mut y = conv2d(Tensor::cat(inputs, 1), weight, Some(bias), options);
    for (i, step) in steps.iter().enumerate() {
        y = match step {
            Then::Relu => relu(y),
            Then::Sigmoid => sigmoid(y),
            Then::Add => y + operand(i),
            Then::Mul => y * operand(i),
        };
    }
    host(y)
}

/// The fused kernel against NdArray running each operation apart, for every route and each
/// order the network uses (a branch's ReLU then its residual add; the gate's add then ReLU;
/// sigmoid then a multiply; the bias alone).
#[test]
fn the_fused_convolution_epilogue_matches_separate_operations() {
    let orders: [&[Then]; 5] = [
        &[Then::Relu],
        &[Then::Relu, Then::Add],
        &[Then::Add, Then::Relu],
        &[Then::Sigmoid, Then::Mul],
        &[],
    ];
    for (n, case) in fused_cases().iter().enumerate() {
        for steps in orders {
            let got = fused_call(case, steps, &cpu_device(), true);
            let want = fused_call(case, steps, &ndarray_device(), false);
            assert_close(&format!("case {n} then {steps:?}"), &got, &want);
        }
    }
}

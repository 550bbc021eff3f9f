//! A 2-D convolution for inference with its epilogue fused in: the bias, then ReLU, sigmoid, a
//! residual add or an elementwise multiply, in the order given, applied to each tile of output
//! rows right after the gemm that wrote it (while it is in cache), instead of one pass over the
//! whole output per operation, each allocating a tensor. The input may be several tensors
//! taken as their channel-wise concatenation: a pointwise convolution then sums one gemm per
//! part (the concatenation is never built).
//!
//! f32 only; other element types, and the shapes that burn's convolution sends to its direct,
//! depthwise or small-channel kernels, run the plain operations (those kernels then one pass for
//! the whole epilogue). Checked against NdArray's separate operations, every route and step
//! kind, by the project's `tests/suite/cpu_kernels.rs` (this crate's own tests cannot run
//! inside the project's workspace).

use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::{ActivationOps, ConvOptions, FloatTensorOps, ModuleOps};
use burn_std::{Bytes, Shape};

use super::conv_planar::{self, PlanarGeometry, SharedMut, for_each_index};
use crate::{Flex, FlexTensor, Layout};

/// Elements of a pointwise tile's operands (input panel plus output rows): 256 Ki floats.
const POINTWISE_TILE_ELEMS: usize = 256 * 1024;

/// One operation on a convolution's output, after its bias. Operands have the output's shape.
#[derive(Clone, Debug)]
pub enum EpilogueStep {
    /// `max(v, 0)`.
    Relu,
    /// `1 / (1 + exp(-v))`.
    Sigmoid,
    /// `v + operand` (a residual connection).
    Add(FlexTensor),
    /// `v * operand` (a gate).
    Mul(FlexTensor),
}

/// `conv2d(cat(inputs, dim 1), weight, bias, options)` followed by `steps` in order.
///
/// # Panics
/// When `inputs` is empty, the inputs' channels do not sum to the weight's input channels (times
/// groups), or an operand's shape differs from the output's.
pub fn conv2d_fused(
    inputs: Vec<FlexTensor>,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
    steps: Vec<EpilogueStep>,
) -> FlexTensor {
    assert!(!inputs.is_empty(), "conv2d_fused: no input");
    let all_f32 = inputs.iter().all(|x| x.dtype() == DType::F32)
        && weight.dtype() == DType::F32
        && bias.as_ref().is_none_or(|b| b.dtype() == DType::F32);
    if !all_f32 {
        return unfused(inputs, weight, bias, options, steps);
    }
    let inputs: Vec<FlexTensor> = inputs.iter().map(FlexTensor::to_contiguous).collect();
    let weight = weight.to_contiguous();
    let bias = bias.map(|b| b.to_contiguous());
    if is_pointwise(&weight, options) {
        return pointwise(&inputs, &weight, bias.as_ref(), steps);
    }
    let x = concatenate(inputs);
    let geometry = planar_geometry(&x, &weight, options);
    let Some(geometry) = geometry.filter(|g| !has_special_kernel(g)) else {
        let y = Flex::conv2d(x, weight, bias, options.clone());
        return finish_whole(y, None, steps);
    };
    let operands = Operands::new(steps, output_shape(&geometry));
    let epilogue = operands.epilogue(bias.as_ref());
    let out = conv_planar::forward_finished::<f32>(&x, &weight, &geometry, &|c, start, row| {
        epilogue.apply(c, start, row)
    });
    tensor(out, output_shape(&geometry))
}

/// The same computation as burn's separate operations (other element types).
fn unfused(
    inputs: Vec<FlexTensor>,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
    steps: Vec<EpilogueStep>,
) -> FlexTensor {
    let mut y = Flex::conv2d(concatenate(inputs), weight, bias, options.clone());
    for step in steps {
        y = match step {
            EpilogueStep::Relu => Flex::relu(y),
            EpilogueStep::Sigmoid => Flex::sigmoid(y),
            EpilogueStep::Add(operand) => Flex::float_add(y, operand),
            EpilogueStep::Mul(operand) => Flex::float_mul(y, operand),
        };
    }
    y
}

fn concatenate(mut inputs: Vec<FlexTensor>) -> FlexTensor {
    if inputs.len() == 1 {
        inputs.pop().expect("one input")
    } else {
        Flex::float_cat(inputs, 1)
    }
}

/// A 1x1 convolution without stride, padding or groups: a plain gemm on NCHW planes.
fn is_pointwise(weight: &FlexTensor, options: &ConvOptions<2>) -> bool {
    let [_, _, kh, kw] = conv_planar::dims4(weight);
    kh == 1
        && kw == 1
        && options.stride == [1, 1]
        && options.padding == [(0, 0), (0, 0)]
        && options.groups == 1
}

/// The planar kernel's geometry, where the padding is symmetric (else none).
fn planar_geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<PlanarGeometry> {
    let [(top, bottom), (left, right)] = options.padding;
    (top == bottom && left == right).then(|| {
        PlanarGeometry::new(
            conv_planar::dims4(x),
            conv_planar::dims4(weight),
            options.stride,
            [top, left],
            options.dilation,
            options.groups,
        )
    })
}

/// Whether burn's convolution would send this shape to a kernel of its own (depthwise, few
/// channels): those are kept, and the epilogue follows in one pass.
fn has_special_kernel(g: &PlanarGeometry) -> bool {
    let depthwise = g.groups == g.channels_in && g.channels_out % g.channels_in.max(1) == 0;
    let small = g.groups == 1 && g.channels_in <= 4 && g.channels_out <= 16;
    depthwise || small
}

fn output_shape(g: &PlanarGeometry) -> [usize; 4] {
    [g.batch, g.channels_out, g.out_h, g.out_w]
}

fn tensor(data: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(shape.to_vec())),
        DType::F32,
    )
}

/// The steps with their operands made contiguous (kept alive while slices of them are used).
struct Operands {
    steps: Vec<EpilogueStep>,
}

impl Operands {
    fn new(steps: Vec<EpilogueStep>, output: [usize; 4]) -> Self {
        let steps = steps
            .into_iter()
            .map(|step| match step {
                EpilogueStep::Add(t) => EpilogueStep::Add(operand(t, output)),
                EpilogueStep::Mul(t) => EpilogueStep::Mul(operand(t, output)),
                other => other,
            })
            .collect();
        Operands { steps }
    }

    fn epilogue<'a>(&'a self, bias: Option<&'a FlexTensor>) -> Epilogue<'a> {
        Epilogue {
            bias: bias.map(|b| b.storage::<f32>()),
            steps: self
                .steps
                .iter()
                .map(|step| match step {
                    EpilogueStep::Relu => Step::Relu,
                    EpilogueStep::Sigmoid => Step::Sigmoid,
                    EpilogueStep::Add(t) => Step::Add(t.storage()),
                    EpilogueStep::Mul(t) => Step::Mul(t.storage()),
                })
                .collect(),
        }
    }
}

fn operand(t: FlexTensor, output: [usize; 4]) -> FlexTensor {
    let shape = t.layout().shape();
    assert!(
        shape.num_dims() == 4 && shape.iter().eq(output.iter()),
        "conv2d_fused: an epilogue operand of shape {shape:?} for an output of shape {output:?}"
    );
    t.to_contiguous()
}

/// The epilogue over plain slices: the bias per channel, then each step.
struct Epilogue<'a> {
    bias: Option<&'a [f32]>,
    steps: Vec<Step<'a>>,
}

enum Step<'a> {
    Relu,
    Sigmoid,
    Add(&'a [f32]),
    Mul(&'a [f32]),
}

impl Epilogue<'_> {
    /// Finishes `row`, output channel `channel`'s elements from flat index `start` on.
    fn apply(&self, channel: usize, start: usize, row: &mut [f32]) {
        if let Some(bias) = self.bias {
            conv_planar::add_bias_to_row(bias, channel, row);
        }
        let span = start..start + row.len();
        for step in &self.steps {
            match step {
                Step::Relu => relu_row(row),
                Step::Sigmoid => sigmoid_row(row),
                Step::Add(operand) => add_row(row, &operand[span.clone()]),
                Step::Mul(operand) => mul_row(row, &operand[span.clone()]),
            }
        }
    }
}

#[cfg_attr(feature = "simd", macerator::with_simd)]
fn relu_row<#[cfg(feature = "simd")] S: macerator::Simd>(row: &mut [f32]) {
    for v in row.iter_mut() {
        // Written as a select rather than `max` so that it vectorises (NaN stays NaN either way
        // in the network's data, which holds none).
        *v = if *v > 0.0 { *v } else { 0.0 };
    }
}

#[cfg_attr(feature = "simd", macerator::with_simd)]
fn sigmoid_row<#[cfg(feature = "simd")] S: macerator::Simd>(row: &mut [f32]) {
    for v in row.iter_mut() {
        *v = 1.0 / (1.0 + (-*v).exp());
    }
}

#[cfg_attr(feature = "simd", macerator::with_simd)]
fn add_row<#[cfg(feature = "simd")] S: macerator::Simd>(row: &mut [f32], operand: &[f32]) {
    for (v, o) in row.iter_mut().zip(operand) {
        *v += *o;
    }
}

#[cfg_attr(feature = "simd", macerator::with_simd)]
fn mul_row<#[cfg(feature = "simd")] S: macerator::Simd>(row: &mut [f32], operand: &[f32]) {
    for (v, o) in row.iter_mut().zip(operand) {
        *v *= *o;
    }
}

/// The epilogue in one pass over an output that another kernel wrote (bias already added
/// unless `bias` is given), channel planes in parallel.
fn finish_whole(
    y: FlexTensor,
    bias: Option<&FlexTensor>,
    steps: Vec<EpilogueStep>,
) -> FlexTensor {
    // A fresh convolution output is already exact and contiguous: this moves it, no copy.
    let mut y = y.into_contiguous();
    let y_shape = conv_planar::dims4(&y);
    let [batch, channels, h, w] = y_shape;
    let operands = Operands::new(steps, y_shape);
    let epilogue = operands.epilogue(bias);
    let plane = h * w;
    let data: &mut [f32] = y.storage_mut();
    let out = SharedMut(data.as_mut_ptr());
    for_each_index(batch * channels, |i| {
        let out = out;
        // SAFETY: plane `i` of the output, touched by no other index.
        let row = unsafe { core::slice::from_raw_parts_mut(out.0.add(i * plane), plane) };
        epilogue.apply(i % channels, i * plane, row);
    });
    y
}

/// A pointwise convolution over the concatenation of `inputs`: per tile of pixels, one gemm per
/// input part accumulating into the tile's output rows, then the epilogue on them.
fn pointwise(
    inputs: &[FlexTensor],
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    steps: Vec<EpilogueStep>,
) -> FlexTensor {
    let [batch, _, h, w] = conv_planar::dims4(&inputs[0]);
    let [c_out, c_in, _, _] = conv_planar::dims4(weight);
    let parts: Vec<(usize, &[f32])> = inputs
        .iter()
        .map(|x| {
            let dims = conv_planar::dims4(x);
            assert!(
                dims[0] == batch && dims[2] == h && dims[3] == w,
                "conv2d_fused: inputs of shapes {:?} and {dims:?} cannot be concatenated",
                conv_planar::dims4(&inputs[0])
            );
            (dims[1], x.storage::<f32>())
        })
        .collect();
    let total_in: usize = parts.iter().map(|(c, _)| c).sum();
    assert_eq!(
        total_in, c_in,
        "conv2d_fused: the inputs have {total_in} channels, the weight takes {c_in}"
    );
    let plane = h * w;
    let shape = [batch, c_out, h, w];
    let operands = Operands::new(steps, shape);
    let epilogue = operands.epilogue(bias);
    let width = pointwise_tile_width(batch, plane, c_in + c_out);
    let tiles_per_plane = plane.div_ceil(width);
    let w_data: &[f32] = weight.storage();
    let mut output: Vec<f32> = Vec::with_capacity(batch * c_out * plane);
    let out = SharedMut(output.as_mut_ptr());
    for_each_index(batch * tiles_per_plane, |t| {
        let out = out;
        let (b, first) = (t / tiles_per_plane, (t % tiles_per_plane) * width);
        let pixels = width.min(plane - first);
        let out_offset = b * c_out * plane + first;
        let mut k0 = 0;
        for (i, (channels, data)) in parts.iter().enumerate() {
            let rhs = &data[b * channels * plane + first..];
            // SAFETY: the tile's rows of the output (c_out rows of `pixels`, row stride `plane`)
            // belong to this task alone; the first gemm writes them (accumulate = false), later
            // parts add to them. The weight columns k0..k0+channels and the part's rows are in
            // bounds by the shape checks above.
            unsafe {
                gemm::gemm(
                    c_out,
                    pixels,
                    *channels,
                    out.0.add(out_offset),
                    1,
                    plane as isize,
                    i > 0,
                    w_data.as_ptr().add(k0),
                    1,
                    c_in as isize,
                    rhs.as_ptr(),
                    1,
                    plane as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            k0 += channels;
        }
        for c in 0..c_out {
            let start = out_offset + c * plane;
            // SAFETY: as above: this tile's row of channel `c`, written by the gemms.
            let row = unsafe { core::slice::from_raw_parts_mut(out.0.add(start), pixels) };
            epilogue.apply(c, start, row);
        }
    });
    // SAFETY: the tiles cover every pixel of every (batch, channel) plane.
    unsafe { output.set_len(batch * c_out * plane) };
    tensor(output, shape)
}

/// Pixels per pointwise tile: the input panel and output rows (`rows` per pixel) fit the cache
/// budget, and there are at least two tiles per thread over the whole batch; a multiple of 16
/// (the gemm's vector width) unless the plane is smaller.
fn pointwise_tile_width(batch: usize, plane: usize, rows: usize) -> usize {
    let threads = conv_planar::thread_count();
    let for_cache = POINTWISE_TILE_ELEMS / rows.max(1);
    let for_threads = (batch * plane).div_ceil(2 * threads).max(1);
    let width = for_cache.min(for_threads).min(plane).max(1);
    if width >= 16 && width < plane {
        width / 16 * 16
    } else {
        width
    }
}


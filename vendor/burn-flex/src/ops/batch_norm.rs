//! Batch normalisation as fused per-channel passes: inference (one multiply-add per element),
//! training with batch statistics, and its backward pass.
//!
//! burn's default decompositions build each result out of 4-8 whole-tensor operations and,
//! for the statistics, transpose the activation to channels-first and copy it contiguous. Here
//! each channel's planes are read in place, statistics are summed in f64, and every output
//! element is written once.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape};
use num_traits::{NumCast, ToPrimitive};

use super::conv_planar::{PlanarElement, SharedMut, for_each_index};
use crate::{FlexTensor, Layout};

/// `[batch, channels, rest...]` viewed as `batch * channels` planes of `plane` elements.
#[derive(Clone, Copy)]
struct Planes {
    batch: usize,
    channels: usize,
    plane: usize,
}

impl Planes {
    fn of(x: &FlexTensor) -> Planes {
        let shape = x.layout().shape();
        let (batch, channels) = (shape[0], shape[1]);
        let plane = shape.num_elements() / (batch * channels).max(1);
        Planes {
            batch,
            channels,
            plane,
        }
    }

    /// The element offsets of channel `c`'s planes, one per batch element.
    fn starts(self, c: usize) -> impl Iterator<Item = usize> {
        (0..self.batch).map(move |b| (b * self.channels + c) * self.plane)
    }

    fn count(self) -> f64 {
        (self.batch * self.plane) as f64
    }
}

fn host<T: PlanarElement>(tensor: FlexTensor) -> Vec<f64> {
    let tensor = tensor.to_contiguous();
    let data: &[T] = tensor.storage();
    data.iter().map(|v| wide(v)).collect()
}

fn wide<T: PlanarElement>(value: &T) -> f64 {
    ToPrimitive::to_f64(value).unwrap_or(f64::NAN)
}

fn cast<T: PlanarElement>(value: f64) -> T {
    <T as NumCast>::from(value).unwrap_or_else(T::nan)
}

fn tensor_from<T: PlanarElement>(data: Vec<T>, shape: Shape, dtype: DType) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(shape), dtype)
}

fn channel_tensor<T: PlanarElement>(values: &[f64], dtype: DType) -> FlexTensor {
    let data: Vec<T> = values.iter().map(|v| cast(*v)).collect();
    tensor_from(data, Shape::from(vec![values.len()]), dtype)
}

/// Sum of `f(value)` over a slice, in eight f64 lanes (vectorisable, and accurate for long
/// planes).
fn lane_sum<T: PlanarElement>(values: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += f(wide(v));
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|v| f(wide(v))).sum();
    lanes.iter().sum::<f64>() + tail
}

/// Sum of `dy * (x - mean)` over two slices, in eight f64 lanes.
fn lane_dot<T: PlanarElement>(xs: &[T], dys: &[T], mean: f64) -> f64 {
    let f = |x: &T, dy: &T| (wide(x) - mean) * wide(dy);
    let mut lanes = [0.0f64; 8];
    let (mut xc, mut dc) = (xs.chunks_exact(8), dys.chunks_exact(8));
    for (x8, d8) in (&mut xc).zip(&mut dc) {
        for ((lane, x), dy) in lanes.iter_mut().zip(x8).zip(d8) {
            *lane += f(x, dy);
        }
    }
    let tail: f64 = xc
        .remainder()
        .iter()
        .zip(dc.remainder())
        .map(|(x, dy)| f(x, dy))
        .sum();
    lanes.iter().sum::<f64>() + tail
}

/// `y = x * scale[c] + shift[c]` for every element, channel by channel in parallel.
fn affine<T: PlanarElement>(x: &[T], planes: Planes, scale: &[f64], shift: &[f64]) -> Vec<T> {
    let mut out: Vec<T> = vec![T::zero(); x.len()];
    let out_ptr = SharedMut(out.as_mut_ptr());
    for_each_index(planes.channels, |c| {
        let out_ptr = out_ptr;
        let (scale, shift) = (cast::<T>(scale[c]), cast::<T>(shift[c]));
        for start in planes.starts(c) {
            // SAFETY: channel c alone writes its planes.
            let dst =
                unsafe { core::slice::from_raw_parts_mut(out_ptr.0.add(start), planes.plane) };
            for (y, v) in dst.iter_mut().zip(&x[start..start + planes.plane]) {
                *y = *v * scale + shift;
            }
        }
    });
    out
}

/// Inference: `gamma * (x - mean) / sqrt(var + eps) + beta` as one multiply-add per element.
pub(crate) fn batch_norm<T: PlanarElement>(
    x: FlexTensor,
    [gamma, beta, mean, variance]: [FlexTensor; 4],
    epsilon: f64,
    dtype: DType,
) -> FlexTensor {
    let x = x.to_contiguous();
    let planes = Planes::of(&x);
    let (gamma, beta, mean, variance) = (
        host::<T>(gamma),
        host::<T>(beta),
        host::<T>(mean),
        host::<T>(variance),
    );
    let scale: Vec<f64> = (0..planes.channels)
        .map(|c| gamma[c] / (variance[c] + epsilon).sqrt())
        .collect();
    let shift: Vec<f64> = (0..planes.channels)
        .map(|c| beta[c] - mean[c] * scale[c])
        .collect();
    let out = affine(x.storage::<T>(), planes, &scale, &shift);
    tensor_from(out, x.layout().shape().clone(), dtype)
}

/// Per-channel mean and biased variance (two passes, so the variance does not cancel).
fn statistics<T: PlanarElement>(x: &[T], planes: Planes) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; planes.channels];
    let mut variance = vec![0.0; planes.channels];
    let (mean_ptr, variance_ptr) = (
        SharedMut(mean.as_mut_ptr()),
        SharedMut(variance.as_mut_ptr()),
    );
    for_each_index(planes.channels, |c| {
        let (mean_ptr, variance_ptr) = (mean_ptr, variance_ptr);
        let plane = |start: usize| &x[start..start + planes.plane];
        let m = planes
            .starts(c)
            .map(|s| lane_sum(plane(s), |v| v))
            .sum::<f64>()
            / planes.count();
        let var = planes
            .starts(c)
            .map(|s| lane_sum(plane(s), |v| (v - m) * (v - m)))
            .sum::<f64>()
            / planes.count();
        // SAFETY: channel c alone writes entry c.
        unsafe {
            *mean_ptr.0.add(c) = m;
            *variance_ptr.0.add(c) = var;
        }
    });
    (mean, variance)
}

/// Training: normalise with the batch's own statistics; returns output, mean and variance.
pub(crate) fn batch_norm_train<T: PlanarElement>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
    dtype: DType,
) -> [FlexTensor; 3] {
    let x = x.to_contiguous();
    let planes = Planes::of(&x);
    let data = x.storage::<T>();
    let (mean, variance) = statistics(data, planes);
    let (gamma, beta) = (host::<T>(gamma), host::<T>(beta));
    let scale: Vec<f64> = (0..planes.channels)
        .map(|c| gamma[c] / (variance[c] + epsilon).sqrt())
        .collect();
    let shift: Vec<f64> = (0..planes.channels)
        .map(|c| beta[c] - mean[c] * scale[c])
        .collect();
    let out = affine(data, planes, &scale, &shift);
    [
        tensor_from(out, x.layout().shape().clone(), dtype),
        channel_tensor::<T>(&mean, dtype),
        channel_tensor::<T>(&variance, dtype),
    ]
}

/// Backward of [`batch_norm_train`]: with `xhat = (x - mean) / std`,
/// `dbeta = sum dy`, `dgamma = sum dy * xhat` and
/// `dx = gamma / std * (dy - dbeta / n - xhat * dgamma / n)`. Returns dx, dgamma, dbeta.
pub(crate) fn batch_norm_train_backward<T: PlanarElement>(
    x: FlexTensor,
    [gamma, mean, variance]: [FlexTensor; 3],
    epsilon: f64,
    output_grad: FlexTensor,
    dtype: DType,
) -> [FlexTensor; 3] {
    let x = x.to_contiguous();
    let dy = output_grad.to_contiguous();
    let planes = Planes::of(&x);
    let (x_data, dy_data) = (x.storage::<T>(), dy.storage::<T>());
    let (gamma, mean, variance) = (host::<T>(gamma), host::<T>(mean), host::<T>(variance));
    let mut beta_grad = vec![0.0; planes.channels];
    let mut gamma_grad = vec![0.0; planes.channels];
    let mut dx: Vec<T> = vec![T::zero(); x_data.len()];
    let (beta_ptr, gamma_ptr, dx_ptr) = (
        SharedMut(beta_grad.as_mut_ptr()),
        SharedMut(gamma_grad.as_mut_ptr()),
        SharedMut(dx.as_mut_ptr()),
    );
    for_each_index(planes.channels, |c| {
        let (beta_ptr, gamma_ptr, dx_ptr) = (beta_ptr, gamma_ptr, dx_ptr);
        let inv_std = 1.0 / (variance[c] + epsilon).sqrt();
        let m = mean[c];
        let (mut sum_dy, mut sum_dy_centred) = (0.0, 0.0);
        for start in planes.starts(c) {
            let (xs, dys) = (
                &x_data[start..start + planes.plane],
                &dy_data[start..start + planes.plane],
            );
            sum_dy += lane_sum(dys, |v| v);
            sum_dy_centred += lane_dot(xs, dys, m);
        }
        let sum_dy_xhat = sum_dy_centred * inv_std;
        let n = planes.count();
        let scale = gamma[c] * inv_std;
        // dx = scale * (dy - sum_dy / n) - scale * inv_std * sum_dy_xhat / n * (x - mean)
        let a = cast::<T>(scale);
        let b = cast::<T>(scale * inv_std * sum_dy_xhat / n);
        let shift = cast::<T>(-scale * sum_dy / n);
        let mean_t = cast::<T>(m);
        for start in planes.starts(c) {
            // SAFETY: channel c alone writes its planes of dx and entry c of the sums.
            let dst = unsafe { core::slice::from_raw_parts_mut(dx_ptr.0.add(start), planes.plane) };
            let (xs, dys) = (
                &x_data[start..start + planes.plane],
                &dy_data[start..start + planes.plane],
            );
            for ((out, xv), dv) in dst.iter_mut().zip(xs).zip(dys) {
                *out = a * *dv - b * (*xv - mean_t) + shift;
            }
        }
        unsafe {
            *beta_ptr.0.add(c) = sum_dy;
            *gamma_ptr.0.add(c) = sum_dy_xhat;
        }
    });
    [
        tensor_from(dx, x.layout().shape().clone(), dtype),
        channel_tensor::<T>(&gamma_grad, dtype),
        channel_tensor::<T>(&beta_grad, dtype),
    ]
}

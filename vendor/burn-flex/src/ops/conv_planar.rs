//! Planar (2-D) convolution straight from NCHW: forward, weight gradient, input gradient and
//! bias gradient, each one im2col (or its adjoint, col2im) per tile of output rows and one gemm.
//!
//! The generic `conv3d_impl` copies the whole input to NHWC on one thread, builds im2col rows
//! one element at a time, has gemm return a fresh buffer and scatters it into the output with a
//! channel stride; the default backward passes run a convolution whose kernel is the whole
//! feature map (weight gradient) and a transposed convolution (input gradient). Here the im2col
//! buffer has the classic `[channels * kh * kw, pixels]` layout, whose rows are runs of input
//! rows (contiguous copies when the stride is 1), the weight is used in its own
//! `[c_out, channels * kh * kw]` layout, and gemm reads and writes the tensors in place. Tiles are
//! sized so the im2col buffer stays cache-resident, and that buffer is reused per thread.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::conv::calculate_conv_output_size;
use burn_std::{Bytes, Shape};

use super::conv::valid_out_range;
use crate::{FlexTensor, Layout};

/// Elements of one im2col tile: 256 Ki (1 MiB of f32) stays within L2.
const COL_TILE_ELEMS: usize = 256 * 1024;

/// What the planar kernels need of an element type.
pub(crate) trait PlanarElement:
    bytemuck::Pod
    + num_traits::Float
    + burn_backend::Element
    + burn_backend::ElementAdd
    + Send
    + Sync
    + 'static
{
}
impl<T> PlanarElement for T where
    T: bytemuck::Pod
        + num_traits::Float
        + burn_backend::Element
        + burn_backend::ElementAdd
        + Send
        + Sync
        + 'static
{
}

/// The shape facts of one planar convolution, in NCHW terms.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlanarGeometry {
    pub batch: usize,
    pub channels_in: usize,
    pub channels_out: usize,
    pub groups: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
}

impl PlanarGeometry {
    /// Geometry of a forward convolution of `x` ([b, c, h, w]) by `weight` ([o, c/g, kh, kw]).
    pub fn new(
        x: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        pad: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Self {
        let out_h = calculate_conv_output_size(weight[2], stride[0], pad[0], dilation[0], x[2]);
        let out_w = calculate_conv_output_size(weight[3], stride[1], pad[1], dilation[1], x[3]);
        PlanarGeometry {
            batch: x[0],
            channels_in: x[1],
            channels_out: weight[0],
            groups,
            in_h: x[2],
            in_w: x[3],
            out_h,
            out_w,
            kernel_h: weight[2],
            kernel_w: weight[3],
            stride,
            pad,
            dilation,
        }
    }

    fn channels_per_group(&self) -> usize {
        self.channels_in / self.groups
    }

    fn out_channels_per_group(&self) -> usize {
        self.channels_out / self.groups
    }

    /// Rows of the im2col matrix: one per (input channel of a group, ky, kx).
    fn col_len(&self) -> usize {
        self.channels_per_group() * self.kernel_h * self.kernel_w
    }

    fn in_plane(&self) -> usize {
        self.in_h * self.in_w
    }

    fn out_plane(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Output rows per tile: as many as keep the im2col tile cache-sized, but few enough that
    /// there are `tiles_wanted` tiles per (batch, group) plane.
    fn rows_per_tile(&self, tiles_wanted: usize) -> usize {
        let rows_for_cache = (COL_TILE_ELEMS / (self.col_len() * self.out_w).max(1)).max(1);
        rows_for_cache
            .min(self.out_h.div_ceil(tiles_wanted.max(1)))
            .clamp(1, self.out_h.max(1))
    }
}

/// One tile of work: output rows `oh_start..oh_start + rows` of (batch `b`, group `g`).
#[derive(Clone, Copy, Debug)]
struct Tile {
    b: usize,
    g: usize,
    oh_start: usize,
    rows: usize,
}

/// Every tile, batch-major then group then rows.
fn tiles(geometry: &PlanarGeometry, rows_per_tile: usize) -> Vec<Tile> {
    let mut out = Vec::new();
    for b in 0..geometry.batch {
        for g in 0..geometry.groups {
            let mut oh_start = 0;
            while oh_start < geometry.out_h {
                let rows = rows_per_tile.min(geometry.out_h - oh_start);
                out.push(Tile {
                    b,
                    g,
                    oh_start,
                    rows,
                });
                oh_start += rows;
            }
        }
    }
    out
}

pub(crate) fn thread_count() -> usize {
    #[cfg(feature = "rayon")]
    {
        rayon::current_num_threads().max(1)
    }
    #[cfg(not(feature = "rayon"))]
    {
        1
    }
}

/// gemm's own threading, used when there are fewer independent tasks than threads.
fn gemm_parallelism(tasks: usize) -> gemm::Parallelism {
    #[cfg(feature = "rayon")]
    {
        if tasks < thread_count() {
            return gemm::Parallelism::Rayon(0);
        }
    }
    let _ = tasks;
    gemm::Parallelism::None
}

/// Runs `work(i)` for `i` in `0..count`, on rayon's pool when it is enabled.
pub(crate) fn for_each_index(count: usize, work: impl Fn(usize) + Send + Sync) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..count).into_par_iter().for_each(work);
    }
    #[cfg(not(feature = "rayon"))]
    (0..count).for_each(work);
}

#[cfg(feature = "std")]
std::thread_local! {
    /// Per-thread im2col scratch (u64 words so any element type up to 8 bytes is aligned).
    static COL_SCRATCH: core::cell::RefCell<Vec<u64>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch slice of `len` elements of `T`, reused across calls on this thread.
fn with_col_scratch<T: bytemuck::Pod, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let words = (len * core::mem::size_of::<T>()).div_ceil(8);
    let mut f = Some(f);
    #[cfg(feature = "std")]
    {
        let reused = COL_SCRATCH.with(|cell| {
            // A nested call on this thread (work stolen inside a parallel gemm) finds the
            // buffer taken and gets a fresh one below.
            let mut buffer = cell.try_borrow_mut().ok()?;
            if buffer.len() < words {
                buffer.resize(words, 0);
            }
            let all: &mut [T] = bytemuck::cast_slice_mut(&mut buffer[..words]);
            Some((f.take().expect("called once"))(&mut all[..len]))
        });
        if let Some(result) = reused {
            return result;
        }
    }
    let mut buffer = vec![0u64; words];
    let all: &mut [T] = bytemuck::cast_slice_mut(&mut buffer[..]);
    (f.take().expect("called once"))(&mut all[..len])
}

/// Visits every (im2col row, output row of the tile) pair whose input row exists: `visit(r, i,
/// input_offset, ow_lo, ow_hi)` with `r` the im2col row, `i` the tile row, `input_offset` the
/// offset of input element (ih, iw(ow_lo)) within the group's channel block, and the valid
/// output column range. Pairs without an input row are reported with `ow_lo == ow_hi == 0`.
fn for_each_patch_row(
    g: &PlanarGeometry,
    oh_start: usize,
    rows: usize,
    mut visit: impl FnMut(usize, usize, Option<usize>, (usize, usize)),
) {
    let [stride_h, stride_w] = g.stride;
    let [pad_h, pad_w] = g.pad;
    let [dilation_h, dilation_w] = g.dilation;
    let mut r = 0;
    for c in 0..g.channels_per_group() {
        for ky in 0..g.kernel_h {
            for kx in 0..g.kernel_w {
                let (ow_lo, ow_hi) =
                    valid_out_range(kx, dilation_w, pad_w, stride_w, g.in_w, g.out_w);
                for i in 0..rows {
                    let ih =
                        ((oh_start + i) * stride_h + ky * dilation_h) as isize - pad_h as isize;
                    if ih < 0 || ih >= g.in_h as isize || ow_lo >= ow_hi {
                        visit(r, i, None, (0, 0));
                        continue;
                    }
                    let iw_lo = ow_lo * stride_w + kx * dilation_w - pad_w;
                    let offset = c * g.in_plane() + ih as usize * g.in_w + iw_lo;
                    visit(r, i, Some(offset), (ow_lo, ow_hi));
                }
                r += 1;
            }
        }
    }
}

/// Fills `col` (`[col_len, rows * out_w]`, pixel-contiguous rows) with the input patches of one
/// tile; `input` is the group's channel block of one batch element.
fn im2col<T: PlanarElement>(col: &mut [T], input: &[T], g: &PlanarGeometry, tile: Tile) {
    let pixels = tile.rows * g.out_w;
    let stride_w = g.stride[1];
    for_each_patch_row(g, tile.oh_start, tile.rows, |r, i, offset, (lo, hi)| {
        let dst = &mut col[r * pixels + i * g.out_w..r * pixels + (i + 1) * g.out_w];
        let Some(offset) = offset else {
            dst.fill(T::zero());
            return;
        };
        dst[..lo].fill(T::zero());
        dst[hi..].fill(T::zero());
        let valid = &mut dst[lo..hi];
        if stride_w == 1 {
            valid.copy_from_slice(&input[offset..offset + valid.len()]);
        } else {
            for (j, value) in valid.iter_mut().enumerate() {
                *value = input[offset + j * stride_w];
            }
        }
    });
}

/// The adjoint of [`im2col`]: adds each column entry back onto the input element it was read
/// from; `input_grad` is the group's channel block of one batch element.
fn col2im<T: PlanarElement>(input_grad: &mut [T], col: &[T], g: &PlanarGeometry, tile: Tile) {
    let pixels = tile.rows * g.out_w;
    let stride_w = g.stride[1];
    for_each_patch_row(g, tile.oh_start, tile.rows, |r, i, offset, (lo, hi)| {
        let Some(offset) = offset else { return };
        let src = &col[r * pixels + i * g.out_w + lo..r * pixels + i * g.out_w + hi];
        if stride_w == 1 {
            let dst = &mut input_grad[offset..offset + src.len()];
            for (d, s) in dst.iter_mut().zip(src) {
                *d = *d + *s;
            }
        } else {
            for (j, s) in src.iter().enumerate() {
                let d = &mut input_grad[offset + j * stride_w];
                *d = *d + *s;
            }
        }
    });
}

/// A raw pointer that may cross rayon threads; every use writes a region no other task writes.
/// (`ops::SendMutPtr` is the same idea but exists only with the `rayon` feature.)
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(pub(crate) *mut T);
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

/// `dst = lhs @ rhs` (or `dst += ...` with `accumulate`), each given by base pointer, row
/// stride and column stride.
///
/// # Safety
/// The pointers and strides must describe valid `m x k`, `k x n` and `m x n` matrices, and no
/// other thread may touch `dst` meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul<T: PlanarElement>(
    [m, n, k]: [usize; 3],
    dst: (*mut T, usize, usize),
    lhs: (*const T, usize, usize),
    rhs: (*const T, usize, usize),
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            dst.2 as isize,
            dst.1 as isize,
            accumulate,
            lhs.0,
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0,
            rhs.2 as isize,
            rhs.1 as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

pub(crate) fn dims4(tensor: &FlexTensor) -> [usize; 4] {
    let shape = tensor.layout().shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

fn new_tensor<T: PlanarElement>(data: Vec<T>, shape: Vec<usize>, dtype: DType) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(shape)),
        dtype,
    )
}

/// What happens to each tile's output rows right after its gemm, while they are in cache:
/// `finish(channel, flat_start, row)` gets one output channel's part of the tile, `row`, which
/// holds the elements from flat index `flat_start` of the `[b, c_out, oh, ow]` output on.
pub(crate) type TileFinish<'a, T> = dyn Fn(usize, usize, &mut [T]) + Sync + 'a;

/// Adds `bias[channel]` to a tile's row: the plain convolution's [`TileFinish`].
pub(crate) fn add_bias_to_row<T: PlanarElement>(bias: &[T], channel: usize, row: &mut [T]) {
    let value = bias[channel];
    for v in row.iter_mut() {
        *v = *v + value;
    }
}

/// Forward: `[b, c_in, h, w] * [c_out, c_in / g, kh, kw] -> [b, c_out, oh, ow]`, bias added.
pub(crate) fn forward<T: PlanarElement>(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<FlexTensor>,
    g: &PlanarGeometry,
) -> Vec<T> {
    match bias {
        Some(bias) => {
            let bias = bias.to_contiguous();
            let values: &[T] = bias.storage();
            forward_finished(x, weight, g, &|channel, _, row| {
                add_bias_to_row(values, channel, row)
            })
        }
        None => forward_finished(x, weight, g, &|_, _, _| {}),
    }
}

/// [`forward`] with `finish` applied to each tile's rows (the bias, and for the fused inference
/// convolution its activations and residual operands) before another tile evicts them.
pub(crate) fn forward_finished<T: PlanarElement>(
    x: &FlexTensor,
    weight: &FlexTensor,
    g: &PlanarGeometry,
    finish: &TileFinish<'_, T>,
) -> Vec<T> {
    let x_data: &[T] = x.storage();
    let w_data: &[T] = weight.storage();
    let total = g.batch * g.channels_out * g.out_plane();
    let threads = thread_count();
    let rows_per_tile = g.rows_per_tile((2 * threads).div_ceil(g.batch * g.groups));
    let tiles = tiles(g, rows_per_tile);
    let parallelism = gemm_parallelism(tiles.len());
    let (col_len, ocpg, block) = (
        g.col_len(),
        g.out_channels_per_group(),
        g.channels_per_group() * g.in_plane(),
    );
    let mut output: Vec<T> = Vec::with_capacity(total);
    let out = SharedMut(output.as_mut_ptr());
    for_each_index(tiles.len(), |t| {
        let tile = tiles[t];
        let pixels = tile.rows * g.out_w;
        let input_start = (tile.b * g.channels_in + tile.g * g.channels_per_group()) * g.in_plane();
        let input = &x_data[input_start..input_start + block];
        with_col_scratch::<T, _>(col_len * pixels, |col| {
            im2col(col, input, g, tile);
            let out_offset =
                (tile.b * g.channels_out + tile.g * ocpg) * g.out_plane() + tile.oh_start * g.out_w;
            let out = out;
            // SAFETY: each tile writes its own rows of its own (batch, group) output channels;
            // together the tiles cover all `total` elements of the allocation. gemm does not
            // read dst (accumulate = false), so the uninitialised memory is only written.
            unsafe {
                matmul(
                    [ocpg, pixels, col_len],
                    (out.0.add(out_offset), g.out_plane(), 1),
                    (w_data.as_ptr().add(tile.g * ocpg * col_len), col_len, 1),
                    (col.as_ptr(), pixels, 1),
                    false,
                    parallelism,
                );
            }
            for oc in 0..ocpg {
                let start = out_offset + oc * g.out_plane();
                // SAFETY: this channel's rows of this tile, just written by the gemm above and
                // touched by no other tile.
                let row = unsafe { core::slice::from_raw_parts_mut(out.0.add(start), pixels) };
                finish(tile.g * ocpg + oc, start, row);
            }
        });
    });
    // SAFETY: the tiles above wrote every one of the `total` elements.
    unsafe { output.set_len(total) };
    output
}

/// Weight gradient: `dW[o, (c, ky, kx)] = sum over batch and pixels of dY[b, o, p] * col[(c, ky,
/// kx), p]`. Threads sum into private gradients, added together at the end.
pub(crate) fn weight_grad<T: PlanarElement>(
    x: FlexTensor,
    output_grad: FlexTensor,
    weight_shape: [usize; 4],
    g: &PlanarGeometry,
    dtype: DType,
) -> FlexTensor {
    let x = x.to_contiguous();
    let dy = output_grad.to_contiguous();
    let x_data: &[T] = x.storage();
    let dy_data: &[T] = dy.storage();
    let (col_len, ocpg) = (g.col_len(), g.out_channels_per_group());
    let block = g.channels_per_group() * g.in_plane();
    let grad_len = g.channels_out * col_len;
    let tiles = tiles(g, g.rows_per_tile(1));
    let workers = thread_count().min(tiles.len()).max(1);
    let parallelism = gemm_parallelism(workers);
    let mut partials: Vec<Vec<T>> = (0..workers).map(|_| vec![T::zero(); grad_len]).collect();
    let partial_ptrs: Vec<SharedMut<T>> = partials
        .iter_mut()
        .map(|p| SharedMut(p.as_mut_ptr()))
        .collect();
    for_each_index(workers, |w| {
        let grad = partial_ptrs[w];
        let chunk = tiles.len().div_ceil(workers);
        for tile in tiles.iter().skip(w * chunk).take(chunk) {
            let pixels = tile.rows * g.out_w;
            let input_start =
                (tile.b * g.channels_in + tile.g * g.channels_per_group()) * g.in_plane();
            let input = &x_data[input_start..input_start + block];
            with_col_scratch::<T, _>(col_len * pixels, |col| {
                im2col(col, input, g, *tile);
                let dy_offset = (tile.b * g.channels_out + tile.g * ocpg) * g.out_plane()
                    + tile.oh_start * g.out_w;
                let grad = grad;
                // SAFETY: worker `w` alone writes partial `w`; the lhs is the tile's rows of
                // dY (contiguous pixels, channel stride out_plane), the rhs col transposed.
                unsafe {
                    matmul(
                        [ocpg, col_len, pixels],
                        (grad.0.add(tile.g * ocpg * col_len), col_len, 1),
                        (dy_data.as_ptr().add(dy_offset), g.out_plane(), 1),
                        (col.as_ptr(), 1, pixels),
                        true,
                        parallelism,
                    );
                }
            });
        }
    });
    let mut grad = partials.swap_remove(0);
    for partial in &partials {
        for (total, part) in grad.iter_mut().zip(partial) {
            *total = *total + *part;
        }
    }
    new_tensor(grad, weight_shape.to_vec(), dtype)
}

/// Input gradient: per tile, `col = W_g^T @ dY_tile`, then [`col2im`] adds it back onto the
/// input positions. Tasks are whole (batch, group) blocks, which write disjoint channels.
pub(crate) fn input_grad<T: PlanarElement>(
    weight: FlexTensor,
    output_grad: FlexTensor,
    g: &PlanarGeometry,
    dtype: DType,
) -> FlexTensor {
    let weight = weight.to_contiguous();
    let dy = output_grad.to_contiguous();
    let w_data: &[T] = weight.storage();
    let dy_data: &[T] = dy.storage();
    let (col_len, ocpg, cpg) = (
        g.col_len(),
        g.out_channels_per_group(),
        g.channels_per_group(),
    );
    let block = cpg * g.in_plane();
    let mut dx = vec![T::zero(); g.batch * g.channels_in * g.in_plane()];
    let dx_ptr = SharedMut(dx.as_mut_ptr());
    let blocks = g.batch * g.groups;
    let parallelism = gemm_parallelism(blocks);
    let rows_per_tile = g.rows_per_tile(1);
    for_each_index(blocks, |bg| {
        let (b, group) = (bg / g.groups, bg % g.groups);
        let dx_ptr = dx_ptr;
        // SAFETY: block (b, group) is the only task writing these input channels.
        let block_grad: &mut [T] = unsafe {
            core::slice::from_raw_parts_mut(
                dx_ptr
                    .0
                    .add((b * g.channels_in + group * cpg) * g.in_plane()),
                block,
            )
        };
        let mut oh_start = 0;
        while oh_start < g.out_h {
            let tile = Tile {
                b,
                g: group,
                oh_start,
                rows: rows_per_tile.min(g.out_h - oh_start),
            };
            let pixels = tile.rows * g.out_w;
            with_col_scratch::<T, _>(col_len * pixels, |col| {
                let dy_offset =
                    (b * g.channels_out + group * ocpg) * g.out_plane() + oh_start * g.out_w;
                // SAFETY: col is this thread's scratch; lhs is W_g transposed ([col_len, ocpg]),
                // rhs the tile's rows of dY.
                unsafe {
                    matmul(
                        [col_len, pixels, ocpg],
                        (col.as_mut_ptr(), pixels, 1),
                        (w_data.as_ptr().add(group * ocpg * col_len), 1, col_len),
                        (dy_data.as_ptr().add(dy_offset), g.out_plane(), 1),
                        false,
                        parallelism,
                    );
                }
                col2im(block_grad, col, g, tile);
            });
            oh_start += tile.rows;
        }
    });
    new_tensor(dx, vec![g.batch, g.channels_in, g.in_h, g.in_w], dtype)
}

/// Bias gradient: the sum of `dY` over batch and pixels, per output channel (channels in
/// parallel; each plane summed in sixteen lanes, which vectorise).
pub(crate) fn bias_grad<T: PlanarElement>(output_grad: FlexTensor, dtype: DType) -> FlexTensor {
    let dy = output_grad.to_contiguous();
    let [batch, channels, h, w] = dims4(&dy);
    let data: &[T] = dy.storage();
    let plane = h * w;
    let plane_sum = |values: &[T]| {
        let mut lanes = [T::zero(); 16];
        let mut chunks = values.chunks_exact(16);
        for chunk in &mut chunks {
            for (lane, v) in lanes.iter_mut().zip(chunk) {
                *lane = *lane + *v;
            }
        }
        let tail = chunks.remainder().iter().fold(T::zero(), |s, v| s + *v);
        lanes.iter().fold(tail, |s, v| s + *v)
    };
    let mut grad = vec![T::zero(); channels];
    let grad_ptr = SharedMut(grad.as_mut_ptr());
    for_each_index(channels, |c| {
        let grad_ptr = grad_ptr;
        let total = (0..batch).fold(T::zero(), |sum, b| {
            let start = (b * channels + c) * plane;
            sum + plane_sum(&data[start..start + plane])
        });
        // SAFETY: channel c alone writes entry c.
        unsafe { *grad_ptr.0.add(c) = total };
    });
    new_tensor(grad, vec![channels], dtype)
}

/// The geometry of a conv2d call from its tensors (x: NCHW, weight: OIHW).
pub(crate) fn geometry_2d(
    x: &FlexTensor,
    weight_shape: [usize; 4],
    options: &burn_backend::ops::ConvOptions<2>,
) -> PlanarGeometry {
    PlanarGeometry::new(
        dims4(x),
        weight_shape,
        options.stride,
        options.padding_begin(),
        options.dilation,
        options.groups,
    )
}

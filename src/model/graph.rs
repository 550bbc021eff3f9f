//! The folded network as one sequence of graph operations in forward order, written once: the
//! ONNX export emits each operation as nodes, and the quantized forward evaluates the same
//! sequence with burn, rounding every stored activation to its 8-bit grid on the way.
//!
//! Where an activation is stored (and so where a static INT8 graph quantizes it) is part of the
//! walk: [`GraphOps::activation`] marks it, so the exporter and the simulation cannot disagree
//! on which values are rounded or on the order their calibrated ranges are numbered in.

use burn::nn::conv::Conv2d;

use super::config::BRANCH_DILATIONS;
use super::decoder::{AttentionGate, DecoderLevel, RECURRENCE_T, RecurrentUnit, Rrcnn, UpConv};
use super::encoder::{DilatedBranch, Encoder, GroupedBranch, ReAspp3, SharedReAspp3};
use super::layers::ConvBn;
use super::net::Raagr2Net;

/// Which 8-bit grid a stored activation is rounded to.
pub enum Grid<'a, V> {
    /// The next calibrated range, in walk order (the `k`-th call gets range `k`).
    Calibrated,
    /// The grid `source` is already on: max pooling and upsampling only pick or blend values
    /// of their input, so their outputs stay on its grid (runtimes then run them on 8 bits).
    SameAs(&'a V),
    /// `[0, 1]` in steps of 1/255: a sigmoid's output.
    Probability,
}

/// The operations the network is made of, over values of an implementation's choosing (node
/// names for an exporter, tensors for an evaluator).
pub trait GraphOps {
    type Value: Clone;
    type Error;

    /// A stride-1 convolution with "same" padding at `dilation` (its own, or a shared kernel's
    /// branch dilation), bias included.
    fn conv(
        &mut self,
        conv: &Conv2d,
        x: &Self::Value,
        dilation: usize,
    ) -> Result<Self::Value, Self::Error>;
    /// The last convolution, to per-region logits: quantized graphs keep its output in float.
    fn head(&mut self, conv: &Conv2d, x: &Self::Value) -> Result<Self::Value, Self::Error>;
    fn relu(&mut self, x: &Self::Value) -> Self::Value;
    fn sigmoid(&mut self, x: &Self::Value) -> Self::Value;
    fn add(&mut self, a: &Self::Value, b: &Self::Value) -> Self::Value;
    fn mul(&mut self, a: &Self::Value, b: &Self::Value) -> Self::Value;
    /// Concatenation along channels.
    fn concat(&mut self, parts: &[Self::Value]) -> Self::Value;
    /// 2x2 max pooling, stride 2.
    fn max_pool(&mut self, x: &Self::Value) -> Self::Value;
    /// Bilinear x2 upsampling with `align_corners`.
    fn upsample(&mut self, x: &Self::Value) -> Self::Value;
    /// `x` stored between operations, on `grid` (a float graph leaves it as it is).
    fn activation(&mut self, x: Self::Value, grid: Grid<'_, Self::Value>) -> Self::Value;
}

/// The logits of the folded network `model` (see [`Raagr2Net::folded`]: its batch norms are
/// identities by then, so only convolutions are walked) for `input`.
pub fn logits<G: GraphOps>(
    model: &Raagr2Net,
    ops: &mut G,
    input: G::Value,
) -> Result<G::Value, G::Error> {
    let mut walk = Walk { ops };
    walk.network(model, input)
}

struct Walk<'a, G: GraphOps> {
    ops: &'a mut G,
}

impl<G: GraphOps> Walk<'_, G> {
    /// A convolution whose output is stored as it is.
    fn conv(&mut self, conv: &Conv2d, x: &G::Value) -> Result<G::Value, G::Error> {
        self.conv_at(conv, x, conv.dilation[0])
    }

    fn conv_at(
        &mut self,
        conv: &Conv2d,
        x: &G::Value,
        dilation: usize,
    ) -> Result<G::Value, G::Error> {
        let y = self.ops.conv(conv, x, dilation)?;
        Ok(self.ops.activation(y, Grid::Calibrated))
    }

    /// conv -> (folded BN) -> ReLU, stored after the ReLU.
    fn conv_relu(&mut self, conv: &Conv2d, x: &G::Value) -> Result<G::Value, G::Error> {
        let y = self.ops.conv(conv, x, conv.dilation[0])?;
        let y = self.ops.relu(&y);
        Ok(self.ops.activation(y, Grid::Calibrated))
    }

    fn conv_bn_relu(&mut self, layer: &ConvBn, x: &G::Value) -> Result<G::Value, G::Error> {
        self.conv_relu(&layer.conv, x)
    }

    fn add(&mut self, a: &G::Value, b: &G::Value) -> G::Value {
        let sum = self.ops.add(a, b);
        self.ops.activation(sum, Grid::Calibrated)
    }

    fn concat(&mut self, parts: &[G::Value]) -> G::Value {
        let joined = self.ops.concat(parts);
        self.ops.activation(joined, Grid::Calibrated)
    }

    fn network(&mut self, model: &Raagr2Net, input: G::Value) -> Result<G::Value, G::Error> {
        let mut feature = self.ops.activation(input, Grid::Calibrated);
        let mut skips = Vec::with_capacity(model.encoders.len());
        for (i, encoder) in model.encoders.iter().enumerate() {
            if i > 0 {
                let pooled = self.ops.max_pool(&feature);
                feature = self.ops.activation(pooled, Grid::SameAs(&feature));
            }
            feature = match encoder {
                Encoder::Base(m) => self.reaspp3(m, &feature)?,
                Encoder::Shared(m) => self.shared_reaspp3(m, &feature)?,
            };
            skips.push(feature.clone());
        }
        // `Raagr2Net` always has five encoder levels; the input is the deepest feature of a
        // network without any.
        let mut deep = skips.pop().unwrap_or(feature);
        for (i, level) in model.decoders.iter().enumerate().rev() {
            deep = self.decoder_level(level, &deep, &skips[i])?;
        }
        self.ops.head(&model.head, &deep)
    }

    fn reaspp3(&mut self, m: &ReAspp3, x: &G::Value) -> Result<G::Value, G::Error> {
        let mut parts = Vec::with_capacity(5);
        for branch in &m.grouped {
            parts.push(self.grouped_branch(branch, x)?);
        }
        for branch in &m.dilated {
            parts.push(self.dilated_branch(branch, x)?);
        }
        parts.push(x.clone());
        let joined = self.concat(&parts);
        self.conv_bn_relu(&m.fuse, &joined)
    }

    /// grouped 3x3 -> 1x1 -> BN -> ReLU = y1; 1x1 -> BN -> ReLU = y2; y1 + y2.
    fn grouped_branch(&mut self, b: &GroupedBranch, x: &G::Value) -> Result<G::Value, G::Error> {
        let grouped = self.conv(&b.grouped, x)?;
        let y1 = self.conv_relu(&b.pointwise, &grouped)?;
        let y2 = self.conv_bn_relu(&b.post, &y1)?;
        Ok(self.add(&y2, &y1))
    }

    fn dilated_branch(&mut self, b: &DilatedBranch, x: &G::Value) -> Result<G::Value, G::Error> {
        let y1 = self.conv_bn_relu(&b.dilated, x)?;
        let y2 = self.conv_bn_relu(&b.post, &y1)?;
        Ok(self.add(&y2, &y1))
    }

    fn shared_reaspp3(&mut self, m: &SharedReAspp3, x: &G::Value) -> Result<G::Value, G::Error> {
        let variant = m.variant();
        let mut parts = Vec::with_capacity(5);
        for (i, branch) in m.branches.iter().enumerate() {
            let kernel = &m.kernels[variant.kernel_of_branch(i)];
            let d = self.conv_at(kernel, x, BRANCH_DILATIONS[i])?;
            let pointwise = self.conv_bn_relu(&branch.pointwise, &d)?;
            let projected = self.conv(&branch.proj, &d)?;
            parts.push(self.add(&pointwise, &projected));
        }
        parts.push(x.clone());
        let joined = self.concat(&parts);
        self.conv_bn_relu(&m.fuse, &joined)
    }

    fn decoder_level(
        &mut self,
        level: &DecoderLevel,
        deep: &G::Value,
        skip: &G::Value,
    ) -> Result<G::Value, G::Error> {
        let g = self.up_conv(&level.up, deep)?;
        let gated = self.attention_gate(&level.att, &g, skip)?;
        let joined = self.concat(&[gated, g]);
        self.rrcnn(&level.rrcnn, &joined)
    }

    /// Bilinear x2 (align_corners), then conv -> BN -> ReLU.
    fn up_conv(&mut self, up: &UpConv, x: &G::Value) -> Result<G::Value, G::Error> {
        let upsampled = self.ops.upsample(x);
        let upsampled = self.ops.activation(upsampled, Grid::SameAs(x));
        self.conv_relu(&up.conv, &upsampled)
    }

    /// skip * sigmoid(psi(ReLU(W_g g + W_x skip))).
    fn attention_gate(
        &mut self,
        att: &AttentionGate,
        g: &G::Value,
        skip: &G::Value,
    ) -> Result<G::Value, G::Error> {
        let from_gate = self.conv(&att.w_g.conv, g)?;
        let from_skip = self.conv(&att.w_x.conv, skip)?;
        let sum = self.ops.add(&from_gate, &from_skip);
        let joint = self.ops.relu(&sum);
        let joint = self.ops.activation(joint, Grid::Calibrated);
        let psi_logits = self.conv(&att.psi.conv, &joint)?;
        let psi = self.ops.sigmoid(&psi_logits);
        let psi = self.ops.activation(psi, Grid::Probability);
        let gated = self.ops.mul(skip, &psi);
        Ok(self.ops.activation(gated, Grid::Calibrated))
    }

    /// y = f(x); then t times y = f(x + y), as `RecurrentUnit::forward`.
    fn recurrent_unit(&mut self, unit: &RecurrentUnit, x: &G::Value) -> Result<G::Value, G::Error> {
        let mut y = self.recurrent_f(unit, x)?;
        for _ in 0..RECURRENCE_T {
            let sum = self.add(x, &y);
            y = self.recurrent_f(unit, &sum)?;
        }
        Ok(y)
    }

    /// depthwise 3x3 -> 1x1 -> BN -> ReLU.
    fn recurrent_f(&mut self, unit: &RecurrentUnit, x: &G::Value) -> Result<G::Value, G::Error> {
        let depthwise = self.conv(&unit.depthwise, x)?;
        self.conv_relu(&unit.pointwise, &depthwise)
    }

    /// x0 = 1x1 conv; x0 + R2(R1(x0)) (dropout is the identity in inference).
    fn rrcnn(&mut self, block: &Rrcnn, x: &G::Value) -> Result<G::Value, G::Error> {
        let x0 = self.conv(&block.conv1x1, x)?;
        let r1 = self.recurrent_unit(&block.rec1, &x0)?;
        let r2 = self.recurrent_unit(&block.rec2, &r1)?;
        Ok(self.add(&x0, &r2))
    }
}

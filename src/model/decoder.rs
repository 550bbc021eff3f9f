//! Decoder level: UpConv, attention gate and RRCNN block (R2U-Net recurrent residual unit).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use super::config::DecoderPlan;
use super::encoder::Tap;
use super::fused::{After, conv_then};
use super::layers::{ConvBn, LayerSite, LayerVisitor, Norm, VisitLayers, conv, key, norm};

/// Bilinear x2 upsample (align_corners = true) -> 3x3 conv -> BN -> ReLU.
/// PyTorch: `up{k}.up.1` (conv; index 0 is the Upsample), `up{k}.up.2` (BN).
#[derive(Module, Debug)]
pub struct UpConv {
    pub conv: Conv2d,
    pub bn: Norm,
}

impl UpConv {
    pub fn new(in_width: usize, out: usize, device: &Device) -> Self {
        UpConv {
            conv: conv([in_width, out], 3, 1, 1, true, device),
            bn: norm(out, device),
        }
    }

    /// `[B, in, H, W] -> [B, out, 2H, 2W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv_then(
            &self.conv,
            self.bn.pending(),
            vec![upsample2x(x)],
            vec![After::Relu],
        )
    }
}

impl VisitLayers for UpConv {
    fn visit_layers(&mut self, prefix: &str, site: LayerSite, v: &mut dyn LayerVisitor) {
        v.conv(&key(prefix, "up.1"), &mut self.conv, site);
        v.foldable_norm(&key(prefix, "up.2"), &mut self.bn, site);
    }
}

/// Bilinear x2 upsample with align_corners = true: `[B, C, H, W] -> [B, C, 2H, 2W]`.
///
/// Inference, and training on Flex, use burn's interpolate kernel. Other autodiff devices apply
/// the same linear map as two matrix products, because burn's CubeCL (wgpu) and NdArray backends
/// have no bilinear-interpolate backward; the matmul form differentiates on every backend and
/// gives the same values.
pub fn upsample2x(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let device = x.device();
    if !device.is_autodiff() || crate::backend::is_flex(&device) {
        let options = InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(true)
            .with_output_size([2 * h, 2 * w]);
        return interpolate(x, options);
    }
    let along_w = x
        .reshape([b * c * h, w])
        .matmul(interpolation_matrix(w, &device));
    let along_w = along_w.reshape([b, c, h, 2 * w]).swap_dims(2, 3);
    let along_h = along_w
        .reshape([b * c * 2 * w, h])
        .matmul(interpolation_matrix(h, &device));
    along_h.reshape([b, c, 2 * w, 2 * h]).swap_dims(2, 3)
}

/// `[n, 2n]` matrix M with `out = in @ M` the 1-D linear x2 upsample (align_corners = true):
/// output j samples source position `j * (n - 1) / (2n - 1)`.
fn interpolation_matrix(n: usize, device: &Device) -> Tensor<2> {
    let out = 2 * n;
    let mut m = vec![0.0f32; n * out];
    for j in 0..out {
        let src = if n == 1 {
            0.0
        } else {
            j as f64 * (n - 1) as f64 / (out - 1) as f64
        };
        let lo = (src.floor() as usize).min(n - 1);
        let hi = (lo + 1).min(n - 1);
        let frac = (src - lo as f64) as f32;
        m[lo * out + j] += 1.0 - frac;
        m[hi * out + j] += frac;
    }
    Tensor::from_data(TensorData::new(m, [n, out]), device)
}

/// Attention gate (Oktay 2018): psi = sigmoid(BN(conv(ReLU(W_g g + W_x s)))), one gate value per
/// skip channel; returns s * psi. PyTorch: `att{k}.W_g`, `att{k}.W_x`, `att{k}.psi`.
#[derive(Module, Debug)]
pub struct AttentionGate {
    pub w_g: ConvBn,
    pub w_x: ConvBn,
    pub psi: ConvBn,
}

impl AttentionGate {
    pub fn new(gate_width: usize, skip_width: usize, inter: usize, device: &Device) -> Self {
        AttentionGate {
            w_g: ConvBn::new([gate_width, inter], 1, 1, true, device),
            w_x: ConvBn::new([skip_width, inter], 1, 1, true, device),
            psi: ConvBn::new([inter, skip_width], 1, 1, true, device),
        }
    }

    /// g: `[B, G, H, W]`, skip: `[B, C, H, W]` -> gated skip `[B, C, H, W]`; the joint
    /// features (`inter` channels) and the gate `psi` (one map per skip channel) go to `tap`.
    pub fn forward_tapped(&self, g: Tensor<4>, skip: Tensor<4>, tap: Tap) -> Tensor<4> {
        let from_skip = self.w_x.forward_linear(skip.clone());
        // ReLU(W_g g + W_x skip).
        let joint = self
            .w_g
            .forward_then(vec![g], vec![After::Add(from_skip), After::Relu]);
        tap("joint", &joint);
        // The multiply by the skip stays apart: the gate psi itself is tapped.
        let psi = self.psi.forward_then(vec![joint], vec![After::Sigmoid]);
        tap("psi", &psi);
        skip * psi
    }
}

impl VisitLayers for AttentionGate {
    fn visit_layers(&mut self, prefix: &str, site: LayerSite, v: &mut dyn LayerVisitor) {
        self.w_g.visit_layers(&key(prefix, "W_g"), site, v);
        self.w_x.visit_layers(&key(prefix, "W_x"), site, v);
        self.psi.visit_layers(&key(prefix, "psi"), site, v);
    }
}

/// The conv unit f of a recurrent block: depthwise 3x3 -> 1x1 -> BN -> ReLU.
/// PyTorch: `recblock{j}.conv.conv.{0,1,2}`.
#[derive(Module, Debug)]
pub struct RecurrentUnit {
    pub depthwise: Conv2d,
    pub pointwise: Conv2d,
    pub bn: Norm,
}

/// Recurrence steps of the recurrent block (t = 2: f runs three times).
pub const RECURRENCE_T: usize = 2;

impl RecurrentUnit {
    pub fn new(width: usize, device: &Device) -> Self {
        RecurrentUnit {
            depthwise: conv([width, width], 3, 1, width, true, device),
            pointwise: conv([width, width], 1, 1, 1, true, device),
            bn: norm(width, device),
        }
    }

    /// f(x), then `after`.
    fn f_then(&self, x: Tensor<4>, mut after: Vec<After>) -> Tensor<4> {
        after.insert(0, After::Relu);
        conv_then(
            &self.pointwise,
            self.bn.pending(),
            vec![self.depthwise.forward(x)],
            after,
        )
    }

    /// y = f(x); then t times y = f(x + y); plus `residual` when given.
    /// `[B, C, H, W] -> [B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<4> {
        // Each f but the last is followed by the input's add (s = x + f(s)), inside its kernel.
        let mut sum = self.f_then(x.clone(), vec![After::Add(x.clone())]);
        for _ in 1..RECURRENCE_T {
            sum = self.f_then(sum, vec![After::Add(x.clone())]);
        }
        self.f_then(sum, residual.map(After::Add).into_iter().collect())
    }

    fn visit_named(&mut self, prefix: &str, site: LayerSite, v: &mut dyn LayerVisitor) {
        let site = site.times(RECURRENCE_T + 1);
        v.conv(&key(prefix, "conv.conv.0"), &mut self.depthwise, site);
        v.conv(&key(prefix, "conv.conv.1"), &mut self.pointwise, site);
        v.foldable_norm(&key(prefix, "conv.conv.2"), &mut self.bn, site);
    }
}

/// RRCNN block: x0 = 1x1 conv(in -> out); output x0 + R2(R1(dropout(x0))).
/// PyTorch: `dec{k}.conv1x1`, `dec{k}.recblock1`, `dec{k}.recblock2`.
#[derive(Module, Debug)]
pub struct Rrcnn {
    pub conv1x1: Conv2d,
    pub rec1: RecurrentUnit,
    pub rec2: RecurrentUnit,
    pub dropout: Dropout,
}

impl Rrcnn {
    pub fn new(in_width: usize, out: usize, dropout: f64, device: &Device) -> Self {
        Rrcnn {
            conv1x1: conv([in_width, out], 1, 1, 1, true, device),
            rec1: RecurrentUnit::new(out, device),
            rec2: RecurrentUnit::new(out, device),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// The inputs are taken as their channel concatenation (never built where the kernel is
    /// fused). `[B, in, H, W] -> [B, out, H, W]`
    pub fn forward(&self, inputs: Vec<Tensor<4>>) -> Tensor<4> {
        let x0 = conv_then(&self.conv1x1, None, inputs, vec![]);
        let r1 = self.rec1.forward(self.dropout.forward(x0.clone()), None);
        // x0 + R2(R1(..)), the add inside R2's last kernel.
        self.rec2.forward(r1, Some(x0))
    }
}

impl VisitLayers for Rrcnn {
    fn visit_layers(&mut self, prefix: &str, site: LayerSite, v: &mut dyn LayerVisitor) {
        v.conv(&key(prefix, "conv1x1"), &mut self.conv1x1, site);
        self.rec1.visit_named(&key(prefix, "recblock1"), site, v);
        self.rec2.visit_named(&key(prefix, "recblock2"), site, v);
    }
}

/// One decoder level: g = UpConv(deep); gated = Att(g, skip); RRCNN(concat[gated, g]).
#[derive(Module, Debug)]
pub struct DecoderLevel {
    pub up: UpConv,
    pub att: AttentionGate,
    pub rrcnn: Rrcnn,
}

impl DecoderLevel {
    pub fn new(
        deep_width: usize,
        skip_width: usize,
        plan: &DecoderPlan,
        dropout: f64,
        device: &Device,
    ) -> Self {
        DecoderLevel {
            up: UpConv::new(deep_width, plan.up, device),
            att: AttentionGate::new(plan.up, skip_width, plan.att, device),
            rrcnn: Rrcnn::new(skip_width + plan.up, plan.rec, dropout, device),
        }
    }

    /// deep: `[B, D, H/2, W/2]`, skip: `[B, C, H, W]` -> `[B, rec, H, W]`; the upsampled
    /// features go to `tap` as `up`, the gate's as `joint` and `psi`.
    pub fn forward_tapped(&self, deep: Tensor<4>, skip: Tensor<4>, tap: Tap) -> Tensor<4> {
        let g = self.up.forward(deep);
        tap("up", &g);
        let gated = self.att.forward_tapped(g.clone(), skip, tap);
        self.rrcnn.forward(vec![gated, g])
    }

    /// Visits with the PyTorch level number `k` (2..=5).
    pub fn visit(&mut self, k: usize, site: LayerSite, v: &mut dyn LayerVisitor) {
        self.up.visit_layers(&format!("up{k}"), site, v);
        self.att.visit_layers(&format!("att{k}"), site, v);
        self.rrcnn.visit_layers(&format!("dec{k}"), site, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn matmul_upsample_matches_the_interpolate_kernel() {
        // Flex trains through the interpolate kernel (and its backward), NdArray through the
        // matmul form: values and input gradients must agree, and inference must match both.
        let host = crate::backend::cpu_device();
        let x =
            Tensor::<4>::random([2, 3, 5, 4], Distribution::Normal(0.0, 1.0), &host).into_data();
        let projection =
            Tensor::<4>::random([2, 3, 10, 8], Distribution::Normal(0.0, 1.0), &host).into_data();
        let run = |device: Device| {
            let device = device.autodiff();
            let x = Tensor::<4>::from_data(x.clone(), &device).require_grad();
            let up = upsample2x(x.clone());
            assert_eq!(up.dims(), [2, 3, 10, 8]);
            let weights = Tensor::<4>::from_data(projection.clone(), &device);
            let grads = (up.clone() * weights).sum().backward();
            let grad = x.grad(&grads).expect("x has a gradient");
            [up.into_data(), grad.into_data()].map(|d| d.try_to_vec_as::<f32>().unwrap())
        };
        let [kernel, kernel_grad] = run(crate::backend::cpu_device());
        let [matmul, matmul_grad] = run(crate::backend::ndarray_device());
        let inference = upsample2x(Tensor::<4>::from_data(x.clone(), &host))
            .into_data()
            .try_to_vec_as::<f32>()
            .unwrap();
        assert!(
            crate::analysis::max_abs_diff(&kernel, &matmul) < 1e-5,
            "values differ"
        );
        assert!(
            crate::analysis::max_abs_diff(&kernel_grad, &matmul_grad) < 1e-5,
            "gradients differ"
        );
        assert!(
            crate::analysis::max_abs_diff(&inference, &kernel) < 1e-6,
            "inference differs"
        );
    }
}

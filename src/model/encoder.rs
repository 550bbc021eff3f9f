//! ReASPP3 encoder modules: the base (DLU-Net) module and the weight-shared depthwise variants.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use super::config::{BRANCH_DILATIONS, EncoderPlan, Variant};
use super::fused::{After, conv_then};
use super::layers::{ConvBn, LayerSite, LayerVisitor, Norm, VisitLayers, conv, key, norm};

/// Where a forward pass hands intermediate outputs by name (the filter and attention views).
pub type Tap<'a> = &'a mut dyn FnMut(&str, &Tensor<4>);

fn tap_branches(parts: &[Tensor<4>], tap: Tap) {
    for (b, part) in parts.iter().enumerate() {
        tap(&format!("branch{}", b + 1), part);
    }
}

/// Branches 1-2 of the base ReASPP3: grouped 3x3 (groups = in) -> 1x1 -> BN -> ReLU = y1; then
/// 1x1 -> BN -> ReLU = y2; output y1 + y2. PyTorch: `conv{i}_1.{0,1,2}`, `conv{i}_2.{0,1}`.
#[derive(Module, Debug)]
pub struct GroupedBranch {
    pub grouped: Conv2d,
    pub pointwise: Conv2d,
    pub bn: Norm,
    pub post: ConvBn,
}

impl GroupedBranch {
    fn new(in_width: usize, mult: usize, out: usize, dilation: usize, device: &Device) -> Self {
        let mid = in_width * mult;
        GroupedBranch {
            grouped: conv([in_width, mid], 3, dilation, in_width, true, device),
            pointwise: conv([mid, out], 1, 1, 1, true, device),
            bn: norm(out, device),
            post: ConvBn::new([out, out], 1, 1, true, device),
        }
    }

    /// `[B, in, H, W] -> [B, out, H, W]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let grouped = self.grouped.forward(x);
        let y1 = conv_then(
            &self.pointwise,
            self.bn.pending(),
            vec![grouped],
            vec![After::Relu],
        );
        // y2 + y1, with y2 = ReLU(post(y1)).
        self.post
            .forward_then(vec![y1.clone()], vec![After::Relu, After::Add(y1)])
    }

    fn visit(&mut self, prefix: &str, site: LayerSite, v: &mut dyn LayerVisitor) {
        let first = format!("{prefix}_1");
        v.conv(&key(&first, "0"), &mut self.grouped, site);
        v.conv(&key(&first, "1"), &mut self.pointwise, site);
        v.foldable_norm(&key(&first, "2"), &mut self.bn, site);
        self.post.visit_layers(&format!("{prefix}_2"), site, v);
    }
}

/// Branches 3-4 of the base ReASPP3: full dilated 3x3 -> BN -> ReLU = y1; 1x1 -> BN -> ReLU = y2;
/// output y1 + y2. PyTorch: `conv{i}_1.{0,1}`, `conv{i}_2.{0,1}`.
#[derive(Module, Debug)]
pub struct DilatedBranch {
    pub dilated: ConvBn,
    pub post: ConvBn,
}

impl DilatedBranch {
    fn new(in_width: usize, out: usize, dilation: usize, device: &Device) -> Self {
        DilatedBranch {
            dilated: ConvBn::new([in_width, out], 3, dilation, true, device),
            post: ConvBn::new([out, out], 1, 1, true, device),
        }
    }

    /// `[B, in, H, W] -> [B, out, H, W]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y1 = self.dilated.forward(x);
        // y2 + y1, with y2 = ReLU(post(y1)).
        self.post
            .forward_then(vec![y1.clone()], vec![After::Relu, After::Add(y1)])
    }

    fn visit(&mut self, prefix: &str, site: LayerSite, v: &mut dyn LayerVisitor) {
        self.dilated.visit_layers(&format!("{prefix}_1"), site, v);
        self.post.visit_layers(&format!("{prefix}_2"), site, v);
    }
}

/// The base ReASPP3 (rate 3): four branches at dilations 1, 3, 6, 9 on the same input, then
/// concat[b1, b2, b3, b4, x] -> 1x1 conv -> BN -> ReLU.
#[derive(Module, Debug)]
pub struct ReAspp3 {
    pub grouped: Vec<GroupedBranch>,
    pub dilated: Vec<DilatedBranch>,
    pub fuse: ConvBn,
}

impl ReAspp3 {
    pub fn new(in_width: usize, plan: &EncoderPlan, device: &Device) -> Self {
        let b = plan.branches;
        let grouped = (0..2)
            .map(|i| {
                GroupedBranch::new(in_width, plan.dw_mult[i], b[i], BRANCH_DILATIONS[i], device)
            })
            .collect();
        let dilated = (2..4)
            .map(|i| DilatedBranch::new(in_width, b[i], BRANCH_DILATIONS[i], device))
            .collect();
        let fuse_in = b.iter().sum::<usize>() + in_width;
        ReAspp3 {
            grouped,
            dilated,
            fuse: ConvBn::new([fuse_in, plan.out], 1, 1, true, device),
        }
    }

    /// `[B, in, H, W] -> [B, out, H, W]`; each branch's output goes to `tap` (`branch1`..).
    pub fn forward_tapped(&self, x: Tensor<4>, tap: Tap) -> Tensor<4> {
        let mut parts: Vec<Tensor<4>> = Vec::with_capacity(5);
        parts.extend(self.grouped.iter().map(|b| b.forward(x.clone())));
        parts.extend(self.dilated.iter().map(|b| b.forward(x.clone())));
        tap_branches(&parts, tap);
        parts.push(x);
        self.fuse.forward_then(parts, vec![After::Relu])
    }
}

impl VisitLayers for ReAspp3 {
    fn visit_layers(&mut self, prefix: &str, site: LayerSite, v: &mut dyn LayerVisitor) {
        for (i, b) in self.grouped.iter_mut().enumerate() {
            b.visit(&key(prefix, &format!("conv{}", i + 1)), site, v);
        }
        for (i, b) in self.dilated.iter_mut().enumerate() {
            b.visit(&key(prefix, &format!("conv{}", i + 3)), site, v);
        }
        self.fuse.visit_layers(&key(prefix, "final_conv"), site, v);
    }
}

/// One branch of the shared-depthwise ReASPP3: 1x1 conv -> BN -> ReLU on the shared depthwise
/// output, plus a bias-free 1x1 residual projection of that same output.
/// PyTorch (this project's naming): `branches.{i}.pw.{0,1}`, `branches.{i}.proj`.
#[derive(Module, Debug)]
pub struct SharedBranch {
    pub pointwise: ConvBn,
    pub proj: Conv2d,
}

/// Seed 1's SharedDepthwiseBlock inside ReASPP3: one depthwise 3x3 kernel `(in, 1, 3, 3)` + bias
/// applied at dilations 1, 3, 6, 9 (or two kernels, one per dilation pair), a pointwise branch
/// per dilation, and a bias-free fuse conv over concat[b1, b2, b3, b4, x] -> BN -> ReLU.
#[derive(Module, Debug)]
pub struct SharedReAspp3 {
    pub kernels: Vec<Conv2d>,
    pub branches: Vec<SharedBranch>,
    pub fuse: ConvBn,
    pub paired: bool,
}

impl SharedReAspp3 {
    pub fn new(in_width: usize, plan: &EncoderPlan, variant: Variant, device: &Device) -> Self {
        let kernels = (0..variant.shared_kernels())
            .map(|_| conv([in_width, in_width], 3, 1, in_width, true, device))
            .collect();
        let branches = plan
            .branches
            .iter()
            .map(|&out| SharedBranch {
                pointwise: ConvBn::new([in_width, out], 1, 1, true, device),
                proj: conv([in_width, out], 1, 1, 1, false, device),
            })
            .collect();
        let fuse_in = plan.branches.iter().sum::<usize>() + in_width;
        SharedReAspp3 {
            kernels,
            branches,
            fuse: ConvBn::new([fuse_in, plan.out], 1, 1, false, device),
            paired: variant == Variant::PairedShared,
        }
    }

    /// Which shared variant this module is (one kernel, or one per dilation pair).
    pub fn variant(&self) -> Variant {
        if self.paired {
            Variant::PairedShared
        } else {
            Variant::DepthwiseShared
        }
    }

    /// The shared depthwise kernel applied at `dilation` ("same" padding).
    fn depthwise(&self, kernel: &Conv2d, x: Tensor<4>, dilation: usize) -> Tensor<4> {
        let channels = x.dims()[1];
        let options =
            ConvOptions::new([1, 1], [dilation, dilation], [dilation, dilation], channels);
        conv2d(
            x,
            kernel.weight.val(),
            kernel.bias.as_ref().map(|b| b.val()),
            options,
        )
    }

    /// `[B, in, H, W] -> [B, out, H, W]`; each branch's output goes to `tap` (`branch1`..).
    pub fn forward_tapped(&self, x: Tensor<4>, tap: Tap) -> Tensor<4> {
        let variant = self.variant();
        let mut parts: Vec<Tensor<4>> = Vec::with_capacity(5);
        for (i, branch) in self.branches.iter().enumerate() {
            let kernel = &self.kernels[variant.kernel_of_branch(i)];
            let d = self.depthwise(kernel, x.clone(), BRANCH_DILATIONS[i]);
            let projected = conv_then(&branch.proj, None, vec![d.clone()], vec![]);
            // ReLU(pointwise(d)) + proj(d).
            parts.push(
                branch
                    .pointwise
                    .forward_then(vec![d], vec![After::Relu, After::Add(projected)]),
            );
        }
        tap_branches(&parts, tap);
        parts.push(x);
        self.fuse.forward_then(parts, vec![After::Relu])
    }
}

impl VisitLayers for SharedReAspp3 {
    fn visit_layers(&mut self, prefix: &str, site: LayerSite, v: &mut dyn LayerVisitor) {
        let variant = self.variant();
        let names: &[&str] = if self.paired {
            &["dw_near", "dw_far"]
        } else {
            &["dw"]
        };
        for (k, kernel) in self.kernels.iter_mut().enumerate() {
            let uses = (0..4).filter(|&b| variant.kernel_of_branch(b) == k).count();
            v.conv(&key(prefix, names[k]), kernel, site.times(uses));
        }
        for (i, b) in self.branches.iter_mut().enumerate() {
            let p = key(prefix, &format!("branches.{i}"));
            b.pointwise.visit_layers(&key(&p, "pw"), site, v);
            v.conv(&key(&p, "proj"), &mut b.proj, site);
        }
        self.fuse.visit_layers(&key(prefix, "final_conv"), site, v);
    }
}

/// One encoder level: whichever ReASPP3 the variant asks for.
#[derive(Module, Debug)]
pub enum Encoder {
    Base(ReAspp3),
    Shared(SharedReAspp3),
}

impl Encoder {
    pub fn new(in_width: usize, plan: &EncoderPlan, variant: Variant, device: &Device) -> Self {
        match variant {
            Variant::Base => Encoder::Base(ReAspp3::new(in_width, plan, device)),
            _ => Encoder::Shared(SharedReAspp3::new(in_width, plan, variant, device)),
        }
    }

    /// `[B, in, H, W] -> [B, out, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_tapped(x, &mut |_, _| {})
    }

    /// [`Encoder::forward`], handing each branch's output to `tap` as `branch1`..`branch4`.
    pub fn forward_tapped(&self, x: Tensor<4>, tap: Tap) -> Tensor<4> {
        match self {
            Encoder::Base(m) => m.forward_tapped(x, tap),
            Encoder::Shared(m) => m.forward_tapped(x, tap),
        }
    }
}

impl VisitLayers for Encoder {
    fn visit_layers(&mut self, prefix: &str, site: LayerSite, v: &mut dyn LayerVisitor) {
        match self {
            Encoder::Base(m) => m.visit_layers(prefix, site, v),
            Encoder::Shared(m) => m.visit_layers(prefix, site, v),
        }
    }
}

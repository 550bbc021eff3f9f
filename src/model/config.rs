//! Model configuration: variant, output head and the channel plan (one width per prunable group).

use serde::{Deserialize, Serialize};

use super::ModelError;

/// Encoder widths of the published RAAGR2-Net (ReASPP3 output channels per level).
pub const FULL_ENCODER_WIDTHS: [usize; 5] = [32, 64, 128, 256, 512];
/// Input modalities in order: T1, T1ce, T2, FLAIR.
pub const INPUT_CHANNELS: usize = 4;
/// Number of 2x2 max-pools between encoder levels; H and W must be multiples of 2^4.
pub const SPATIAL_MULTIPLE: usize = 16;
/// Dilation rates of the four ReASPP3 branches (rate r = 3).
pub const BRANCH_DILATIONS: [usize; 4] = [1, 3, 6, 9];

/// How the ReASPP3 encoder modules are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// The dissertation's DLU-Net: two grouped-conv branches and two full dilated-conv branches.
    Base,
    /// Seed 1's SharedDepthwiseBlock: one depthwise 3x3 kernel shared by all four dilations.
    DepthwiseShared,
    /// One shared depthwise kernel for dilations 1 and 3, another for 6 and 9.
    PairedShared,
}

impl Variant {
    /// Number of distinct depthwise kernels per ReASPP3 module (0 for the base variant).
    pub fn shared_kernels(self) -> usize {
        match self {
            Variant::Base => 0,
            Variant::DepthwiseShared => 1,
            Variant::PairedShared => 2,
        }
    }

    /// Which shared kernel each of the four branches uses.
    pub fn kernel_of_branch(self, branch: usize) -> usize {
        match self {
            Variant::PairedShared => branch / 2,
            _ => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Base => "base",
            Variant::DepthwiseShared => "depthwise-shared",
            Variant::PairedShared => "paired-shared",
        }
    }
}

/// The output head: which channel holds which tumour region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Head {
    /// Three channels: WT, TC, ET (this project's default).
    Regions3,
    /// The reference layout: five channels where 2 = TC, 3 = ET, 4 = WT (0 and 1 unused).
    Reference5,
}

impl Head {
    pub fn classes(self) -> usize {
        match self {
            Head::Regions3 => 3,
            Head::Reference5 => 5,
        }
    }

    /// Output channel indices of [WT, TC, ET].
    pub fn region_channels(self) -> [usize; 3] {
        match self {
            Head::Regions3 => [0, 1, 2],
            Head::Reference5 => [4, 2, 3],
        }
    }

    pub fn from_classes(classes: usize) -> Option<Head> {
        match classes {
            3 => Some(Head::Regions3),
            5 => Some(Head::Reference5),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Head::Regions3 => "regions3",
            Head::Reference5 => "reference5",
        }
    }
}

/// Widths of one encoder level (a ReASPP3 module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderPlan {
    /// Output width of each of the four branches (the residual pair inside a branch shares it).
    pub branches: [usize; 4],
    /// Output width of the fuse 1x1 conv: the level's feature map, skip and next level's input.
    pub out: usize,
    /// Base variant only: output channels per input channel of the grouped 3x3 convs of branches
    /// 1 and 2 (groups = input width), so their width follows the input width when it is pruned.
    pub dw_mult: [usize; 2],
}

/// Widths of one decoder level (UpConv, attention gate, RRCNN block).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecoderPlan {
    /// Output width of the UpConv (3x3 conv after the bilinear upsample), the gate signal g.
    pub up: usize,
    /// F_int: the attention gate's intermediate width.
    pub att: usize,
    /// Width of the RRCNN block (its 1x1 input conv, both recurrent units and the residual).
    pub rec: usize,
}

/// One width per prunable channel group. `encoders[i]` is PyTorch's `enc{i+1}`; `decoders[i]` is
/// PyTorch's `up{i+2}`/`att{i+2}`/`dec{i+2}`, taking its skip from `encoders[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPlan {
    pub encoders: Vec<EncoderPlan>,
    pub decoders: Vec<DecoderPlan>,
}

impl ChannelPlan {
    /// The unpruned plan for the given five encoder widths, with the reference's rules
    /// (branches = out, F_int = C/2, decoder level width = skip width).
    pub fn from_encoder_widths(widths: [usize; 5]) -> ChannelPlan {
        let mut in_width = INPUT_CHANNELS;
        let encoders = widths
            .iter()
            .map(|&out| {
                let mult = (out / in_width).max(1);
                in_width = out;
                EncoderPlan {
                    branches: [out; 4],
                    out,
                    dw_mult: [mult, mult],
                }
            })
            .collect();
        let decoders = widths[..4]
            .iter()
            .map(|&c| DecoderPlan {
                up: c,
                att: (c / 2).max(1),
                rec: c,
            })
            .collect();
        ChannelPlan { encoders, decoders }
    }

    /// The full-width plan scaled by `multiplier` (e.g. 0.25 gives encoder widths 8..128).
    pub fn with_width_multiplier(multiplier: f64) -> ChannelPlan {
        let widths = FULL_ENCODER_WIDTHS.map(|w| ((w as f64 * multiplier).round() as usize).max(1));
        ChannelPlan::from_encoder_widths(widths)
    }

    /// Input width of encoder level `level`.
    pub fn encoder_in(&self, level: usize) -> usize {
        if level == 0 {
            INPUT_CHANNELS
        } else {
            self.encoders[level - 1].out
        }
    }

    /// Width of the deeper feature entering decoder level `level`.
    pub fn decoder_deep_in(&self, level: usize) -> usize {
        if level + 1 == self.decoders.len() {
            self.encoders[level + 1].out
        } else {
            self.decoders[level + 1].rec
        }
    }

    /// Every prunable group as (name, width), in network order.
    pub fn groups(&self) -> Vec<(String, usize)> {
        let mut groups = Vec::new();
        for (i, e) in self.encoders.iter().enumerate() {
            for (b, &w) in e.branches.iter().enumerate() {
                groups.push((format!("enc{}.branch{}", i + 1, b + 1), w));
            }
            groups.push((format!("enc{}.out", i + 1), e.out));
        }
        for (i, d) in self.decoders.iter().enumerate().rev() {
            groups.push((format!("up{}", i + 2), d.up));
            groups.push((format!("att{}", i + 2), d.att));
            groups.push((format!("dec{}", i + 2), d.rec));
        }
        groups
    }

    /// This plan with every group's width replaced, `widths` in [`Self::groups`] order.
    pub fn with_group_widths(&self, widths: &[usize]) -> ChannelPlan {
        assert_eq!(widths.len(), self.groups().len(), "one width per group");
        let mut plan = self.clone();
        let mut next = widths.iter().copied();
        let mut take = || next.next().expect("length checked above");
        for e in plan.encoders.iter_mut() {
            for b in e.branches.iter_mut() {
                *b = take();
            }
            e.out = take();
        }
        for d in plan.decoders.iter_mut().rev() {
            d.up = take();
            d.att = take();
            d.rec = take();
        }
        plan
    }

    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        if self.encoders.len() != 5 || self.decoders.len() != 4 {
            return Err(ModelError::InvalidConfig(format!(
                "the channel plan needs 5 encoder and 4 decoder levels, got {} and {}",
                self.encoders.len(),
                self.decoders.len()
            )));
        }
        for (name, width) in self.groups() {
            if width == 0 {
                return Err(ModelError::InvalidConfig(format!(
                    "channel group {name} has zero channels; every group needs at least one"
                )));
            }
        }
        for (i, e) in self.encoders.iter().enumerate() {
            if e.dw_mult.contains(&0) {
                return Err(ModelError::InvalidConfig(format!(
                    "enc{}: grouped-conv multiplier must be at least 1",
                    i + 1
                )));
            }
        }
        Ok(())
    }
}

/// Everything needed to build the network; saved as JSON inside every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub variant: Variant,
    pub head: Head,
    pub plan: ChannelPlan,
    /// Dropout probability inside the RRCNN blocks (training only).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
}

fn default_dropout() -> f64 {
    0.2
}

impl ModelConfig {
    pub fn new(variant: Variant, head: Head, plan: ChannelPlan) -> ModelConfig {
        ModelConfig {
            variant,
            head,
            plan,
            dropout: default_dropout(),
        }
    }

    /// Full-width RAAGR2-Net (encoder widths 32..512).
    pub fn full(variant: Variant, head: Head) -> ModelConfig {
        ModelConfig::new(
            variant,
            head,
            ChannelPlan::from_encoder_widths(FULL_ENCODER_WIDTHS),
        )
    }

    /// Full width scaled by a multiplier (0.25 gives the CPU-sized 8..128 model).
    pub fn with_width_multiplier(variant: Variant, head: Head, multiplier: f64) -> ModelConfig {
        ModelConfig::new(
            variant,
            head,
            ChannelPlan::with_width_multiplier(multiplier),
        )
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a model config always serialises")
    }

    /// Refuses a plan with an empty group and a dropout outside [0, 1).
    pub fn validate(&self) -> Result<(), ModelError> {
        self.plan.validate()?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::InvalidConfig(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }

    pub fn from_json(json: &str) -> Result<ModelConfig, ModelError> {
        let config: ModelConfig = serde_json::from_str(json)
            .map_err(|e| ModelError::InvalidConfig(format!("model config JSON: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// A short human description, e.g. "base, 32/64/128/256/512, 5 outputs".
    pub fn describe(&self) -> String {
        let widths: Vec<String> = self
            .plan
            .encoders
            .iter()
            .map(|e| e.out.to_string())
            .collect();
        let full = self.plan == ChannelPlan::from_encoder_widths(self.encoder_widths());
        format!(
            "{}, encoder {}{}, {} outputs ({})",
            self.variant.name(),
            widths.join("/"),
            if full { "" } else { " (pruned plan)" },
            self.head.classes(),
            self.head.name()
        )
    }

    pub fn encoder_widths(&self) -> [usize; 5] {
        std::array::from_fn(|i| self.plan.encoders[i].out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarter_width_matches_reference_widths() {
        let plan = ChannelPlan::with_width_multiplier(0.25);
        let widths: Vec<usize> = plan.encoders.iter().map(|e| e.out).collect();
        assert_eq!(widths, vec![8, 16, 32, 64, 128]);
        assert_eq!(plan.encoders[0].dw_mult, [2, 2]);
        assert_eq!(plan.decoders[3].att, 32);
    }

    #[test]
    fn zero_width_group_is_refused_with_its_name() {
        let mut config = ModelConfig::full(Variant::Base, Head::Regions3);
        config.plan.decoders[1].att = 0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("att3"), "{err}");
    }

    #[test]
    fn config_round_trips_through_json() {
        let mut config = ModelConfig::full(Variant::PairedShared, Head::Reference5);
        config.plan.encoders[2].branches[1] = 17;
        let back = ModelConfig::from_json(&config.to_json()).unwrap();
        assert_eq!(back, config);
    }
}

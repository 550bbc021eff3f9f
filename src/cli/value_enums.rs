//! The command-line spellings and help of the domain's enums: clap stays in the CLI layer, the
//! model, data, pruning and backend modules know nothing of it.

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::backend::DeviceChoice;
use crate::classify::prune::Scope;
use crate::classify::structured::ChannelCriterion;
use crate::classify::{Architecture, HeadKind};
use crate::data::LabelConvention;
use crate::data::synth::SynthKind;
use crate::model::{Head, Variant};
use crate::prune::{StructuredMethod, UnstructuredMethod};

/// `impl ValueEnum` for a domain enum: each variant's spelling on the command line and its help.
macro_rules! value_enum {
    ($ty:ident { $($variant:ident => $name:literal: $help:literal,)* }) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($ty::$variant),*]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $($ty::$variant => PossibleValue::new($name).help($help),)*
                })
            }
        }
    };
}

value_enum!(Variant {
    Base => "base": "The dissertation's DLU-Net: two grouped-conv branches and two full dilated-conv branches",
    DepthwiseShared => "depthwise-shared": "One depthwise 3x3 kernel shared by all four dilations (SharedDepthwiseBlock)",
    PairedShared => "paired-shared": "One shared depthwise kernel for dilations 1 and 3, another for 6 and 9",
});

value_enum!(Head {
    Regions3 => "regions3": "Three channels: WT, TC, ET (this project's default)",
    Reference5 => "reference5": "The reference layout: five channels where 2 = TC, 3 = ET, 4 = WT (0 and 1 unused)",
});

value_enum!(StructuredMethod {
    L2 => "l2": "Filter L2 norm of the producing convs",
    BnGamma => "bn-gamma": "|gamma| of the batch norms (network slimming)",
    GroupL2 => "group-l2": "L2 norm over all coupled parameters (DepGraph)",
});

value_enum!(UnstructuredMethod {
    L1 => "l1": "|w|, the same share removed from every conv layer",
    L1Global => "l1-global": "|w|, one threshold over all conv layers",
    Snip => "snip": "SNIP (Lee et al. 2019): |dL/dw * w| from one batch, one threshold over all conv layers",
});

value_enum!(SynthKind {
    Realistic => "realistic": "Real brain anatomy (ICBM 2009a template, warped per case), grown tumours, artefacts",
    Cartoon => "cartoon": "Lumpy ellipsoids: easy to segment, quick to make (tests, demos of the plumbing)",
});

value_enum!(LabelConvention {
    Brats2021 => "brats2021": "BraTS 2019-2021: 1 NCR/NET, 2 ED, 4 ET",
    Brats2023 => "brats2023": "BraTS 2023+: 1 NCR, 2 ED, 3 ET; 4 (2024 post-treatment: resection cavity) is background",
});

value_enum!(DeviceChoice {
    Cpu => "cpu": "The fastest CPU backend (Flex)",
    Flex => "flex": "burn's Flex backend (pure Rust CPU)",
    Ndarray => "ndarray": "burn's NdArray backend (CPU; deprecated upstream, kept for comparison)",
    Gpu => "gpu": "wgpu (Vulkan, Metal, DX12 or GL); an error when no adapter exists",
    Auto => "auto": "wgpu when an adapter exists, else the CPU",
});

value_enum!(Architecture {
    Vgg11 => "vgg11": "VGG11 (configuration A), no batch norm",
    Vgg11Bn => "vgg11-bn": "VGG11 with batch norm after every convolution",
    Vgg16 => "vgg16": "VGG16 (configuration D), no batch norm",
    Vgg16Bn => "vgg16-bn": "VGG16 with batch norm after every convolution",
    Densenet169 => "densenet169": "DenseNet169: growth 32, blocks 6-12-32-32",
});

value_enum!(HeadKind {
    Imagenet => "imagenet": "torchvision's head: VGG pools to 7x7 before 4096-wide hidden layers",
    Cifar => "cifar": "For 32x32 inputs: VGG pools globally to 1x1 before 512-wide hidden layers",
});

value_enum!(ChannelCriterion {
    L2 => "l2": "L2 norm of each channel's filter",
    BnGamma => "bn-gamma": "|gamma| of each channel's batch norm (network slimming)",
});

value_enum!(Scope {
    Global => "global": "One L1 threshold over every conv and linear weight",
    PerLayer => "per-layer": "Every layer loses the same share",
});

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line spells each value as the files and JSON the project writes do (serde's
    /// kebab-case), so a value read back from a report can be typed again.
    #[test]
    fn spellings_match_the_serialised_names() {
        fn check<T: ValueEnum + serde::Serialize>() {
            for value in T::value_variants() {
                let json = serde_json::to_value(value).unwrap();
                let name = value.to_possible_value().unwrap().get_name().to_string();
                assert_eq!(json.as_str(), Some(name.as_str()));
            }
        }
        check::<Variant>();
        check::<Head>();
        check::<StructuredMethod>();
        check::<UnstructuredMethod>();
        check::<SynthKind>();
        check::<crate::classify::Architecture>();
        check::<crate::classify::HeadKind>();
        check::<crate::classify::prune::Scope>();
        check::<ChannelCriterion>();
        check::<LabelConvention>();
        check::<DeviceChoice>();
    }
}

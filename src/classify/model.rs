//! The classifiers as one model type: their configs (architecture, head, width), the network
//! either kind builds, parameter counts, and checkpoints (safetensors + config JSON, masks kept).

use std::collections::HashMap;

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::densenet::{DenseNet, DenseNetConfig};
use super::vgg::{VGG11_STAGES, VGG16_STAGES, Vgg, VggConfig};
use crate::model::checkpoint::{CONFIG_METADATA_KEY, Checkpoint, StoredConfig};
use crate::model::layers::{LayerSite, LayerVisitor, VisitLayers};
use crate::model::weights::expected_shapes;
use crate::model::{ModelError, WeightMap};

/// Metadata key of a classifier's config inside its checkpoint.
pub const CLASSIFIER_METADATA_KEY: &str = "raagr2.classifier";

/// The architectures of the study, named as torchvision names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    Vgg11,
    Vgg11Bn,
    Vgg16,
    Vgg16Bn,
    Densenet169,
}

impl Architecture {
    pub const ALL: [Architecture; 5] = [
        Architecture::Vgg11,
        Architecture::Vgg11Bn,
        Architecture::Vgg16,
        Architecture::Vgg16Bn,
        Architecture::Densenet169,
    ];

    /// torchvision's name (`vgg11_bn`, `densenet169`).
    pub fn torchvision_name(self) -> &'static str {
        match self {
            Architecture::Vgg11 => "vgg11",
            Architecture::Vgg11Bn => "vgg11_bn",
            Architecture::Vgg16 => "vgg16",
            Architecture::Vgg16Bn => "vgg16_bn",
            Architecture::Densenet169 => "densenet169",
        }
    }
}

/// Which classifier head: torchvision's for 224x224 ImageNet images, or the 32x32 CIFAR one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// VGG: 7x7 average pool, 4096-wide hidden layers (DenseNet pools globally either way).
    Imagenet,
    /// VGG: global average pool to 1x1, 512-wide hidden layers.
    Cifar,
}

/// A classifier's full shape; its JSON is stored in every classifier checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "kebab-case")]
pub enum ClassifierConfig {
    Vgg(VggConfig),
    Densenet(DenseNetConfig),
}

impl ClassifierConfig {
    /// `architecture` with `head` and `classes`, every width divided by `width_divisor` (1: the
    /// published widths).
    pub fn new(
        architecture: Architecture,
        head: HeadKind,
        classes: usize,
        width_divisor: usize,
    ) -> ClassifierConfig {
        let vgg = |stages: &[&[usize]], bn: bool| {
            let config = match head {
                HeadKind::Imagenet => VggConfig::imagenet(stages, bn, classes),
                HeadKind::Cifar => VggConfig::cifar(stages, bn, classes),
            };
            ClassifierConfig::Vgg(config.narrowed(width_divisor))
        };
        match architecture {
            Architecture::Vgg11 => vgg(&VGG11_STAGES, false),
            Architecture::Vgg11Bn => vgg(&VGG11_STAGES, true),
            Architecture::Vgg16 => vgg(&VGG16_STAGES, false),
            Architecture::Vgg16Bn => vgg(&VGG16_STAGES, true),
            Architecture::Densenet169 => ClassifierConfig::Densenet(
                DenseNetConfig::densenet169(classes).narrowed(width_divisor),
            ),
        }
    }

    pub fn classes(&self) -> usize {
        match self {
            ClassifierConfig::Vgg(c) => c.classes,
            ClassifierConfig::Densenet(c) => c.classes,
        }
    }

    /// Smallest input side the network accepts (five halvings must leave at least one pixel).
    pub fn min_side(&self) -> usize {
        32
    }

    pub fn init(&self, device: &Device) -> Classifier {
        match self {
            ClassifierConfig::Vgg(c) => Classifier::Vgg(c.init(device)),
            ClassifierConfig::Densenet(c) => Classifier::Densenet(c.init(device)),
        }
    }

    /// Learnable parameters (conv and linear weights and biases, batch norm scales and shifts;
    /// not the running statistics), counted from shapes without initialising any weight.
    pub fn parameter_count(&self) -> usize {
        let model = self.init(&crate::backend::cpu_device());
        expected_shapes(&model)
            .iter()
            .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var"))
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a config serialises")
    }
}

/// A VGG or a DenseNet: `[B, 3, H, W]` images to `[B, classes]` logits.
// A process holds a handful of models at most: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Classifier {
    Vgg(Vgg),
    Densenet(DenseNet),
}

impl crate::timing::TimedForward for Classifier {
    const INPUT_CHANNELS: usize = 3;

    fn forward_read_back(&self, x: Tensor<4>) {
        let _ = self.forward(x).into_data();
    }
}

impl Classifier {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Classifier::Vgg(m) => m.forward(x),
            Classifier::Densenet(m) => m.forward(x),
        }
    }

    /// The forward pass, handing each stage's (VGG) or block's (DenseNet) output to `tap` by
    /// name, for layer similarity.
    pub fn forward_taps(&self, x: Tensor<4>, tap: &mut dyn FnMut(&str, &Tensor<4>)) -> Tensor<2> {
        match self {
            Classifier::Vgg(m) => m.forward_taps(x, tap),
            Classifier::Densenet(m) => m.forward_taps(x, tap),
        }
    }
}

impl Classifier {
    /// Every tapped layer's output on `x`, by name, in forward order (for layer similarity).
    pub fn layer_outputs(&self, x: Tensor<4>) -> Vec<(String, Tensor<4>)> {
        let mut outputs = Vec::new();
        self.forward_taps(x, &mut |name, t| {
            outputs.push((name.to_string(), t.clone()))
        });
        outputs
    }
}

impl VisitLayers for Classifier {
    fn visit_layers(&mut self, prefix: &str, site: LayerSite, visitor: &mut dyn LayerVisitor) {
        match self {
            Classifier::Vgg(m) => m.visit_layers(prefix, site, visitor),
            Classifier::Densenet(m) => m.visit_layers(prefix, site, visitor),
        }
    }
}

/// A classifier's config, weights (torchvision key names), masks and metadata.
pub type ClassifierCheckpoint = Checkpoint<ClassifierConfig>;

impl StoredConfig for ClassifierConfig {
    type Model = Classifier;
    const METADATA_KEY: &'static str = CLASSIFIER_METADATA_KEY;

    fn validate(&self) -> Result<(), ModelError> {
        if self.classes() < 2 {
            return Err(ModelError::InvalidConfig(format!(
                "a classifier needs at least 2 classes, not {}",
                self.classes()
            )));
        }
        match self {
            ClassifierConfig::Vgg(c) => c.validate(),
            ClassifierConfig::Densenet(c) => c.validate(),
        }
        .map_err(ModelError::InvalidConfig)
    }

    fn init(&self, device: &Device) -> Classifier {
        ClassifierConfig::init(self, device)
    }

    /// The config, checked against the tensors (keys, shapes) before any weight is loaded.
    fn from_stored(json: &str, weights: &WeightMap) -> Result<ClassifierConfig, String> {
        let config: ClassifierConfig =
            serde_json::from_str(json).map_err(|e| format!("unreadable classifier config: {e}"))?;
        config.validate().map_err(|e| e.to_string())?;
        check_shapes(&config, weights).map_err(|e| e.to_string())?;
        Ok(config)
    }

    fn missing_reason(metadata: &HashMap<String, String>) -> String {
        if metadata.contains_key(CONFIG_METADATA_KEY) {
            "this is a segmentation (RAAGR2-Net) checkpoint, not a classifier".to_string()
        } else {
            "no classifier config in its metadata (for torchvision weights, use `classify \
             import`)"
                .to_string()
        }
    }
}

/// Every key `config`'s model needs is present in `weights` with its shape, and no other key.
fn check_shapes(config: &ClassifierConfig, weights: &WeightMap) -> Result<(), ModelError> {
    let model = config.init(&crate::backend::cpu_device());
    let expected = expected_shapes(&model);
    for (key, shape) in &expected {
        match weights.get(key) {
            None => {
                return Err(ModelError::MissingKey {
                    key: key.clone(),
                    expected: shape.clone(),
                });
            }
            Some(t) if &t.shape != shape => {
                return Err(ModelError::ShapeMismatch {
                    key: key.clone(),
                    found: t.shape.clone(),
                    expected: shape.clone(),
                });
            }
            Some(_) => {}
        }
    }
    let unexpected: Vec<String> = weights
        .keys()
        .filter(|k| !expected.contains_key(*k) && !crate::model::weights::is_ignored_key(k))
        .cloned()
        .collect();
    if unexpected.is_empty() {
        Ok(())
    } else {
        Err(ModelError::UnexpectedKeys(unexpected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_torchvision() {
        let count = |a, h| ClassifierConfig::new(a, h, 1000, 1).parameter_count();
        assert_eq!(count(Architecture::Vgg16, HeadKind::Imagenet), 138_357_544);
        assert_eq!(count(Architecture::Vgg11, HeadKind::Imagenet), 132_863_336);
        assert_eq!(
            count(Architecture::Vgg16Bn, HeadKind::Imagenet),
            138_365_992
        );
        assert_eq!(
            count(Architecture::Vgg11Bn, HeadKind::Imagenet),
            132_868_840
        );
        assert_eq!(
            count(Architecture::Densenet169, HeadKind::Imagenet),
            14_149_480
        );
    }

    #[test]
    fn the_cifar_head_pools_to_one_pixel_and_is_512_wide() {
        let cifar = |a| ClassifierConfig::new(a, HeadKind::Cifar, 100, 1).parameter_count();
        // VGG16 features 14,714,688 + 512*512+512 + 512*512+512 + 512*100+100.
        assert_eq!(cifar(Architecture::Vgg16), 15_291_300);
        assert_eq!(cifar(Architecture::Vgg11Bn), 9_802_596);
        // DenseNet already pools globally: only the class count changes.
        assert_eq!(
            cifar(Architecture::Densenet169),
            14_149_480 - 1664 * 900 - 900
        );
    }

    #[test]
    fn a_segmentation_checkpoint_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.safetensors");
        std::fs::write(
            &path,
            crate::defaults::default_checkpoint().to_bytes().unwrap(),
        )
        .unwrap();
        let err = ClassifierCheckpoint::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("seg.safetensors") && err.contains("segmentation"),
            "{err}"
        );
    }
}

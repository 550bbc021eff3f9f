//! torchvision state_dicts (saved as safetensors; `tools/torchvision_to_safetensors.py` converts
//! a `.pth`) into classifier checkpoints, the architecture read from the tensors' names and
//! shapes.

use std::collections::BTreeMap;
use std::path::Path;

use super::densenet::DenseNetConfig;
use super::model::{ClassifierCheckpoint, ClassifierConfig};
use super::vgg::VggConfig;
use crate::model::checkpoint::{read_file, tensors_from_bytes};
use crate::model::weights::is_ignored_key;
use crate::model::{MaskMap, ModelError, WeightMap};

/// Reads a torchvision state_dict file and checks it builds (keys, shapes, finite values).
pub fn import_torchvision(path: &Path) -> Result<ClassifierCheckpoint, ModelError> {
    let bytes = read_file(path)?;
    let (weights, _, _) = tensors_from_bytes(path, &bytes)?;
    import_state_dict(weights).map_err(|e| ModelError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A torchvision VGG or DenseNet state_dict as a checkpoint, built once on the CPU to check it.
pub fn import_state_dict(weights: WeightMap) -> Result<ClassifierCheckpoint, ModelError> {
    let weights: WeightMap = weights
        .into_iter()
        .filter(|(k, _)| !is_ignored_key(k))
        .collect();
    let config = infer_config(&weights)?;
    let checkpoint = ClassifierCheckpoint {
        config,
        weights,
        masks: MaskMap::new(),
        metadata: BTreeMap::new(),
    };
    checkpoint.build(&crate::backend::cpu_device())?;
    Ok(checkpoint)
}

/// The network a state_dict holds: a VGG (`features.N.weight`) or a DenseNet
/// (`features.conv0.weight`).
pub fn infer_config(weights: &WeightMap) -> Result<ClassifierConfig, ModelError> {
    if weights.contains_key("features.conv0.weight") {
        infer_densenet(weights).map(ClassifierConfig::Densenet)
    } else if weights.contains_key("features.0.weight") {
        infer_vgg(weights).map(ClassifierConfig::Vgg)
    } else {
        Err(ModelError::InvalidConfig(
            "neither a torchvision VGG (features.0.weight) nor a DenseNet (features.conv0.weight)"
                .into(),
        ))
    }
}

fn shape<'a>(weights: &'a WeightMap, key: &str, rank: usize) -> Result<&'a [usize], ModelError> {
    match weights.get(key) {
        Some(t) if t.shape.len() == rank => Ok(&t.shape),
        Some(t) => Err(ModelError::ShapeMismatch {
            key: key.to_string(),
            found: t.shape.clone(),
            expected: vec![0; rank],
        }),
        None => Err(ModelError::MissingKey {
            key: key.to_string(),
            expected: vec![],
        }),
    }
}

/// VGG: the conv widths from the `features.N` kernels, batch norm from `running_mean` right after
/// a conv, the pools from the gaps in the numbering (a pool is a module without weights).
fn infer_vgg(weights: &WeightMap) -> Result<VggConfig, ModelError> {
    let mut convs: Vec<(usize, usize)> = weights
        .iter()
        .filter_map(|(k, t)| {
            let index = k.strip_prefix("features.")?.strip_suffix(".weight")?;
            (t.shape.len() == 4).then(|| index.parse().ok().map(|i| (i, t.shape[0])))?
        })
        .collect();
    convs.sort();
    if convs.is_empty() {
        return Err(ModelError::InvalidConfig(
            "features.0.weight is not a 4-D convolution kernel: not a torchvision VGG".into(),
        ));
    }
    let batch_norm = weights.contains_key(&format!("features.{}.running_mean", convs[0].0 + 1));
    // conv, [bn], relu: the next conv follows directly unless a pool sits between.
    let step = if batch_norm { 3 } else { 2 };
    let mut stages = vec![Vec::new()];
    for (n, &(index, width)) in convs.iter().enumerate() {
        stages.last_mut().expect("one stage").push(width);
        match convs.get(n + 1) {
            Some(&(next, _)) if next == index + step => {}
            Some(&(next, _)) if next == index + step + 1 => stages.push(Vec::new()),
            Some(&(next, _)) => {
                return Err(ModelError::InvalidConfig(format!(
                    "features.{index} is followed by features.{next}: not a torchvision VGG layout"
                )));
            }
            None => {}
        }
    }
    let first = shape(weights, "classifier.0.weight", 2)?;
    let last_width = convs.last().map(|c| c.1).unwrap_or(1);
    let pooled_side = (first[1] as f64 / last_width as f64).sqrt().round() as usize;
    if pooled_side * pooled_side * last_width != first[1] {
        return Err(ModelError::InvalidConfig(format!(
            "classifier.0 reads {} features, not {last_width} channels on a square grid",
            first[1]
        )));
    }
    Ok(VggConfig {
        stages,
        batch_norm,
        pooled_side,
        hidden: first[0],
        classes: shape(weights, "classifier.6.weight", 2)?[0],
        dropout: 0.5,
    })
}

/// DenseNet: stem width from `conv0`, growth and bottleneck from the first layer, the layers per
/// block from the highest `denselayerN` of each block.
fn infer_densenet(weights: &WeightMap) -> Result<DenseNetConfig, ModelError> {
    let init_features = shape(weights, "features.conv0.weight", 4)?[0];
    let first = "features.denseblock1.denselayer1";
    let growth = shape(weights, &format!("{first}.conv2.weight"), 4)?[0];
    let bottleneck = shape(weights, &format!("{first}.conv1.weight"), 4)?[0];
    let mut blocks = Vec::new();
    loop {
        let prefix = format!("features.denseblock{}.denselayer", blocks.len() + 1);
        let layers = weights
            .keys()
            .filter_map(|k| {
                k.strip_prefix(&prefix)?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .max();
        match layers {
            Some(n) => blocks.push(n),
            None => break,
        }
    }
    Ok(DenseNetConfig {
        growth,
        blocks,
        init_features,
        bn_size: bottleneck / growth.max(1),
        classes: shape(weights, "classifier.weight", 2)?[0],
    })
}

//! Checkpoint files: the project's own for any model config (safetensors weights + config JSON
//! in its metadata), and PyTorch state_dicts saved as safetensors, with the segmentation config
//! given or inferred from shapes.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use burn::prelude::*;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::Serialize;

use super::ModelError;
use super::config::{ChannelPlan, DecoderPlan, EncoderPlan, Head, ModelConfig, Variant};
use super::layers::VisitLayers;
use super::net::Raagr2Net;
use super::weights::{
    HostMask, HostTensor, MaskMap, WeightMap, apply_masks, export_weights, import_weights,
};

/// Metadata key holding the model config JSON inside our checkpoints.
pub const CONFIG_METADATA_KEY: &str = "raagr2.config";
/// Metadata key naming the file format and its version.
pub const FORMAT_METADATA_KEY: &str = "format";
pub const FORMAT_NAME: &str = "raagr2-lab-checkpoint/1";
/// Prefix of the u8 tensors (1 = kept) that store unstructured pruning masks, followed by the
/// key of the weight they cover.
pub const MASK_TENSOR_PREFIX: &str = "raagr2.mask.";

/// A model config a checkpoint carries beside its weights: stored as JSON under its own
/// metadata key, checked against the stored tensors on load, and the model it builds. The
/// segmentation network's config and the classifiers' each implement it, so that saving,
/// loading and masks are written once, in [`Checkpoint`].
pub trait StoredConfig: Clone + Serialize {
    type Model: VisitLayers + Clone;
    /// Metadata key of the config JSON.
    const METADATA_KEY: &'static str;
    fn validate(&self) -> Result<(), ModelError>;
    /// The model with fresh weights.
    fn init(&self, device: &Device) -> Self::Model;
    /// The config in `json`, checked against the stored `weights`; the reason when it is none.
    fn from_stored(json: &str, weights: &WeightMap) -> Result<Self, String>;
    /// Why a file without this config's key is refused (`metadata`: what it holds instead).
    fn missing_reason(metadata: &HashMap<String, String>) -> String;
}

/// A model's config together with its weights, as stored on disk (the segmentation network's
/// unless another config is named).
#[derive(Debug, Clone)]
pub struct Checkpoint<C = ModelConfig> {
    pub config: C,
    pub weights: WeightMap,
    /// Further metadata entries kept with the weights (e.g. training state), by key.
    pub metadata: BTreeMap<String, String>,
    /// Unstructured pruning masks (empty for a dense or structurally pruned model); the
    /// weights they mask out are zero.
    pub masks: MaskMap,
}

impl<C: StoredConfig> Checkpoint<C> {
    pub fn from_model(config: &C, model: &C::Model) -> Checkpoint<C> {
        Checkpoint::new(config.clone(), export_weights(model))
    }

    /// A checkpoint of (config, weights) with no metadata and no masks.
    pub fn new(config: C, weights: WeightMap) -> Checkpoint<C> {
        Checkpoint {
            config,
            weights,
            metadata: BTreeMap::new(),
            masks: MaskMap::new(),
        }
    }

    /// Share of the prunable (masked) weights that the masks remove; 0 without masks.
    pub fn mask_sparsity(&self) -> f64 {
        crate::model::weights::mask_sparsity(&self.masks)
    }

    /// Builds the model on `device` and loads the weights, checking every key and shape.
    pub fn build(&self, device: &Device) -> Result<C::Model, ModelError> {
        self.config.validate()?;
        import_weights(self.config.init(device), &self.weights, device)
    }

    /// The checkpoint as safetensors bytes (what [`Checkpoint::save`] writes).
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        self.to_bytes_as(Storage::F32)
    }

    /// The checkpoint as safetensors bytes with its weights stored in `storage`.
    pub fn to_bytes_as(&self, storage: Storage) -> Result<Vec<u8>, ModelError> {
        let mut metadata: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        let json = serde_json::to_string(&self.config).expect("a config serialises");
        metadata.insert(C::METADATA_KEY.to_string(), json);
        tensors_to_bytes(&self.weights, &self.masks, metadata, storage)
    }

    /// Writes the checkpoint atomically: a temporary file beside the target, then a rename, so
    /// an interrupted save never leaves a half-written checkpoint in place of a good one.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        self.save_as(path, Storage::F32)
    }

    /// [`Checkpoint::save`] with the weights stored in `storage`.
    pub fn save_as(&self, path: &Path, storage: Storage) -> Result<(), ModelError> {
        write_atomically(path, &self.to_bytes_as(storage)?)
    }

    /// Reads a checkpoint; its config is checked against its tensors before it is returned.
    pub fn load(path: &Path) -> Result<Checkpoint<C>, ModelError> {
        Checkpoint::from_bytes(path, &read_file(path)?)
    }

    /// Parses checkpoint bytes (e.g. an embedded asset); `path` only names the source in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Checkpoint<C>, ModelError> {
        let bad = |reason: String| ModelError::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let (weights, masks, mut metadata) = tensors_from_bytes(path, bytes)?;
        let Some(json) = metadata.remove(C::METADATA_KEY) else {
            return Err(bad(C::missing_reason(&metadata)));
        };
        let config = C::from_stored(&json, &weights).map_err(bad)?;
        metadata.remove(FORMAT_METADATA_KEY);
        Ok(Checkpoint {
            config,
            weights,
            metadata: metadata.into_iter().collect(),
            masks,
        })
    }
}

impl StoredConfig for ModelConfig {
    type Model = Raagr2Net;
    const METADATA_KEY: &'static str = CONFIG_METADATA_KEY;

    fn validate(&self) -> Result<(), ModelError> {
        ModelConfig::validate(self)
    }

    fn init(&self, device: &Device) -> Raagr2Net {
        ModelConfig::init(self, device)
    }

    fn from_stored(json: &str, weights: &WeightMap) -> Result<ModelConfig, String> {
        let config = ModelConfig::from_json(json).map_err(|e| e.to_string())?;
        check_config_matches_tensors(&config, weights)?;
        Ok(config)
    }

    fn missing_reason(metadata: &HashMap<String, String>) -> String {
        // Another model of the project (the classifiers) keeps its config under its own key.
        match metadata.keys().find(|k| k.starts_with("raagr2.")) {
            Some(key) => format!(
                "not a RAAGR2-Net checkpoint: its metadata holds {key} (a classifier \
                 checkpoint: the `classify` commands read it)"
            ),
            None => "no model config in its metadata: this is not a raagr2-lab checkpoint \
                     (for a PyTorch state_dict, use `raagr2-lab import`)"
                .into(),
        }
    }
}

/// How a checkpoint's float weights are stored on disk. Every reader turns them back into f32,
/// so half storage only halves the file (and rounds each weight to 11 significant bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    #[default]
    F32,
    /// IEEE half precision: what the shipped study models use.
    F16,
}

impl Storage {
    pub(crate) fn dtype(self) -> Dtype {
        match self {
            Storage::F32 => Dtype::F32,
            Storage::F16 => Dtype::F16,
        }
    }

    pub(crate) fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Storage::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Storage::F16 => values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        }
    }
}

/// Weights, masks (as u8 tensors under [`MASK_TENSOR_PREFIX`]) and metadata as safetensors
/// bytes; the format name is added to the metadata. Every checkpoint kind of the project is
/// written through this.
pub fn tensors_to_bytes(
    weights: &WeightMap,
    masks: &MaskMap,
    mut metadata: HashMap<String, String>,
    storage: Storage,
) -> Result<Vec<u8>, ModelError> {
    let floats = weights.iter().map(|(k, t)| {
        (
            k.clone(),
            storage.dtype(),
            storage.encode(&t.values),
            &t.shape,
        )
    });
    let masks = masks.iter().map(|(k, m)| {
        let data = m.keep.iter().map(|keep| u8::from(*keep)).collect();
        (
            format!("{MASK_TENSOR_PREFIX}{k}"),
            Dtype::U8,
            data,
            &m.shape,
        )
    });
    let tensors: Vec<StoredTensor> = floats.chain(masks).collect();
    metadata.insert(FORMAT_METADATA_KEY.to_string(), FORMAT_NAME.to_string());
    serialize_tensors(&tensors, metadata)
}

/// One tensor as written to a safetensors file: name, element type, little-endian bytes, shape.
pub type StoredTensor<'a> = (String, Dtype, Vec<u8>, &'a Vec<usize>);

/// Safetensors bytes of `tensors` with `metadata` in the header: the one place the project
/// writes that format (checkpoints here, PyTorch state_dicts in [`crate::export`]).
pub fn serialize_tensors(
    tensors: &[StoredTensor<'_>],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, ModelError> {
    let views = tensors
        .iter()
        .map(|(k, dtype, data, shape)| {
            let view = TensorView::new(*dtype, shape.to_vec(), data)
                .map_err(|e| ModelError::Format(format!("tensor {k}: {e}")))?;
            Ok((k.clone(), view))
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| ModelError::Format(format!("serialising safetensors: {e}")))
}

/// The weights (masked ones zeroed), masks and metadata of safetensors bytes; `path` only names
/// the source in errors.
pub fn tensors_from_bytes(
    path: &Path,
    bytes: &[u8],
) -> Result<(WeightMap, MaskMap, HashMap<String, String>), ModelError> {
    let (weights, metadata) = parse_safetensors(path, bytes)?;
    let (mut weights, masks) = split_masks(path, weights)?;
    apply_masks(&mut weights, &masks).map_err(|e| ModelError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok((weights, masks, metadata))
}

/// [`Checkpoint::save`] of a segmentation checkpoint.
pub fn save_checkpoint(path: &Path, checkpoint: &Checkpoint) -> Result<(), ModelError> {
    checkpoint.save(path)
}

/// [`Checkpoint::save_as`] of a segmentation checkpoint.
pub fn save_checkpoint_as(
    path: &Path,
    checkpoint: &Checkpoint,
    storage: Storage,
) -> Result<(), ModelError> {
    checkpoint.save_as(path, storage)
}

/// Writes `bytes` to `path` atomically (see [`crate::atomic`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    crate::atomic::write_bytes(path, bytes).map_err(|error| ModelError::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// Loads one of our checkpoints (weights + config). A PyTorch file without our config metadata
/// is refused with a hint to use `import`.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, ModelError> {
    Checkpoint::load(path)
}

/// Our checkpoint, or a PyTorch state_dict (safetensors without our config) imported with
/// variant, head and widths inferred from its shapes: what the app's "Open model" accepts.
pub fn open_model(path: &Path) -> Result<Checkpoint, ModelError> {
    let bytes = read_file(path)?;
    let (_, _, metadata) = tensors_from_bytes(path, &bytes)?;
    if metadata.contains_key(CONFIG_METADATA_KEY) {
        checkpoint_from_bytes(path, &bytes)
    } else {
        import_pytorch(path, &ImportOptions::default())
    }
}

/// Parses segmentation checkpoint bytes (e.g. an embedded asset); `path` only names the source
/// in errors.
pub fn checkpoint_from_bytes(path: &Path, bytes: &[u8]) -> Result<Checkpoint, ModelError> {
    Checkpoint::from_bytes(path, bytes)
}

/// Refuses a config whose channel widths or head differ from what the stored tensors hold,
/// before any model is built (a corrupted width would otherwise allocate a model of its size).
fn check_config_matches_tensors(config: &ModelConfig, weights: &WeightMap) -> Result<(), String> {
    let stored = infer_plan(weights, config.variant)
        .map_err(|e| format!("its tensors do not form a {:?} model: {e}", config.variant))?;
    // Channel widths decide every tensor's size (dw_mult, where a variant has no use for it,
    // is not recoverable from shapes, so the groups are compared).
    let grouped_branches_differ = config.variant == Variant::Base && stored != config.plan;
    if stored.groups() != config.plan.groups() || grouped_branches_differ {
        return Err(format!(
            "its config describes channels {:?} but its tensors hold {:?}",
            config.plan.groups(),
            stored.groups()
        ));
    }
    let head = infer_head(weights).map_err(|e| e.to_string())?;
    if head != config.head {
        return Err(format!(
            "its config describes the {:?} head but its tensors hold {:?}",
            config.head, head
        ));
    }
    Ok(())
}

/// What the user fixed on the command line when importing; the rest is inferred from shapes.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub variant: Option<Variant>,
    pub head: Option<Head>,
    pub plan: Option<ChannelPlan>,
}

/// Reads a PyTorch state_dict saved as safetensors and turns it into a checkpoint, checking
/// every key and shape against the model the config describes.
pub fn import_pytorch(path: &Path, options: &ImportOptions) -> Result<Checkpoint, ModelError> {
    let bytes = read_file(path)?;
    let (weights, _) = parse_safetensors(path, &bytes)?;
    let in_file = |e: ModelError| ModelError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let variant = match options.variant {
        Some(v) => v,
        None => infer_variant(&weights).map_err(in_file)?,
    };
    let head = match options.head {
        Some(h) => h,
        None => infer_head(&weights).map_err(in_file)?,
    };
    let plan = match &options.plan {
        Some(p) => p.clone(),
        None => infer_plan(&weights, variant).map_err(in_file)?,
    };
    let config = ModelConfig::new(variant, head, plan);
    config.validate().map_err(in_file)?;
    let checkpoint = Checkpoint::new(config, weights);
    // Building on the CPU proves every key and shape before anything is written.
    checkpoint
        .build(&crate::backend::cpu_device())
        .map_err(in_file)?;
    Ok(checkpoint)
}

/// A checkpoint file's bytes, or an error naming the file.
pub fn read_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    fs::read(path).map_err(|error| ModelError::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// Separates the mask tensors (0/1 values) from the weights.
fn split_masks(path: &Path, tensors: WeightMap) -> Result<(WeightMap, MaskMap), ModelError> {
    let mut weights = WeightMap::new();
    let mut masks = MaskMap::new();
    for (name, tensor) in tensors {
        let Some(target) = name.strip_prefix(MASK_TENSOR_PREFIX) else {
            weights.insert(name, tensor);
            continue;
        };
        if tensor.values.iter().any(|v| *v != 0.0 && *v != 1.0) {
            return Err(ModelError::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("mask {name} holds values other than 0 and 1"),
            });
        }
        let keep = tensor.values.iter().map(|v| *v == 1.0).collect();
        let mask = HostMask {
            shape: tensor.shape,
            keep,
        };
        masks.insert(target.to_string(), mask);
    }
    Ok((weights, masks))
}

/// All tensors of a safetensors file converted to f32, and its metadata.
fn parse_safetensors(
    path: &Path,
    bytes: &[u8],
) -> Result<(WeightMap, HashMap<String, String>), ModelError> {
    let bad = |reason: String| ModelError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?;
    let mut weights = WeightMap::new();
    for (name, view) in tensors.tensors() {
        // PyTorch's BatchNorm step counters (int64) carry no weights.
        if super::weights::is_ignored_key(&name) {
            continue;
        }
        let is_mask = name.starts_with(MASK_TENSOR_PREFIX);
        let values = (is_mask == (view.dtype() == Dtype::U8))
            .then(|| to_f32(view.dtype(), view.data()))
            .flatten()
            .ok_or_else(|| {
                let expected = if is_mask {
                    "u8 (a pruning mask)"
                } else {
                    "a float type"
                };
                bad(format!(
                    "tensor {name} has dtype {:?}; expected {expected}",
                    view.dtype()
                ))
            })?;
        weights.insert(name, HostTensor::new(view.shape().to_vec(), values));
    }
    Ok((weights, metadata))
}

fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    let values = match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        // Only our mask tensors are u8 (0/1), checked by the caller.
        Dtype::U8 => data.iter().map(|v| *v as f32).collect(),
        _ => return None,
    };
    Some(values)
}

/// Which encoder a state_dict holds, from the key names of its first level.
pub fn infer_variant(weights: &WeightMap) -> Result<Variant, ModelError> {
    if weights.contains_key("enc1.conv1_1.0.weight") {
        Ok(Variant::Base)
    } else if weights.contains_key("enc1.dw_near.weight") {
        Ok(Variant::PairedShared)
    } else if weights.contains_key("enc1.dw.weight") {
        Ok(Variant::DepthwiseShared)
    } else {
        Err(ModelError::InvalidConfig(
            "cannot tell the variant: none of enc1.conv1_1.0.weight, enc1.dw.weight, \
             enc1.dw_near.weight is present (give --variant)"
                .into(),
        ))
    }
}

fn infer_head(weights: &WeightMap) -> Result<Head, ModelError> {
    let shape = &dim_of(weights, "final_conv.weight", 4)?;
    Head::from_classes(shape[0]).ok_or_else(|| {
        ModelError::InvalidConfig(format!(
            "final_conv.weight has {} output channels; supported heads have 3 or 5",
            shape[0]
        ))
    })
}

fn dim_of(weights: &WeightMap, key: &str, rank: usize) -> Result<Vec<usize>, ModelError> {
    match weights.get(key) {
        Some(t) if t.shape.len() == rank => Ok(t.shape.clone()),
        Some(t) => Err(ModelError::ShapeMismatch {
            key: key.into(),
            found: t.shape.clone(),
            expected: vec![0; rank],
        }),
        None => Err(ModelError::MissingKey {
            key: key.into(),
            expected: vec![],
        }),
    }
}

/// Reads every group width off the weight shapes (output channels of the defining conv).
pub fn infer_plan(weights: &WeightMap, variant: Variant) -> Result<ChannelPlan, ModelError> {
    let out_of = |key: &str| dim_of(weights, key, 4).map(|s| s[0]);
    let mut encoders = Vec::with_capacity(5);
    let mut in_width = super::config::INPUT_CHANNELS;
    for level in 1..=5 {
        let p = format!("enc{level}");
        let (branches, dw_mult) = if variant == Variant::Base {
            let grouped = [
                out_of(&format!("{p}.conv1_1.0.weight"))?,
                out_of(&format!("{p}.conv2_1.0.weight"))?,
            ];
            let branches = [
                out_of(&format!("{p}.conv1_1.1.weight"))?,
                out_of(&format!("{p}.conv2_1.1.weight"))?,
                out_of(&format!("{p}.conv3_1.0.weight"))?,
                out_of(&format!("{p}.conv4_1.0.weight"))?,
            ];
            (branches, grouped.map(|g| (g / in_width).max(1)))
        } else {
            let mut branches = [0; 4];
            for (i, b) in branches.iter_mut().enumerate() {
                *b = out_of(&format!("{p}.branches.{i}.pw.0.weight"))?;
            }
            (branches, [1, 1])
        };
        let out = out_of(&format!("{p}.final_conv.0.weight"))?;
        encoders.push(EncoderPlan {
            branches,
            out,
            dw_mult,
        });
        in_width = out;
    }
    let mut decoders = Vec::with_capacity(4);
    for level in 2..=5 {
        decoders.push(DecoderPlan {
            up: out_of(&format!("up{level}.up.1.weight"))?,
            att: out_of(&format!("att{level}.W_g.0.weight"))?,
            rec: out_of(&format!("dec{level}.conv1x1.weight"))?,
        });
    }
    Ok(ChannelPlan { encoders, decoders })
}

//! RAAGR2-Net: configuration, layers, weight I/O, checkpoints and model metrics (no UI here).

pub mod checkpoint;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod fold;
pub mod fused;
pub mod graph;
pub mod layers;
pub mod masking;
pub mod net;
pub mod quantize;
pub mod summary;
pub mod weights;

use std::path::PathBuf;

pub use checkpoint::{
    Checkpoint, ImportOptions, StoredConfig, import_pytorch, load_checkpoint, open_model,
    save_checkpoint,
};
pub use config::{ChannelPlan, Head, ModelConfig, Variant};
pub use masking::ModelMasks;
pub use net::{Raagr2Net, Segmenter};
pub use weights::{HostMask, HostTensor, MaskMap, WeightMap, apply_masks};

/// Everything that can go wrong building, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    #[error("missing key {key} (the model expects shape {expected:?})")]
    MissingKey { key: String, expected: Vec<usize> },
    #[error("shape mismatch for {key}: the file has {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        key: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{key} holds a non-finite value ({value})")]
    NonFinite { key: String, value: f32 },
    #[error("unexpected keys the model does not have: {}", .0.join(", "))]
    UnexpectedKeys(Vec<String>),
    #[error("{}: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },
    // Not `source`: the message already carries the I/O error, and a source would repeat it
    // in the error chain the command line prints.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("checkpoint format: {0}")]
    Format(String),
}

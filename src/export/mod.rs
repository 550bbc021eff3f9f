//! Models taken out of the project: the network as an ONNX graph for deployment runtimes, as a
//! PyTorch state_dict for PyTorch code, or as this project's checkpoint in full or half
//! precision; one writer for the command line and the app.

pub mod onnx;
pub mod pytorch;

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::model::Checkpoint;
use crate::model::checkpoint::{Storage, write_atomically};

pub use crate::precision::Precision;
pub use onnx::onnx_bytes;
pub use pytorch::pytorch_bytes;

/// The file format a model is exported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ModelFormat {
    /// This project's checkpoint: config, weights, masks and training history.
    #[default]
    Checkpoint,
    /// The BatchNorm-folded network as an ONNX graph.
    Onnx,
    /// A PyTorch state_dict with the reference code's keys and the plan in the header.
    PyTorch,
}

impl ModelFormat {
    pub const ALL: [ModelFormat; 3] = [
        ModelFormat::Checkpoint,
        ModelFormat::Onnx,
        ModelFormat::PyTorch,
    ];

    /// What users call the format.
    pub fn label(self) -> &'static str {
        match self {
            ModelFormat::Checkpoint => "raagr2-lab checkpoint",
            ModelFormat::Onnx => "ONNX",
            ModelFormat::PyTorch => "PyTorch state_dict",
        }
    }

    /// Whether models are written in this format at `precision` (INT8 is ONNX only).
    pub fn supports(self, precision: Precision) -> bool {
        precision != Precision::Int8 || self == ModelFormat::Onnx
    }

    /// The file name a save dialog proposes for a model called `stem`.
    pub fn file_name(self, stem: &str) -> String {
        match self {
            ModelFormat::Checkpoint => format!("{stem}.safetensors"),
            ModelFormat::Onnx => format!("{stem}.onnx"),
            ModelFormat::PyTorch => format!("{stem}.pt.safetensors"),
        }
    }
}

/// How a checkpoint or state_dict stores floats in `precision` (INT8: never asked, see
/// [`ModelFormat::supports`]).
fn storage(precision: Precision) -> Storage {
    match precision {
        Precision::Fp32 | Precision::Int8 => Storage::F32,
        Precision::Fp16 => Storage::F16,
    }
}

/// The bytes of `checkpoint` exported in `format` and `precision`.
pub fn model_bytes(
    checkpoint: &Checkpoint,
    format: ModelFormat,
    precision: Precision,
) -> Result<Vec<u8>> {
    if !format.supports(precision) {
        bail!(
            "a {} is not written in {} (int8 is an ONNX graph only: --onnx)",
            format.label(),
            precision.name()
        );
    }
    Ok(match format {
        ModelFormat::Checkpoint => checkpoint.to_bytes_as(storage(precision))?,
        ModelFormat::Onnx => onnx_bytes(checkpoint, precision)?,
        ModelFormat::PyTorch => pytorch_bytes(checkpoint, storage(precision))?,
    })
}

/// Writes `checkpoint` in `format` and `precision` to `path` atomically (a temporary file, then
/// a rename: a failed export leaves nothing behind); returns the file's size in bytes.
pub fn write_model(
    path: &Path,
    checkpoint: &Checkpoint,
    format: ModelFormat,
    precision: Precision,
) -> Result<u64> {
    let bytes = model_bytes(checkpoint, format, precision)
        .with_context(|| format!("exporting as {} ({})", format.label(), precision.name()))?;
    write_atomically(path, &bytes)?;
    Ok(bytes.len() as u64)
}

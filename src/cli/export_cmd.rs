//! `export`: a model written out for use elsewhere: an ONNX graph for deployment runtimes
//! (`--onnx`), or this project's checkpoint format with its weights in half precision
//! (`--checkpoint`, how the study models ship in `assets/`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::print_json;
use crate::export::{OnnxPrecision, onnx_bytes};
use crate::model::checkpoint::{Storage, save_checkpoint_as, write_atomically};
use crate::model::load_checkpoint;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The raagr2-lab checkpoint to export (dense or pruned, any variant).
    pub model: PathBuf,
    /// Write a raagr2-lab checkpoint (.safetensors) here (config, weights, masks and training
    /// history kept); every command and the app open it.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Write the network as an ONNX graph here (opset 17, batch norms folded): input "mri",
    /// N x 4 x H x W float32 (H, W multiples of 16); output "probabilities", N x regions x H x W
    /// (sigmoid applied); batch and spatial size dynamic.
    #[arg(long)]
    pub onnx: Option<PathBuf>,
    /// Number format: fp16 stores the checkpoint's weights in half precision (readers compute
    /// in f32), and makes the ONNX graph compute in half (its input and output stay float32).
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    #[arg(long)]
    pub json: bool,
}

/// The number format of an exported model's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    Fp32,
    Fp16,
}

impl Precision {
    /// The spelling on the command line.
    fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        }
    }

    fn storage(self) -> Storage {
        match self {
            Precision::Fp32 => Storage::F32,
            Precision::Fp16 => Storage::F16,
        }
    }

    fn onnx(self) -> OnnxPrecision {
        match self {
            Precision::Fp32 => OnnxPrecision::F32,
            Precision::Fp16 => OnnxPrecision::F16,
        }
    }
}

/// One file written: where, in what format, how large.
#[derive(Serialize)]
struct Written {
    path: PathBuf,
    format: &'static str,
    bytes: u64,
}

#[derive(Serialize)]
struct ExportReport {
    model: PathBuf,
    precision: Precision,
    written: Vec<Written>,
}

pub fn export(args: ExportArgs) -> Result<()> {
    if args.checkpoint.is_none() && args.onnx.is_none() {
        bail!("export: nothing to write; give --onnx FILE, --checkpoint FILE or both");
    }
    let checkpoint = load_checkpoint(&args.model)?;
    let mut written = Vec::new();
    if let Some(path) = &args.checkpoint {
        save_checkpoint_as(path, &checkpoint, args.precision.storage())?;
        written.push(Written {
            path: path.clone(),
            format: "raagr2-lab checkpoint",
            bytes: file_size(path)?,
        });
    }
    if let Some(path) = &args.onnx {
        let bytes = onnx_bytes(&checkpoint, args.precision.onnx())
            .with_context(|| format!("{}: exporting to ONNX", args.model.display()))?;
        write_atomically(path, &bytes)?;
        written.push(Written {
            path: path.clone(),
            format: "ONNX",
            bytes: file_size(path)?,
        });
    }
    let report = ExportReport {
        model: args.model,
        precision: args.precision,
        written,
    };
    if args.json {
        return print_json(&report);
    }
    for file in &report.written {
        println!(
            "exported {} -> {} ({}, {}, {:.2} MB)",
            report.model.display(),
            file.path.display(),
            file.format,
            report.precision.name(),
            file.bytes as f64 / 1e6
        );
    }
    Ok(())
}

fn file_size(path: &std::path::Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("{}: written but unreadable", path.display()))?
        .len())
}

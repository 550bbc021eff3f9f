//! `export`: a model written out for use elsewhere: an ONNX graph for deployment runtimes
//! (`--onnx`), a PyTorch state_dict (`--pytorch`), or this project's checkpoint format with
//! its weights in half precision (`--checkpoint`, how the study models ship in `assets/`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use super::print_json;
use crate::export::{ModelFormat, Precision, write_model};
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
    /// Write a PyTorch state_dict (.safetensors) here: the reference code's key names, batch
    /// norms not folded, the channel widths as JSON under `raagr2.config` in the header;
    /// `tools/raagr2_torch.py` builds the (pruned) network and loads it with strict=True.
    #[arg(long)]
    pub pytorch: Option<PathBuf>,
    /// Number format: fp16 stores the checkpoint's and the state_dict's weights in half
    /// precision (readers compute in f32), and makes the ONNX graph compute in half (its input
    /// and output stay float32); int8 (ONNX only) is static INT8: weights as 8-bit integers with
    /// one symmetric scale per output channel, every activation between layers on a uint8 grid
    /// calibrated on tumour slices of a generated case (QuantizeLinear/DequantizeLinear pairs,
    /// which ONNX Runtime runs as integer convolutions), logits and sigmoid in float.
    /// `eval --precision` scores the same network.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    #[arg(long)]
    pub json: bool,
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
    let targets = [
        (&args.checkpoint, ModelFormat::Checkpoint),
        (&args.onnx, ModelFormat::Onnx),
        (&args.pytorch, ModelFormat::PyTorch),
    ];
    if targets.iter().all(|(path, _)| path.is_none()) {
        bail!("export: nothing to write; give --onnx FILE, --pytorch FILE or --checkpoint FILE");
    }
    // Every requested file must be writable in this precision before the first is written, so
    // a refused request leaves no file behind.
    if let Some((_, format)) = targets
        .iter()
        .find(|(path, format)| path.is_some() && !format.supports(args.precision))
    {
        bail!(
            "--precision {}: a {} is not written in it (int8 is an ONNX graph only: --onnx)",
            args.precision.name(),
            format.label()
        );
    }
    let checkpoint = load_checkpoint(&args.model)?;
    let mut written = Vec::new();
    for (path, format) in targets {
        let Some(path) = path else { continue };
        let bytes = write_model(path, &checkpoint, format, args.precision)
            .with_context(|| format!("{} -> {}", args.model.display(), path.display()))?;
        written.push(Written {
            path: path.clone(),
            format: format.label(),
            bytes,
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

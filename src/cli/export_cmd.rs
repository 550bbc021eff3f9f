//! `export`: a model written out for use elsewhere. Today: this project's checkpoint format with
//! its weights stored in half precision (how the study models ship in `assets/`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::print_json;
use crate::model::checkpoint::{Storage, save_checkpoint_as};
use crate::model::load_checkpoint;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The raagr2-lab checkpoint to export (config, weights, masks and training history are kept).
    pub model: PathBuf,
    /// Write a raagr2-lab checkpoint (.safetensors) here; every command and the app open it.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// How the weights are stored: fp16 halves the file (each weight rounded to half precision;
    /// readers compute in f32).
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
}

#[derive(Serialize)]
struct ExportReport<'a> {
    model: &'a PathBuf,
    checkpoint: &'a PathBuf,
    precision: Precision,
    bytes: u64,
}

pub fn export(args: ExportArgs) -> Result<()> {
    let checkpoint = load_checkpoint(&args.model)?;
    save_checkpoint_as(&args.checkpoint, &checkpoint, args.precision.storage())?;
    let bytes = std::fs::metadata(&args.checkpoint)
        .with_context(|| format!("{}: written but unreadable", args.checkpoint.display()))?
        .len();
    let report = ExportReport {
        model: &args.model,
        checkpoint: &args.checkpoint,
        precision: args.precision,
        bytes,
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "exported {} -> {} ({}, {:.2} MB)",
        args.model.display(),
        args.checkpoint.display(),
        args.precision.name(),
        bytes as f64 / 1e6
    );
    Ok(())
}

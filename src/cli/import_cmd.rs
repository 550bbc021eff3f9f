//! `import`: a PyTorch state_dict (safetensors) as a raagr2-lab checkpoint.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::model_args::plan_from_args;
use super::print_json;
use crate::backend;
use crate::model::summary::count_params;
use crate::model::{Head, ImportOptions, ModelConfig, Variant, import_pytorch, save_checkpoint};
use crate::report::thousands;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// PyTorch state_dict saved with safetensors (e.g. `save_file(model.state_dict(), path)`).
    pub input: PathBuf,
    /// Where to write the checkpoint.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Variant; inferred from the key names when omitted.
    #[arg(long, value_enum)]
    pub variant: Option<Variant>,
    /// Output head; inferred from final_conv's shape when omitted.
    #[arg(long, value_enum)]
    pub head: Option<Head>,
    /// Width multiplier; all widths are inferred from the shapes when neither this nor --widths is given.
    #[arg(long, conflicts_with = "widths")]
    pub width: Option<f64>,
    #[arg(long, value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ImportReport<'a> {
    input: &'a PathBuf,
    output: &'a PathBuf,
    config: &'a ModelConfig,
    params: usize,
    tensors: usize,
}

pub fn import(args: ImportArgs) -> Result<()> {
    let plan = match (&args.widths, args.width) {
        (None, None) => None,
        (widths, width) => Some(plan_from_args(width.unwrap_or(1.0), widths)?),
    };
    let options = ImportOptions {
        variant: args.variant,
        head: args.head,
        plan,
    };
    let checkpoint = import_pytorch(&args.input, &options)?;
    save_checkpoint(&args.output, &checkpoint)?;
    let model = checkpoint.build(&backend::cpu_device())?;
    let report = ImportReport {
        input: &args.input,
        output: &args.output,
        config: &checkpoint.config,
        params: count_params(&model),
        tensors: checkpoint.weights.len(),
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "imported {} -> {}\nmodel: {}\n{} tensors, {} params",
        args.input.display(),
        args.output.display(),
        checkpoint.config.describe(),
        report.tensors,
        thousands(report.params as u64)
    );
    Ok(())
}

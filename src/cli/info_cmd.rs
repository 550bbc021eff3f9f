//! `info`: a model's parameters, MACs, activation memory and size, per layer on request.

use anyhow::{Context, Result};
use clap::Args;

use super::model_args::ModelArgs;
use super::{check_size, print_json};
use crate::backend;
use crate::model::summary::{ModelSummary, summarize};
use crate::report::{self, giga, megabytes, thousands};

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input height and width for the MAC count (multiples of 16).
    #[arg(long, default_value_t = 192)]
    pub size: usize,
    /// One row per convolution and batch norm instead of per block.
    #[arg(long)]
    pub layers: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn info(args: InfoArgs) -> Result<()> {
    check_size("--size", args.size)?;
    let checkpoint = args.model.checkpoint()?;
    let model = checkpoint.build(&backend::cpu_device())?;
    let mut summary = summarize(&checkpoint.config, &model, args.size, args.size)?;
    if let Some(path) = &args.model.checkpoint {
        summary.bytes_on_disk = std::fs::metadata(path)
            .with_context(|| path.display().to_string())?
            .len();
    }
    if args.json {
        return print_json(&summary);
    }
    print!("{}", render_summary(&summary, args.layers));
    Ok(())
}

/// The `info` table: one row per block (or per layer), then the totals.
pub fn render_summary(summary: &ModelSummary, per_layer: bool) -> String {
    let share = |macs: u64| format!("{:.1}%", 100.0 * macs as f64 / summary.macs.max(1) as f64);
    let nz =
        |nonzero: usize, params: usize| format!("{:.3}", nonzero as f64 / params.max(1) as f64);
    let rows: Vec<Vec<String>> = if per_layer {
        summary
            .layers
            .iter()
            .map(|l| {
                vec![
                    l.name.clone(),
                    format!("{} {:?}", l.kind, l.shape),
                    thousands(l.params as u64),
                    giga(l.macs),
                    share(l.macs),
                    nz(l.nonzero, l.params),
                ]
            })
            .collect()
    } else {
        summary
            .blocks
            .iter()
            .map(|b| {
                vec![
                    b.name.clone(),
                    thousands(b.params as u64),
                    giga(b.macs),
                    share(b.macs),
                    nz(b.nonzero, b.params),
                ]
            })
            .collect()
    };
    let mut out = format!(
        "model: {}\ninput: {}x{}x{}x{} (MACs count convolutions only)\n\n",
        summary.model, summary.input[0], summary.input[1], summary.input[2], summary.input[3]
    );
    let headers: &[&str] = if per_layer {
        &["layer", "shape", "params", "MACs", "MAC share", "non-zero"]
    } else {
        &["block", "params", "MACs", "MAC share", "non-zero"]
    };
    out.push_str(&report::table(headers, &rows));
    out.push_str(&format!(
        "\ntotal: {} params, {} MACs, {} on disk, non-zero fraction {:.4}\n",
        thousands(summary.params as u64),
        giga(summary.macs),
        megabytes(summary.bytes_on_disk),
        summary.nonzero_fraction
    ));
    out
}

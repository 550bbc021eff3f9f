//! `cka`: layer x layer CKA of one model with itself or against another (dense vs pruned,
//! teacher vs student) on the same tumour slices; a CSV matrix and a PNG heatmap.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use super::data_args::DataArgs;
use super::{defaults, print_json};
use crate::analysis::cka::Kernel;
use crate::analysis::similarity::{SimilarityMatrix, SliceBatches, similarity};
use crate::backend;
use crate::plot::write_heatmap_png;
use crate::report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KernelKind {
    Linear,
    Rbf,
}

#[derive(Args, Debug)]
pub struct CkaArgs {
    /// Model A (rows); the embedded default model when omitted.
    pub model: Option<PathBuf>,
    /// Model B (columns); model A itself when omitted.
    #[arg(long)]
    pub other: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = KernelKind::Linear)]
    pub kernel: KernelKind,
    /// RBF width as a multiple of the median distance between examples.
    #[arg(long, default_value_t = 0.5)]
    pub bandwidth: f64,
    /// Slices compared (tumour slices of the cases, seeded order).
    #[arg(long, default_value_t = 64)]
    pub slices: usize,
    /// Slices per minibatch of the unbiased HSIC (at least 4).
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Crop of the slices (multiple of 16).
    #[arg(long, default_value_t = 128)]
    pub crop: usize,
    /// Cases the slices come from (default: the held-out synthetic cases).
    #[command(flatten)]
    pub data: DataArgs,
    /// Where the CSV matrix goes; the PNG heatmap goes beside it.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn cka(args: CkaArgs) -> Result<()> {
    super::check_size("--crop", args.crop)?;
    if args.batch < 4 {
        bail!("--batch must be at least 4 (the unbiased HSIC needs 4 examples)");
    }
    if args.slices < args.batch {
        bail!(
            "--slices ({}) must be at least --batch ({})",
            args.slices,
            args.batch
        );
    }
    let (a, a_name) = defaults::model_or_default(args.model.as_deref())?;
    let (b, b_name) = match &args.other {
        Some(path) => defaults::model_or_default(Some(path))?,
        None => (a.clone(), a_name.clone()),
    };
    let cases = defaults::data_or_held_out(&args.data).load(|id| eprintln!("cka: loading {id}"))?;
    let batches = SliceBatches::tumour_slices(&cases, args.crop, args.slices, args.batch)?;
    let device = backend::cpu_device();
    let (model_a, model_b) = (a.build(&device)?, b.build(&device)?);
    let kernel = args.kernel.kernel(args.bandwidth);
    eprintln!("cka: {} slices in batches of {}", batches.len(), args.batch);
    let matrix = similarity(&model_a, &model_b, batches.inputs(&device), kernel);
    let short = |name: &str| {
        std::path::Path::new(name)
            .file_stem()
            .map_or(name.to_string(), |s| s.to_string_lossy().into_owned())
    };
    let title = format!(
        "{} CKA: {} (rows) vs {}",
        args.kernel.name(),
        short(&a_name),
        short(&b_name)
    );
    write_matrix(&args.output, &title, &matrix, args.json)
}

impl KernelKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            KernelKind::Linear => "linear",
            KernelKind::Rbf => "rbf",
        }
    }

    pub(crate) fn kernel(self, bandwidth: f64) -> Kernel {
        match self {
            KernelKind::Linear => Kernel::Linear,
            KernelKind::Rbf => Kernel::Rbf { bandwidth },
        }
    }
}

/// Writes a CKA matrix as CSV at `output` and as a PNG heatmap beside it, then prints it (a
/// table, or JSON with `json`).
pub(crate) fn write_matrix(
    output: &std::path::Path,
    title: &str,
    matrix: &SimilarityMatrix,
    json: bool,
) -> Result<()> {
    crate::atomic::write_bytes(output, csv(matrix).as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", output.display()))?;
    let png = output.with_extension("png");
    write_heatmap_png(&png, title, &matrix.rows, &matrix.columns, &matrix.values)?;
    if json {
        return print_json(matrix);
    }
    println!(
        "{title}, {} examples -> {}, {}\n",
        matrix.slices,
        output.display(),
        png.display()
    );
    print!("{}", table(matrix));
    Ok(())
}

/// A CKA matrix as CSV (a header of column names, then one row per layer).
pub(crate) fn csv(m: &SimilarityMatrix) -> String {
    let mut text = format!("layer,{}\n", m.columns.join(","));
    for (name, row) in m.rows.iter().zip(&m.values) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
        text += &format!("{name},{}\n", cells.join(","));
    }
    text
}

fn table(m: &SimilarityMatrix) -> String {
    let mut headers = vec![""];
    headers.extend(m.columns.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = m
        .rows
        .iter()
        .zip(&m.values)
        .map(|(name, row)| {
            let mut cells = vec![name.clone()];
            cells.extend(row.iter().map(|v| format!("{v:.2}")));
            cells
        })
        .collect();
    report::table(&headers, &rows)
}

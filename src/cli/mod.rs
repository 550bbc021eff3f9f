//! The headless command line (clap): `info`, `import`, `bench`, `synth`, `train`, `eval`,
//! `predict`, `score`, `prune`, `sweep`, `plot`, `cka`, `sensitivity`, `compare-schedules`.

pub mod cka_cmd;
pub mod compare_cmd;
pub mod data_args;
mod defaults;
pub mod eval_cmd;
pub mod fine_tune;
pub mod predict_cmd;
pub mod prune_cmd;
pub mod score_cmd;
pub mod sensitivity_cmd;
pub mod sweep_cmd;
pub mod train_cmd;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::backend::{self, DeviceChoice};
use crate::bench::{self, BenchOptions};
use crate::data::LabelConvention;
use crate::data::synth::SynthKind;
use crate::model::config::SPATIAL_MULTIPLE;
use crate::model::summary::{ModelSummary, count_params, summarize};
use crate::model::{
    ChannelPlan, Checkpoint, Head, ImportOptions, ModelConfig, Variant, import_pytorch,
    load_checkpoint, save_checkpoint,
};
use crate::report::{self, giga, megabytes, thousands};

#[derive(Parser, Debug)]
#[command(
    name = "raagr2-lab",
    version,
    about = "RAAGR2-Net pruning lab: model tools for brain-tumour segmentation"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Model summary: parameters, MACs, size on disk and non-zero fraction, per block or layer.
    Info(InfoArgs),
    /// Convert a PyTorch state_dict (safetensors, reference key names) into a checkpoint.
    Import(ImportArgs),
    /// Time eval forward and one training step on the CPU backends and wgpu.
    Bench(BenchArgs),
    /// Write synthetic BraTS-like cases (real .nii.gz files in the BraTS 2019-2021 layout).
    Synth(SynthArgs),
    /// Train a model on BraTS folders or synthetic cases (Adam, plateau schedule, early stop).
    Train(train_cmd::TrainArgs),
    /// Dice, IoU and HD95 per case and region; with no arguments, the embedded model on
    /// held-out synthetic cases.
    Eval(eval_cmd::EvalArgs),
    /// Segment a BraTS case folder and write the label map as NIfTI (source geometry kept).
    Predict(predict_cmd::PredictArgs),
    /// Score existing segmentations against ground truth: Dice, IoU, HD95, NSD, sensitivity,
    /// specificity and BraTS 2023 lesion-wise Dice and HD95 per region.
    Score(score_cmd::ScoreArgs),
    /// Structured pruning (channels removed) with its measured effect on size, speed and Dice.
    Prune(prune_cmd::PruneArgs),
    /// Structured pruning over a grid of methods and ratios: a CSV of size, speed and Dice.
    Sweep(sweep_cmd::SweepArgs),
    /// Redraw a sweep CSV as the PNG plot `sweep` makes (Dice vs sparsity per region).
    Plot(sweep_cmd::PlotArgs),
    /// Layer x layer CKA of a model with itself or another (CSV matrix and PNG heatmap).
    Cka(cka_cmd::CkaArgs),
    /// Prune one channel group at a time over a grid of ratios: Dice per region (CSV, heatmaps).
    Sensitivity(sensitivity_cmd::SensitivityArgs),
    /// One-shot vs iterative vs layer-wise pruning to one ratio: Dice and CKA to the dense model.
    CompareSchedules(compare_cmd::CompareArgs),
}

/// Which model: a checkpoint, or a fresh one of a variant, width and head.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A raagr2-lab checkpoint (.safetensors with config); omit to describe a fresh model.
    pub checkpoint: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Variant::Base)]
    pub variant: Variant,
    /// Width multiplier of the full 32..512 encoder (0.25 gives 8..128).
    #[arg(long, default_value_t = 1.0, conflicts_with = "widths")]
    pub width: f64,
    /// The five encoder widths, e.g. 8,16,32,64,128.
    #[arg(long, value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    #[arg(long, value_enum, default_value_t = Head::Regions3)]
    pub head: Head,
}

impl ModelArgs {
    /// The config and weights this selects (fresh random weights without a checkpoint).
    fn checkpoint(&self) -> Result<Checkpoint> {
        self.checkpoint_on(&backend::cpu_device())
    }

    /// As [`Self::checkpoint`], fresh weights drawn on `device` (whose seed then applies).
    fn checkpoint_on(&self, device: &burn::prelude::Device) -> Result<Checkpoint> {
        if let Some(path) = &self.checkpoint {
            return Ok(load_checkpoint(path)?);
        }
        let config = ModelConfig::new(
            self.variant,
            self.head,
            plan_from_args(self.width, &self.widths)?,
        );
        config.validate()?;
        let model = config.init(device);
        Ok(Checkpoint::from_model(&config, &model))
    }
}

fn plan_from_args(width: f64, widths: &Option<Vec<usize>>) -> Result<ChannelPlan> {
    if let Some(w) = widths {
        if w.len() != 5 {
            bail!(
                "--widths needs five comma-separated encoder widths, got {}",
                w.len()
            );
        }
        if w.contains(&0) {
            bail!("--widths: every encoder width must be at least 1, got {w:?}");
        }
        return Ok(ChannelPlan::from_encoder_widths([
            w[0], w[1], w[2], w[3], w[4],
        ]));
    }
    if !(width.is_finite() && width > 0.0 && width <= 4.0) {
        bail!("--width must be a multiplier in (0, 4], got {width}");
    }
    Ok(ChannelPlan::with_width_multiplier(width))
}

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

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input height and width (multiples of 16).
    #[arg(long, default_value_t = 192)]
    pub size: usize,
    /// Timed runs per measurement (after a first call, which is reported apart).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Batch sizes of the timed eval forwards.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub forward_batches: Vec<usize>,
    /// Batch size of the timed training step; 0 skips training.
    #[arg(long, default_value_t = 2)]
    pub train_batch: usize,
    /// Backends to time; `all` = flex, ndarray and gpu.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub backends: Vec<String>,
    /// Also time the same network in PyTorch (tools/torch_bench.py, run with `python3` or
    /// $RAAGR2_PYTHON) in this run: on the CPU next to CPU backends, on CUDA next to `gpu`.
    #[arg(long)]
    pub against_pytorch: bool,
    /// CPU threads for PyTorch (default: all cores, as burn's CPU backends use).
    #[arg(long)]
    pub pytorch_threads: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Folder to write the case folders into.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number of cases.
    #[arg(short = 'n', long, default_value_t = 4)]
    pub count: usize,
    /// Seed of the first case; case i uses seed + i.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Generator: realistic (real anatomy, grown tumours) or cartoon (ellipsoids).
    #[arg(long, value_enum, default_value_t = SynthKind::Realistic)]
    pub kind: SynthKind,
    /// Grid x,y,z (default: BraTS's field of view at --spacing; 240,240,155 at 1 mm).
    #[arg(long, value_delimiter = ',')]
    pub dims: Option<Vec<usize>>,
    /// Voxel size in mm (default 1 for realistic cases, 1.875 for cartoons).
    #[arg(long)]
    pub spacing: Option<f32>,
    /// File naming and labels: brats2021 (`_t1ce`, ET = 4) or brats2023 (`-t1c`, ET = 3).
    #[arg(long, value_enum, default_value_t = LabelConvention::Brats2021)]
    pub naming: LabelConvention,
    /// Also write `<id>.png` per case here: T1, T1ce, T2, FLAIR and the labels over FLAIR on
    /// the axial slice with the most tumour.
    #[arg(long)]
    pub preview_dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info(args) => info(args),
        Command::Import(args) => import(args),
        Command::Bench(args) => bench_command(args),
        Command::Synth(args) => synth(args),
        Command::Train(args) => train_cmd::train(args),
        Command::Eval(args) => eval_cmd::eval(args),
        Command::Predict(args) => predict_cmd::predict(args),
        Command::Score(args) => score_cmd::score(args),
        Command::Prune(args) => prune_cmd::prune(args),
        Command::Sweep(args) => sweep_cmd::sweep(args),
        Command::Plot(args) => sweep_cmd::plot(args),
        Command::Cka(args) => cka_cmd::cka(args),
        Command::Sensitivity(args) => sensitivity_cmd::sensitivity(args),
        Command::CompareSchedules(args) => compare_cmd::compare(args),
    }
}

#[derive(Serialize)]
struct SynthReport {
    cases: Vec<PathBuf>,
    kind: SynthKind,
    dims: [usize; 3],
    spacing_mm: f32,
    elapsed_secs: f64,
    secs_per_case: f64,
}

fn synth(args: SynthArgs) -> Result<()> {
    use crate::data::synth::{SynthOptions, case_id, generate_case, write_case};
    let mut options = SynthOptions::over_brats_view(args.kind, args.spacing)
        .map_err(|e| anyhow::anyhow!("--spacing: {e}"))?;
    match &args.dims {
        Some(d) if d.len() == 3 && d.iter().all(|&n| (8..=1024).contains(&n)) => {
            options.dims = [d[0], d[1], d[2]]
        }
        Some(d) => bail!("--dims needs three sizes x,y,z, each in 8..=1024, got {d:?}"),
        None => {}
    }
    let start = std::time::Instant::now();
    let mut cases = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let seed = args.seed + i as u64;
        let id = case_id(seed, args.naming);
        let case = generate_case(seed, &options);
        cases.push(write_case(&args.output, &id, &case, args.naming)?);
        if let Some(dir) = &args.preview_dir {
            let prepared = crate::data::dataset::PreparedCase::from_synth(&id, &case);
            let z = crate::montage::tumour_slice(&prepared);
            crate::montage::write_montage(&prepared, z, &dir.join(format!("{id}.png")))?;
        }
        if !args.json {
            eprintln!("synth: wrote {}", cases[i].display());
        }
    }
    let elapsed_secs = start.elapsed().as_secs_f64();
    let report = SynthReport {
        secs_per_case: elapsed_secs / args.count.max(1) as f64,
        cases,
        kind: args.kind,
        dims: options.dims,
        spacing_mm: options.spacing_mm,
        elapsed_secs,
    };
    if args.json {
        return print_json(&report);
    }
    let [x, y, z] = options.dims;
    println!(
        "wrote {} {:?} case(s) of {x}x{y}x{z} at {} mm to {} in {:.2} s ({:.2} s per case)",
        report.cases.len(),
        args.kind,
        options.spacing_mm,
        args.output.display(),
        report.elapsed_secs,
        report.secs_per_case,
    );
    Ok(())
}

fn check_size(flag: &str, size: usize) -> Result<()> {
    if size == 0 || !size.is_multiple_of(SPATIAL_MULTIPLE) {
        bail!("{flag} must be a positive multiple of {SPATIAL_MULTIPLE}, got {size}");
    }
    Ok(())
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn info(args: InfoArgs) -> Result<()> {
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

#[derive(Serialize)]
struct ImportReport<'a> {
    input: &'a PathBuf,
    output: &'a PathBuf,
    config: &'a ModelConfig,
    params: usize,
    tensors: usize,
}

fn import(args: ImportArgs) -> Result<()> {
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

fn parse_backends(names: &[String]) -> Result<Vec<DeviceChoice>> {
    let mut out = Vec::new();
    for name in names {
        match name.as_str() {
            "all" => out.extend([DeviceChoice::Flex, DeviceChoice::Ndarray, DeviceChoice::Gpu]),
            "cpu" | "flex" => out.push(DeviceChoice::Flex),
            "ndarray" => out.push(DeviceChoice::Ndarray),
            "gpu" | "wgpu" => out.push(DeviceChoice::Gpu),
            other => bail!("unknown backend {other:?}: use flex, ndarray, gpu or all"),
        }
    }
    out.dedup();
    Ok(out)
}

fn bench_command(args: BenchArgs) -> Result<()> {
    check_size("--size", args.size)?;
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if args.forward_batches.contains(&0) {
        bail!("--forward-batches takes batch sizes of at least 1");
    }
    let checkpoint = args.model.checkpoint()?;
    let backends = parse_backends(&args.backends)?;
    let mut pytorch = Vec::new();
    if args.against_pytorch {
        if backends.iter().any(|b| *b != DeviceChoice::Gpu) {
            pytorch.push(bench::PytorchDevice::Cpu);
        }
        if backends.contains(&DeviceChoice::Gpu) {
            pytorch.push(bench::PytorchDevice::Cuda);
        }
    }
    let options = BenchOptions {
        config: checkpoint.config.clone(),
        height: args.size,
        width: args.size,
        runs: args.runs,
        forward_batches: args.forward_batches,
        train_batch: args.train_batch,
        backends,
        pytorch,
        pytorch_threads: args.pytorch_threads,
    };
    let report = bench::run_bench(&options, |step| eprintln!("bench: {step}"));
    if args.json {
        return print_json(&report);
    }
    print!("{}", bench::render(&report));
    Ok(())
}

//! The headless command line (clap): `info`, `import`, `bench`, `synth`, `train`, `eval`,
//! `predict`, `report`, `score`, `prune`, `sweep`, `study`, `export`, `plot`, `cka`, `sensitivity`, `compare-schedules`, and `classify` (the classifier study).

mod auto_cmd;
pub mod bench_cmd;
pub mod cka_cmd;
pub mod classify_cmd;
pub mod compare_cmd;
pub mod data_args;
mod defaults;
pub mod eval_cmd;
pub mod export_cmd;
pub mod fine_tune;
pub mod import_cmd;
pub mod info_cmd;
pub mod maps_cmd;
pub mod model_args;
pub mod predict_cmd;
pub mod prune_cmd;
pub mod report_cmd;
pub mod score_cmd;
pub mod sensitivity_cmd;
pub mod study_cmd;
pub mod sweep_cmd;
mod sweep_points;
pub mod synth_cmd;
pub mod train_cmd;
mod value_enums;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::model::config::SPATIAL_MULTIPLE;

pub use model_args::ModelArgs;

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
    Info(info_cmd::InfoArgs),
    /// Convert a PyTorch state_dict (safetensors, reference key names) into a checkpoint.
    Import(import_cmd::ImportArgs),
    /// Time eval forward and one training step on the CPU backends and wgpu.
    Bench(bench_cmd::BenchArgs),
    /// Write synthetic BraTS-like cases (real .nii.gz files in the BraTS 2019-2021 layout).
    Synth(synth_cmd::SynthArgs),
    /// Train a model on BraTS folders or synthetic cases (Adam, plateau schedule, early stop).
    Train(train_cmd::TrainArgs),
    /// Dice, IoU and HD95 per case and region; with no arguments, the embedded model on
    /// held-out synthetic cases.
    Eval(eval_cmd::EvalArgs),
    /// Segment a BraTS case folder and write the label map as NIfTI (source geometry kept).
    Predict(predict_cmd::PredictArgs),
    /// A one-page case report as PNG: the largest tumour cross-section in each plane for
    /// truth, dense and pruned, volumes (ml), Dice and lesions per region, the models.
    Report(report_cmd::ReportArgs),
    /// Score existing segmentations against ground truth: Dice, IoU, HD95, NSD, sensitivity,
    /// specificity and BraTS 2023 lesion-wise Dice and HD95 per region.
    Score(score_cmd::ScoreArgs),
    /// Structured pruning (channels removed) with its measured effect on size, speed and Dice.
    Prune(prune_cmd::PruneArgs),
    /// Structured pruning over a grid of methods and ratios: a CSV of size, speed and Dice.
    Sweep(sweep_cmd::SweepArgs),
    /// The compression study: every pruning method, the weight-shared variants and both
    /// combined at matched shares of parameters removed (resumable; CSV, JSON, Pareto plots).
    Study(study_cmd::StudyArgs),
    /// Write a model out for use elsewhere: a raagr2-lab checkpoint in half or full precision.
    Export(export_cmd::ExportArgs),
    /// Redraw a sweep CSV as the PNG plot `sweep` makes (Dice vs sparsity per region).
    Plot(sweep_cmd::PlotArgs),
    /// Layer x layer CKA of a model with itself or another (CSV matrix and PNG heatmap).
    Cka(cka_cmd::CkaArgs),
    /// Prune one channel group at a time over a grid of ratios: Dice per region (CSV, heatmaps).
    Sensitivity(sensitivity_cmd::SensitivityArgs),
    /// One-shot vs iterative vs layer-wise pruning to one ratio: Dice and CKA to the dense model.
    CompareSchedules(compare_cmd::CompareArgs),
    /// Each attention gate's psi on one slice over FLAIR as a PNG (with --plan: dense,
    /// pruned and their difference).
    Attention(maps_cmd::AttentionArgs),
    /// A channel group's activation maps on one slice as a PNG grid, sorted by importance.
    Activations(maps_cmd::ActivationsArgs),
    /// The classifier study (VGG, DenseNet on CIFAR-100 or HAM10000): stand-in data, train,
    /// eval, import, L1 pruning schedules and sweeps.
    Classify(classify_cmd::ClassifyArgs),
}

/// Which model: a checkpoint, or a fresh one of a variant, width and head.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info(args) => info_cmd::info(args),
        Command::Import(args) => import_cmd::import(args),
        Command::Bench(args) => bench_cmd::bench(args),
        Command::Synth(args) => synth_cmd::synth(args),
        Command::Train(args) => train_cmd::train(args),
        Command::Eval(args) => eval_cmd::eval(args),
        Command::Predict(args) => predict_cmd::predict(args),
        Command::Report(args) => report_cmd::report(args),
        Command::Score(args) => score_cmd::score(args),
        Command::Prune(args) => prune_cmd::prune(args),
        Command::Sweep(args) => sweep_cmd::sweep(args),
        Command::Study(args) => study_cmd::study(args),
        Command::Export(args) => export_cmd::export(args),
        Command::Plot(args) => sweep_cmd::plot(args),
        Command::Cka(args) => cka_cmd::cka(args),
        Command::Sensitivity(args) => sensitivity_cmd::sensitivity(args),
        Command::CompareSchedules(args) => compare_cmd::compare(args),
        Command::Classify(args) => classify_cmd::classify(args),
        Command::Attention(args) => maps_cmd::attention(args),
        Command::Activations(args) => maps_cmd::activations(args),
    }
}

pub(crate) fn check_size(flag: &str, size: usize) -> Result<()> {
    if size == 0 || !size.is_multiple_of(SPATIAL_MULTIPLE) {
        bail!("{flag} must be a positive multiple of {SPATIAL_MULTIPLE}, got {size}");
    }
    Ok(())
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

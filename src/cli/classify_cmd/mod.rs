//! `classify`: the classifier study's command line (one module per group of subcommands) and the
//! options they share: where the images come from, SGD settings, the training progress line.

mod bench;
mod channels;
mod schedules;
mod similarity;
mod train_eval;

pub use bench::ClassifyBenchArgs;
pub use channels::PruneChannelsArgs;
pub use schedules::{ClassifyPruneArgs, ClassifySweepArgs, PruneOptions};
pub use similarity::{ClassifyCkaArgs, DistillArgs};
pub use train_eval::{
    ClassifyEvalArgs, ClassifyImportArgs, ClassifyTrainArgs, StandInArgs, StandInFormat,
};

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::{self, DeviceChoice};
use crate::classify::data::{self, ClassData};
use crate::classify::train::TrainSettings;
use crate::classify::{Architecture, ClassifierConfig, HeadKind};
use crate::model::StoredConfig;

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    #[command(subcommand)]
    pub command: ClassifyCommand,
}

#[derive(Subcommand, Debug)]
pub enum ClassifyCommand {
    /// Write a small stand-in data set in the real CIFAR-100 or HAM10000 format.
    StandIn(StandInArgs),
    /// Train a classifier (from scratch or resumed) with SGD and momentum.
    Train(ClassifyTrainArgs),
    /// Top-1, top-5, balanced accuracy, per-class recall and the confusion matrix.
    Eval(ClassifyEvalArgs),
    /// Convert a torchvision state_dict (safetensors) into a classifier checkpoint.
    Import(ClassifyImportArgs),
    /// L1 unstructured pruning to a sparsity by one schedule, fine-tuning after each step.
    Prune(ClassifyPruneArgs),
    /// Schedules x sparsities x fine-tuning seeds: accuracy mean and spread (CSV, JSON).
    Sweep(ClassifySweepArgs),
    /// Eval forward and one SGD step timed, optionally beside PyTorch in the same run.
    Bench(ClassifyBenchArgs),
    /// Layer x layer CKA of a classifier with itself or another on test images (CSV, PNG).
    Cka(ClassifyCkaArgs),
    /// Knowledge distillation: students trained with and without a (pruned) teacher over
    /// seeds; their accuracy and their CKA with the teacher.
    Distill(DistillArgs),
    /// Structured pruning of a VGG (channels removed): parameters, MACs, measured latency and
    /// speedup per MAC cut at each ratio, accuracy with --data.
    PruneChannels(PruneChannelsArgs),
}

/// Where the images come from.
#[derive(Args, Debug, Clone)]
pub struct DataOptions {
    /// A CIFAR-100 binary folder (train.bin, test.bin, label names) or a HAM10000 folder
    /// (HAM10000_metadata.csv and the ISIC_*.jpg folders).
    #[arg(long)]
    pub data: PathBuf,
    /// HAM10000: images are centre-cropped and resized to this side.
    #[arg(long, default_value_t = 64)]
    pub side: usize,
    /// HAM10000: seeds the train/test split by lesion.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
}

impl DataOptions {
    fn open(&self) -> Result<ClassData> {
        let data = data::open(&self.data, self.side, self.split_seed)?;
        eprintln!(
            "{}: {:?}, {} training and {} test images of {}x{}, {} classes present",
            self.data.display(),
            data.format,
            data.train.len(),
            data.test.len(),
            data.train.side,
            data.train.side,
            data.classes_present()
        );
        Ok(data)
    }
}

/// Which classifier a command builds from scratch.
#[derive(Args, Debug, Clone)]
pub struct ArchOptions {
    #[arg(long, value_enum, default_value_t = Architecture::Vgg11Bn)]
    pub arch: Architecture,
    #[arg(long, value_enum, default_value_t = HeadKind::Cifar)]
    pub head: HeadKind,
    /// Divide every width by this (1: the published widths).
    #[arg(long, default_value_t = 1)]
    pub width_divisor: usize,
}

impl ArchOptions {
    /// The config for `classes` classes, validated.
    fn config(&self, classes: usize) -> Result<ClassifierConfig> {
        classifier_config(self.arch, self.head, classes, self.width_divisor)
    }
}

/// A validated config of `arch` with `head`, `classes` and every width divided by `divisor`.
fn classifier_config(
    arch: Architecture,
    head: HeadKind,
    classes: usize,
    divisor: usize,
) -> Result<ClassifierConfig> {
    let config = ClassifierConfig::new(arch, head, classes, divisor.max(1));
    config.validate()?;
    Ok(config)
}

/// SGD and augmentation settings.
#[derive(Args, Debug, Clone)]
pub struct SgdOptions {
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Zero padding before the random crop (0: no crop).
    #[arg(long, default_value_t = 4)]
    pub crop_padding: usize,
    /// No random horizontal flips.
    #[arg(long)]
    pub no_flip: bool,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
}

impl SgdOptions {
    fn settings(&self, epochs: usize, seed: u64) -> TrainSettings {
        TrainSettings {
            epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            crop_padding: self.crop_padding,
            flip: !self.no_flip,
            seed,
        }
    }
}

pub fn classify(args: ClassifyArgs) -> Result<()> {
    match args.command {
        ClassifyCommand::StandIn(a) => train_eval::stand_in(a),
        ClassifyCommand::Train(a) => train_eval::train_classifier(a),
        ClassifyCommand::Eval(a) => train_eval::eval(a),
        ClassifyCommand::Import(a) => train_eval::import(a),
        ClassifyCommand::Prune(a) => schedules::prune(a),
        ClassifyCommand::Sweep(a) => schedules::sweep(a),
        ClassifyCommand::Bench(a) => bench::bench(a),
        ClassifyCommand::Cka(a) => similarity::cka(a),
        ClassifyCommand::Distill(a) => similarity::distill(a),
        ClassifyCommand::PruneChannels(a) => channels::prune_channels(a),
    }
}

/// The device a command computes on, seeded.
fn device(choice: DeviceChoice, seed: u64) -> Result<burn::prelude::Device> {
    let (device, name) = backend::resolve(choice).map_err(anyhow::Error::msg)?;
    eprintln!("device: {name}");
    device.seed(seed);
    Ok(device)
}

/// A bar over `sweep`'s runs: one tick per finished run.
fn runs_bar(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

//! `classify`: the classifier study's command line: stand-in data in the real formats, train
//! (SGD, resumable), eval (top-1/top-5, balanced accuracy, confusion), import of torchvision
//! weights, prune (one L1 schedule with fine-tuning) and sweep (schedules x sparsities x seeds).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::cka_cmd::{KernelKind, csv as cka_csv, write_matrix};
use super::print_json;
use super::prune_cmd::ScheduleKind;
use super::train_cmd::install_ctrl_c;
use crate::analysis::cka::Kernel;
use crate::analysis::similarity::{SimilarityMatrix, pooled_features, similarity_of};
use crate::backend::{self, DeviceChoice};
use crate::bench::Timing;
use crate::bench::classifier::{ClassifierBenchOptions, ClassifierTimings};
use crate::classify::data::{self, ClassData};
use crate::classify::images::ImageSet;
use crate::classify::import::import_torchvision;
use crate::classify::metrics::Evaluation;
use crate::classify::prune::{
    PruneHooks, PruneStep, Scope, run_schedule, weight_layers, weight_sparsity,
};
use crate::classify::structured::{ChannelCriterion, kept_channels, remove_channels};
use crate::classify::train::{self, Sources, Teacher, TrainEvent, TrainSettings, TrainState};
use crate::classify::{
    Architecture, ClassifierCheckpoint, ClassifierConfig, HeadKind, cifar, ham10000,
};
use crate::metrics::mean_and_sd;
use crate::model::summary::count_macs;
use crate::prune::Schedule;
use crate::train::StopReason;

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
    Train(TrainArgs),
    /// Top-1, top-5, balanced accuracy, per-class recall and the confusion matrix.
    Eval(EvalArgs),
    /// Convert a torchvision state_dict (safetensors) into a classifier checkpoint.
    Import(ImportArgs),
    /// L1 unstructured pruning to a sparsity by one schedule, fine-tuning after each step.
    Prune(PruneArgs),
    /// Schedules x sparsities x fine-tuning seeds: accuracy mean and spread (CSV, JSON).
    Sweep(SweepArgs),
    /// Eval forward and one SGD step timed, optionally beside PyTorch in the same run.
    Bench(BenchArgs),
    /// Layer x layer CKA of a classifier with itself or another on test images (CSV, PNG).
    Cka(CkaArgs),
    /// Knowledge distillation: students trained with and without a (pruned) teacher over
    /// seeds; their accuracy and their CKA with the teacher.
    Distill(DistillArgs),
    /// Structured pruning of a VGG (channels removed): parameters, MACs, measured latency and
    /// speedup per MAC cut at each ratio, accuracy with --data.
    PruneChannels(PruneChannelsArgs),
}

#[derive(Args, Debug)]
pub struct PruneChannelsArgs {
    /// A VGG checkpoint.
    pub model: PathBuf,
    /// Share of each conv's channels removed (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [0.25, 0.5, 0.75])]
    pub ratios: Vec<f64>,
    #[arg(long, value_enum, default_value_t = ChannelCriterion::L2)]
    pub criterion: ChannelCriterion,
    /// Input side the MACs and latency are measured at.
    #[arg(long, default_value_t = 32)]
    pub side: usize,
    /// Batch of the timed forward.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Test accuracy on this data folder (and fine-tuning with --fine-tune-epochs).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub fine_tune_epochs: usize,
    #[command(flatten)]
    pub sgd: SgdOptions,
    /// The pruned models go to `<output>.<ratio>.safetensors`, the table to `<output>.json`.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DistillArgs {
    /// The teacher checkpoint (e.g. a pruned VGG16).
    #[arg(long)]
    pub teacher: PathBuf,
    #[command(flatten)]
    pub data: DataOptions,
    /// The student's architecture.
    #[arg(long, value_enum, default_value_t = Architecture::Vgg11Bn)]
    pub arch: Architecture,
    #[arg(long, value_enum, default_value_t = HeadKind::Cifar)]
    pub head: HeadKind,
    #[arg(long, default_value_t = 1)]
    pub width_divisor: usize,
    /// Weight of the teacher's term, in [0, 1].
    #[arg(long, default_value_t = 0.9)]
    pub alpha: f64,
    /// Softening temperature.
    #[arg(long, default_value_t = 4.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Every seed trains one student with the teacher and one without, from the same start.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 1, 2])]
    pub seeds: Vec<u64>,
    #[command(flatten)]
    pub sgd: SgdOptions,
    /// Test images the CKA with the teacher runs on.
    #[arg(long, default_value_t = 512)]
    pub cka_images: usize,
    /// Students go to `<output>.{distilled,plain}.seed<N>.safetensors`, the summary to
    /// `<output>.json` and `<output>.csv`, the CKA with the teacher (first seed) to
    /// `<output>.{distilled,plain}.cka.csv` and `.png`.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CkaArgs {
    /// Model A (rows).
    pub model: PathBuf,
    /// Model B (columns); model A itself when omitted.
    #[arg(long)]
    pub other: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataOptions,
    #[arg(long, value_enum, default_value_t = KernelKind::Linear)]
    pub kernel: KernelKind,
    /// RBF width as a multiple of the median distance between examples.
    #[arg(long, default_value_t = 0.5)]
    pub bandwidth: f64,
    /// Test images compared (a seeded choice).
    #[arg(long, default_value_t = 512)]
    pub images: usize,
    /// Images per minibatch of the unbiased HSIC (at least 4).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Where the CSV matrix goes; the PNG heatmap goes beside it.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = Architecture::Vgg16)]
    pub arch: Architecture,
    #[arg(long, value_enum, default_value_t = HeadKind::Cifar)]
    pub head: HeadKind,
    #[arg(long, default_value_t = 100)]
    pub classes: usize,
    #[arg(long, default_value_t = 1)]
    pub width_divisor: usize,
    /// Input side.
    #[arg(long, default_value_t = 32)]
    pub side: usize,
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8])]
    pub forward_batches: Vec<usize>,
    /// Batch of the timed training step (0: none).
    #[arg(long, default_value_t = 8)]
    pub train_batch: usize,
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Also time the same torchvision network in PyTorch (python3 or $RAAGR2_PYTHON with torch
    /// and torchvision), in this run.
    #[arg(long)]
    pub against_pytorch: bool,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StandInFormat {
    Cifar100,
    Ham10000,
}

#[derive(Args, Debug)]
pub struct StandInArgs {
    #[arg(long, value_enum, default_value_t = StandInFormat::Cifar100)]
    pub format: StandInFormat,
    /// CIFAR: classes used (of the 100 the format names).
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// CIFAR: training images per class.
    #[arg(long, default_value_t = 200)]
    pub train_per_class: usize,
    /// CIFAR: test images per class.
    #[arg(long, default_value_t = 50)]
    pub test_per_class: usize,
    /// HAM10000: images in all.
    #[arg(long, default_value_t = 700)]
    pub images: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The folder to write.
    #[arg(short, long)]
    pub output: PathBuf,
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

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataOptions,
    #[arg(long, value_enum, default_value_t = Architecture::Vgg11Bn)]
    pub arch: Architecture,
    #[arg(long, value_enum, default_value_t = HeadKind::Cifar)]
    pub head: HeadKind,
    /// Divide every width by this (1: the published widths).
    #[arg(long, default_value_t = 1)]
    pub width_divisor: usize,
    /// Continue training this checkpoint (its architecture and epochs done are kept).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Epochs in all (a resumed run continues up to this count).
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[command(flatten)]
    pub sgd: SgdOptions,
    /// Seeds the initial weights, the epoch order, crops, flips and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The checkpoint written after every epoch (atomically).
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A classifier checkpoint.
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataOptions,
    /// Also write the confusion matrix (rows: truth, columns: prediction) as CSV.
    #[arg(long)]
    pub confusion_csv: Option<PathBuf>,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A torchvision state_dict as safetensors (tools/torchvision_to_safetensors.py converts
    /// a .pth).
    pub state_dict: PathBuf,
    #[arg(short, long)]
    pub output: PathBuf,
}

/// The pruning options `prune` and `sweep` share.
#[derive(Args, Debug, Clone)]
pub struct PruneOptions {
    /// Where one L1 threshold applies (layer-wise schedules always prune per layer).
    #[arg(long, value_enum, default_value_t = Scope::Global)]
    pub scope: Scope,
    /// Fine-tuning epochs after every pruning step (0: none).
    #[arg(long, default_value_t = 1)]
    pub fine_tune_epochs: usize,
    #[command(flatten)]
    pub sgd: SgdOptions,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// The dense classifier checkpoint.
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataOptions,
    #[arg(long, value_enum, default_value_t = ScheduleKind::OneShot)]
    pub schedule: ScheduleKind,
    /// Share of the conv and linear weights to remove.
    #[arg(long)]
    pub sparsity: f64,
    #[command(flatten)]
    pub prune: PruneOptions,
    /// Seeds the fine-tuning.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The dense classifier checkpoint.
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataOptions,
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ScheduleKind::OneShot, ScheduleKind::Iterative, ScheduleKind::LayerWise])]
    pub schedules: Vec<ScheduleKind>,
    #[arg(long, value_delimiter = ',', default_values_t = [0.5, 0.8])]
    pub sparsities: Vec<f64>,
    /// Fine-tuning seeds: every schedule and sparsity runs once per seed.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 1, 2])]
    pub seeds: Vec<u64>,
    #[command(flatten)]
    pub prune: PruneOptions,
    /// Writes `<output>.csv` (one row per run), `<output>.json` (runs and summary) and every
    /// pruned model as `<output>.<schedule>.<sparsity>.seed<N>.safetensors`.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn classify(args: ClassifyArgs) -> Result<()> {
    match args.command {
        ClassifyCommand::StandIn(a) => stand_in(a),
        ClassifyCommand::Train(a) => train_classifier(a),
        ClassifyCommand::Eval(a) => eval(a),
        ClassifyCommand::Import(a) => import(a),
        ClassifyCommand::Prune(a) => prune(a),
        ClassifyCommand::Sweep(a) => sweep(a),
        ClassifyCommand::Bench(a) => bench(a),
        ClassifyCommand::Cka(a) => cka(a),
        ClassifyCommand::Distill(a) => distill(a),
        ClassifyCommand::PruneChannels(a) => prune_channels(a),
    }
}

fn stand_in(args: StandInArgs) -> Result<()> {
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    match args.format {
        StandInFormat::Cifar100 => cifar::write_stand_in(
            &args.output,
            cifar::StandIn {
                classes: args.classes,
                train_per_class: args.train_per_class,
                test_per_class: args.test_per_class,
                seed: args.seed,
            },
        )?,
        StandInFormat::Ham10000 => ham10000::write_stand_in(
            &args.output,
            ham10000::StandIn {
                images: args.images,
                width: 120,
                seed: args.seed,
            },
        )?,
    }
    eprintln!("wrote {}", args.output.display());
    Ok(())
}

/// The device a command computes on, seeded.
fn device(choice: DeviceChoice, seed: u64) -> Result<burn::prelude::Device> {
    let (device, name) = backend::resolve(choice).map_err(anyhow::Error::msg)?;
    eprintln!("device: {name}");
    device.seed(seed);
    Ok(device)
}

/// Prints one training event: a progress line per epoch (batches stay quiet in logs).
fn show_event(event: &TrainEvent) {
    if let TrainEvent::Epoch(r) = event {
        let test = r
            .test_top1
            .map(|t| format!(", test top-1 {:.3}", t))
            .unwrap_or_default();
        eprintln!(
            "epoch {:>3}: loss {:.4}, train top-1 {:.3}{test}, {:.1} s",
            r.epoch, r.train_loss, r.train_top1, r.seconds
        );
    }
}

#[derive(Serialize)]
struct TrainReport<'a> {
    checkpoint: &'a Path,
    config: &'a ClassifierConfig,
    parameters: usize,
    stop: &'a str,
    state: TrainState,
    test: Evaluation,
    chance: f64,
}

fn train_classifier(args: TrainArgs) -> Result<()> {
    let data = args.data.open()?;
    let device = device(args.sgd.device, args.seed)?;
    let mut checkpoint = match &args.resume {
        Some(path) => ClassifierCheckpoint::load(path)?,
        None => {
            let config = ClassifierConfig::new(
                args.arch,
                args.head,
                data.class_names.len(),
                args.width_divisor.max(1),
            );
            config.validate()?;
            let model = config.init(&device);
            ClassifierCheckpoint::from_model(&config, &model)
        }
    };
    let settings = args.sgd.settings(args.epochs, args.seed);
    let cancel = install_ctrl_c();
    let splits = Sources {
        train: &data.train,
        test: Some(&data.test),
        teacher: None,
    };
    let stop = train::train(
        &mut checkpoint,
        splits,
        &settings,
        &device,
        Some(&args.output),
        &cancel,
        |e| show_event(&e),
    )?;
    let model = checkpoint.build(&device)?;
    let classes = checkpoint.config.classes();
    let test = train::evaluate(&model, &data.test, classes, 128, &device);
    let report = TrainReport {
        checkpoint: &args.output,
        config: &checkpoint.config,
        parameters: checkpoint.config.parameter_count(),
        stop: match stop {
            StopReason::Cancelled => "cancelled",
            _ => "finished",
        },
        state: TrainState::of(&checkpoint)?,
        test,
        chance: 1.0 / data.classes_present() as f64,
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "{}: {} parameters, {} epochs ({}); test top-1 {:.3} (chance {:.3}), top-5 {:.3}, \
         balanced {:.3}",
        args.output.display(),
        report.parameters,
        report.state.epochs_done,
        report.stop,
        report.test.top1,
        report.chance,
        report.test.top5,
        report.test.balanced_accuracy
    );
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    let checkpoint = ClassifierCheckpoint::load(&args.model)?;
    let data = args.data.open()?;
    let device = backend::cpu_device();
    let model = checkpoint.build(&device)?;
    let evaluation = train::evaluate(
        &model,
        &data.test,
        checkpoint.config.classes(),
        args.batch_size.max(1),
        &device,
    );
    if let Some(path) = &args.confusion_csv {
        let mut csv = String::from("truth");
        for name in &data.class_names {
            csv += &format!(",{name}");
        }
        csv.push('\n');
        for (name, row) in data.class_names.iter().zip(&evaluation.confusion) {
            let cells: Vec<String> = row.iter().map(u32::to_string).collect();
            csv += &format!("{name},{}\n", cells.join(","));
        }
        crate::atomic::write_bytes(path, csv.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        return print_json(&evaluation);
    }
    println!(
        "{} images: top-1 {:.4}, top-5 {:.4}, balanced accuracy {:.4}, loss {:.4}, sparsity {:.4}",
        evaluation.images,
        evaluation.top1,
        evaluation.top5,
        evaluation.balanced_accuracy,
        evaluation.loss,
        weight_sparsity(&checkpoint.weights, &weight_layers(&checkpoint))
    );
    println!("recall per class:");
    for (name, recall) in data.class_names.iter().zip(&evaluation.per_class_recall) {
        if let Some(r) = recall {
            println!("  {name:<24} {r:.3}");
        }
    }
    Ok(())
}

fn import(args: ImportArgs) -> Result<()> {
    let checkpoint = import_torchvision(&args.state_dict)?;
    checkpoint.save(&args.output)?;
    println!(
        "{}: {:?}, {} parameters, {} classes",
        args.output.display(),
        checkpoint.config,
        checkpoint.config.parameter_count(),
        checkpoint.config.classes()
    );
    Ok(())
}

/// The schedule's name in tables and files.
fn schedule_key(kind: ScheduleKind) -> &'static str {
    match kind {
        ScheduleKind::OneShot => "one-shot",
        ScheduleKind::Iterative => "iterative",
        ScheduleKind::LayerWise => "layer-wise",
    }
}

fn schedule_of(kind: ScheduleKind) -> Schedule {
    match kind {
        ScheduleKind::OneShot => Schedule::OneShot,
        // The step count follows from the 10 % increments (see classify::prune).
        ScheduleKind::Iterative => Schedule::Iterative { steps: 0 },
        ScheduleKind::LayerWise => Schedule::LayerWise,
    }
}

/// Scores and fine-tunes on the data set's splits: top-1 on the test split, fine-tuning on the
/// training split.
struct Hooks<'a> {
    data: &'a ClassData,
    options: &'a PruneOptions,
    device: burn::prelude::Device,
    seed: u64,
    cancel: AtomicBool,
    fine_tune_epochs_run: usize,
    quiet: bool,
}

impl PruneHooks for Hooks<'_> {
    fn top1(&mut self, checkpoint: &ClassifierCheckpoint) -> Result<f64> {
        let model = checkpoint.build(&self.device)?;
        let classes = checkpoint.config.classes();
        Ok(train::evaluate(&model, &self.data.test, classes, 128, &self.device).top1)
    }

    fn fine_tune(
        &mut self,
        checkpoint: &ClassifierCheckpoint,
        step: usize,
    ) -> Result<Option<ClassifierCheckpoint>> {
        if self.options.fine_tune_epochs == 0 {
            return Ok(None);
        }
        let mut tuned = checkpoint.clone();
        tuned.metadata.clear();
        let seed = self.seed.wrapping_mul(7919).wrapping_add(step as u64);
        let settings = self
            .options
            .sgd
            .settings(self.options.fine_tune_epochs, seed);
        self.device.seed(seed);
        let splits = Sources {
            train: &self.data.train,
            test: None,
            teacher: None,
        };
        train::train(
            &mut tuned,
            splits,
            &settings,
            &self.device,
            None,
            &self.cancel,
            |_| {},
        )?;
        self.fine_tune_epochs_run += self.options.fine_tune_epochs;
        Ok(Some(tuned))
    }

    fn on_step(&mut self, r: &PruneStep, steps: usize) {
        if self.quiet {
            return;
        }
        let tuned = r
            .top1_fine_tuned
            .map(|t| format!(" -> {t:.3} fine-tuned"))
            .unwrap_or_default();
        eprintln!(
            "  step {}/{steps} {}: sparsity {:.4}, top-1 {:.3}{tuned}",
            r.step, r.label, r.sparsity, r.top1_pruned
        );
    }
}

/// One schedule run to one sparsity with one fine-tuning seed.
#[derive(Debug, Clone, Serialize)]
struct PruneRun {
    schedule: String,
    target: f64,
    seed: u64,
    sparsity: f64,
    top1_dense: f64,
    top1_pruned_final: f64,
    top1: f64,
    fine_tune_epochs: usize,
    steps: Vec<PruneStep>,
}

/// A dense model, its data and the pruning options: what every run of `prune` and `sweep`
/// starts from.
struct Study<'a> {
    dense: &'a ClassifierCheckpoint,
    data: &'a ClassData,
    options: &'a PruneOptions,
    top1_dense: f64,
}

impl Study<'_> {
    /// Prunes the dense model to `target` by `kind`, fine-tuning with `seed`.
    fn run(
        &self,
        kind: ScheduleKind,
        target: f64,
        seed: u64,
        quiet: bool,
    ) -> Result<(ClassifierCheckpoint, PruneRun)> {
        let mut hooks = Hooks {
            data: self.data,
            options: self.options,
            device: backend::resolve(self.options.sgd.device)
                .map_err(anyhow::Error::msg)?
                .0,
            seed,
            cancel: AtomicBool::new(false),
            fine_tune_epochs_run: 0,
            quiet,
        };
        let schedule = schedule_of(kind);
        let scope = self.options.scope;
        let (pruned, steps) = run_schedule(self.dense, target, schedule, scope, &mut hooks)?;
        let last = steps.last().expect("a schedule has a step");
        let sparsity = weight_sparsity(&pruned.weights, &weight_layers(&pruned));
        let run = PruneRun {
            schedule: schedule_key(kind).to_string(),
            target,
            seed,
            sparsity,
            top1_dense: self.top1_dense,
            top1_pruned_final: last.top1_pruned,
            top1: last.top1_fine_tuned.unwrap_or(last.top1_pruned),
            fine_tune_epochs: hooks.fine_tune_epochs_run,
            steps,
        };
        Ok((pruned, run))
    }
}

fn dense_top1(dense: &ClassifierCheckpoint, data: &ClassData) -> Result<f64> {
    let device = backend::cpu_device();
    let model = dense.build(&device)?;
    Ok(train::evaluate(&model, &data.test, dense.config.classes(), 128, &device).top1)
}

fn check_sparsity(target: f64) -> Result<()> {
    if !(0.0..1.0).contains(&target) {
        bail!("--sparsity {target} is impossible: it must be in [0, 1)");
    }
    Ok(())
}

fn prune(args: PruneArgs) -> Result<()> {
    check_sparsity(args.sparsity)?;
    let dense = ClassifierCheckpoint::load(&args.model)?;
    let data = args.data.open()?;
    let top1_dense = dense_top1(&dense, &data)?;
    eprintln!("dense top-1 {top1_dense:.3}");
    let study = Study {
        dense: &dense,
        data: &data,
        options: &args.prune,
        top1_dense,
    };
    let (pruned, run) = study.run(args.schedule, args.sparsity, args.seed, args.json)?;
    pruned.save(&args.output)?;
    if args.json {
        return print_json(&run);
    }
    println!(
        "{}: {} to {:.1} % -> measured sparsity {:.4}, top-1 {:.3} (dense {:.3}, untuned {:.3}), \
         {} fine-tuning epochs",
        args.output.display(),
        run.schedule,
        args.sparsity * 100.0,
        run.sparsity,
        run.top1,
        run.top1_dense,
        run.top1_pruned_final,
        run.fine_tune_epochs
    );
    Ok(())
}

/// One schedule and sparsity over every seed.
#[derive(Debug, Serialize)]
struct SweepSummary {
    schedule: String,
    target: f64,
    top1_mean: f64,
    top1_sd: Option<f64>,
    sparsity_mean: f64,
    /// The largest |measured - target| over the seeds.
    sparsity_max_error: f64,
    fine_tune_epochs: usize,
}

#[derive(Serialize)]
struct SweepReport {
    model: PathBuf,
    top1_dense: f64,
    chance: f64,
    summary: Vec<SweepSummary>,
    runs: Vec<PruneRun>,
}

fn sweep(args: SweepArgs) -> Result<()> {
    for &s in &args.sparsities {
        check_sparsity(s)?;
    }
    if args.seeds.is_empty() || args.schedules.is_empty() {
        bail!("--seeds and --schedules need at least one value each");
    }
    let dense = ClassifierCheckpoint::load(&args.model)?;
    let data = args.data.open()?;
    let top1_dense = dense_top1(&dense, &data)?;
    eprintln!("dense top-1 {top1_dense:.3}");
    let study = Study {
        dense: &dense,
        data: &data,
        options: &args.prune,
        top1_dense,
    };
    let mut runs = Vec::new();
    let mut summary = Vec::new();
    for &kind in &args.schedules {
        for &target in &args.sparsities {
            let mut group = Vec::new();
            for &seed in &args.seeds {
                let (pruned, run) = study.run(kind, target, seed, true)?;
                let name = format!(
                    "{}.{}.{target}.seed{seed}.safetensors",
                    args.output.display(),
                    run.schedule
                );
                pruned.save(Path::new(&name))?;
                eprintln!(
                    "{} {:.0} % seed {seed}: sparsity {:.4}, top-1 {:.3} (untuned {:.3})",
                    run.schedule,
                    target * 100.0,
                    run.sparsity,
                    run.top1,
                    run.top1_pruned_final
                );
                group.push(run);
            }
            summary.push(summarise(&group));
            runs.extend(group);
        }
    }
    let report = SweepReport {
        model: args.model.clone(),
        top1_dense,
        chance: 1.0 / data.classes_present() as f64,
        summary,
        runs,
    };
    write_sweep(&args.output, &report)?;
    if args.json {
        return print_json(&report);
    }
    println!(
        "dense top-1 {:.3} (chance {:.3}); mean ± sd over seeds {:?}",
        report.top1_dense, report.chance, args.seeds
    );
    println!("schedule      target  sparsity (max error)  top-1            fine-tune epochs");
    for s in &report.summary {
        let sd = s.top1_sd.map(|v| format!("± {v:.3}")).unwrap_or_default();
        println!(
            "{:<12} {:>6.1} %  {:.4} ({:.4})       {:.3} {sd:<8} {}",
            s.schedule,
            s.target * 100.0,
            s.sparsity_mean,
            s.sparsity_max_error,
            s.top1_mean,
            s.fine_tune_epochs
        );
    }
    Ok(())
}

fn summarise(group: &[PruneRun]) -> SweepSummary {
    let top1: Vec<f64> = group.iter().map(|r| r.top1).collect();
    let sparsity: Vec<f64> = group.iter().map(|r| r.sparsity).collect();
    let (top1_mean, top1_sd) = mean_and_sd(&top1);
    let first = &group[0];
    SweepSummary {
        schedule: first.schedule.clone(),
        target: first.target,
        top1_mean,
        top1_sd,
        sparsity_mean: mean_and_sd(&sparsity).0,
        sparsity_max_error: group
            .iter()
            .map(|r| (r.sparsity - r.target).abs())
            .fold(0.0, f64::max),
        fine_tune_epochs: first.fine_tune_epochs,
    }
}

/// `<output>.csv`, one row per run, and `<output>.json` with the summary, each atomically.
fn write_sweep(output: &Path, report: &SweepReport) -> Result<()> {
    let mut csv = String::from(
        "schedule,target,seed,sparsity,top1_dense,top1_untuned,top1,fine_tune_epochs\n",
    );
    for r in &report.runs {
        csv += &format!(
            "{},{},{},{:.6},{:.6},{:.6},{:.6},{}\n",
            r.schedule,
            r.target,
            r.seed,
            r.sparsity,
            r.top1_dense,
            r.top1_pruned_final,
            r.top1,
            r.fine_tune_epochs
        );
    }
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", output.display()));
    for (path, bytes) in [
        (with("csv"), csv.into_bytes()),
        (with("json"), serde_json::to_vec_pretty(report)?),
    ] {
        crate::atomic::write_bytes(&path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[derive(Serialize)]
struct BenchReport {
    config: ClassifierConfig,
    parameters: usize,
    side: usize,
    rows: Vec<ClassifierTimings>,
}

fn bench(args: BenchArgs) -> Result<()> {
    let config = ClassifierConfig::new(
        args.arch,
        args.head,
        args.classes,
        args.width_divisor.max(1),
    );
    config.validate()?;
    if args.side < config.min_side() || args.runs == 0 {
        bail!(
            "--side must be at least {} and --runs at least 1 (got {} and {})",
            config.min_side(),
            args.side,
            args.runs
        );
    }
    let (device, label) = backend::resolve(args.device).map_err(anyhow::Error::msg)?;
    let options = ClassifierBenchOptions {
        config: config.clone(),
        side: args.side,
        forward_batches: args.forward_batches.clone(),
        train_batch: args.train_batch,
        runs: args.runs,
        against_pytorch: args.against_pytorch,
    };
    eprintln!(
        "timing {} ({} runs each)...",
        args.arch.torchvision_name(),
        args.runs
    );
    let report = BenchReport {
        parameters: config.parameter_count(),
        config,
        side: args.side,
        rows: crate::bench::classifier::run(&options, &device, &label),
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "{} ({} parameters), {}x{} input; median of {} runs (first call)",
        args.arch.torchvision_name(),
        report.parameters,
        args.side,
        args.side,
        args.runs
    );
    let mut header = format!("{:<52}", "");
    for b in &args.forward_batches {
        header += &format!(" {:>20}", format!("forward b{b}"));
    }
    header += &format!(" {:>20}", format!("train step b{}", args.train_batch));
    println!("{header}");
    let cell = |t: Option<&Timing>| match t {
        Some(t) => format!("{:.2} ms ({:.0})", t.median_secs * 1e3, t.first_secs * 1e3),
        None => "-".into(),
    };
    for row in &report.rows {
        if let Some(reason) = &row.skipped {
            println!("{:<52} skipped: {reason}", row.name);
            continue;
        }
        let mut line = format!("{:<52}", row.name);
        for b in &args.forward_batches {
            let t = row
                .forward
                .iter()
                .find(|f| f.batch == *b)
                .map(|f| &f.timing);
            line += &format!(" {:>20}", cell(t));
        }
        line += &format!(" {:>20}", cell(row.train_step.as_ref()));
        println!("{line}");
    }
    if let [ours, peer] = &report.rows[..]
        && peer.skipped.is_none()
    {
        let mut line = format!("{:<52}", "ratio (this project / PyTorch)");
        for b in &args.forward_batches {
            let at = |r: &ClassifierTimings| {
                r.forward
                    .iter()
                    .find(|f| f.batch == *b)
                    .map(|f| f.timing.median_secs)
            };
            let ratio = at(ours)
                .zip(at(peer))
                .map(|(a, p)| format!("{:.2}x", a / p));
            line += &format!(" {:>20}", ratio.unwrap_or_default());
        }
        let train = ours.train_step.as_ref().zip(peer.train_step.as_ref());
        let ratio = train.map(|(a, p)| format!("{:.2}x", a.median_secs / p.median_secs));
        line += &format!(" {:>20}", ratio.unwrap_or_default());
        println!("{line}");
    }
    Ok(())
}

/// Layer x layer CKA of two classifiers on up to `images` test images (seeded choice) in
/// minibatches of `batch`.
fn layer_similarity(
    a: &ClassifierCheckpoint,
    b: &ClassifierCheckpoint,
    test: &ImageSet,
    images: usize,
    batch: usize,
    kernel: Kernel,
) -> Result<SimilarityMatrix> {
    let device = backend::cpu_device();
    let (model_a, model_b) = (a.build(&device)?, b.build(&device)?);
    let mut order = crate::data::dataset::epoch_batches(test.len(), batch, true, 0);
    order.truncate(images.min(test.len()) / batch);
    if order.is_empty() {
        bail!(
            "the test split has {} images, fewer than one minibatch of {batch}",
            test.len()
        );
    }
    let batches = order.iter().map(|i| train::batch(test, i, None, &device).0);
    Ok(similarity_of(
        |x| pooled_features(model_a.layer_outputs(x)),
        |x| pooled_features(model_b.layer_outputs(x)),
        batches,
        kernel,
    ))
}

fn cka(args: CkaArgs) -> Result<()> {
    if args.batch < 4 || args.images < args.batch {
        bail!(
            "--batch must be at least 4 (the unbiased HSIC needs 4 examples) and --images ({}) \
             at least --batch ({})",
            args.images,
            args.batch
        );
    }
    let a = ClassifierCheckpoint::load(&args.model)?;
    let b = match &args.other {
        Some(path) => ClassifierCheckpoint::load(path)?,
        None => a.clone(),
    };
    let data = args.data.open()?;
    let device = backend::cpu_device();
    let (model_a, model_b) = (a.build(&device)?, b.build(&device)?);
    let mut order = crate::data::dataset::epoch_batches(data.test.len(), args.batch, true, 0);
    order.truncate(args.images.min(data.test.len()) / args.batch);
    if order.is_empty() {
        bail!(
            "the test split has {} images, fewer than one minibatch of {}",
            data.test.len(),
            args.batch
        );
    }
    let batches = order
        .iter()
        .map(|i| train::batch(&data.test, i, None, &device).0);
    let matrix = similarity_of(
        |x| pooled_features(model_a.layer_outputs(x)),
        |x| pooled_features(model_b.layer_outputs(x)),
        batches,
        args.kernel.kernel(args.bandwidth),
    );
    let stem = |p: &Path| {
        p.file_stem()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned())
    };
    let other = args.other.as_deref().unwrap_or(&args.model);
    let title = format!(
        "{} CKA: {} (rows) vs {}",
        args.kernel.name(),
        stem(&args.model),
        stem(other)
    );
    write_matrix(&args.output, &title, &matrix, args.json)
}

/// One student of `classify distill`.
#[derive(Debug, Clone, Serialize)]
struct StudentRun {
    seed: u64,
    with_teacher: bool,
    top1: f64,
    balanced_accuracy: f64,
    checkpoint: PathBuf,
}

#[derive(Serialize)]
struct DistillReport {
    teacher: PathBuf,
    teacher_top1: f64,
    student: ClassifierConfig,
    alpha: f64,
    temperature: f64,
    epochs: usize,
    distilled_top1_mean: f64,
    distilled_top1_sd: Option<f64>,
    plain_top1_mean: f64,
    plain_top1_sd: Option<f64>,
    runs: Vec<StudentRun>,
    /// CKA of each first-seed student's layers (rows) with the teacher's (columns).
    cka_distilled: SimilarityMatrix,
    cka_plain: SimilarityMatrix,
}

fn distill(args: DistillArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.alpha) || args.temperature.is_nan() || args.temperature <= 0.0 {
        bail!(
            "--alpha {} must be in [0, 1] and --temperature {} positive",
            args.alpha,
            args.temperature
        );
    }
    if args.seeds.is_empty() {
        bail!("--seeds needs at least one seed");
    }
    let teacher_checkpoint = ClassifierCheckpoint::load(&args.teacher)?;
    let data = args.data.open()?;
    if teacher_checkpoint.config.classes() != data.class_names.len() {
        bail!(
            "{}: the teacher has {} classes, the data {}",
            args.teacher.display(),
            teacher_checkpoint.config.classes(),
            data.class_names.len()
        );
    }
    let config = ClassifierConfig::new(
        args.arch,
        args.head,
        data.class_names.len(),
        args.width_divisor.max(1),
    );
    config.validate()?;
    let (device, label) = backend::resolve(args.sgd.device).map_err(anyhow::Error::msg)?;
    eprintln!("device: {label}");
    let teacher = Teacher {
        model: teacher_checkpoint.build(&device)?,
        alpha: args.alpha,
        temperature: args.temperature,
    };
    let classes = config.classes();
    let teacher_top1 = train::evaluate(&teacher.model, &data.test, classes, 128, &device).top1;
    eprintln!("teacher top-1 {teacher_top1:.3}");
    let cancel = install_ctrl_c();
    let mut runs = Vec::new();
    let mut first_students = Vec::new();
    for &seed in &args.seeds {
        for with_teacher in [true, false] {
            // Both arms of a seed start from the same weights and see the same batches.
            device.seed(seed);
            let mut student = ClassifierCheckpoint::from_model(&config, &config.init(&device));
            let arm = if with_teacher { "distilled" } else { "plain" };
            let path = PathBuf::from(format!(
                "{}.{arm}.seed{seed}.safetensors",
                args.output.display()
            ));
            let sources = Sources {
                train: &data.train,
                test: None,
                teacher: with_teacher.then_some(&teacher),
            };
            let settings = args.sgd.settings(args.epochs, seed);
            let stop = train::train(
                &mut student,
                sources,
                &settings,
                &device,
                Some(&path),
                &cancel,
                |e| show_event(&e),
            )?;
            if stop == StopReason::Cancelled {
                bail!("cancelled; the students finished so far are kept");
            }
            let model = student.build(&device)?;
            let e = train::evaluate(&model, &data.test, classes, 128, &device);
            eprintln!("seed {seed} {arm}: top-1 {:.3}", e.top1);
            runs.push(StudentRun {
                seed,
                with_teacher,
                top1: e.top1,
                balanced_accuracy: e.balanced_accuracy,
                checkpoint: path,
            });
            if seed == args.seeds[0] {
                first_students.push(student);
            }
        }
    }
    let kernel = Kernel::Linear;
    let batch = 64.min(args.cka_images.max(4));
    let cka_of = |s: &ClassifierCheckpoint| {
        layer_similarity(
            s,
            &teacher_checkpoint,
            &data.test,
            args.cka_images,
            batch,
            kernel,
        )
    };
    let (cka_distilled, cka_plain) = (cka_of(&first_students[0])?, cka_of(&first_students[1])?);
    let top1 = |with: bool| {
        let values: Vec<f64> = runs
            .iter()
            .filter(|r| r.with_teacher == with)
            .map(|r| r.top1)
            .collect();
        mean_and_sd(&values)
    };
    let ((dm, dsd), (pm, psd)) = (top1(true), top1(false));
    let report = DistillReport {
        teacher: args.teacher.clone(),
        teacher_top1,
        student: config,
        alpha: args.alpha,
        temperature: args.temperature,
        epochs: args.epochs,
        distilled_top1_mean: dm,
        distilled_top1_sd: dsd,
        plain_top1_mean: pm,
        plain_top1_sd: psd,
        runs,
        cka_distilled,
        cka_plain,
    };
    write_distill(&args.output, &report)?;
    if args.json {
        return print_json(&report);
    }
    let sd = |v: Option<f64>| v.map(|v| format!(" ± {v:.3}")).unwrap_or_default();
    println!(
        "teacher {} top-1 {:.3}; students ({} epochs, alpha {}, T {}), mean over seeds {:?}:\n  \
         with the teacher    top-1 {:.3}{}\n  without the teacher top-1 {:.3}{}",
        args.teacher.display(),
        teacher_top1,
        args.epochs,
        args.alpha,
        args.temperature,
        args.seeds,
        dm,
        sd(dsd),
        pm,
        sd(psd)
    );
    println!("same-depth CKA with the teacher (first seed), student layer: distilled / plain");
    for (r, name) in report.cka_distilled.rows.iter().enumerate() {
        let best = |m: &SimilarityMatrix| m.values[r].iter().cloned().fold(f64::MIN, f64::max);
        println!(
            "  {name:<12} best match {:.2} / {:.2}",
            best(&report.cka_distilled),
            best(&report.cka_plain)
        );
    }
    Ok(())
}

/// `<output>.json`, `<output>.csv` (one row per student) and the two CKA matrices as CSV + PNG.
fn write_distill(output: &Path, report: &DistillReport) -> Result<()> {
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", output.display()));
    let mut csv = String::from("seed,with_teacher,top1,balanced_accuracy\n");
    for r in &report.runs {
        csv += &format!(
            "{},{},{:.6},{:.6}\n",
            r.seed, r.with_teacher, r.top1, r.balanced_accuracy
        );
    }
    for (path, bytes) in [
        (with("csv"), csv.into_bytes()),
        (with("json"), serde_json::to_vec_pretty(report)?),
    ] {
        crate::atomic::write_bytes(&path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for (arm, matrix) in [
        ("distilled", &report.cka_distilled),
        ("plain", &report.cka_plain),
    ] {
        let csv_path = with(&format!("{arm}.cka.csv"));
        crate::atomic::write_bytes(&csv_path, cka_csv(matrix).as_bytes())
            .with_context(|| format!("writing {}", csv_path.display()))?;
        let title = format!("linear CKA: {arm} student (rows) vs teacher");
        crate::plot::write_heatmap_png(
            &csv_path.with_extension("png"),
            &title,
            &matrix.rows,
            &matrix.columns,
            &matrix.values,
        )?;
    }
    Ok(())
}

/// One ratio of `classify prune-channels`.
#[derive(Debug, Serialize)]
struct ChannelRow {
    ratio: f64,
    parameters: usize,
    macs: u64,
    /// Dense MACs over these.
    mac_reduction: f64,
    latency: Timing,
    /// Dense median latency over this one's.
    speedup: f64,
    /// Speedup over MAC reduction: 1 when time falls with the arithmetic.
    speedup_per_mac_cut: f64,
    top1: Option<f64>,
    top1_fine_tuned: Option<f64>,
    checkpoint: PathBuf,
}

fn prune_channels(args: PruneChannelsArgs) -> Result<()> {
    let dense = ClassifierCheckpoint::load(&args.model)?;
    let data = args.data.as_ref().map(|dir| DataOptions {
        data: dir.clone(),
        side: args.side,
        split_seed: 0,
    });
    let data = data.as_ref().map(DataOptions::open).transpose()?;
    let device = backend::cpu_device();
    let classes = dense.config.classes();
    let top1 = |c: &ClassifierCheckpoint| -> Result<Option<f64>> {
        Ok(match &data {
            Some(d) => {
                Some(train::evaluate(&c.build(&device)?, &d.test, classes, 128, &device).top1)
            }
            None => None,
        })
    };
    let dense_model = dense.build(&device)?;
    let dense_macs = count_macs(&dense_model, args.side, args.side);
    let mut rows = Vec::new();
    for &ratio in &args.ratios {
        let kept = kept_channels(&dense, ratio, args.criterion)?;
        let mut pruned = remove_channels(&dense, &kept)?;
        let top1_pruned = top1(&pruned)?;
        let mut top1_fine_tuned = None;
        if let (Some(d), true) = (&data, args.fine_tune_epochs > 0) {
            let sources = Sources {
                train: &d.train,
                test: None,
                teacher: None,
            };
            let settings = args.sgd.settings(args.fine_tune_epochs, 0);
            train::train(
                &mut pruned,
                sources,
                &settings,
                &device,
                None,
                &AtomicBool::new(false),
                |_| {},
            )?;
            top1_fine_tuned = top1(&pruned)?;
        }
        let path = PathBuf::from(format!("{}.{ratio}.safetensors", args.output.display()));
        pruned.save(&path)?;
        let model = pruned.build(&device)?;
        let macs = count_macs(&model, args.side, args.side);
        let timings = crate::bench::classifier::compare_forward(
            &[&dense_model, &model],
            args.side,
            args.batch,
            args.runs,
            &device,
        );
        let speedup = timings[0].median_secs / timings[1].median_secs;
        let mac_reduction = dense_macs as f64 / macs as f64;
        eprintln!(
            "ratio {ratio}: {} parameters, {:.1} M MACs ({mac_reduction:.2}x fewer), speedup {speedup:.2}x",
            pruned.config.parameter_count(),
            macs as f64 / 1e6
        );
        rows.push(ChannelRow {
            ratio,
            parameters: pruned.config.parameter_count(),
            macs,
            mac_reduction,
            latency: timings[1].clone(),
            speedup,
            speedup_per_mac_cut: speedup / mac_reduction,
            top1: top1_pruned,
            top1_fine_tuned,
            checkpoint: path,
        });
    }
    #[derive(Serialize)]
    struct Report {
        model: PathBuf,
        criterion: ChannelCriterion,
        side: usize,
        batch: usize,
        parameters: usize,
        macs: u64,
        top1: Option<f64>,
        rows: Vec<ChannelRow>,
    }
    let report = Report {
        model: args.model.clone(),
        criterion: args.criterion,
        side: args.side,
        batch: args.batch,
        parameters: dense.config.parameter_count(),
        macs: dense_macs,
        top1: top1(&dense)?,
        rows,
    };
    let json_path = PathBuf::from(format!("{}.json", args.output.display()));
    crate::atomic::write_bytes(&json_path, &serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    if args.json {
        return print_json(&report);
    }
    let pct = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    println!(
        "dense: {} parameters, {:.1} M MACs at {}x{}, top-1 {}; forward batch {} (median of {})",
        report.parameters,
        report.macs as f64 / 1e6,
        args.side,
        args.side,
        pct(report.top1),
        args.batch,
        args.runs
    );
    println!(
        "ratio  parameters   M MACs  MACs cut  latency     speedup  per MAC cut  top-1  fine-tuned"
    );
    for r in &report.rows {
        println!(
            "{:<5}  {:>10}  {:>7.1}  {:>7.2}x  {:>7.2} ms  {:>6.2}x  {:>11.2}  {:>5}  {}",
            r.ratio,
            r.parameters,
            r.macs as f64 / 1e6,
            r.mac_reduction,
            r.latency.median_secs * 1e3,
            r.speedup,
            r.speedup_per_mac_cut,
            pct(r.top1),
            pct(r.top1_fine_tuned)
        );
    }
    Ok(())
}

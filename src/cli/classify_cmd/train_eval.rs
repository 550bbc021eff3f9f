//! `classify stand-in`, `train`, `eval` and `import`: data in the real formats, SGD training
//! (resumable), evaluation and torchvision weights.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use super::{ArchOptions, DataOptions, SgdOptions, device};
use crate::backend;
use crate::classify::import::import_torchvision;
use crate::classify::metrics::Evaluation;
use crate::classify::prune::{weight_layers, weight_sparsity};
use crate::classify::train::{self, AccuracyFigures, Sources};
use crate::classify::{ClassifierCheckpoint, ClassifierConfig, cifar, ham10000};
use crate::cli::print_json;
use crate::cli::train_cmd::TrainProgress;
use crate::cli::train_cmd::install_ctrl_c;
use crate::train::StopReason;
use crate::train::TrainState;

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

#[derive(Args, Debug)]
pub struct ClassifyTrainArgs {
    #[command(flatten)]
    pub data: DataOptions,
    #[command(flatten)]
    pub arch: ArchOptions,
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
pub struct ClassifyEvalArgs {
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
pub struct ClassifyImportArgs {
    /// A torchvision state_dict as safetensors (tools/torchvision_to_safetensors.py converts
    /// a .pth).
    pub state_dict: PathBuf,
    #[arg(short, long)]
    pub output: PathBuf,
}

pub(super) fn stand_in(args: StandInArgs) -> Result<()> {
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    match args.format {
        StandInFormat::Cifar100 => cifar::write_stand_in(
            &args.output,
            cifar::CifarStandIn {
                classes: args.classes,
                train_per_class: args.train_per_class,
                test_per_class: args.test_per_class,
                seed: args.seed,
            },
        )?,
        StandInFormat::Ham10000 => ham10000::write_stand_in(
            &args.output,
            ham10000::Ham10000StandIn {
                images: args.images,
                width: 120,
                seed: args.seed,
            },
        )?,
    }
    eprintln!("wrote {}", args.output.display());
    Ok(())
}

#[derive(Serialize)]
struct ClassifierTrainReport<'a> {
    checkpoint: &'a Path,
    config: &'a ClassifierConfig,
    parameters: usize,
    stop: &'a str,
    state: TrainState<AccuracyFigures>,
    test: Evaluation,
    chance: f64,
}

pub(super) fn train_classifier(args: ClassifyTrainArgs) -> Result<()> {
    let data = args.data.open()?;
    let device = device(args.sgd.device, args.seed)?;
    let mut checkpoint = match &args.resume {
        Some(path) => ClassifierCheckpoint::load(path)?,
        None => {
            let config = args.arch.config(data.class_names.len())?;
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
    let progress = TrainProgress::new();
    let stop = train::train(
        &mut checkpoint,
        splits,
        &settings,
        &device,
        Some(&args.output),
        &cancel,
        |e| progress.show(&e),
    )?;
    progress.finish();
    let model = checkpoint.build(&device)?;
    let classes = checkpoint.config.classes();
    let test = train::evaluate(&model, &data.test, classes, 128, &device);
    let report = ClassifierTrainReport {
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

pub(super) fn eval(args: ClassifyEvalArgs) -> Result<()> {
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

pub(super) fn import(args: ClassifyImportArgs) -> Result<()> {
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

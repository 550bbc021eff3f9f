//! `classify bench`: a classifier timed beside the same torchvision network in PyTorch.

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use super::classifier_config;
use crate::backend::{self, DeviceChoice};
use crate::bench::classifier::{ClassifierBenchOptions, ClassifierTimings};
use crate::classify::{Architecture, ClassifierConfig, HeadKind};
use crate::cli::print_json;
use crate::timing::Timing;

#[derive(Args, Debug)]
pub struct ClassifyBenchArgs {
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

#[derive(Serialize)]
struct ClassifierBenchReport {
    config: ClassifierConfig,
    parameters: usize,
    side: usize,
    rows: Vec<ClassifierTimings>,
}

pub(super) fn bench(args: ClassifyBenchArgs) -> Result<()> {
    let config = classifier_config(args.arch, args.head, args.classes, args.width_divisor)?;
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
    let report = ClassifierBenchReport {
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

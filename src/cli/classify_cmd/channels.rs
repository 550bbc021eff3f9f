//! `classify prune-channels`: structured VGG pruning with measured speedup per MAC cut.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use super::{DataOptions, SgdOptions};
use crate::backend;
use crate::classify::ClassifierCheckpoint;
use crate::classify::structured::{ChannelCriterion, kept_channels, remove_channels};
use crate::classify::train::{self, Sources};
use crate::cli::print_json;
use crate::model::summary::count_macs;
use crate::timing::{Timing, compare_forward};

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

pub(super) fn prune_channels(args: PruneChannelsArgs) -> Result<()> {
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
        let timings = compare_forward(
            &[&dense_model, &model],
            [args.batch, args.side, args.side],
            args.runs.max(1),
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

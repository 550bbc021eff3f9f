//! `sweep`: structured pruning over a grid of methods and ratios, one CSV row per point with
//! parameters, MACs, CPU latency (timed against the dense model in the same run) and mean Dice
//! per region on the evaluation cases.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use super::pipeline::DataArgs;
use super::{defaults, print_json};
use crate::backend;
use crate::bench::compare_forward;
use crate::inference::{InferenceOptions, evaluate_cases};
use crate::metrics::mean_metrics;
use crate::model::Checkpoint;
use crate::model::summary::summarize;
use crate::prune::{Ratios, StructuredMethod, prune_structured};
use crate::report;

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// A checkpoint; the embedded default model when omitted.
    pub model: Option<PathBuf>,
    /// Methods, comma-separated: l2, bn-gamma, group-l2.
    #[arg(long, default_value = "l2,bn-gamma,group-l2")]
    pub methods: String,
    /// Ratios removed from every group, comma-separated, each in [0, 1).
    #[arg(long, default_value = "0,0.125,0.25,0.375,0.5")]
    pub ratios: String,
    /// Each ratio is a share of all channels under one threshold across groups (see
    /// `prune --global`) instead of the same share of every group.
    #[arg(long)]
    pub global: bool,
    /// Where the CSV goes.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Input side for MACs and latency (multiple of 16).
    #[arg(long, default_value_t = 192)]
    pub size: usize,
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    #[arg(long)]
    pub json: bool,
}

/// One point of the sweep.
#[derive(Debug, Serialize)]
pub struct SweepPoint {
    pub method: StructuredMethod,
    pub ratio: f64,
    pub params: usize,
    pub macs: u64,
    pub latency_ms: f64,
    pub dense_latency_ms: f64,
    pub dice_wt: f64,
    pub dice_tc: f64,
    pub dice_et: f64,
}

const CSV_HEADER: &str =
    "method,ratio,params,macs,latency_ms,dense_latency_ms,speedup,dice_wt,dice_tc,dice_et";

pub fn sweep(args: SweepArgs) -> Result<()> {
    super::check_size("--size", args.size)?;
    super::pipeline::check_threshold(args.threshold)?;
    let methods = parse_methods(&args.methods)?;
    let ratios = parse_ratio_grid(&args.ratios)?;
    let (dense, model_name) = defaults::model_or_default(args.model.as_deref())?;
    let cases =
        defaults::data_or_held_out(&args.data).load(|id| eprintln!("sweep: loading {id}"))?;
    let device = backend::cpu_device();
    let dense_model = dense.build(&device)?;
    let options = InferenceOptions {
        threshold: args.threshold,
        ..InferenceOptions::default()
    };
    // Prune every point first (milliseconds each), so an impossible ratio is refused before
    // minutes of timing and evaluation.
    let mut grid = Vec::new();
    for &method in &methods {
        for &ratio in &ratios {
            let share = if args.global {
                Ratios::Global(ratio)
            } else {
                Ratios::Uniform(ratio)
            };
            let (config, weights) = prune_structured(&dense.config, &dense.weights, method, &share)
                .map_err(|e| anyhow::anyhow!("{} at ratio {ratio}: {e}", method.key()))?;
            let pruned = Checkpoint {
                config,
                weights,
                metadata: Default::default(),
            };
            grid.push((method, ratio, pruned));
        }
    }
    let mut points = Vec::new();
    for (method, ratio, pruned) in grid {
        eprintln!("sweep: {} at ratio {ratio}", method.name());
        let model = pruned.build(&device)?;
        let summary = summarize(&pruned.config, &model, args.size, args.size)?;
        let [dense_time, time] = compare_forward(
            &[&dense_model, &model],
            args.size,
            args.runs.max(1),
            &device,
        );
        let scored = evaluate_cases(&model, pruned.config.head, &cases, options, &device, |_| {})?;
        let dice = mean_metrics(&scored).dice;
        points.push(SweepPoint {
            method,
            ratio,
            params: summary.params,
            macs: summary.macs,
            latency_ms: time.median_secs * 1e3,
            dense_latency_ms: dense_time.median_secs * 1e3,
            dice_wt: dice["WT"],
            dice_tc: dice["TC"],
            dice_et: dice["ET"],
        });
    }
    crate::atomic::write_bytes(&args.output, csv(&points).as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.output.display()))?;
    if args.json {
        return print_json(&points);
    }
    println!(
        "sweep of {model_name} over {} case(s) -> {}\n",
        cases.len(),
        args.output.display()
    );
    print!("{}", table(&points));
    Ok(())
}

fn parse_methods(list: &str) -> Result<Vec<StructuredMethod>> {
    use clap::ValueEnum;
    list.split(',')
        .map(|name| {
            StructuredMethod::from_str(name.trim(), true).map_err(|_| {
                anyhow::anyhow!("--methods: unknown method {name:?}; use l2, bn-gamma, group-l2")
            })
        })
        .collect()
}

fn parse_ratio_grid(list: &str) -> Result<Vec<f64>> {
    let ratios = list
        .split(',')
        .map(|r| {
            r.trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..1.0).contains(r))
                .ok_or_else(|| anyhow::anyhow!("--ratios: {r:?} is not a ratio in [0, 1)"))
        })
        .collect::<Result<Vec<_>>>()?;
    if ratios.is_empty() {
        bail!("--ratios needs at least one ratio");
    }
    Ok(ratios)
}

fn row(p: &SweepPoint) -> Vec<String> {
    vec![
        p.method.key().to_string(),
        format!("{}", p.ratio),
        p.params.to_string(),
        p.macs.to_string(),
        format!("{:.2}", p.latency_ms),
        format!("{:.2}", p.dense_latency_ms),
        format!("{:.3}", p.dense_latency_ms / p.latency_ms),
        format!("{:.4}", p.dice_wt),
        format!("{:.4}", p.dice_tc),
        format!("{:.4}", p.dice_et),
    ]
}

fn csv(points: &[SweepPoint]) -> String {
    let mut text = format!("{CSV_HEADER}\n");
    for p in points {
        text += &(row(p).join(",") + "\n");
    }
    text
}

fn table(points: &[SweepPoint]) -> String {
    let headers: Vec<&str> = CSV_HEADER.split(',').collect();
    let rows: Vec<Vec<String>> = points.iter().map(row).collect();
    report::table(&headers, &rows)
}

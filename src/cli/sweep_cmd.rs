//! `sweep`: structured pruning over a grid of methods and ratios, one CSV row per point with
//! parameters, MACs, CPU latency (timed against the dense model in the same run) and mean Dice
//! per region on the evaluation cases.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use super::fine_tune::{CliHooks, DiceEvaluator, FineTuneArgs, FineTuner};
use super::pipeline::DataArgs;
use super::prune_cmd::ScheduleKind;
use super::{defaults, print_json};
use crate::backend;
use crate::bench::compare_forward;
use crate::inference::InferenceOptions;
use crate::metrics::RegionValues;
use crate::model::summary::summarize;
use crate::plot::{Panel, Series, write_panels_png};
use crate::prune::schedule::parameter_counts;
use crate::prune::{PruneMethod, Ratios, UnstructuredMethod, prune_checkpoint, run_schedule};
use crate::report;

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// A checkpoint; the embedded default model when omitted.
    pub model: Option<PathBuf>,
    /// Methods, comma-separated: l2, bn-gamma, group-l2 (channels), l1, l1-global, snip
    /// (weights).
    #[arg(long, default_value = "l2,bn-gamma,group-l2,l1-global,snip")]
    pub methods: String,
    /// Ratios, comma-separated, each in [0, 1): of every channel group (channel methods) or of
    /// the conv weights (mask methods).
    #[arg(long, default_value = "0,0.125,0.25,0.375,0.5")]
    pub ratios: String,
    /// Channel ratios are shares of all channels under one threshold across groups (see
    /// `prune --global`) instead of the same share of every group.
    #[arg(long)]
    pub global: bool,
    /// How each point's ratio is reached.
    #[arg(long, value_enum, default_value_t = ScheduleKind::OneShot)]
    pub schedule: ScheduleKind,
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Where the CSV goes.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Where the PNG plot of Dice vs sparsity goes (default: beside the CSV, `.png`).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Slices per timed forward: 8 is what whole-volume inference runs at once.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Input side for MACs and latency (multiple of 16).
    #[arg(long, default_value_t = 192)]
    pub size: usize,
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    #[command(flatten)]
    pub fine_tune: FineTuneArgs,
    #[arg(long)]
    pub json: bool,
}

/// One point of the sweep.
#[derive(Debug, Serialize)]
pub struct SweepPoint {
    pub method: PruneMethod,
    pub ratio: f64,
    pub params: usize,
    pub nonzero_params: usize,
    /// Share of the dense model's parameters removed or masked.
    pub sparsity: f64,
    pub macs: u64,
    pub latency_ms: f64,
    pub dense_latency_ms: f64,
    pub dice: RegionValues,
    /// After fine-tuning, when `--fine-tune-epochs` is above 0.
    pub dice_fine_tuned: Option<RegionValues>,
}

const CSV_HEADER: &str = "method,ratio,params,nonzero_params,sparsity,macs,latency_ms,\
                          dense_latency_ms,speedup,dice_wt,dice_tc,dice_et,ft_dice_wt,\
                          ft_dice_tc,ft_dice_et";

pub fn sweep(args: SweepArgs) -> Result<()> {
    super::check_size("--size", args.size)?;
    super::pipeline::check_threshold(args.threshold)?;
    let methods = parse_methods(&args.methods)?;
    let ratios = parse_ratio_grid(&args.ratios)?;
    let schedule = args.schedule.with_steps(args.steps);
    let (dense, model_name) = defaults::model_or_default(args.model.as_deref())?;
    let tuning = args.fine_tune.fine_tune_epochs > 0;
    let needs_data =
        tuning || methods.contains(&PruneMethod::Unstructured(UnstructuredMethod::Snip));
    let mut tuner = if needs_data {
        Some(FineTuner::load(&args.fine_tune, &args.data)?)
    } else {
        None
    };
    let snip = tuner.as_ref().map(FineTuner::snip_batch);
    let share = |ratio: f64| {
        if args.global {
            Ratios::Global(ratio)
        } else {
            Ratios::Uniform(ratio)
        }
    };
    // Prune every point once first (milliseconds each), so an impossible ratio is refused
    // before minutes of fine-tuning, timing and evaluation.
    for &method in &methods {
        for &ratio in &ratios {
            prune_checkpoint(&dense, method, &share(ratio), snip.as_ref())
                .map_err(|e| anyhow::anyhow!("{} at ratio {ratio}: {e}", method.key()))?;
        }
    }
    let evaluator = DiceEvaluator {
        cases: defaults::data_or_held_out(&args.data)
            .load(|id| eprintln!("sweep: loading {id}"))?,
        options: InferenceOptions {
            threshold: args.threshold,
            ..InferenceOptions::default()
        },
    };
    let device = backend::cpu_device();
    let dense_model = dense.build(&device)?;
    let (dense_params, _) = parameter_counts(&dense);
    let mut points = Vec::new();
    for &method in &methods {
        for &ratio in &ratios {
            let mut hooks = CliHooks {
                evaluator: &evaluator,
                tuner: if tuning { tuner.as_mut() } else { None },
                tag: format!("sweep {} {ratio}", method.key()),
            };
            let (pruned, steps) = run_schedule(
                &dense,
                method,
                &share(ratio),
                schedule,
                snip.as_ref(),
                &mut hooks,
            )?;
            let last = steps.last().expect("a schedule has at least one step");
            let model = pruned.build(&device)?;
            let summary = summarize(&pruned.config, &model, args.size, args.size)?;
            let [dense_time, time] = compare_forward(
                &[&dense_model, &model],
                [args.batch, args.size],
                args.runs.max(1),
                &device,
            );
            points.push(SweepPoint {
                method,
                ratio,
                params: last.params,
                nonzero_params: last.nonzero_params,
                sparsity: 1.0 - last.nonzero_params as f64 / dense_params as f64,
                macs: summary.macs,
                latency_ms: time.median_secs * 1e3,
                dense_latency_ms: dense_time.median_secs * 1e3,
                dice: last.dice_pruned.clone(),
                dice_fine_tuned: last.dice_fine_tuned.clone(),
            });
        }
    }
    crate::atomic::write_bytes(&args.output, csv(&points).as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.output.display()))?;
    let plot_path = args
        .plot
        .clone()
        .unwrap_or_else(|| args.output.with_extension("png"));
    write_plot(&plot_path, &points, &model_name)?;
    if args.json {
        return print_json(&points);
    }
    println!(
        "sweep of {model_name} ({}) over {} case(s) -> {}, {}\n",
        schedule.name(),
        evaluator.cases.len(),
        args.output.display(),
        plot_path.display()
    );
    print!("{}", table(&points));
    Ok(())
}

/// Dice vs sparsity, one panel per region, one colour per method; dashed = before fine-tuning.
fn write_plot(path: &Path, points: &[SweepPoint], model_name: &str) -> Result<()> {
    let mut methods: Vec<PruneMethod> = points.iter().map(|p| p.method).collect();
    methods.dedup();
    let panels: Vec<Panel> = ["WT", "TC", "ET"]
        .iter()
        .map(|region| {
            let mut series = Vec::new();
            for (i, method) in methods.iter().enumerate() {
                let of_method: Vec<&SweepPoint> =
                    points.iter().filter(|p| p.method == *method).collect();
                let tuned = of_method.iter().all(|p| p.dice_fine_tuned.is_some());
                let curve = |fine_tuned: bool| -> Vec<(f64, f64)> {
                    of_method
                        .iter()
                        .map(|p| {
                            let dice = match (&p.dice_fine_tuned, fine_tuned) {
                                (Some(d), true) => d,
                                _ => &p.dice,
                            };
                            (p.sparsity, dice[*region])
                        })
                        .collect()
                };
                series.push(Series {
                    name: if tuned {
                        format!("{} (pruned)", method.key())
                    } else {
                        method.key().to_string()
                    },
                    points: curve(false),
                    colour_index: i,
                    dashed: tuned,
                });
                if tuned {
                    series.push(Series {
                        name: format!("{} (fine-tuned)", method.key()),
                        points: curve(true),
                        colour_index: i,
                        dashed: false,
                    });
                }
            }
            Panel {
                title: format!("Dice {region} - {model_name}"),
                series,
            }
        })
        .collect();
    let max_sparsity = points.iter().map(|p| p.sparsity).fold(0.0, f64::max);
    let x_max = (max_sparsity * 1.05).clamp(0.05, 1.0);
    write_panels_png(
        path,
        &panels,
        "share of parameters removed",
        "Dice",
        (0.0, x_max),
    )
}

/// `plot`: redraws a sweep CSV as the PNG `sweep` makes.
#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A CSV written by `sweep`.
    pub csv: PathBuf,
    /// Where the PNG goes (default: beside the CSV, `.png`).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The model's name in the panel titles.
    #[arg(long, default_value = "sweep")]
    pub title: String,
}

pub fn plot(args: PlotArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.csv)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.csv.display()))?;
    let points = parse_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.csv.display()))?;
    let output = args
        .output
        .unwrap_or_else(|| args.csv.with_extension("png"));
    write_plot(&output, &points, &args.title)?;
    println!("{} point(s) -> {}", points.len(), output.display());
    Ok(())
}

/// Sweep points back from the CSV `sweep` writes.
fn parse_csv(text: &str) -> Result<Vec<SweepPoint>> {
    let mut lines = text.lines();
    let header: Vec<&str> = CSV_HEADER.split(',').collect();
    if lines.next().map(|h| h.split(',').collect::<Vec<_>>()) != Some(header.clone()) {
        bail!("not a sweep CSV (expected the header {CSV_HEADER})");
    }
    lines
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let cells: Vec<&str> = line.split(',').collect();
            if cells.len() != header.len() {
                bail!(
                    "row {}: {} cells, expected {}",
                    i + 2,
                    cells.len(),
                    header.len()
                );
            }
            let number = |c: usize| -> Result<f64> {
                cells[c]
                    .parse()
                    .map_err(|_| anyhow::anyhow!("row {}: {:?} is not a number", i + 2, cells[c]))
            };
            let regions = |first: usize| -> Result<Option<RegionValues>> {
                if cells[first].is_empty() {
                    return Ok(None);
                }
                let mut values = RegionValues::new();
                for (k, region) in ["WT", "TC", "ET"].iter().enumerate() {
                    values.insert(region.to_string(), number(first + k)?);
                }
                Ok(Some(values))
            };
            Ok(SweepPoint {
                method: PruneMethod::parse(cells[0]).map_err(anyhow::Error::msg)?,
                ratio: number(1)?,
                params: number(2)? as usize,
                nonzero_params: number(3)? as usize,
                sparsity: number(4)?,
                macs: number(5)? as u64,
                latency_ms: number(6)?,
                dense_latency_ms: number(7)?,
                dice: regions(9)?.ok_or_else(|| anyhow::anyhow!("row {}: no Dice", i + 2))?,
                dice_fine_tuned: regions(12)?,
            })
        })
        .collect()
}

fn parse_methods(list: &str) -> Result<Vec<PruneMethod>> {
    list.split(',')
        .map(|name| PruneMethod::parse(name).map_err(|e| anyhow::anyhow!("--methods: {e}")))
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
    let dice = |d: Option<&RegionValues>, region: &str| {
        d.map(|d| format!("{:.4}", d[region])).unwrap_or_default()
    };
    let mut cells = vec![
        p.method.key().to_string(),
        format!("{}", p.ratio),
        p.params.to_string(),
        p.nonzero_params.to_string(),
        format!("{:.4}", p.sparsity),
        p.macs.to_string(),
        format!("{:.2}", p.latency_ms),
        format!("{:.2}", p.dense_latency_ms),
        format!("{:.3}", p.dense_latency_ms / p.latency_ms),
    ];
    for region in ["WT", "TC", "ET"] {
        cells.push(dice(Some(&p.dice), region));
    }
    for region in ["WT", "TC", "ET"] {
        cells.push(dice(p.dice_fine_tuned.as_ref(), region));
    }
    cells
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

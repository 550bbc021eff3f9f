//! `sweep`: structured pruning over a grid of methods and ratios, one CSV row per point with
//! parameters, MACs, CPU latency (timed against the dense model in the same run) and mean Dice
//! per region on the evaluation cases. Spread over machines, the sweep reads and writes its
//! points through the points file `sweep_points` keeps for `sweep` and `study` alike.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser};

use super::fine_tune::step_hooks;
use super::prune_cmd::{MeasureArgs, ScheduleArgs};
use super::sweep_points::{
    PointEntry, SpreadArgs, command_options, read_points, results_folder, write_points_file,
};
use super::{Cli, Command, defaults, print_json};
use crate::backend;
use crate::model::summary::summarize;
use crate::prune::schedule::parameter_counts;
use crate::prune::sweep::{
    CSV_HEADER, SweepPoint, for_each_point, parse_csv, row, to_csv, write_sweep_plot,
};
use crate::prune::tuning::FineTuner;
use crate::prune::{PruneMethod, Ratios, prune_checkpoint, run_schedule};
use crate::report;
use crate::timing::compare_forward;

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
    /// How each point's ratio is reached (`--schedule`, `--steps`).
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Where the CSV goes (a single run and --merge; points write their own).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Where the PNG plot of Dice vs sparsity goes (default: beside the CSV, `.png`).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub measure: MeasureArgs,
    #[command(flatten)]
    pub spread: SpreadArgs,
    #[arg(long)]
    pub json: bool,
}

pub fn sweep(args: SweepArgs) -> Result<()> {
    if let Some(points) = &args.spread.write_points {
        return write_points(&args, points);
    }
    if let Some(points) = &args.spread.run_point {
        let index = args.spread.index.expect("clap requires --index");
        return run_point(points, index);
    }
    if let Some(folder) = &args.spread.merge {
        return merge(&args, folder);
    }
    let output = args
        .output
        .clone()
        .ok_or_else(|| anyhow::anyhow!("sweep needs -o SWEEP.csv"))?;
    let (points, model_name, cases) = run_points(&args, None)?;
    crate::atomic::write_bytes(&output, to_csv(&points).as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", output.display()))?;
    let plot_path = args
        .plot
        .clone()
        .unwrap_or_else(|| output.with_extension("png"));
    write_sweep_plot(&plot_path, &points, &model_name)?;
    if args.json {
        return print_json(&points);
    }
    println!(
        "sweep of {model_name} ({}) over {cases} case(s), Dice in {} -> {}, {}\n",
        args.schedule.schedule().name(),
        args.measure.precision.name(),
        output.display(),
        plot_path.display()
    );
    print!("{}", table(&points));
    Ok(())
}

/// The fine-tuning seed of one point: the sweep's seed mixed with its method and ratio, so a
/// point trains the same whether it runs alone or in a whole sweep, in any order.
pub fn point_seed(base: u64, method: PruneMethod, ratio: f64) -> u64 {
    // FNV-1a over the method's key and the ratio's bits: stable across runs and machines.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in method.key().bytes().chain(ratio.to_bits().to_le_bytes()) {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    base ^ hash
}

/// Every (method, ratio) of the sweep, method-major: the order of the CSV's rows.
pub fn grid(args: &SweepArgs) -> Result<Vec<(PruneMethod, f64)>> {
    let methods = parse_methods(&args.methods)?;
    let ratios = parse_ratio_grid(&args.ratios)?;
    Ok(methods
        .iter()
        .flat_map(|&m| ratios.iter().map(move |&r| (m, r)))
        .collect())
}

/// Runs the sweep's points (all, or only grid index `only`): the points, the model's name and
/// the number of evaluation cases.
pub fn run_points(
    args: &SweepArgs,
    only: Option<usize>,
) -> Result<(Vec<SweepPoint>, String, usize)> {
    super::check_size("--size", args.measure.size)?;
    super::eval_cmd::check_threshold(args.measure.threshold)?;
    let methods = parse_methods(&args.methods)?;
    let ratios = parse_ratio_grid(&args.ratios)?;
    let schedule = args.schedule.schedule();
    let (dense, model_name) = defaults::model_or_default(args.model.as_deref())?;
    let tuning = args.measure.fine_tune.fine_tune_epochs > 0;
    let mut tuner = args
        .measure
        .fine_tune
        .tuner_if_needed(&args.measure.data, tuning, &methods)?;
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
    // Ctrl-C stops a fine-tune (FineTuner); between points the sweep runs to its end.
    let never = AtomicBool::new(false);
    for_each_point(&methods, &ratios, &never, |_, method, ratio| {
        prune_checkpoint(&dense, method, &share(ratio), snip.as_ref())
            .map(drop)
            .map_err(|e| anyhow::anyhow!("{} at ratio {ratio}: {e}", method.key()))
    })?;
    let evaluator = args.measure.evaluator("sweep")?;
    let device = backend::cpu_device();
    let dense_model = dense.build(&device)?;
    let (dense_params, _) = parameter_counts(&dense);
    let mut points = Vec::new();
    let base_seed = args.measure.fine_tune.fine_tune_seed;
    for_each_point(&methods, &ratios, &never, |index, method, ratio| {
        if only.is_some_and(|i| i != index) {
            return Ok(());
        }
        if let Some(tuner) = tuner.as_mut() {
            tuner.set_seed(point_seed(base_seed, method, ratio));
        }
        let mut hooks = step_hooks(
            &evaluator,
            tuner.as_mut(),
            format!("sweep {} {ratio}", method.key()),
        );
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
        let summary = summarize(&pruned.config, &model, args.measure.size, args.measure.size)?;
        let [dense_time, time] = compare_forward(
            &[&dense_model.folded(), &model.folded()],
            [args.measure.batch, args.measure.size, args.measure.size],
            args.measure.runs.max(1),
            &device,
        );
        points.push(SweepPoint {
            method,
            ratio,
            params: Some(last.params),
            nonzero_params: Some(last.nonzero_params),
            sparsity: 1.0 - last.nonzero_params as f64 / dense_params as f64,
            macs: Some(summary.macs),
            latency_ms: Some(time.median_secs * 1e3),
            dense_latency_ms: Some(dense_time.median_secs * 1e3),
            dice: last.dice_pruned,
            dice_fine_tuned: last.dice_fine_tuned,
            dice_sd: last.dice_pruned_sd,
            dice_fine_tuned_sd: last.dice_fine_tuned_sd,
            dice_recalibrated: last.dice_recalibrated,
            dice_recalibrated_sd: last.dice_recalibrated_sd,
            precision: args.measure.precision,
        });
        anyhow::Ok(())
    })?;
    Ok((points, model_name, evaluator.cases.len()))
}

/// Writes the points of the sweep `args` describes to `path`, with the command line that
/// describes it.
fn write_points(args: &SweepArgs, path: &Path) -> Result<()> {
    let options = command_options(std::env::args().skip(1).collect(), "sweep");
    // Fails here, not on a cluster node, when the options cannot be read back.
    parse_options(&options).context("the sweep's options")?;
    let points = grid(args)?
        .into_iter()
        .enumerate()
        .map(|(index, (method, ratio))| PointEntry {
            index,
            method: method.key().to_string(),
            ratio: Some(ratio),
            seed: point_seed(args.measure.fine_tune.fine_tune_seed, method, ratio),
        })
        .collect();
    let file = write_points_file(path, "sweep", options, points)?;
    let last = file.points.len().saturating_sub(1);
    println!(
        "{} point(s) -> {}\nrun each: raagr2-lab sweep --run-point {} --index I   (I = 0..={last})\n\
         then:     raagr2-lab sweep --merge {} -o SWEEP.csv",
        file.points.len(),
        path.display(),
        path.display(),
        results_folder(path, &file).display()
    );
    Ok(())
}

/// Runs point `index` of the points file at `path` and writes its row (a one-row sweep CSV).
fn run_point(path: &Path, index: usize) -> Result<()> {
    let file = read_points(path, "sweep")?;
    let entry = file.entry(path, index)?;
    let args = parse_options(&file.options)
        .with_context(|| format!("{}: the sweep's options", path.display()))?;
    let (points, _, _) = run_points(&args, Some(index))?;
    let [point] = points.as_slice() else {
        bail!("point {index} gave {} rows", points.len());
    };
    if point.method.key() != entry.method || Some(point.ratio) != entry.ratio {
        bail!(
            "{}: point {index} is {} at {}, the options give {} at {}",
            path.display(),
            entry.method,
            entry.ratio.unwrap_or_default(),
            point.method.key(),
            point.ratio
        );
    }
    let row = results_folder(path, &file).join(format!("point-{index:05}.csv"));
    crate::atomic::write_bytes(&row, to_csv(&points).as_bytes())
        .map_err(|e| anyhow!("{}: {e}", row.display()))?;
    println!(
        "point {index} ({} at {}) -> {}",
        entry.method,
        entry.ratio.unwrap_or_default(),
        row.display()
    );
    Ok(())
}

/// Assembles the rows in `folder` (file name order = the sweep's order) into `-o` and its plot.
fn merge(args: &SweepArgs, folder: &Path) -> Result<()> {
    let output = args
        .output
        .clone()
        .ok_or_else(|| anyhow!("--merge needs -o SWEEP.csv"))?;
    let mut rows: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| anyhow!("{}: {e}", folder.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("point-") && n.ends_with(".csv"))
        })
        .collect();
    if rows.is_empty() {
        bail!(
            "{}: no point-*.csv rows (run the points first)",
            folder.display()
        );
    }
    rows.sort();
    let mut points = Vec::new();
    for row in &rows {
        let text = std::fs::read_to_string(row).map_err(|e| anyhow!("{}: {e}", row.display()))?;
        points.extend(parse_csv(&text).map_err(|e| anyhow!("{}: {e}", row.display()))?);
    }
    crate::atomic::write_bytes(&output, to_csv(&points).as_bytes())
        .map_err(|e| anyhow!("{}: {e}", output.display()))?;
    let plot = args
        .plot
        .clone()
        .unwrap_or_else(|| output.with_extension("png"));
    write_sweep_plot(&plot, &points, "merged sweep")?;
    println!(
        "{} row(s) from {} -> {}, {}",
        points.len(),
        folder.display(),
        output.display(),
        plot.display()
    );
    Ok(())
}

/// The sweep a points file's options describe.
fn parse_options(options: &[String]) -> Result<SweepArgs> {
    let argv = ["raagr2-lab", "sweep"]
        .into_iter()
        .map(String::from)
        .chain(options.iter().cloned());
    match Cli::try_parse_from(argv)
        .map_err(|e| anyhow!("{e}"))?
        .command
    {
        Command::Sweep(args) => Ok(args),
        _ => unreachable!("parsed as a sweep"),
    }
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
    write_sweep_plot(&output, &points, &args.title)?;
    println!("{} point(s) -> {}", points.len(), output.display());
    Ok(())
}

pub(super) fn parse_methods(list: &str) -> Result<Vec<PruneMethod>> {
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

fn table(points: &[SweepPoint]) -> String {
    let headers: Vec<&str> = CSV_HEADER.split(',').collect();
    let rows: Vec<Vec<String>> = points.iter().map(row).collect();
    report::table(&headers, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_points_file_s_options_parse_back_as_the_sweep() {
        let parsed = parse_options(&command_options(
            ["x", "sweep", "--write-points=p.json", "--methods", "l2"]
                .map(String::from)
                .to_vec(),
            "sweep",
        ))
        .unwrap();
        assert_eq!(parsed.methods, "l2");
    }
}

//! `study`: the compression study in one resumable command. Each point (a row at a target
//! share of the base model's parameters removed) is cut, measured (size, MACs, latency against
//! the dense base model in the same run), scored on the held-out cases as cut, after BN
//! recalibration and after the same fine-tuning budget per seed, and its structure repeated at
//! the published full width; its result is kept in `OUT.rows/` as soon as it is known, so a
//! stopped run resumes at the next point. Points go through the same points file as `sweep`
//! (`--write-points`, `--run-point`, `--merge`) to spread them over machines.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;

use super::data_args::DataArgs;
use super::fine_tune::FineTuneArgs;
use super::sweep_points::{
    PointEntry, SpreadArgs, command_options, read_points, results_folder, write_points_file,
};
use super::{defaults, print_json};
use crate::inference::InferenceOptions;
use crate::model::{Checkpoint, load_checkpoint};
use crate::precision::Precision;
use crate::prune::study::{
    STUDY_FORMAT, StudyFile, StudyModel, StudyPoint, StudyResult, StudyRow, nonzero_params,
    study_csv, study_markdown, study_points, write_study_plots,
};
use crate::prune::study_run::{StudyRunner, StudySettings};
use crate::prune::tuning::DiceEvaluator;
use crate::report;

#[derive(Args, Debug)]
pub struct StudyArgs {
    /// Output stem: OUT.csv, OUT.json, OUT.md (the tables), OUT.macs.png and OUT.size.png; each point's result is
    /// kept in OUT.rows/ as it finishes, so running the same command again resumes.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The base model (also the reference every share of parameters is counted against).
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// The model trained with network slimming's L1 term (the slimming row).
    #[arg(long)]
    pub slimming: Option<PathBuf>,
    /// The depthwise-shared variant (its own row and the combined rows).
    #[arg(long)]
    pub depthwise_shared: Option<PathBuf>,
    /// The paired-shared variant.
    #[arg(long)]
    pub paired_shared: Option<PathBuf>,
    /// Rows, comma-separated (default: all): dense, magnitude, filter-l2, slimming, snip,
    /// depgraph, depthwise-shared, paired-shared, combined-structured, combined-magnitude.
    #[arg(long)]
    pub rows: Option<String>,
    /// Shares of the base model's parameters removed, comma-separated, each in (0, 1).
    #[arg(long, default_value = "0.25,0.5,0.75")]
    pub targets: String,
    /// One more share removed for the combined rows only, beyond the targets: the document's
    /// extreme compression (0: none).
    #[arg(long, default_value_t = 0.9)]
    pub extreme: f64,
    /// Fine-tuning seeds, comma-separated: every point is fine-tuned once per seed.
    #[arg(long, default_value = "0,1,2")]
    pub seeds: String,
    /// The fine-tuning budget: Adam steps per fine-tune (0: no fine-tuning).
    #[arg(long, default_value_t = 40)]
    pub fine_tune_steps: usize,
    /// Fine-tuning cases, crop, learning rate and BN recalibration (`--bn-recalibrate`
    /// slices, default here 256).
    #[command(flatten)]
    pub fine_tune: FineTuneArgs,
    /// Cases Dice is measured on (default: the held-out synthetic cases 10000-10009).
    #[command(flatten)]
    pub data: DataArgs,
    /// Number format every Dice is scored in: what an export of each point's model in that
    /// precision computes (int8: static INT8, calibrated per model), so quantization combines
    /// with every row; pruning and fine-tuning run in float32.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// Side of the slice MACs and latency are measured on.
    #[arg(long, default_value_t = 240)]
    pub size: usize,
    /// Timed forwards per model (interleaved with the dense base model, after a first call).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Run at most this many points now and stop (the same command resumes later).
    #[arg(long)]
    pub max_points: Option<usize>,
    #[command(flatten)]
    pub spread: SpreadArgs,
    #[arg(long)]
    pub json: bool,
}

/// BN recalibration slices when `--bn-recalibrate` is left at 0 (the flag's default in
/// `prune`, where it is opt-in).
const DEFAULT_RECALIBRATION_SLICES: usize = 256;

pub fn study(mut args: StudyArgs) -> Result<()> {
    if args.fine_tune.bn_recalibrate == 0 {
        args.fine_tune.bn_recalibrate = DEFAULT_RECALIBRATION_SLICES;
    }
    if let Some(points) = &args.spread.write_points {
        let setup = StudySetup::models_only(&args)?;
        let options = command_options(std::env::args().skip(1).collect(), "study");
        parse_study_options(&options).context("the study's options")?;
        let entries = points_of(&setup.points, &args)?;
        let count = entries.len();
        write_points_file(points, "study", options, entries)?;
        println!(
            "{count} point(s) -> {}\nrun each: raagr2-lab study --run-point {} --index I   \
             (I = 0..={})\nthen:     raagr2-lab study --merge {} -o OUT",
            points.display(),
            points.display(),
            count.saturating_sub(1),
            points.with_extension("rows").display()
        );
        return Ok(());
    }
    if let Some(points) = &args.spread.run_point {
        let index = args.spread.index.expect("clap requires --index");
        return run_listed_point(points, index);
    }
    if let Some(folder) = &args.spread.merge {
        let output = args
            .output
            .clone()
            .ok_or_else(|| anyhow!("--merge needs -o OUT"))?;
        return merge(folder, &output, args.json);
    }
    let output = args
        .output
        .clone()
        .ok_or_else(|| anyhow!("study needs -o OUT (a stem: OUT.csv, OUT.json, ...)"))?;
    let rows = output.with_extension("rows");
    let mut setup = StudySetup::models_only(&args)?;
    let total = setup.points.len();
    let done = (0..total).filter(|i| row_path(&rows, *i).exists()).count();
    check_kept_rows(&rows, &setup.points, &args)?;
    if done > 0 {
        eprintln!(
            "study: resuming, {done} of {total} point(s) already in {}",
            rows.display()
        );
    }
    let mut ran = 0;
    for index in 0..total {
        if row_path(&rows, index).exists() {
            continue;
        }
        if args.max_points.is_some_and(|most| ran >= most) {
            eprintln!(
                "study: stopped after {ran} point(s) (--max-points); run the same command to go on"
            );
            // The table so far, so a study spread over sessions shows its rows as they come.
            if done + ran == 0 {
                return Ok(());
            }
            return merge(&rows, &output, args.json);
        }
        ran += 1;
        let point = setup.points[index];
        eprintln!("study: point {}/{total}: {}", index + 1, point.label());
        let result = setup.run(point, &args)?;
        write_row(&rows, index, &result)?;
    }
    merge(&rows, &output, args.json)
}

/// What every point needs: the points, the models and (loaded on first need) the cases.
struct StudySetup {
    points: Vec<StudyPoint>,
    /// The models, until the cases are loaded and they move into the runner.
    models: Option<HashMap<StudyModel, Checkpoint>>,
    runner: Option<StudyRunner>,
    seeds: Vec<u64>,
}

impl StudySetup {
    /// The models the rows need and the study's points (no case loaded yet).
    fn models_only(args: &StudyArgs) -> Result<StudySetup> {
        let rows = match &args.rows {
            Some(list) => list
                .split(',')
                .map(|r| StudyRow::parse(r).map_err(anyhow::Error::msg))
                .collect::<Result<Vec<_>>>()?,
            None => StudyRow::ALL.to_vec(),
        };
        if rows.is_empty() {
            bail!("--rows is empty");
        }
        let targets = parse_shares(&args.targets)?;
        let mut needed: Vec<StudyModel> = rows.iter().map(|r| r.model()).collect();
        needed.push(StudyModel::Base);
        let mut models = HashMap::new();
        for model in needed {
            if let std::collections::hash_map::Entry::Vacant(slot) = models.entry(model) {
                slot.insert(load_study_model(args, model)?);
            }
        }
        let base_params = nonzero_params(&models[&StudyModel::Base]);
        let shared_share = models
            .get(&StudyModel::DepthwiseShared)
            .map_or(0.0, |m| 1.0 - nonzero_params(m) as f64 / base_params as f64);
        Ok(StudySetup {
            points: study_points(&rows, &targets, shared_share, extreme_share(args.extreme)?),
            models: Some(models),
            runner: None,
            seeds: parse_seeds(&args.seeds)?,
        })
    }

    /// Loads the evaluation and fine-tuning cases once.
    fn load_data(&mut self, args: &StudyArgs) -> Result<()> {
        let Some(models) = self.models.take() else {
            return Ok(());
        };
        super::check_size("--size", args.size)?;
        let mut fine_tune = args.fine_tune.clone();
        fine_tune.fine_tune_epochs = 1;
        let mut tuner = fine_tune.tuner(&args.data)?;
        tuner.set_steps_per_run(args.fine_tune_steps.max(1));
        let evaluator = DiceEvaluator::new(
            defaults::data_or_held_out(&args.data).load(|id| eprintln!("study: loading {id}"))?,
            InferenceOptions::default(),
        )
        .in_precision(args.precision);
        self.runner = Some(StudyRunner {
            models,
            evaluator,
            snip: tuner.snip_batch(),
            tuner,
            settings: StudySettings {
                slice_side: args.size,
                timing_runs: args.runs,
                fine_tune: args.fine_tune_steps > 0,
                seeds: self.seeds.clone(),
            },
        });
        Ok(())
    }

    /// Cuts, measures and scores one point (the cases loaded first).
    fn run(&mut self, point: StudyPoint, args: &StudyArgs) -> Result<StudyResult> {
        self.load_data(args)?;
        let runner = self.runner.as_mut().expect("loaded above");
        runner.run(point, &mut |line| eprintln!("study: {line}"))
    }
}

/// The model of `which`: the path given, or `assets/study_<key>.safetensors` (the shipped
/// study family).
fn load_study_model(args: &StudyArgs, which: StudyModel) -> Result<Checkpoint> {
    let given = match which {
        StudyModel::Base => &args.base,
        StudyModel::Slimming => &args.slimming,
        StudyModel::DepthwiseShared => &args.depthwise_shared,
        StudyModel::PairedShared => &args.paired_shared,
    };
    let path = given
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("assets/study_{}.safetensors", which.key())));
    load_checkpoint(&path).with_context(|| {
        format!(
            "the study's {} model (give it with --{})",
            which.key(),
            which.key()
        )
    })
}

fn parse_shares(list: &str) -> Result<Vec<f64>> {
    list.split(',')
        .map(|t| {
            let v: f64 = t
                .trim()
                .parse()
                .map_err(|_| anyhow!("--targets: {t:?} is not a number"))?;
            if !(v > 0.0 && v < 1.0) {
                bail!("--targets: every share removed must be in (0, 1), got {v}");
            }
            Ok(v)
        })
        .collect()
}

fn extreme_share(share: f64) -> Result<Option<f64>> {
    if share == 0.0 {
        Ok(None)
    } else if share > 0.0 && share < 1.0 {
        Ok(Some(share))
    } else {
        bail!("--extreme: a share removed must be in (0, 1) or 0 for none, got {share}")
    }
}

fn parse_seeds(list: &str) -> Result<Vec<u64>> {
    let seeds: Vec<u64> = list
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| anyhow!("--seeds: {s:?} is not a seed"))
        })
        .collect::<Result<_>>()?;
    if seeds.is_empty() {
        bail!("--seeds is empty");
    }
    Ok(seeds)
}

fn points_of(points: &[StudyPoint], args: &StudyArgs) -> Result<Vec<PointEntry>> {
    let first_seed = parse_seeds(&args.seeds)?[0];
    Ok(points
        .iter()
        .enumerate()
        .map(|(index, p)| PointEntry {
            index,
            method: p.row.key().to_string(),
            ratio: p.target,
            seed: first_seed,
        })
        .collect())
}

/// Refuses to resume into rows that another set of options made: each kept row must be the
/// point this run gives its index, with the same fine-tuning budget and seeds.
fn check_kept_rows(rows: &Path, points: &[StudyPoint], args: &StudyArgs) -> Result<()> {
    let seeds = parse_seeds(&args.seeds)?.len();
    for (index, point) in points.iter().enumerate() {
        let path = row_path(rows, index);
        if !path.exists() {
            continue;
        }
        let kept = read_row(&path)?;
        let tuned = |steps: usize, seeds: usize| if steps == 0 { (0, 0) } else { (steps, seeds) };
        if kept.point != *point
            || tuned(kept.fine_tune_steps, kept.dice_fine_tuned.len())
                != tuned(args.fine_tune_steps, seeds)
            || kept.precision != args.precision
        {
            bail!(
                "{}: this row is {} with {} fine-tuning step(s) x {} seed(s) scored in {}, but \
                 these options give point {index} as {} with {} x {seeds} in {}: resume with \
                 the options that made it, or write to another -o",
                path.display(),
                kept.point.label(),
                kept.fine_tune_steps,
                kept.dice_fine_tuned.len(),
                kept.precision.name(),
                point.label(),
                args.fine_tune_steps,
                args.precision.name()
            );
        }
    }
    Ok(())
}

fn row_path(rows: &Path, index: usize) -> PathBuf {
    rows.join(format!("point-{index:05}.json"))
}

fn read_row(path: &Path) -> Result<StudyResult> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow!("{}: not a study row: {e}", path.display()))
}

fn write_row(rows: &Path, index: usize, result: &StudyResult) -> Result<()> {
    std::fs::create_dir_all(rows).map_err(|e| anyhow!("{}: {e}", rows.display()))?;
    let path = row_path(rows, index);
    let text = serde_json::to_string_pretty(result)?;
    crate::atomic::write_bytes(&path, text.as_bytes())
        .map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Runs point `index` of a study points file and writes its row beside the file.
fn run_listed_point(path: &Path, index: usize) -> Result<()> {
    let file = read_points(path, "study")?;
    let entry = file.entry(path, index)?;
    let mut args = parse_study_options(&file.options)
        .with_context(|| format!("{}: the study's options", path.display()))?;
    if args.fine_tune.bn_recalibrate == 0 {
        args.fine_tune.bn_recalibrate = DEFAULT_RECALIBRATION_SLICES;
    }
    let mut setup = StudySetup::models_only(&args)?;
    let point = *setup
        .points
        .get(index)
        .ok_or_else(|| anyhow!("{}: the options give no point {index}", path.display()))?;
    if point.row.key() != entry.method || point.target != entry.ratio {
        bail!(
            "{}: point {index} is {}, the options give {}",
            path.display(),
            entry.method,
            point.label()
        );
    }
    let result = setup.run(point, &args)?;
    let rows = results_folder(path, &file);
    write_row(&rows, index, &result)?;
    println!(
        "point {index} ({}) -> {}",
        point.label(),
        row_path(&rows, index).display()
    );
    Ok(())
}

fn parse_study_options(options: &[String]) -> Result<StudyArgs> {
    let argv = ["raagr2-lab", "study"]
        .into_iter()
        .map(String::from)
        .chain(options.iter().cloned());
    match <super::Cli as clap::Parser>::try_parse_from(argv)
        .map_err(|e| anyhow!("{e}"))?
        .command
    {
        super::Command::Study(args) => Ok(args),
        _ => unreachable!("parsed as a study"),
    }
}

/// Assembles the rows in `folder` (in point order) into OUT.csv, OUT.json, OUT.md and the plots.
fn merge(folder: &Path, output: &Path, json: bool) -> Result<()> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| anyhow!("{}: {e}", folder.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("point-") && n.ends_with(".json"))
        })
        .collect();
    if paths.is_empty() {
        bail!(
            "{}: no point-*.json rows (run the points first)",
            folder.display()
        );
    }
    paths.sort();
    let results = paths
        .iter()
        .map(|p| read_row(p))
        .collect::<Result<Vec<StudyResult>>>()?;
    let file = StudyFile {
        format: STUDY_FORMAT,
        description: format!(
            "raagr2-lab study, {} point(s) from {}",
            results.len(),
            folder.display()
        ),
        results,
    };
    let write = |extension: &str, bytes: &[u8]| -> Result<()> {
        let path = output.with_extension(extension);
        crate::atomic::write_bytes(&path, bytes).map_err(|e| anyhow!("{}: {e}", path.display()))
    };
    write("csv", study_csv(&file.results).as_bytes())?;
    write("json", serde_json::to_string_pretty(&file)?.as_bytes())?;
    write("md", study_markdown(&file.results).as_bytes())?;
    write_study_plots(output, &file.results)?;
    if json {
        return print_json(&file);
    }
    println!(
        "{} point(s) -> {}.csv, .json, .md, .macs.png, .size.png\n",
        file.results.len(),
        output.display()
    );
    print!("{}", table(&file.results));
    Ok(())
}

/// The study's table as the terminal shows it.
fn table(results: &[StudyResult]) -> String {
    let dice = |d: crate::metrics::RegionScores| format!("{:.3}/{:.3}/{:.3}", d.wt, d.tc, d.et);
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.point.row.name().to_string(),
                r.point
                    .target
                    .map_or("-".into(), |t| format!("{:.0}%", 100.0 * t)),
                format!("{:.1}%", 100.0 * r.removed_share),
                report::thousands(r.structure.nonzero_params as u64),
                report::giga(r.structure.macs),
                format!("{:.1} ms", r.structure.latency_ms),
                dice(r.dice.mean),
                r.dice_recalibrated.map_or("-".into(), |d| dice(d.mean)),
                r.fine_tuned_summary()
                    .map_or("-".into(), |(mean, _, _)| dice(mean)),
            ]
        })
        .collect();
    report::table(
        &[
            "row",
            "target",
            "removed",
            "non-zero params",
            "MACs",
            "latency",
            "Dice WT/TC/ET as cut",
            "BN recalibration",
            "fine-tuned (mean of seeds)",
        ],
        &rows,
    )
}

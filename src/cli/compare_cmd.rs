//! `compare-schedules`: one-shot, iterative and layer-wise pruning to the same ratio, each with
//! fine-tuning (optionally the same total budget), side by side and repeated over fine-tuning
//! seeds: Dice per region (mean over seeds, with the spread over seeds and over cases), parameters,
//! linear CKA of each level with the dense model's, how alike a model's own levels are, and CKA
//! heatmaps between the schedules' results (averaged over seeds) — seed 2's comparison.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use super::data_args::DataArgs;
use super::fine_tune::{FineTuneArgs, step_hooks};
use super::prune_cmd::{ScheduleArgs, ScheduleKind};
use super::{defaults, print_json};
use crate::analysis::cka::Kernel;
use crate::analysis::similarity::{SimilarityMatrix, SliceBatches, similarity};
use crate::analysis::stats::{diagonal, diagonal_mean, mean_matrix, off_diagonal_mean};
use crate::backend;
use crate::inference::InferenceOptions;
use crate::metrics::{RegionScores, RegionStats, mean_and_sd};
use crate::model::Checkpoint;
use crate::plot::write_heatmap_png;
use crate::prune::tuning::{DiceEvaluator, FineTuner};
use crate::prune::{
    PruneMethod, Ratios, Schedule, SnipBatch, effective_schedule, parameter_counts,
    prune_checkpoint, run_schedule, step_count,
};
use crate::report;

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// A checkpoint; the embedded default model when omitted.
    pub model: Option<PathBuf>,
    #[arg(long, value_parser = PruneMethod::parse, default_value = "l2")]
    pub method: PruneMethod,
    /// The final ratio every schedule reaches.
    #[arg(long, default_value_t = 0.25)]
    pub ratio: f64,
    /// Steps of the iterative schedule.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Cases scored and compared (default: the held-out synthetic cases).
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub fine_tune: FineTuneArgs,
    /// Total fine-tuning Adam steps per schedule, split evenly across its steps (a fair
    /// comparison); replaces --fine-tune-epochs and --fine-tune-batches.
    #[arg(long)]
    pub fine_tune_budget: Option<usize>,
    /// The schedules compared (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [ScheduleKind::OneShot, ScheduleKind::Iterative, ScheduleKind::LayerWise]
    )]
    pub schedules: Vec<ScheduleKind>,
    /// Fine-tuning seeds (comma-separated): every schedule runs once per seed, and the summary
    /// gives the mean and the sd over them. Replaces --fine-tune-seed.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub seeds: Vec<u64>,
    /// Score the intermediate steps of a schedule on the first N evaluation cases only (a
    /// layer-wise schedule has dozens of steps); the final models are scored on every case.
    #[arg(long)]
    pub step_cases: Option<usize>,
    /// Slices for the CKA against the dense model.
    #[arg(long, default_value_t = 32)]
    pub cka_slices: usize,
    /// Where the final model of each schedule and seed goes:
    /// `<output>.<schedule>.seed<N>.safetensors`; the summary as `<output>.json`; CKA heatmaps
    /// (mean over seeds) as `<output>.<a>-vs-<b>.png` (a model with itself:
    /// `<output>.<a>.self.png`).
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// One schedule run with one fine-tuning seed.
#[derive(Debug, Serialize)]
struct ScheduleRun {
    seed: u64,
    /// Fine-tuning Adam steps the schedule took in all.
    fine_tune_steps: usize,
    /// Dice over the evaluation cases after the last step's fine-tune (mean and sd over cases).
    dice: RegionStats,
    /// Linear CKA of each level output with the dense model's same level.
    cka_to_dense: Vec<(String, f64)>,
    /// Mean CKA between different levels of the model itself (higher: less diverse features).
    self_similarity: f64,
    checkpoint: PathBuf,
}

/// One schedule over every seed.
#[derive(Debug, Serialize)]
struct ScheduleResult {
    schedule: String,
    steps: usize,
    /// Fine-tuning Adam steps of the first seed's run (every seed takes the same).
    fine_tune_steps: usize,
    params: usize,
    nonzero_params: usize,
    /// Mean over seeds of the mean Dice over the cases.
    dice: RegionScores,
    /// Sample sd over seeds of the mean Dice (none for one seed).
    dice_seed_sd: Option<RegionScores>,
    /// Mean over seeds of the sd over cases (none for one case).
    dice_case_sd: Option<RegionScores>,
    /// Mean over seeds of each level's CKA with the dense model.
    cka_to_dense: Vec<(String, f64)>,
    self_similarity: f64,
    self_similarity_seed_sd: Option<f64>,
    runs: Vec<ScheduleRun>,
}

/// A model scored once, not fine-tuned: the dense model, and the one-shot cut before any
/// fine-tuning (what fine-tuning has to recover from).
#[derive(Debug, Serialize)]
struct Reference {
    name: String,
    params: usize,
    nonzero_params: usize,
    dice: RegionStats,
}

/// The whole summary: the references, every schedule, the dense model's own level similarity,
/// and the mean same-level CKA between each pair of schedules.
#[derive(Debug, Serialize)]
struct Comparison {
    seeds: Vec<u64>,
    cases: usize,
    dense_self_similarity: f64,
    references: Vec<Reference>,
    schedules: Vec<ScheduleResult>,
    pairs: Vec<PairSummary>,
}

#[derive(Debug, Serialize)]
struct PairSummary {
    a: String,
    b: String,
    /// Mean over seeds of the mean over levels of CKA(level of a, same level of b).
    mean_same_level_cka: f64,
    mean_same_level_cka_seed_sd: Option<f64>,
    heatmap: PathBuf,
}

/// Slices per CKA minibatch (the unbiased HSIC estimator needs at least 4).
const CKA_BATCH: usize = 8;

/// The schedules `args` asks for, each with its command-line name.
fn chosen_schedules(args: &CompareArgs) -> Vec<(&'static str, Schedule)> {
    args.schedules
        .iter()
        .map(|kind| {
            let name = match kind {
                ScheduleKind::OneShot => "one-shot",
                ScheduleKind::Iterative => "iterative",
                ScheduleKind::LayerWise => "layer-wise",
            };
            let schedule = ScheduleArgs {
                schedule: *kind,
                steps: args.steps,
            }
            .schedule();
            (name, schedule)
        })
        .collect()
}

/// What the schedules share across seeds: the models, the scoring, the fine-tuner, the CKA slices.
struct Setup {
    dense: Checkpoint,
    final_scoring: DiceEvaluator,
    step_scoring: DiceEvaluator,
    tuner: Option<FineTuner>,
    snip: Option<SnipBatch>,
    cka_slices: SliceBatches,
}

/// One seed's results: a run per schedule and its model's CKA matrices.
struct SeedResult {
    runs: Vec<(ScheduleRun, StepSummary)>,
    /// Per schedule: (with itself, dense vs it).
    matrices: Vec<(SimilarityMatrix, SimilarityMatrix)>,
    /// Per pair of schedules, in [`pair_indices`] order.
    pairs: Vec<SimilarityMatrix>,
}

/// What every seed of a schedule shares (the widths and masks do not depend on the seed).
struct StepSummary {
    steps: usize,
    params: usize,
    nonzero_params: usize,
}

pub fn compare(args: CompareArgs) -> Result<()> {
    check_args(&args)?;
    let (dense, model_name) = defaults::model_or_default(args.model.as_deref())?;
    let cases =
        defaults::data_or_held_out(&args.data).load(|id| eprintln!("compare: loading {id}"))?;
    let step_cases = args.step_cases.unwrap_or(cases.len()).min(cases.len());
    let options = InferenceOptions::default();
    let step_scoring = DiceEvaluator::new(cases[..step_cases].to_vec(), options);
    let final_scoring = DiceEvaluator::new(cases, options);
    let tuning = tuning(&args);
    let tuner = args
        .fine_tune
        .tuner_if_needed(&args.data, tuning, &[args.method])?;
    let snip = tuner.as_ref().map(FineTuner::snip_batch);
    let cka_slices =
        SliceBatches::tumour_slices(&final_scoring.cases, 128, args.cka_slices, CKA_BATCH)?;
    let mut setup = Setup {
        dense,
        final_scoring,
        step_scoring,
        tuner,
        snip,
        cka_slices,
    };
    let references = references(&setup, &args)?;
    let mut per_seed = Vec::new();
    for &seed in &args.seeds {
        per_seed.push(compare_once(&mut setup, &args, seed)?);
    }
    let device = backend::cpu_device();
    let dense_model = setup.dense.build(&device)?;
    let dense_self = similarity(
        &dense_model,
        &dense_model,
        setup.cka_slices.inputs(&device),
        Kernel::Linear,
    );
    heatmap(&args.output, "dense.self", "dense", "dense", &dense_self, 1)?;
    let pairs = summarise_pairs(&args, &per_seed)?;
    let comparison = Comparison {
        seeds: args.seeds.clone(),
        cases: setup.final_scoring.cases.len(),
        dense_self_similarity: off_diagonal_mean(&dense_self),
        references,
        schedules: summarise_schedules(&args, per_seed)?,
        pairs,
    };
    let json = serde_json::to_string_pretty(&comparison)?;
    crate::atomic::write_bytes(&args.output.with_extension("json"), json.as_bytes())?;
    if args.json {
        return print_json(&comparison);
    }
    print_summary(&comparison, &model_name, &args);
    Ok(())
}

fn check_args(args: &CompareArgs) -> Result<()> {
    if args.cka_slices < CKA_BATCH {
        bail!(
            "--cka-slices {} is fewer than one CKA minibatch of {CKA_BATCH} slices; ask for at \
             least {CKA_BATCH}",
            args.cka_slices
        );
    }
    if args.schedules.is_empty() {
        bail!("--schedules is empty; name at least one of one-shot, iterative, layer-wise");
    }
    if args.seeds.is_empty() {
        bail!("--seeds is empty; give at least one fine-tuning seed");
    }
    if args.step_cases == Some(0) {
        bail!("--step-cases 0 would score the steps on no case; give at least 1");
    }
    Ok(())
}

fn tuning(args: &CompareArgs) -> bool {
    args.fine_tune.fine_tune_epochs > 0 || args.fine_tune_budget.is_some_and(|b| b > 0)
}

/// The dense model and the one-shot cut without fine-tuning, scored on every case.
fn references(setup: &Setup, args: &CompareArgs) -> Result<Vec<Reference>> {
    let untuned = prune_checkpoint(
        &setup.dense,
        args.method,
        &Ratios::Uniform(args.ratio),
        setup.snip.as_ref(),
    )?;
    [
        ("dense", &setup.dense),
        ("one-shot, not fine-tuned", &untuned),
    ]
    .into_iter()
    .map(|(name, checkpoint)| {
        eprintln!("compare: scoring {name}");
        let (params, nonzero_params) = parameter_counts(checkpoint);
        Ok(Reference {
            name: name.to_string(),
            params,
            nonzero_params,
            dice: setup.final_scoring.dice(checkpoint)?,
        })
    })
    .collect()
}

/// Every schedule with the fine-tuning seed `seed`: its final model saved, scored on every case
/// and compared by CKA with the dense model, itself and the other schedules.
fn compare_once(setup: &mut Setup, args: &CompareArgs, seed: u64) -> Result<SeedResult> {
    let device = backend::cpu_device();
    let dense_model = setup.dense.build(&device)?;
    let cka_batches = || setup.cka_slices.inputs(&device);
    let ratios = Ratios::Uniform(args.ratio);
    let mut runs = Vec::new();
    let mut matrices = Vec::new();
    let mut models = Vec::new();
    for (name, schedule) in chosen_schedules(args) {
        let schedule = effective_schedule(&ratios, schedule);
        let steps = step_count(&setup.dense, args.method, &ratios, schedule)?;
        let tuner = setup.tuner.as_mut();
        let trained_before = tuner.as_ref().map_or(0, |t| t.steps_trained());
        if let Some(tuner) = tuner {
            tuner.set_seed(seed);
            if let Some(budget) = args.fine_tune_budget {
                tuner.set_steps_per_run((budget / steps.max(1)).max(1));
            }
            eprintln!(
                "compare {name}, seed {seed}: {steps} steps, {} fine-tuning Adam steps each",
                tuner.steps_per_run()
            );
        }
        let mut hooks = step_hooks(
            &setup.step_scoring,
            setup.tuner.as_mut(),
            format!("compare {name} seed {seed}"),
        );
        let (pruned, records) = run_schedule(
            &setup.dense,
            args.method,
            &ratios,
            schedule,
            setup.snip.as_ref(),
            &mut hooks,
        )?;
        let checkpoint = args
            .output
            .with_extension(format!("{name}.seed{seed}.safetensors"));
        crate::model::save_checkpoint(&checkpoint, &pruned)?;
        eprintln!("compare {name}, seed {seed}: scoring the final model on every case");
        let dice = setup.final_scoring.dice(&pruned)?;
        let model = pruned.build(&device)?;
        let to_dense = similarity(&dense_model, &model, cka_batches(), Kernel::Linear);
        let own = similarity(&model, &model, cka_batches(), Kernel::Linear);
        let last = records.last().expect("a schedule has at least one step");
        let trained = setup.tuner.as_ref().map_or(0, FineTuner::steps_trained);
        let run = ScheduleRun {
            seed,
            fine_tune_steps: trained - trained_before,
            dice,
            cka_to_dense: diagonal(&to_dense),
            self_similarity: off_diagonal_mean(&own),
            checkpoint,
        };
        let summary = StepSummary {
            steps: records.len(),
            params: last.params,
            nonzero_params: last.nonzero_params,
        };
        runs.push((run, summary));
        matrices.push((own, to_dense));
        models.push(model);
    }
    let pairs = pair_indices(models.len())
        .map(|(a, b)| similarity(&models[a], &models[b], cka_batches(), Kernel::Linear))
        .collect();
    Ok(SeedResult {
        runs,
        matrices,
        pairs,
    })
}

/// The pairs of `n` schedules, each once: (0, 1), (0, 2), (1, 2) for three.
fn pair_indices(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).flat_map(move |a| (a + 1..n).map(move |b| (a, b)))
}

/// Each schedule over the seeds; writes its heatmaps (mean over seeds).
fn summarise_schedules(
    args: &CompareArgs,
    per_seed: Vec<SeedResult>,
) -> Result<Vec<ScheduleResult>> {
    let seeds = per_seed.len();
    let names: Vec<&str> = chosen_schedules(args).iter().map(|(n, _)| *n).collect();
    let mut runs_by_schedule: Vec<Vec<(ScheduleRun, StepSummary)>> =
        names.iter().map(|_| Vec::new()).collect();
    let mut matrices_by_schedule: Vec<Vec<(SimilarityMatrix, SimilarityMatrix)>> =
        names.iter().map(|_| Vec::new()).collect();
    for seed in per_seed {
        for (index, (run, matrices)) in seed.runs.into_iter().zip(seed.matrices).enumerate() {
            runs_by_schedule[index].push(run);
            matrices_by_schedule[index].push(matrices);
        }
    }
    let mut results = Vec::new();
    for ((name, runs), matrices) in names
        .into_iter()
        .zip(runs_by_schedule)
        .zip(matrices_by_schedule)
    {
        let own = mean_matrix(matrices.iter().map(|m| &m.0));
        let to_dense = mean_matrix(matrices.iter().map(|m| &m.1));
        heatmap(
            &args.output,
            &format!("{name}.self"),
            name,
            name,
            &own,
            seeds,
        )?;
        let tag = format!("dense-vs-{name}");
        heatmap(&args.output, &tag, "dense", name, &to_dense, seeds)?;
        let summary = &runs[0].1;
        let seed_means: Vec<RegionScores> = runs.iter().map(|(r, _)| r.dice.mean).collect();
        let over_seeds = RegionStats::over(&seed_means);
        let case_sds: Option<Vec<RegionScores>> = runs.iter().map(|(r, _)| r.dice.sd).collect();
        let selves: Vec<f64> = runs.iter().map(|(r, _)| r.self_similarity).collect();
        let (self_similarity, self_similarity_seed_sd) = mean_and_sd(&selves);
        results.push(ScheduleResult {
            schedule: name.to_string(),
            steps: summary.steps,
            fine_tune_steps: runs[0].0.fine_tune_steps,
            params: summary.params,
            nonzero_params: summary.nonzero_params,
            dice: over_seeds.mean,
            dice_seed_sd: over_seeds.sd,
            dice_case_sd: case_sds.map(|sds| RegionStats::over(&sds).mean),
            cka_to_dense: diagonal(&to_dense),
            self_similarity,
            self_similarity_seed_sd,
            runs: runs.into_iter().map(|(r, _)| r).collect(),
        });
    }
    Ok(results)
}

/// Each pair of schedules: mean same-level CKA over seeds, and the heatmap of the mean matrix.
fn summarise_pairs(args: &CompareArgs, per_seed: &[SeedResult]) -> Result<Vec<PairSummary>> {
    let names: Vec<&str> = chosen_schedules(args).iter().map(|(n, _)| *n).collect();
    pair_indices(names.len())
        .enumerate()
        .map(|(index, (a, b))| {
            let (a, b) = (names[a], names[b]);
            let per_seed_means: Vec<f64> = per_seed
                .iter()
                .map(|s| diagonal_mean(&s.pairs[index]))
                .collect();
            let (mean, sd) = mean_and_sd(&per_seed_means);
            let matrix = mean_matrix(per_seed.iter().map(|s| &s.pairs[index]));
            Ok(PairSummary {
                a: a.to_string(),
                b: b.to_string(),
                mean_same_level_cka: mean,
                mean_same_level_cka_seed_sd: sd,
                heatmap: heatmap(
                    &args.output,
                    &format!("{a}-vs-{b}"),
                    a,
                    b,
                    &matrix,
                    per_seed.len(),
                )?,
            })
        })
        .collect()
}

fn print_summary(comparison: &Comparison, model_name: &str, args: &CompareArgs) {
    println!(
        "{model_name}: {} to ratio {} by {} schedule(s), fine-tuning seeds {:?}, Dice over {} \
         cases (mean, ± sd over seeds, [mean sd over cases])\n",
        args.method.name(),
        args.ratio,
        comparison.schedules.len(),
        comparison.seeds,
        comparison.cases
    );
    print!("{}", references_table(&comparison.references));
    println!();
    print!("{}", table(&comparison.schedules));
    println!(
        "\nmean CKA between different levels of one model: dense {:.3}",
        comparison.dense_self_similarity
    );
    for pair in &comparison.pairs {
        println!(
            "mean same-level CKA {} vs {}: {}{} ({})",
            pair.a,
            pair.b,
            format_args!("{:.3}", pair.mean_same_level_cka),
            pair.mean_same_level_cka_seed_sd
                .map(|sd| format!(" ± {sd:.3}"))
                .unwrap_or_default(),
            pair.heatmap.display()
        );
    }
}

/// Writes the heatmap of `matrix` as `<output>.<tag>.png`; returns its path.
fn heatmap(
    output: &std::path::Path,
    tag: &str,
    rows: &str,
    columns: &str,
    matrix: &SimilarityMatrix,
    seeds: usize,
) -> Result<PathBuf> {
    let path = output.with_extension(format!("{tag}.png"));
    let title = if seeds > 1 {
        format!("linear CKA: {rows} (rows) vs {columns}, mean of {seeds} seeds")
    } else {
        format!("linear CKA: {rows} (rows) vs {columns}")
    };
    write_heatmap_png(&path, &title, &matrix.rows, &matrix.columns, &matrix.values)?;
    Ok(path)
}

/// Dice of one region: the mean, ± the sd over seeds, [the mean sd over cases].
fn dice_cell(mean: f64, seed_sd: Option<f64>, case_sd: Option<f64>) -> String {
    let mut cell = format!("{mean:.3}");
    if let Some(sd) = seed_sd {
        cell.push_str(&format!(" ± {sd:.3}"));
    }
    if let Some(sd) = case_sd {
        cell.push_str(&format!(" [{sd:.2}]"));
    }
    cell
}

fn references_table(references: &[Reference]) -> String {
    let headers = ["model", "non-zero params", "Dice WT", "Dice TC", "Dice ET"];
    let rows: Vec<Vec<String>> = references
        .iter()
        .map(|r| {
            let sd = r.dice.sd.map(RegionScores::as_array);
            let mut row = vec![r.name.clone(), report::thousands(r.nonzero_params as u64)];
            row.extend(
                (0..3).map(|i| dice_cell(r.dice.mean.as_array()[i], None, sd.map(|s| s[i]))),
            );
            row
        })
        .collect();
    report::table(&headers, &rows)
}

fn table(results: &[ScheduleResult]) -> String {
    let layers: Vec<String> = results
        .first()
        .map(|r| {
            r.cka_to_dense
                .iter()
                .map(|(l, _)| format!("CKA {l}"))
                .collect()
        })
        .unwrap_or_default();
    let mut headers = vec![
        "schedule",
        "steps",
        "fine-tune steps",
        "non-zero params",
        "Dice WT",
        "Dice TC",
        "Dice ET",
    ];
    headers.extend(layers.iter().map(String::as_str));
    headers.push("level similarity");
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let seed_sd = r.dice_seed_sd.map(RegionScores::as_array);
            let case_sd = r.dice_case_sd.map(RegionScores::as_array);
            let mut row = vec![
                r.schedule.clone(),
                r.steps.to_string(),
                r.fine_tune_steps.to_string(),
                report::thousands(r.nonzero_params as u64),
            ];
            row.extend((0..3).map(|i| {
                dice_cell(
                    r.dice.as_array()[i],
                    seed_sd.map(|s| s[i]),
                    case_sd.map(|s| s[i]),
                )
            }));
            row.extend(r.cka_to_dense.iter().map(|(_, v)| format!("{v:.2}")));
            let spread = r
                .self_similarity_seed_sd
                .map(|sd| format!(" ± {sd:.3}"))
                .unwrap_or_default();
            row.push(format!("{:.3}{spread}", r.self_similarity));
            row
        })
        .collect();
    report::table(&headers, &rows)
}

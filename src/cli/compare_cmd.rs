//! `compare-schedules`: one-shot, iterative and layer-wise pruning to the same ratio, each with
//! fine-tuning (optionally the same total budget), side by side: Dice per region, parameters,
//! linear CKA of each level with the dense model's, how alike a model's own levels are, and CKA
//! heatmaps between the schedules' results — seed 2's comparison.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::data_args::DataArgs;
use super::fine_tune::{CliHooks, DiceEvaluator, FineTuneArgs, FineTuner};
use super::{defaults, print_json};
use crate::analysis::cka::Kernel;
use crate::analysis::similarity::{SimilarityMatrix, SliceBatches, similarity};
use crate::backend;
use crate::inference::InferenceOptions;
use crate::metrics::RegionScores;
use crate::plot::write_heatmap_png;
use crate::prune::{PruneMethod, Ratios, Schedule, run_schedule, step_count};
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
    /// Slices for the CKA against the dense model.
    #[arg(long, default_value_t = 32)]
    pub cka_slices: usize,
    /// Where the final model of each schedule goes: `<output>.<schedule>.safetensors`; the
    /// summary as `<output>.json`; CKA heatmaps as `<output>.<a>-vs-<b>.png` (a model with
    /// itself: `<output>.<a>.self.png`).
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct ScheduleResult {
    schedule: String,
    steps: usize,
    /// Fine-tuning Adam steps the schedule took in all.
    fine_tune_steps: usize,
    params: usize,
    nonzero_params: usize,
    /// Dice after the last step's fine-tune (or pruning, without fine-tuning).
    dice: RegionScores,
    /// Linear CKA of each level output with the dense model's same level.
    cka_to_dense: Vec<(String, f64)>,
    /// Mean CKA between different levels of the model itself (higher: less diverse features).
    self_similarity: f64,
}

/// The whole summary: every schedule, the dense model's own level similarity, and the mean
/// same-level CKA between each pair of schedules.
#[derive(Debug, Serialize)]
struct Comparison {
    dense_self_similarity: f64,
    schedules: Vec<ScheduleResult>,
    pairs: Vec<PairSummary>,
}

#[derive(Debug, Serialize)]
struct PairSummary {
    a: String,
    b: String,
    /// Mean over levels of CKA(level of a, same level of b).
    mean_same_level_cka: f64,
    heatmap: PathBuf,
}

/// Slices per CKA minibatch (the unbiased HSIC estimator needs at least 4).
const CKA_BATCH: usize = 8;

pub fn compare(args: CompareArgs) -> Result<()> {
    if args.cka_slices < CKA_BATCH {
        anyhow::bail!(
            "--cka-slices {} is fewer than one CKA minibatch of {CKA_BATCH} slices; ask for at \
             least {CKA_BATCH}",
            args.cka_slices
        );
    }
    let (dense, model_name) = defaults::model_or_default(args.model.as_deref())?;
    let evaluator = DiceEvaluator {
        cases: defaults::data_or_held_out(&args.data)
            .load(|id| eprintln!("compare: loading {id}"))?,
        options: InferenceOptions::default(),
    };
    let tuning =
        args.fine_tune.fine_tune_epochs > 0 || args.fine_tune_budget.is_some_and(|b| b > 0);
    let mut tuner = FineTuner::load_if_needed(&args.fine_tune, &args.data, tuning, &[args.method])?;
    let snip = tuner.as_ref().map(FineTuner::snip_batch);
    let device = backend::cpu_device();
    let dense_model = dense.build(&device)?;
    let cka_slices =
        SliceBatches::tumour_slices(&evaluator.cases, 128, args.cka_slices, CKA_BATCH)?;
    let schedules = [
        ("one-shot", Schedule::OneShot),
        ("iterative", Schedule::Iterative { steps: args.steps }),
        ("layer-wise", Schedule::LayerWise),
    ];
    let ratios = Ratios::Uniform(args.ratio);
    let cka_batches = || cka_slices.inputs(&device);
    let mut results = Vec::new();
    let mut models = Vec::new();
    for (name, schedule) in schedules {
        let steps = step_count(&dense, args.method, &ratios, schedule)?;
        let trained_before = tuner.as_ref().map_or(0, FineTuner::steps_trained);
        if let (Some(budget), Some(tuner)) = (args.fine_tune_budget, tuner.as_mut()) {
            tuner.set_steps_per_run((budget / steps).max(1));
            eprintln!(
                "compare {name}: {steps} steps, {} fine-tuning Adam steps each",
                tuner.steps_per_run()
            );
        }
        let mut hooks = CliHooks {
            evaluator: &evaluator,
            tuner: if tuning { tuner.as_mut() } else { None },
            tag: format!("compare {name}"),
        };
        let (pruned, records) = run_schedule(
            &dense,
            args.method,
            &ratios,
            schedule,
            snip.as_ref(),
            &mut hooks,
        )?;
        let path = args.output.with_extension(format!("{name}.safetensors"));
        crate::model::save_checkpoint(&path, &pruned)?;
        let model = pruned.build(&device)?;
        let matrix = similarity(&dense_model, &model, cka_batches(), Kernel::Linear);
        let own = similarity(&model, &model, cka_batches(), Kernel::Linear);
        heatmap(&args.output, &format!("{name}.self"), name, name, &own)?;
        heatmap(
            &args.output,
            &format!("dense-vs-{name}"),
            "dense",
            name,
            &matrix,
        )?;
        let last = records.last().expect("a schedule has at least one step");
        let trained = tuner.as_ref().map_or(0, FineTuner::steps_trained);
        results.push(ScheduleResult {
            schedule: name.to_string(),
            steps: records.len(),
            fine_tune_steps: trained - trained_before,
            self_similarity: off_diagonal_mean(&own),
            params: last.params,
            nonzero_params: last.nonzero_params,
            dice: last.dice_fine_tuned.unwrap_or(last.dice_pruned),
            cka_to_dense: matrix
                .rows
                .iter()
                .enumerate()
                .map(|(i, layer)| (layer.clone(), matrix.values[i][i]))
                .collect(),
        });
        models.push((name, model));
    }
    let mut pairs = Vec::new();
    for (i, (a, model_a)) in models.iter().enumerate() {
        for (b, model_b) in &models[i + 1..] {
            let matrix = similarity(model_a, model_b, cka_batches(), Kernel::Linear);
            pairs.push(PairSummary {
                a: a.to_string(),
                b: b.to_string(),
                mean_same_level_cka: diagonal_mean(&matrix),
                heatmap: heatmap(&args.output, &format!("{a}-vs-{b}"), a, b, &matrix)?,
            });
        }
    }
    let dense_self = similarity(&dense_model, &dense_model, cka_batches(), Kernel::Linear);
    heatmap(&args.output, "dense.self", "dense", "dense", &dense_self)?;
    let comparison = Comparison {
        dense_self_similarity: off_diagonal_mean(&dense_self),
        schedules: results,
        pairs,
    };
    let json = serde_json::to_string_pretty(&comparison)?;
    crate::atomic::write_bytes(&args.output.with_extension("json"), json.as_bytes())?;
    if args.json {
        return print_json(&comparison);
    }
    println!(
        "{model_name}: {} to ratio {} by three schedules\n",
        args.method.name(),
        args.ratio
    );
    print!("{}", table(&comparison.schedules));
    println!(
        "\nmean CKA between different levels of one model: dense {:.3}",
        comparison.dense_self_similarity
    );
    for pair in &comparison.pairs {
        println!(
            "mean same-level CKA {} vs {}: {:.3} ({})",
            pair.a,
            pair.b,
            pair.mean_same_level_cka,
            pair.heatmap.display()
        );
    }
    Ok(())
}

/// Writes the heatmap of `matrix` as `<output>.<tag>.png`; returns its path.
fn heatmap(
    output: &std::path::Path,
    tag: &str,
    rows: &str,
    columns: &str,
    matrix: &SimilarityMatrix,
) -> Result<PathBuf> {
    let path = output.with_extension(format!("{tag}.png"));
    let title = format!("linear CKA: {rows} (rows) vs {columns}");
    write_heatmap_png(&path, &title, &matrix.rows, &matrix.columns, &matrix.values)?;
    Ok(path)
}

/// Mean of a square matrix's defined off-diagonal cells (how alike different levels are);
/// levels without variance over the slices have no CKA and are left out.
fn off_diagonal_mean(matrix: &SimilarityMatrix) -> f64 {
    let n = matrix.values.len();
    finite_mean(
        (0..n)
            .flat_map(|r| (0..n).filter(move |&c| c != r).map(move |c| (r, c)))
            .map(|(r, c)| matrix.values[r][c]),
    )
}

/// Mean of the defined diagonal cells (each level against the same level of the other model).
fn diagonal_mean(matrix: &SimilarityMatrix) -> f64 {
    finite_mean((0..matrix.values.len()).map(|i| matrix.values[i][i]))
}

/// Mean of the finite values (NaN when there are none).
fn finite_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values
        .filter(|v| v.is_finite())
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
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
            let mut row = vec![
                r.schedule.clone(),
                r.steps.to_string(),
                r.fine_tune_steps.to_string(),
                report::thousands(r.nonzero_params as u64),
                format!("{:.3}", r.dice.wt),
                format!("{:.3}", r.dice.tc),
                format!("{:.3}", r.dice.et),
            ];
            row.extend(r.cka_to_dense.iter().map(|(_, v)| format!("{v:.2}")));
            row.push(format!("{:.3}", r.self_similarity));
            row
        })
        .collect();
    report::table(&headers, &rows)
}

//! `compare-schedules`: one-shot, iterative and layer-wise pruning to the same ratio, each with
//! fine-tuning, side by side: Dice per region, parameters, and how similar each result's level
//! outputs stay to the dense model's (linear CKA, level by level) — seed 2's comparison.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::fine_tune::{CliHooks, DiceEvaluator, FineTuneArgs, FineTuner};
use super::pipeline::DataArgs;
use super::{defaults, print_json};
use crate::analysis::cka::Kernel;
use crate::analysis::similarity::similarity;
use crate::backend;
use crate::data::dataset::{SliceDataset, SliceSelection, epoch_batches};
use crate::inference::InferenceOptions;
use crate::metrics::RegionValues;
use crate::prune::{PruneMethod, Ratios, Schedule, run_schedule};
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
    /// Slices for the CKA against the dense model.
    #[arg(long, default_value_t = 32)]
    pub cka_slices: usize,
    /// Where the final model of each schedule goes: `<output>.<schedule>.safetensors`, and the
    /// summary as `<output>.json`.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct ScheduleResult {
    schedule: String,
    steps: usize,
    params: usize,
    nonzero_params: usize,
    /// Dice after the last step's fine-tune (or pruning, without fine-tuning).
    dice: RegionValues,
    /// Linear CKA of each level output with the dense model's same level.
    cka_to_dense: Vec<(String, f64)>,
}

pub fn compare(args: CompareArgs) -> Result<()> {
    let (dense, model_name) = defaults::model_or_default(args.model.as_deref())?;
    let evaluator = DiceEvaluator {
        cases: defaults::data_or_held_out(&args.data)
            .load(|id| eprintln!("compare: loading {id}"))?,
        options: InferenceOptions::default(),
    };
    let mut tuner = (args.fine_tune.fine_tune_epochs > 0
        || args.method == PruneMethod::Unstructured(crate::prune::UnstructuredMethod::Snip))
    .then(|| FineTuner::load(&args.fine_tune, args.data.labels))
    .transpose()?;
    let snip = tuner.as_ref().map(FineTuner::snip_batch);
    let tuning = args.fine_tune.fine_tune_epochs > 0;
    let device = backend::cpu_device();
    let dense_model = dense.build(&device)?;
    let selection = SliceSelection {
        tumour_free_share: 0.0,
        seed: 0,
    };
    let slices = SliceDataset::from_cases(&evaluator.cases, 128, selection)?;
    let batch = 8.min(slices.len()).max(4);
    let mut order = epoch_batches(slices.len(), batch, true, 0);
    order.retain(|b| b.len() == batch);
    order.truncate((args.cka_slices / batch).max(1));
    let schedules = [
        ("one-shot", Schedule::OneShot),
        ("iterative", Schedule::Iterative { steps: args.steps }),
        ("layer-wise", Schedule::LayerWise),
    ];
    let mut results = Vec::new();
    for (name, schedule) in schedules {
        let mut hooks = CliHooks {
            evaluator: &evaluator,
            tuner: if tuning { tuner.as_mut() } else { None },
            tag: format!("compare {name}"),
        };
        let ratios = Ratios::Uniform(args.ratio);
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
        let batches = order.iter().map(|b| slices.batch(b, &device).0);
        let matrix = similarity(&dense_model, &model, batches, Kernel::Linear);
        let last = records.last().expect("a schedule has at least one step");
        results.push(ScheduleResult {
            schedule: name.to_string(),
            steps: records.len(),
            params: last.params,
            nonzero_params: last.nonzero_params,
            dice: last
                .dice_fine_tuned
                .clone()
                .unwrap_or_else(|| last.dice_pruned.clone()),
            cka_to_dense: matrix
                .rows
                .iter()
                .enumerate()
                .map(|(i, layer)| (layer.clone(), matrix.values[i][i]))
                .collect(),
        });
    }
    let json = serde_json::to_string_pretty(&results)?;
    crate::atomic::write_bytes(&args.output.with_extension("json"), json.as_bytes())?;
    if args.json {
        return print_json(&results);
    }
    println!(
        "{model_name}: {} to ratio {} by three schedules\n",
        args.method.name(),
        args.ratio
    );
    print!("{}", table(&results));
    Ok(())
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
        "non-zero params",
        "Dice WT",
        "Dice TC",
        "Dice ET",
    ];
    headers.extend(layers.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let mut row = vec![
                r.schedule.clone(),
                r.steps.to_string(),
                report::thousands(r.nonzero_params as u64),
                format!("{:.3}", r.dice["WT"]),
                format!("{:.3}", r.dice["TC"]),
                format!("{:.3}", r.dice["ET"]),
            ];
            row.extend(r.cka_to_dense.iter().map(|(_, v)| format!("{v:.2}")));
            row
        })
        .collect();
    report::table(&headers, &rows)
}

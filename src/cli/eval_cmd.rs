//! `eval`: Dice, IoU and HD95 per case and region, with the threshold baseline beside them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use serde::Serialize;

use super::data_args::DataArgs;
use super::print_json;
use crate::backend::{self, DeviceChoice};
use crate::baseline::ThresholdBaseline;
use crate::data::dataset::CaseSource;
use crate::export::Precision;
use crate::inference::{InferenceOptions, evaluate_cases};
use crate::metrics::{CaseMetrics, HD95_REGIONS, Region, evaluate_case, mean_metrics};
use crate::model::Checkpoint;
use crate::report;
use crate::train::SegmentationState;

/// Which cases of the data `eval` scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalSplit {
    /// Every case given.
    All,
    /// Only the test patients recorded by `train --test-fraction`.
    Test,
}

/// A non-learned method `eval` scores beside the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineKind {
    /// Global thresholds on z-scored FLAIR (WT) and T1ce (TC, ET), fitted on training cases.
    Threshold,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint; the embedded default model when omitted.
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, value_enum, default_value_t = EvalSplit::All)]
    pub split: EvalSplit,
    /// Probability threshold per region.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// A case's predicted enhancing tumour smaller than this (ml) is relabelled necrosis
    /// (0 turns the rule off).
    #[arg(long, default_value_t = crate::inference::DEFAULT_MIN_ENHANCING_ML)]
    pub min_et_ml: f32,
    /// Segment each case on the model's 1 mm grid (images trilinear, labels nearest) and write
    /// the labels back onto the case's own grid; without it a case's voxels are taken as 1 mm.
    #[arg(long)]
    pub resample: bool,
    /// Also score a baseline on the same cases.
    #[arg(long, value_enum)]
    pub baseline: Option<BaselineKind>,
    /// Cases the baseline is fitted on: a BraTS folder (default: the default model's first
    /// synthetic training cases, seeds 0..--baseline-fit-cases, of the same generator and grid).
    #[arg(long)]
    pub baseline_fit_data: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    pub baseline_fit_cases: usize,
    /// Also write the per-case and mean metrics as JSON to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Also write one CSV row per case (and the mean) to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Score the model as an export in this precision computes it (`export --precision`): batch
    /// norms folded; fp16: weights rounded to half (activations not simulated); int8: static
    /// INT8, weights per output channel and every activation rounded to its calibrated 8-bit
    /// grid, as the ONNX graph computes.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
pub struct EvalReport {
    pub model: String,
    /// The precision the model was scored in (weights as an export in it holds them).
    pub precision: Precision,
    pub threshold: f32,
    pub cases: Vec<CaseMetrics>,
    pub mean: CaseMetrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineReport>,
}

/// A baseline's thresholds and its metrics on the same cases as the model.
#[derive(Serialize)]
pub struct BaselineReport {
    pub kind: BaselineKind,
    pub thresholds: ThresholdBaseline,
    pub fitted_on: usize,
    pub cases: Vec<CaseMetrics>,
    pub mean: CaseMetrics,
}

/// Fits the threshold baseline on `args`' fitting cases; returns it and the number of cases.
fn fit_baseline(args: &EvalArgs, data: &DataArgs) -> Result<(ThresholdBaseline, usize)> {
    let fit_data = match &args.baseline_fit_data {
        Some(folder) => DataArgs {
            data: Some(folder.clone()),
            synthetic: None,
            ..data.clone()
        },
        None => DataArgs {
            data: None,
            synthetic: Some(args.baseline_fit_cases),
            synthetic_seed: 0,
            ..data.clone()
        },
    };
    eprintln!("eval: fitting the threshold baseline");
    let cases = fit_data.load(|id| eprintln!("  {id}"))?;
    if cases.iter().all(|c| c.regions.is_none()) {
        bail!("the baseline's fitting cases have no segmentations");
    }
    Ok((ThresholdBaseline::fit(&cases), cases.len()))
}

pub fn eval(args: EvalArgs) -> Result<()> {
    check_threshold(args.threshold)?;
    check_min_et_ml(args.min_et_ml)?;
    let (checkpoint, model_name) = super::defaults::model_or_default(args.model.as_deref())?;
    let data = super::defaults::data_or_held_out(&args.data);
    let mut sources = data.sources()?;
    if args.split == EvalSplit::Test {
        sources = test_cases(sources, &checkpoint, &model_name)?;
    }
    let (device, device_name) = backend::resolve(args.device).map_err(anyhow::Error::msg)?;
    let model = args.precision.simulate(&checkpoint.build(&device)?);
    let options = InferenceOptions {
        threshold: args.threshold,
        min_enhancing_ml: args.min_et_ml,
        resample_mm: args
            .resample
            .then_some(crate::data::resample::MODEL_SPACING_MM),
        ..InferenceOptions::default()
    };
    eprintln!(
        "eval: {model_name} ({}) on {device_name}, {} case(s)",
        args.precision.name(),
        sources.len()
    );
    let baseline = match args.baseline {
        Some(BaselineKind::Threshold) => Some(fit_baseline(&args, &data)?),
        None => None,
    };
    let bar = ProgressBar::new(sources.len() as u64);
    let mut scored = Vec::with_capacity(sources.len());
    let mut baseline_scored = Vec::new();
    // One case in memory at a time.
    for source in &sources {
        bar.set_message(source.id());
        let case = source.load(data.labels)?;
        if let (Some((thresholds, _)), Some(truth)) = (&baseline, &case.regions) {
            let predicted = thresholds.predict(&case);
            baseline_scored.push(evaluate_case(
                &case.id,
                &predicted,
                truth,
                case.dims,
                case.spacing_mm,
            ));
        }
        let head = checkpoint.config.head;
        scored.extend(evaluate_cases(
            &model,
            head,
            &[case],
            options,
            &device,
            |_| {},
        )?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = EvalReport {
        model: model_name,
        precision: args.precision,
        threshold: args.threshold,
        mean: mean_metrics(&scored),
        cases: scored,
        baseline: baseline.map(|(thresholds, fitted_on)| BaselineReport {
            kind: BaselineKind::Threshold,
            thresholds,
            fitted_on,
            mean: mean_metrics(&baseline_scored),
            cases: baseline_scored,
        }),
    };
    write_eval_files(&report, args.json_out.as_deref(), args.csv.as_deref())?;
    if args.json {
        return print_json(&report);
    }
    print!("{}", render_eval(&report));
    Ok(())
}

pub(crate) fn check_threshold(threshold: f32) -> Result<()> {
    if !(threshold > 0.0 && threshold < 1.0) {
        bail!("--threshold must be in (0, 1), got {threshold}");
    }
    Ok(())
}

pub(crate) fn check_min_et_ml(min_et_ml: f32) -> Result<()> {
    if !(min_et_ml.is_finite() && min_et_ml >= 0.0) {
        bail!("--min-et-ml must be a volume in ml, 0 or more, got {min_et_ml}");
    }
    Ok(())
}

/// Keeps the cases recorded as test patients in the checkpoint's training state.
fn test_cases(
    cases: Vec<CaseSource>,
    checkpoint: &Checkpoint,
    model_name: &str,
) -> Result<Vec<CaseSource>> {
    let state = SegmentationState::from_checkpoint(checkpoint)?
        .with_context(|| format!("{model_name}: records no training split (--split test)"))?;
    if state.run.test_ids.is_empty() {
        bail!("{model_name}: was trained without test patients (train --test-fraction)");
    }
    let kept: Vec<CaseSource> = cases
        .into_iter()
        .filter(|c| state.run.test_ids.contains(&c.id()))
        .collect();
    if kept.is_empty() {
        bail!(
            "none of the test patients {:?} is in the data given",
            state.run.test_ids
        );
    }
    Ok(kept)
}

/// Columns of the eval table: Dice and IoU per region, then HD95; the CSV adds each region's
/// predicted and true volume in ml.
fn eval_columns(volumes: bool) -> Vec<String> {
    let mut columns = vec!["case".to_string()];
    columns.extend(Region::ALL.iter().map(|r| format!("Dice {}", r.name())));
    columns.extend(Region::ALL.iter().map(|r| format!("IoU {}", r.name())));
    columns.extend(HD95_REGIONS.iter().map(|r| format!("HD95 {} mm", r.name())));
    if volumes {
        columns.extend(
            Region::ALL
                .iter()
                .map(|r| format!("volume {} ml", r.name())),
        );
        columns.extend(
            Region::ALL
                .iter()
                .map(|r| format!("true volume {} ml", r.name())),
        );
    }
    columns
}

fn eval_row(m: &CaseMetrics, volumes: bool) -> Vec<String> {
    let mut row = vec![m.case_id.clone()];
    row.extend(Region::ALL.iter().map(|r| format!("{:.4}", m.dice(*r))));
    row.extend(Region::ALL.iter().map(|r| format!("{:.4}", m.iou(*r))));
    row.extend(HD95_REGIONS.iter().map(|r| format!("{:.2}", m.hd95(*r))));
    if volumes {
        row.extend(
            Region::ALL
                .iter()
                .map(|r| format!("{:.4}", m.volume_ml.get(*r))),
        );
        row.extend(
            Region::ALL
                .iter()
                .map(|r| format!("{:.4}", m.truth_volume_ml.get(*r))),
        );
    }
    row
}

fn render_eval(report: &EvalReport) -> String {
    let columns = eval_columns(false);
    let headers: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut rows: Vec<Vec<String>> = report.cases.iter().map(|m| eval_row(m, false)).collect();
    rows.push(eval_row(&report.mean, false));
    let mut text = format!(
        "model: {} (threshold {})\n\n{}",
        report.model,
        report.threshold,
        report::table(&headers, &rows)
    );
    if let Some(b) = &report.baseline {
        let t = &b.thresholds;
        let dice = |m: &CaseMetrics, r: Region| m.dice(r);
        text += &format!(
            "\nthreshold baseline (z-scores: WT FLAIR >= {:.2}, TC T1ce >= {:.2}, ET T1ce >= {:.2}; \
             fitted on {} case(s))\n",
            t.wt_flair, t.tc_t1ce, t.et_t1ce, b.fitted_on
        );
        let rows: Vec<Vec<String>> = [Region::Wt, Region::Tc, Region::Et]
            .iter()
            .map(|&r| {
                let (model, base) = (dice(&report.mean, r), dice(&b.mean, r));
                vec![
                    r.name().to_string(),
                    format!("{model:.3}"),
                    format!("{base:.3}"),
                    format!("{:+.3}", model - base),
                ]
            })
            .collect();
        text += &report::table(
            &["mean Dice", "model", "baseline", "model - baseline"],
            &rows,
        );
    }
    text
}

fn write_eval_files(report: &EvalReport, json: Option<&Path>, csv: Option<&Path>) -> Result<()> {
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report)?;
        crate::atomic::write_bytes(path, text.as_bytes())
            .with_context(|| path.display().to_string())?;
    }
    if let Some(path) = csv {
        let mut text = eval_columns(true).join(",") + "\n";
        for m in report.cases.iter().chain([&report.mean]) {
            text += &(eval_row(m, true).join(",") + "\n");
        }
        crate::atomic::write_bytes(path, text.as_bytes())
            .with_context(|| path.display().to_string())?;
    }
    Ok(())
}

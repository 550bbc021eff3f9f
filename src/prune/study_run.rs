//! Measuring one point of the compression study: cut the row's model to its target share of
//! the base model's parameters, measure size, MACs and latency (against the dense base model,
//! timed interleaved), score it on the evaluation cases as cut, after BN recalibration and after
//! the same fine-tuning budget per seed, and repeat its structure at the published full width.
//! The `study` command loads the models and cases, drives the points and keeps their results.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result};

use super::study::{
    DiceSpread, SeedDice, Structure, StudyModel, StudyPoint, StudyResult, nonzero_params,
    ratio_for_params,
};
use super::tuning::{DiceEvaluator, FineTuner};
use super::{PruneMethod, SnipBatch, StructuredMethod, UnstructuredMethod};
use crate::backend;
use crate::metrics::RegionStats;
use crate::model::Checkpoint;
use crate::model::config::{ChannelPlan, ModelConfig};
use crate::model::summary::summarize;
use crate::timing::compare_forward;

/// The published network's encoder widths (the full-width structure columns).
const FULL_WIDTHS: [usize; 5] = [32, 64, 128, 256, 512];

/// How points are measured.
#[derive(Debug, Clone, PartialEq)]
pub struct StudySettings {
    /// Side of the square slice MACs and latency are measured on.
    pub slice_side: usize,
    /// Timed forwards per model.
    pub timing_runs: usize,
    /// Whether each point is fine-tuned (once per seed, the tuner's budget each time).
    pub fine_tune: bool,
    pub seeds: Vec<u64>,
}

/// Everything a point needs: the trained models, the cases and the budgets.
pub struct StudyRunner {
    pub models: HashMap<StudyModel, Checkpoint>,
    pub evaluator: DiceEvaluator,
    pub tuner: FineTuner,
    pub snip: SnipBatch,
    pub settings: StudySettings,
}

impl StudyRunner {
    /// Cuts, measures and scores one point; `progress` hears each Dice as it is known.
    pub fn run(
        &mut self,
        point: StudyPoint,
        progress: &mut dyn FnMut(&str),
    ) -> Result<StudyResult> {
        let base = &self.models[&StudyModel::Base];
        let model = &self.models[&point.row.model()];
        let base_params = nonzero_params(base);
        let (ratio, cut) = match (point.row.method(), point.target) {
            (Some(method), Some(target)) => {
                let keep = ((1.0 - target) * base_params as f64).round() as usize;
                let (ratio, cut) = ratio_for_params(model, method, keep, Some(&self.snip))
                    .with_context(|| point.label())?;
                (Some(ratio), cut)
            }
            _ => (None, model.clone()),
        };
        let settings = &self.settings;
        let structure = measure_structure(base, &cut, settings)?;
        let bytes = cut.to_bytes()?;
        let mut score = |model: &Checkpoint, stage: &str| -> Result<DiceSpread> {
            let stats: RegionStats = self.evaluator.dice(model)?;
            let spread = DiceSpread {
                mean: stats.mean,
                sd: stats.sd,
            };
            let m = spread.mean;
            progress(&format!(
                "{}: {stage} Dice WT {:.3} TC {:.3} ET {:.3}",
                point.label(),
                m.wt,
                m.tc,
                m.et
            ));
            Ok(spread)
        };
        let dice = score(&cut, "as cut")?;
        // A model as trained has nothing to recalibrate; every cut does.
        let recalibrated = match point.row.method() {
            Some(_) => Some(self.tuner.recalibrate(&cut)?),
            None => None,
        };
        let dice_recalibrated = match &recalibrated {
            Some(model) => Some(score(model, "BN recalibrated")?),
            None => None,
        };
        let start = recalibrated.as_ref().unwrap_or(&cut);
        let mut dice_fine_tuned = Vec::new();
        if settings.fine_tune {
            for &seed in &settings.seeds {
                self.tuner.set_seed(seed);
                let tuned = self.tuner.fine_tune(start)?;
                let dice = score(&tuned, &format!("fine-tuned (seed {seed})"))?;
                dice_fine_tuned.push(SeedDice { seed, dice });
            }
        }
        Ok(StudyResult {
            point,
            slice_side: settings.slice_side,
            model: point.row.model(),
            ratio,
            removed_share: 1.0 - structure.nonzero_params as f64 / base_params as f64,
            structure,
            bytes_on_disk: bytes.len() as u64,
            gzip_bytes: gzip_len(&bytes)?,
            dice,
            dice_recalibrated,
            dice_fine_tuned,
            full_width: full_width_structure(base, model, point, settings)?,
            fine_tune_steps: if settings.fine_tune {
                self.tuner.steps_per_run()
            } else {
                0
            },
            eval_cases: self.evaluator.cases.len(),
            precision: self.evaluator.precision,
        })
    }
}

/// Parameters, MACs and latency of `model` against `base` (timed interleaved).
fn measure_structure(
    base: &Checkpoint,
    model: &Checkpoint,
    settings: &StudySettings,
) -> Result<Structure> {
    let device = backend::cpu_device();
    let built = model.build(&device)?;
    let side = settings.slice_side;
    let summary = summarize(&model.config, &built, side, side)?;
    let [dense_time, time] = compare_forward(
        &[&base.build(&device)?.folded(), &built.folded()],
        [1, side, side],
        settings.timing_runs.max(1),
        &device,
    );
    Ok(Structure {
        params: summary.params,
        nonzero_params: nonzero_params(model),
        macs: summary.macs,
        latency_ms: time.median_secs * 1e3,
        dense_latency_ms: dense_time.median_secs * 1e3,
    })
}

/// The point's row at the published full width, structure only (seeded untrained weights): the
/// same share of the full-width base removed, channels by filter L2 for channel methods and
/// masks by magnitude for mask methods (which channels or weights go does not change the size).
fn full_width_structure(
    base: &Checkpoint,
    model: &Checkpoint,
    point: StudyPoint,
    settings: &StudySettings,
) -> Result<Structure> {
    let device = backend::cpu_device();
    device.seed(0);
    let full = |config: &ModelConfig| -> Checkpoint {
        let config = ModelConfig {
            plan: ChannelPlan::from_encoder_widths(FULL_WIDTHS),
            ..config.clone()
        };
        Checkpoint::from_model(&config, &config.init(&device))
    };
    let full_base = full(&base.config);
    let full_model = full(&model.config);
    let cut = match (point.row.method(), point.target) {
        (Some(method), Some(target)) => {
            let stand_in = match method {
                PruneMethod::Structured(_) => PruneMethod::Structured(StructuredMethod::L2),
                PruneMethod::Unstructured(_) => {
                    PruneMethod::Unstructured(UnstructuredMethod::L1Global)
                }
            };
            let keep = ((1.0 - target) * nonzero_params(&full_base) as f64).round() as usize;
            ratio_for_params(&full_model, stand_in, keep, None)?.1
        }
        _ => full_model,
    };
    measure_structure(&full_base, &cut, settings)
}

/// Bytes of `bytes` gzipped: what masked (sparse) weights save in storage.
fn gzip_len(bytes: &[u8]) -> Result<u64> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len() as u64)
}

//! The budget search run end to end (`prune --auto`): the tumour-slice subset and the whole
//! validation cases it is scored on, the brief fine-tunes, the search itself (`prune::auto`),
//! the checkpoint, plan and trace written, optionally the uniform ratios beside it under the
//! same budget and fine-tuning, and every model's Dice on held-out cases: one report.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Serialize;

use super::auto::{
    AutoEvent, AutoHooks, AutoSettings, AutoTrace, TumourSlices, auto_prune, macs_of, within_budget,
};
use super::tuning::{DiceEvaluator, FineTuner};
use super::{FineTuneRecord, PruneError, PruneMethod, Ratios, parameter_counts, prune_checkpoint};
use crate::backend;
use crate::data::dataset::PreparedCase;
use crate::inference::InferenceOptions;
use crate::metrics::{RegionScores, RegionStats};
use crate::model::{Checkpoint, save_checkpoint};

/// Everything one run needs.
pub struct AutoJob<'a> {
    pub dense: &'a Checkpoint,
    /// The dense model's name in the report.
    pub model_name: String,
    /// Where the checkpoint goes; the plan (`<stem>.plan.json`) and the trace
    /// (`<stem>.trace.json`) go beside it.
    pub output: &'a Path,
    pub settings: AutoSettings,
    pub tuner: FineTuner,
    /// Adam steps of each of the search's fine-tunes (0: none).
    pub fine_tune_steps: usize,
    /// Whole cases the kept steps are confirmed on; the subset's slices come from them.
    pub validation: Vec<PreparedCase>,
    /// Tumour slices (of the validation cases) that rank the candidates, and the side of the
    /// square they are cut to around the tumour.
    pub subset_slices: usize,
    pub subset_side: usize,
    /// Also prune uniformly on a grid of this step, fine-tuned with the search's whole
    /// fine-tuning budget in one go.
    pub against_uniform: Option<f64>,
    /// Loads the held-out cases the result is reported on (called after the search).
    pub held_out: Box<dyn FnOnce() -> Result<Vec<PreparedCase>> + 'a>,
    pub threshold: f32,
}

/// What a run reports as it goes.
pub enum AutoRunEvent<'e> {
    /// The subset is picked: validation cases, subset slices, their side.
    Subset {
        cases: usize,
        slices: usize,
        side: usize,
    },
    /// The search's own progress.
    Search(&'e AutoEvent),
    /// One uniform ratio scored on the validation cases, and whether it met the budget.
    Uniform {
        ratio: f64,
        dice: &'e RegionScores,
        within_budget: bool,
    },
    /// A model about to be scored on the held-out cases.
    HeldOut(&'e str),
}

/// One model of the report: the search's result, the dense model or a uniform ratio.
#[derive(Serialize)]
pub struct ModelRow {
    pub model: String,
    pub params: usize,
    pub macs: u64,
    pub validation_dice: RegionScores,
    pub held_out_dice: RegionStats,
}

/// The search's report.
#[derive(Serialize)]
pub struct AutoReport {
    pub model: String,
    pub output: PathBuf,
    pub plan: PathBuf,
    pub trace_file: PathBuf,
    pub fine_tune_steps: usize,
    pub held_out_cases: usize,
    pub rows: Vec<ModelRow>,
    /// Every uniform ratio tried (with `against_uniform`): its validation Dice and whether it
    /// met the budget.
    pub uniform: Vec<UniformPoint>,
    pub trace: AutoTrace,
}

#[derive(Serialize)]
pub struct UniformPoint {
    pub ratio: f64,
    pub macs: u64,
    pub validation_dice: RegionScores,
    pub within_budget: bool,
}

/// The search's hooks: the subset, the validation cases, the fine-tuner.
struct RunHooks<'a> {
    subset: TumourSlices,
    validation: DiceEvaluator,
    tuner: &'a mut FineTuner,
    tuning: bool,
    threshold: f32,
    on_event: &'a mut dyn FnMut(AutoRunEvent),
}

impl AutoHooks for RunHooks<'_> {
    fn score_subset(&mut self, checkpoint: &Checkpoint) -> Result<RegionScores> {
        Ok(self
            .subset
            .dice(checkpoint, &self.validation.cases, self.threshold)?)
    }

    fn confirm(&mut self, checkpoint: &Checkpoint) -> Result<RegionScores> {
        Ok(self.validation.dice(checkpoint)?.mean)
    }

    fn fine_tune(&mut self, checkpoint: &Checkpoint) -> Result<Option<Checkpoint>> {
        if !self.tuning {
            return Ok(None);
        }
        Ok(Some(self.tuner.fine_tune(checkpoint)?))
    }

    fn on_event(&mut self, event: &AutoEvent) {
        (self.on_event)(AutoRunEvent::Search(event));
    }

    fn cancelled(&self) -> bool {
        self.tuner.cancelled()
    }
}

/// Runs the search, writes checkpoint, plan and trace, scores the uniform grid (when asked)
/// and every model on the held-out cases.
pub fn run_auto(mut job: AutoJob, mut on_event: impl FnMut(AutoRunEvent)) -> Result<AutoReport> {
    let subset = TumourSlices::pick(&job.validation, job.subset_slices, job.subset_side);
    if subset.is_empty() {
        bail!("the validation cases have no tumour to score candidates on");
    }
    let options = InferenceOptions {
        threshold: job.threshold,
        ..InferenceOptions::default()
    };
    job.tuner.set_steps_per_run(job.fine_tune_steps);
    on_event(AutoRunEvent::Subset {
        cases: job.validation.len(),
        slices: subset.len(),
        side: job.subset_side,
    });
    let mut hooks = RunHooks {
        subset,
        validation: DiceEvaluator::new(job.validation, options),
        tuner: &mut job.tuner,
        tuning: job.fine_tune_steps > 0,
        threshold: job.threshold,
        on_event: &mut on_event,
    };
    let result = auto_prune(job.dense, &job.settings, &mut hooks)?;
    let validation = hooks.validation;
    let fine_tune_steps = job.tuner.steps_trained();
    save_checkpoint(job.output, &result.checkpoint)?;
    let plan_path = sibling(job.output, "plan.json");
    let trace_path = sibling(job.output, "trace.json");
    let mut plan = result.plan.clone();
    plan.checkpoint = Some(job.output.to_path_buf());
    if let Some(search) = plan.budget_search.as_mut() {
        search.fine_tune_steps = fine_tune_steps;
    }
    plan.fine_tune = (fine_tune_steps > 0).then(|| FineTuneRecord {
        epochs: job.tuner.epochs_per_run(),
        learning_rate: job.tuner.learning_rate(),
        batches_per_epoch: job.tuner.batches_per_epoch(),
        device: "CPU".into(),
    });
    plan.write(&plan_path)?;
    let trace_json = serde_json::to_string_pretty(&result.trace)?;
    crate::atomic::write_bytes(&trace_path, trace_json.as_bytes())?;

    let uniform = match job.against_uniform {
        Some(step) => uniform_grid(
            job.dense,
            &job.settings,
            &mut job.tuner,
            &validation,
            step,
            fine_tune_steps,
            &mut on_event,
        )?,
        None => Vec::new(),
    };
    let held_out = DiceEvaluator::new((job.held_out)()?, options);
    let device = backend::cpu_device();
    let mut models: Vec<(String, Checkpoint, RegionScores)> = vec![
        ("dense".into(), job.dense.clone(), result.trace.dense_dice),
        (
            "auto (this search)".into(),
            result.checkpoint.clone(),
            result.trace.dice,
        ),
    ];
    if let Some((best, checkpoint)) = best_uniform(&uniform) {
        models.push((
            format!("uniform {:.2} (best within budget)", best.ratio),
            checkpoint.clone(),
            best.validation_dice,
        ));
    }
    let mut rows = Vec::new();
    for (name, checkpoint, validation_dice) in models {
        on_event(AutoRunEvent::HeldOut(&name));
        rows.push(ModelRow {
            model: name,
            params: parameter_counts(&checkpoint).0,
            macs: macs_of(&checkpoint, job.settings.mac_side, &device)?,
            validation_dice,
            held_out_dice: held_out.dice(&checkpoint)?,
        });
    }
    Ok(AutoReport {
        model: job.model_name,
        output: job.output.to_path_buf(),
        plan: plan_path,
        trace_file: trace_path,
        fine_tune_steps,
        held_out_cases: held_out.cases.len(),
        rows,
        uniform: uniform.into_iter().map(|(p, _)| p).collect(),
        trace: result.trace,
    })
}

/// Uniform ratios `step`, `2 step`, ... pruned one-shot and fine-tuned with `fine_tune_steps`
/// Adam steps, until two in a row miss the budget.
fn uniform_grid(
    dense: &Checkpoint,
    settings: &AutoSettings,
    tuner: &mut FineTuner,
    validation: &DiceEvaluator,
    step: f64,
    fine_tune_steps: usize,
    on_event: &mut impl FnMut(AutoRunEvent),
) -> Result<Vec<(UniformPoint, Checkpoint)>> {
    let dense_dice = validation.dice(dense)?.mean;
    let device = backend::cpu_device();
    if fine_tune_steps > 0 {
        tuner.set_steps_per_run(fine_tune_steps);
    }
    let mut points = Vec::new();
    let mut misses = 0;
    for k in 1.. {
        let ratio = (k as f64 * step * 1e6).round() / 1e6;
        if ratio >= 1.0 || misses == 2 || tuner.cancelled() {
            break;
        }
        let pruned = match prune_checkpoint(
            dense,
            PruneMethod::Structured(settings.method),
            &Ratios::Uniform(ratio),
            None,
        ) {
            Ok(pruned) => pruned,
            // Past this ratio some group would keep no channel: the grid ends.
            Err(PruneError::EmptyGroup(_)) => break,
            Err(e) => return Err(e.into()),
        };
        let model = if fine_tune_steps > 0 {
            tuner.fine_tune(&pruned)?
        } else {
            pruned
        };
        let dice = validation.dice(&model)?.mean;
        let within = within_budget(&settings.budget, &dense_dice, &dice);
        on_event(AutoRunEvent::Uniform {
            ratio,
            dice: &dice,
            within_budget: within,
        });
        misses = if within { 0 } else { misses + 1 };
        points.push((
            UniformPoint {
                ratio,
                macs: macs_of(&model, settings.mac_side, &device)?,
                validation_dice: dice,
                within_budget: within,
            },
            model,
        ));
    }
    Ok(points)
}

/// The largest uniform ratio within the budget.
fn best_uniform(points: &[(UniformPoint, Checkpoint)]) -> Option<&(UniformPoint, Checkpoint)> {
    points
        .iter()
        .filter(|(p, _)| p.within_budget)
        .max_by(|(a, _), (b, _)| a.ratio.total_cmp(&b.ratio))
}

/// `model.safetensors` -> `model.<suffix>` beside it.
fn sibling(output: &Path, suffix: &str) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "auto".into());
    output.with_file_name(format!("{stem}.{suffix}"))
}

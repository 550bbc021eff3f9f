//! The budget search on the open case: candidates scored on its tumour slices, kept steps
//! confirmed on the whole case, brief fine-tunes on synthetic training cases; each kept step
//! sent as it is found, the uniform-ratio curve first for the chart.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use super::case_dice;
use super::fine_tune::fine_tune_data;
use crate::backend;
use crate::data::dataset::PreparedCase;
use crate::metrics::RegionScores;
use crate::model::Checkpoint;
use crate::prune::auto::{AutoEvent, AutoHooks, TumourSlices, auto_prune, macs_of};
use crate::prune::{PruneMethod, Ratios, prune_checkpoint};
use crate::train::fine_tune::{FineTuneData, FineTuneSettings, fine_tune};
use crate::worker::{AutoOutcome, AutoPoint, AutoPruneRequest, AutoStepView, Response};

/// Tumour slices of the open case that rank the candidates, and their side.
const SUBSET_SLICES: usize = 12;
const SUBSET_SIDE: usize = 128;
/// Probability threshold of the app's segmentations (every other view uses the default).
const THRESHOLD: f32 = 0.5;
/// Uniform ratios of the chart's curve.
const UNIFORM_RATIOS: [f64; 8] = [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6];

/// The search's hooks in the app.
struct JobHooks<'a, F: Fn(Response)> {
    case: &'a PreparedCase,
    subset: TumourSlices,
    fine_tune_steps: usize,
    data: Option<FineTuneData>,
    /// Adam steps of the fine-tunes so far.
    tuned_steps: usize,
    cancel: &'a AtomicBool,
    reply: &'a F,
    step: usize,
}

impl<F: Fn(Response)> AutoHooks for JobHooks<'_, F> {
    fn score_subset(&mut self, checkpoint: &Checkpoint) -> Result<RegionScores> {
        Ok(self
            .subset
            .dice(checkpoint, std::slice::from_ref(self.case), THRESHOLD)?)
    }

    fn confirm(&mut self, checkpoint: &Checkpoint) -> Result<RegionScores> {
        (self.reply)(Response::JobProgress {
            done: self.step,
            total: self.step + 1,
            label: format!(
                "budget search: step {}, confirming on the whole case",
                self.step
            ),
        });
        Ok(RegionScores::from_array(case_dice(checkpoint, self.case)?))
    }

    fn fine_tune(&mut self, checkpoint: &Checkpoint) -> Result<Option<Checkpoint>> {
        if self.fine_tune_steps == 0 {
            return Ok(None);
        }
        (self.reply)(Response::JobProgress {
            done: self.step,
            total: self.step + 1,
            label: format!("budget search: fine-tuning {} steps", self.fine_tune_steps),
        });
        if self.data.is_none() {
            self.data = Some(fine_tune_data().map_err(anyhow::Error::msg)?);
        }
        let settings = FineTuneSettings {
            epochs: 1,
            learning_rate: 1e-4,
            max_batches_per_epoch: Some(self.fine_tune_steps),
            seed: 0,
        };
        let data = self.data.as_ref().expect("just made");
        let device = backend::cpu_device();
        let tuned = fine_tune(checkpoint, data, settings, &device, self.cancel, |_| {})?;
        self.tuned_steps += tuned.epochs_done * self.fine_tune_steps;
        Ok(tuned.best)
    }

    fn on_event(&mut self, event: &AutoEvent) {
        let reply = self.reply;
        match event {
            AutoEvent::Dense { .. } => {}
            AutoEvent::Candidate { step, done, total } => {
                self.step = *step;
                reply(Response::JobProgress {
                    done: *done,
                    total: *total,
                    label: format!("budget search: step {step}, candidate {done}/{total}"),
                });
            }
            AutoEvent::Kept(kept) => reply(Response::AutoStep(AutoStepView {
                step: kept.step,
                group: kept.group.clone(),
                ratios: kept.ratios.values().copied().collect::<Vec<_>>(),
                group_names: kept.ratios.keys().cloned().collect(),
                macs: kept.macs,
                subset_dice: kept.subset_dice,
            })),
            AutoEvent::FineTuned { .. } => {}
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

/// Runs the search on `case`; returns whether it was cancelled. The searched model goes to
/// `keep` (the worker's slot for a model the UI can preview and save).
pub(in crate::worker) fn auto_prune_job(
    dense: &Checkpoint,
    case: &PreparedCase,
    request: &AutoPruneRequest,
    cancel: &AtomicBool,
    reply: &impl Fn(Response),
    keep: impl FnOnce(Checkpoint),
) -> Result<bool, String> {
    let subset = TumourSlices::pick(std::slice::from_ref(case), SUBSET_SLICES, SUBSET_SIDE);
    if subset.is_empty() {
        return Err(format!("{}: no tumour to score candidates on", case.id));
    }
    let settings = request.settings.clone();
    settings.check().map_err(|e| e.to_string())?;
    uniform_curve(dense, case, &subset, &request.settings, cancel, reply)
        .map_err(|e| e.to_string())?;
    if cancel.load(Ordering::SeqCst) {
        return Ok(true);
    }
    let mut hooks = JobHooks {
        case,
        subset,
        fine_tune_steps: request.fine_tune_steps,
        data: None,
        tuned_steps: 0,
        cancel,
        reply,
        step: 0,
    };
    let result = auto_prune(dense, &settings, &mut hooks).map_err(|e| format!("{e:#}"))?;
    if result.trace.cancelled {
        return Ok(true);
    }
    let trace = &result.trace;
    let subset_dice = hooks
        .score_subset(&result.checkpoint)
        .map_err(|e| e.to_string())?;
    // The model first: the UI previews and saves it as soon as it hears of the result.
    keep(result.checkpoint.clone());
    reply(Response::AutoPruned(AutoOutcome {
        plan: result.plan.clone(),
        steps: trace.steps.len(),
        macs: trace.macs,
        dense_macs: trace.dense_macs,
        case_dice: trace.dice,
        dense_case_dice: trace.dense_dice,
        subset_dice,
        fine_tune_steps: hooks.tuned_steps,
        stopped: trace.stopped.clone(),
    }));
    Ok(false)
}

/// The dense model pruned uniformly at a few ratios, scored on the subset: the curve the
/// search's result is drawn against.
fn uniform_curve(
    dense: &Checkpoint,
    case: &PreparedCase,
    subset: &TumourSlices,
    settings: &crate::prune::auto::AutoSettings,
    cancel: &AtomicBool,
    reply: &impl Fn(Response),
) -> Result<()> {
    let device = backend::cpu_device();
    let mut points = Vec::new();
    for (i, &ratio) in [0.0].iter().chain(&UNIFORM_RATIOS).enumerate() {
        if cancel.load(Ordering::SeqCst) {
            return Ok(());
        }
        reply(Response::JobProgress {
            done: i,
            total: UNIFORM_RATIOS.len() + 1,
            label: format!("budget search: uniform ratio {ratio:.2} for the chart"),
        });
        let pruned = prune_checkpoint(
            dense,
            PruneMethod::Structured(settings.method),
            &Ratios::Uniform(ratio),
            None,
        )?;
        points.push(AutoPoint {
            ratio,
            macs: macs_of(&pruned, settings.mac_side, &device)?,
            subset_dice: subset.dice(&pruned, std::slice::from_ref(case), THRESHOLD)?,
        });
    }
    reply(Response::AutoUniform(points));
    Ok(())
}

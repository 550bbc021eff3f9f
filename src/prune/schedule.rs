//! Pruning schedules: one-shot, iterative (N steps of prune then fine-tune towards the final
//! ratio) and layer-wise (one channel group or module at a time, fine-tuning after each), with
//! scores recorded before and after every fine-tune. One runner serves every model (the
//! segmentation network scored by Dice, the classifiers by accuracy); evaluation and
//! fine-tuning are the caller's (data and training settings live there), through
//! [`ScheduleHooks`].

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::unstructured::maskable_modules;
use super::{ChannelGraph, PruneMethod, Ratios, SnipBatch, prune_checkpoint_in};
use crate::metrics::{RegionScores, RegionStats};
use crate::model::Checkpoint;

/// How the final ratio is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Schedule {
    /// Everything at once.
    OneShot,
    /// `steps` equal increments of the ratio, each followed by fine-tuning.
    Iterative { steps: usize },
    /// `percent` more of the weights at each step until the ratio is reached (the last step
    /// may take less), each followed by fine-tuning: as many steps as that takes.
    Increments { percent: u32 },
    /// Channel groups (structured) or top-level modules (unstructured) one at a time, in
    /// forward order, each followed by fine-tuning.
    LayerWise,
}

impl Schedule {
    pub fn name(self) -> String {
        match self {
            Schedule::OneShot => "one-shot".into(),
            Schedule::Iterative { steps } => format!("iterative ({steps} steps)"),
            Schedule::Increments { percent } => format!("iterative ({percent} % per step)"),
            Schedule::LayerWise => "layer-wise".into(),
        }
    }
}

/// A model a schedule runs on: what scores it and what one step of the schedule records.
pub trait ScheduledModel: Clone {
    type Score;
    type Record;
}

impl ScheduledModel for Checkpoint {
    /// Mean Dice per region on the evaluation cases.
    type Score = RegionStats;
    type Record = StepRecord;
}

/// What the schedule asks of its caller.
pub trait ScheduleHooks<M: ScheduledModel> {
    /// Scores a model on the evaluation data.
    fn evaluate(&mut self, model: &M) -> Result<M::Score>;
    /// Recomputes the batch norms' running statistics of a freshly pruned model (BN
    /// recalibration); `None` when it is off. Fine-tuning starts from its result.
    fn recalibrate(&mut self, _model: &M) -> Result<Option<M>> {
        Ok(None)
    }
    /// Fine-tunes after step `step` (1-based); `None` when fine-tuning is off.
    fn fine_tune(&mut self, model: &M, step: usize) -> Result<Option<M>>;
    /// Called after every step with its record (progress display).
    fn on_step(&mut self, _record: &M::Record, _steps: usize) {}
}

/// One step as the runner saw it: the model it ended with (fine-tuned when fine-tuning is on)
/// and the scores along the way.
pub struct ScoredStep<'a, M: ScheduledModel> {
    pub step: usize,
    pub label: String,
    pub model: &'a M,
    pub pruned: M::Score,
    pub recalibrated: Option<M::Score>,
    pub fine_tuned: Option<M::Score>,
}

/// Runs `steps` steps from `start`: `cut` prunes the model as it stands at a (1-based) step
/// and labels the cut; each cut is scored, recalibrated and fine-tuned when the hooks do that
/// (scored again after each), and the last model is where the next step starts. `record`
/// turns each scored step into the task's record.
pub fn run_steps<M: ScheduledModel>(
    start: M,
    steps: usize,
    mut cut: impl FnMut(&M, usize) -> Result<(M, String)>,
    hooks: &mut dyn ScheduleHooks<M>,
    mut record: impl FnMut(ScoredStep<M>) -> M::Record,
) -> Result<(M, Vec<M::Record>)> {
    let mut current = start;
    let mut records = Vec::with_capacity(steps);
    for step in 1..=steps {
        let (pruned, label) = cut(&current, step)?;
        let score_pruned = hooks.evaluate(&pruned)?;
        let (pruned, recalibrated) = match hooks.recalibrate(&pruned)? {
            Some(recalibrated) => {
                let score = hooks.evaluate(&recalibrated)?;
                (recalibrated, Some(score))
            }
            None => (pruned, None),
        };
        let tuned = hooks.fine_tune(&pruned, step)?;
        let fine_tuned = match &tuned {
            Some(t) => Some(hooks.evaluate(t)?),
            None => None,
        };
        current = tuned.unwrap_or(pruned);
        let scored = ScoredStep {
            step,
            label,
            model: &current,
            pruned: score_pruned,
            recalibrated,
            fine_tuned,
        };
        let step_record = record(scored);
        hooks.on_step(&step_record, steps);
        records.push(step_record);
    }
    Ok((current, records))
}

/// One step of a schedule.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: usize,
    /// What this step pruned (`one-shot`, `step 2/3`, `group enc1.branch2`, `module dec4`).
    pub label: String,
    /// Parameters (weights and biases, no BN running statistics) after the step.
    pub params: usize,
    /// Parameters not masked to zero (equal to `params` for channel pruning).
    pub nonzero_params: usize,
    pub dice_pruned: RegionScores,
    /// After BN recalibration of the pruned model (when on).
    pub dice_recalibrated: Option<RegionScores>,
    pub dice_fine_tuned: Option<RegionScores>,
    /// Spread of `dice_pruned` over the evaluation cases (sample sd; none for one case).
    pub dice_pruned_sd: Option<RegionScores>,
    /// Spread of `dice_recalibrated` likewise.
    pub dice_recalibrated_sd: Option<RegionScores>,
    /// Spread of `dice_fine_tuned` likewise.
    pub dice_fine_tuned_sd: Option<RegionScores>,
}

/// Prunes `dense` to `ratios` by `method` following `schedule`; returns the final model (the
/// last fine-tuned one when fine-tuning is on) and one record per step, at least one: with
/// nothing to prune (a layer-wise schedule at ratio 0) the dense model is the one record.
pub fn run_schedule(
    dense: &Checkpoint,
    method: PruneMethod,
    ratios: &Ratios,
    schedule: Schedule,
    snip: Option<&SnipBatch>,
    hooks: &mut dyn ScheduleHooks<Checkpoint>,
) -> Result<(Checkpoint, Vec<StepRecord>)> {
    let schedule = effective_schedule(ratios, schedule);
    let steps = step_count(dense, method, ratios, schedule)?;
    let current = Checkpoint {
        metadata: Default::default(),
        ..dense.clone()
    };
    if steps == 0 {
        let scored = ScoredStep {
            step: 0,
            label: "nothing to prune (ratio 0): the dense model".into(),
            model: &current,
            pruned: hooks.evaluate(&current)?,
            recalibrated: None,
            fine_tuned: None,
        };
        let record = step_record(scored);
        hooks.on_step(&record, 1);
        return Ok((current, vec![record]));
    }
    let cut = |current: &Checkpoint, step: usize| -> Result<(Checkpoint, String)> {
        let request = step_request(dense, current, method, ratios, schedule, step, steps)?;
        let pruned = prune_checkpoint_in(
            current,
            method,
            &request.ratios,
            snip,
            request.module.as_deref(),
        )
        .with_context(|| format!("{} ({})", method.key(), request.label))?;
        Ok((pruned, request.label))
    };
    run_steps(current, steps, cut, hooks, step_record)
}

/// The record of a scored step: the model's size and the Dice along the way.
fn step_record(scored: ScoredStep<Checkpoint>) -> StepRecord {
    let (params, nonzero_params) = parameter_counts(scored.model);
    let (recalibrated, fine_tuned) = (scored.recalibrated, scored.fine_tuned);
    StepRecord {
        step: scored.step,
        label: scored.label,
        params,
        nonzero_params,
        dice_pruned: scored.pruned.mean,
        dice_recalibrated: recalibrated.as_ref().map(|d| d.mean),
        dice_fine_tuned: fine_tuned.as_ref().map(|d| d.mean),
        dice_pruned_sd: scored.pruned.sd,
        dice_recalibrated_sd: recalibrated.and_then(|d| d.sd),
        dice_fine_tuned_sd: fine_tuned.and_then(|d| d.sd),
    }
}

/// Parameters (no BN running statistics) and how many of them no mask removes.
pub fn parameter_counts(checkpoint: &Checkpoint) -> (usize, usize) {
    let params = checkpoint
        .weights
        .iter()
        .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var"))
        .map(|(_, t)| t.values.len())
        .sum();
    let masked: usize = checkpoint
        .masks
        .values()
        .map(|m| m.keep.len() - m.kept())
        .sum();
    (params, params - masked)
}

/// How many steps `schedule` takes to reach `ratios` on `dense` (layer-wise: one per pruned part).
pub fn step_count(
    dense: &Checkpoint,
    method: PruneMethod,
    ratios: &Ratios,
    schedule: Schedule,
) -> Result<usize> {
    let steps = match schedule {
        Schedule::OneShot => 1,
        Schedule::Iterative { steps: 0 } => bail!("an iterative schedule needs at least 1 step"),
        Schedule::Iterative { steps } => steps,
        Schedule::Increments { .. } => {
            bail!("a schedule of fixed increments is the classifiers'; give a step count")
        }
        Schedule::LayerWise => match (method, ratios) {
            (_, Ratios::Global(_)) => {
                bail!("a layer-wise schedule prunes one part at a time; it takes no global ratio")
            }
            (PruneMethod::Structured(_), _) => layer_wise_groups(dense, ratios).len(),
            (PruneMethod::Unstructured(_), _) => maskable_modules(&dense.weights).len(),
        },
    };
    Ok(steps)
}

/// The schedule that runs: ratios that remove nothing are one step whatever the schedule (the
/// dense model cut by nothing, then recalibrated and fine-tuned like any cut: the control point
/// of a sweep), one record.
pub fn effective_schedule(ratios: &Ratios, schedule: Schedule) -> Schedule {
    if ratios.removes_nothing() {
        Schedule::OneShot
    } else {
        schedule
    }
}

/// Groups a structured layer-wise schedule prunes (those with a ratio above zero), by index.
fn layer_wise_groups(dense: &Checkpoint, ratios: &Ratios) -> Vec<(usize, f64)> {
    let groups = ChannelGraph::of(&dense.config).groups.len();
    (0..groups)
        .map(|g| (g, group_ratio(ratios, g)))
        .filter(|(_, r)| *r > 0.0)
        .collect()
}

fn group_ratio(ratios: &Ratios, group: usize) -> f64 {
    match ratios {
        Ratios::Uniform(r) | Ratios::Global(r) => *r,
        Ratios::PerGroup(rs) => rs.get(group).copied().unwrap_or(0.0),
    }
}

/// What one step prunes, relative to the model as it stands.
struct StepRequest {
    label: String,
    ratios: Ratios,
    module: Option<String>,
}

fn step_request(
    dense: &Checkpoint,
    current: &Checkpoint,
    method: PruneMethod,
    ratios: &Ratios,
    schedule: Schedule,
    step: usize,
    steps: usize,
) -> Result<StepRequest> {
    let whole = |label: String, ratios: Ratios| StepRequest {
        label,
        ratios,
        module: None,
    };
    Ok(match (schedule, method) {
        (Schedule::OneShot, _) => whole("one-shot".into(), ratios.clone()),
        (Schedule::Iterative { .. } | Schedule::Increments { .. }, _) => {
            let share = step as f64 / steps as f64;
            let label = format!("step {step}/{steps}");
            whole(
                label,
                iterative_ratios(dense, current, method, ratios, share)?,
            )
        }
        (Schedule::LayerWise, PruneMethod::Structured(_)) => {
            let (group, ratio) = layer_wise_groups(dense, ratios)[step - 1];
            let graph = ChannelGraph::of(&current.config);
            let mut per_group = vec![0.0; graph.groups.len()];
            per_group[group] = ratio;
            let label = format!("group {}", graph.groups[group].0);
            whole(label, Ratios::PerGroup(per_group))
        }
        (Schedule::LayerWise, PruneMethod::Unstructured(_)) => {
            let module = maskable_modules(&dense.weights)[step - 1].clone();
            StepRequest {
                label: format!("module {module}"),
                ratios: Ratios::Uniform(group_ratio(ratios, 0)),
                module: Some(module),
            }
        }
    })
}

/// Ratios that take `current` to `share` of the way from `dense` to the final `ratios`.
/// Channel ratios are relative to the current (already smaller) widths; mask ratios are shares
/// of all maskable weights, already-masked ones counting first.
fn iterative_ratios(
    dense: &Checkpoint,
    current: &Checkpoint,
    method: PruneMethod,
    ratios: &Ratios,
    share: f64,
) -> Result<Ratios> {
    if let PruneMethod::Unstructured(_) = method {
        return Ok(match ratios {
            Ratios::Global(r) => Ratios::Global(r * share),
            Ratios::Uniform(r) => Ratios::Uniform(r * share),
            Ratios::PerGroup(_) => bail!("{} takes one ratio", method.name()),
        });
    }
    let original = dense.config.plan.groups();
    let now = current.config.plan.groups();
    let relative = |orig: usize, cur: usize, r: f64| {
        let target = (orig as f64 * (1.0 - r * share)).round();
        ((cur as f64 - target) / cur as f64).max(0.0)
    };
    Ok(match ratios {
        Ratios::Global(r) => {
            let orig: usize = original.iter().map(|(_, w)| w).sum();
            let cur: usize = now.iter().map(|(_, w)| w).sum();
            Ratios::Global(relative(orig, cur, *r))
        }
        _ => Ratios::PerGroup(
            original
                .iter()
                .zip(&now)
                .enumerate()
                .map(|(g, ((_, orig), (_, cur)))| relative(*orig, *cur, group_ratio(ratios, g)))
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::StructuredMethod;

    /// Hooks that never fine-tune, counting evaluations.
    struct Counting(usize);

    impl ScheduleHooks<Checkpoint> for Counting {
        fn evaluate(&mut self, _: &Checkpoint) -> Result<RegionStats> {
            self.0 += 1;
            Ok(RegionStats::default())
        }
        fn fine_tune(&mut self, _: &Checkpoint, _: usize) -> Result<Option<Checkpoint>> {
            Ok(None)
        }
    }

    #[test]
    fn every_schedule_at_ratio_zero_returns_the_dense_model_with_one_record() {
        let dense = crate::defaults::default_checkpoint();
        let method = PruneMethod::Structured(StructuredMethod::L2);
        for schedule in [
            Schedule::OneShot,
            Schedule::Iterative { steps: 2 },
            Schedule::LayerWise,
        ] {
            let mut hooks = Counting(0);
            let (model, records) = run_schedule(
                &dense,
                method,
                &Ratios::Uniform(0.0),
                schedule,
                None,
                &mut hooks,
            )
            .unwrap();
            assert_eq!(records.len(), 1, "{}: {records:?}", schedule.name());
            assert_eq!(model.config.plan, dense.config.plan, "{}", schedule.name());
            let last = records.last().unwrap();
            assert_eq!(last.params, parameter_counts(&dense).0);
            assert!(hooks.0 >= 1);
        }
    }
}

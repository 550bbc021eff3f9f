//! Pruning schedules: one-shot, iterative (N steps of prune then fine-tune towards the final
//! ratio) and layer-wise (one channel group or module at a time, fine-tuning after each), with
//! Dice recorded before and after every fine-tune. Evaluation and fine-tuning are the caller's
//! (data and training settings live there), through [`ScheduleHooks`].

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
    /// Channel groups (structured) or top-level modules (unstructured) one at a time, in
    /// forward order, each followed by fine-tuning.
    LayerWise,
}

impl Schedule {
    pub fn name(self) -> String {
        match self {
            Schedule::OneShot => "one-shot".into(),
            Schedule::Iterative { steps } => format!("iterative ({steps} steps)"),
            Schedule::LayerWise => "layer-wise".into(),
        }
    }
}

/// What the schedule asks of its caller.
pub trait ScheduleHooks {
    /// Mean Dice per region of a model on the evaluation cases.
    fn evaluate(&mut self, checkpoint: &Checkpoint) -> Result<RegionStats>;
    /// Recomputes the batch norms' running statistics of a freshly pruned model (BN
    /// recalibration); `None` when it is off. Fine-tuning starts from its result.
    fn recalibrate(&mut self, _checkpoint: &Checkpoint) -> Result<Option<Checkpoint>> {
        Ok(None)
    }
    /// Fine-tunes after step `step` (1-based); `None` when fine-tuning is off.
    fn fine_tune(&mut self, checkpoint: &Checkpoint, step: usize) -> Result<Option<Checkpoint>>;
    /// Called after every step with its record (progress display).
    fn on_step(&mut self, _record: &StepRecord, _steps: usize) {}
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
    hooks: &mut dyn ScheduleHooks,
) -> Result<(Checkpoint, Vec<StepRecord>)> {
    let schedule = effective_schedule(ratios, schedule);
    let steps = step_count(dense, method, ratios, schedule)?;
    let mut current = Checkpoint {
        metadata: Default::default(),
        ..dense.clone()
    };
    if steps == 0 {
        let (params, nonzero_params) = parameter_counts(&current);
        let dense_dice = hooks.evaluate(&current)?;
        let record = StepRecord {
            step: 0,
            label: "nothing to prune (ratio 0): the dense model".into(),
            params,
            nonzero_params,
            dice_pruned: dense_dice.mean,
            dice_recalibrated: None,
            dice_fine_tuned: None,
            dice_pruned_sd: dense_dice.sd,
            dice_recalibrated_sd: None,
            dice_fine_tuned_sd: None,
        };
        hooks.on_step(&record, 1);
        return Ok((current, vec![record]));
    }
    let mut records = Vec::with_capacity(steps);
    for step in 1..=steps {
        let request = step_request(dense, &current, method, ratios, schedule, step, steps)?;
        let pruned = prune_checkpoint_in(
            &current,
            method,
            &request.ratios,
            snip,
            request.module.as_deref(),
        )
        .with_context(|| format!("{} ({})", method.key(), request.label))?;
        let dice_pruned = hooks.evaluate(&pruned)?;
        let (pruned, dice_recalibrated) = match hooks.recalibrate(&pruned)? {
            Some(recalibrated) => {
                let dice = hooks.evaluate(&recalibrated)?;
                (recalibrated, Some(dice))
            }
            None => (pruned, None),
        };
        let tuned = hooks.fine_tune(&pruned, step)?;
        let dice_fine_tuned = match &tuned {
            Some(t) => Some(hooks.evaluate(t)?),
            None => None,
        };
        current = tuned.unwrap_or(pruned);
        let (params, nonzero_params) = parameter_counts(&current);
        let record = StepRecord {
            step,
            label: request.label,
            params,
            nonzero_params,
            dice_pruned: dice_pruned.mean,
            dice_recalibrated: dice_recalibrated.as_ref().map(|d| d.mean),
            dice_fine_tuned: dice_fine_tuned.map(|d| d.mean),
            dice_pruned_sd: dice_pruned.sd,
            dice_recalibrated_sd: dice_recalibrated.and_then(|d| d.sd),
            dice_fine_tuned_sd: dice_fine_tuned.and_then(|d| d.sd),
        };
        hooks.on_step(&record, steps);
        records.push(record);
    }
    Ok((current, records))
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
        (Schedule::Iterative { .. }, _) => {
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

    impl ScheduleHooks for Counting {
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

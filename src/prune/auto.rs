//! Automatic per-group ratios under a per-region Dice budget: a NetAdapt-style greedy search
//! that, step by step, cuts the channel group whose cut removes the most MACs per unit of Dice
//! lost, scored on a fixed subset of tumour slices and confirmed on whole validation cases.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use burn::prelude::*;
use serde::Serialize;

use super::{
    BudgetSearchRecord, ChannelGraph, PruneError, PruneMethod, PrunePlan, Ratios, StructuredMethod,
};
use crate::data::dataset::PreparedCase;
use crate::data::preprocess::{PlaneWindow, window_slice};
use crate::inference::{codes_from_probabilities, slice_batch};
use crate::metrics::{RegionScores, region_dice};
use crate::model::Checkpoint;
use crate::model::summary::count_macs;

/// What the search may spend and how it moves.
#[derive(Debug, Clone, Serialize)]
pub struct AutoSettings {
    /// How channels inside a group are ranked (the least important go first).
    pub method: StructuredMethod,
    /// Largest allowed Dice drop per region against the dense model (absolute, e.g. 0.02).
    pub budget: RegionScores,
    /// Share of the dense model's MACs each step tries to remove (NetAdapt's resource step).
    pub step_share: f64,
    /// Fine-tune after this many kept steps (0: never).
    pub fine_tune_every: usize,
    /// Steps at most.
    pub max_steps: usize,
    /// Input side the MACs are counted at.
    pub mac_side: usize,
    /// Next-best candidates confirmed on the validation cases when the best one fails there.
    pub confirm_tries: usize,
}

impl Default for AutoSettings {
    fn default() -> Self {
        AutoSettings {
            method: StructuredMethod::L2,
            budget: RegionScores::from_array([0.02; 3]),
            step_share: 0.03,
            fine_tune_every: 3,
            max_steps: 40,
            mac_side: 192,
            confirm_tries: 3,
        }
    }
}

impl AutoSettings {
    /// Checks the settings, naming the one that is wrong.
    pub fn check(&self) -> Result<(), PruneError> {
        let bad = |what: String| Err(PruneError::Invalid(what));
        for (name, b) in ["WT", "TC", "ET"].iter().zip(self.budget.as_array()) {
            if !(b.is_finite() && (0.0..1.0).contains(&b)) {
                return bad(format!(
                    "budget {name}: an allowed Dice drop is at least 0 and below 1; got {b}"
                ));
            }
        }
        if !(self.step_share > 0.0 && self.step_share < 1.0) {
            return bad(format!(
                "the step is a share of the dense MACs, above 0 and below 1; got {}",
                self.step_share
            ));
        }
        if self.max_steps == 0 {
            return bad("the search needs at least one step".into());
        }
        Ok(())
    }
}

/// What the search asks of its caller: scores on its data, fine-tuning, progress, cancel.
pub trait AutoHooks {
    /// Dice per region on the fixed subset of tumour slices (fast; ranks candidates).
    fn score_subset(&mut self, checkpoint: &Checkpoint) -> Result<RegionScores>;
    /// Mean Dice per region on the whole validation cases (confirms a kept step).
    fn confirm(&mut self, checkpoint: &Checkpoint) -> Result<RegionScores>;
    /// A brief fine-tune; `None` when fine-tuning is off.
    fn fine_tune(&mut self, checkpoint: &Checkpoint) -> Result<Option<Checkpoint>>;
    /// Progress of the search.
    fn on_event(&mut self, _event: &AutoEvent) {}
    /// Whether the caller asked the search to stop (checked between candidates).
    fn cancelled(&self) -> bool {
        false
    }
}

/// Progress of the search as it goes.
#[derive(Debug, Clone)]
pub enum AutoEvent {
    /// The dense model scored: validation and subset Dice, MACs.
    Dense { confirmed: RegionScores, macs: u64 },
    /// A candidate of step `step` scored on the subset (`done` of `total`).
    Candidate {
        step: usize,
        done: usize,
        total: usize,
    },
    /// A step was kept.
    Kept(AutoStep),
    /// A fine-tune finished and was confirmed.
    FineTuned { confirmed: RegionScores },
}

/// One kept step of the search (a line of the trace).
#[derive(Debug, Clone, Serialize)]
pub struct AutoStep {
    pub step: usize,
    pub group: String,
    pub width_before: usize,
    pub width_after: usize,
    /// MACs of the whole model after the step.
    pub macs: u64,
    pub params: usize,
    /// Dice on the subset and on the validation cases after the step.
    pub subset_dice: RegionScores,
    pub confirmed_dice: RegionScores,
    /// Candidates scored to choose this step.
    pub candidates: usize,
    /// The share removed per group so far (against the dense widths).
    pub ratios: BTreeMap<String, f64>,
}

/// What one fine-tune inside the search did.
#[derive(Debug, Clone, Serialize)]
pub struct AutoFineTune {
    /// Kept steps before it.
    pub after_step: usize,
    pub before: RegionScores,
    pub after: RegionScores,
    /// Whether its weights were kept (they are when they score better).
    pub kept: bool,
}

/// The search's result: the pruned model, its plan and the trace.
#[derive(Debug, Clone)]
pub struct AutoResult {
    pub checkpoint: Checkpoint,
    pub plan: PrunePlan,
    pub trace: AutoTrace,
}

/// Everything the search did, as the trace file holds it.
#[derive(Debug, Clone, Serialize)]
pub struct AutoTrace {
    pub settings: AutoSettings,
    pub dense_macs: u64,
    pub dense_params: usize,
    pub dense_dice: RegionScores,
    pub dense_subset_dice: RegionScores,
    pub macs: u64,
    pub params: usize,
    /// Validation Dice of the result.
    pub dice: RegionScores,
    pub steps: Vec<AutoStep>,
    pub fine_tunes: Vec<AutoFineTune>,
    /// Why the search ended.
    pub stopped: String,
    pub cancelled: bool,
}

/// Runs the search from `dense`. Cancelling keeps what was found so far (every kept step was
/// confirmed within the budget).
pub fn auto_prune(
    dense: &Checkpoint,
    settings: &AutoSettings,
    hooks: &mut dyn AutoHooks,
) -> Result<AutoResult> {
    settings.check()?;
    if !dense.masks.is_empty() {
        return Err(PruneError::Invalid(
            "this model carries unstructured masks; the search removes channels, from a model \
             without masks"
                .into(),
        )
        .into());
    }
    let device = crate::backend::cpu_device();
    let dense = Checkpoint {
        metadata: Default::default(),
        ..dense.clone()
    };
    let dense_macs = macs_of(&dense, settings.mac_side, &device)?;
    let dense_dice = hooks.confirm(&dense)?;
    let dense_subset = hooks.score_subset(&dense)?;
    hooks.on_event(&AutoEvent::Dense {
        confirmed: dense_dice,
        macs: dense_macs,
    });
    let mut search = Search {
        settings,
        dense: &dense,
        dense_dice,
        dense_subset,
        dense_macs,
        device,
        current: dense.clone(),
        current_dice: dense_dice,
        current_subset: dense_subset,
        current_macs: dense_macs,
        blocked: Vec::new(),
        since_tune: 0,
        steps: Vec::new(),
        fine_tunes: Vec::new(),
    };
    let (stopped, cancelled) = search.run(hooks)?;
    if !cancelled && search.since_tune > 0 {
        search.fine_tune(hooks)?;
    }
    let graph = ChannelGraph::of(&dense.config);
    let ratios = ratios_against(&graph, &search.current);
    let plan = PrunePlan {
        group_ratios: ratios.into_iter().filter(|(_, r)| *r > 0.0).collect(),
        budget_search: Some(BudgetSearchRecord {
            budget: settings.budget,
            steps: search.steps.len(),
            fine_tune_steps: 0,
        }),
        ..PrunePlan::dense(PruneMethod::Structured(settings.method))
    };
    let trace = AutoTrace {
        settings: settings.clone(),
        dense_macs,
        dense_params: super::parameter_counts(&dense).0,
        dense_dice,
        dense_subset_dice: dense_subset,
        macs: search.current_macs,
        params: super::parameter_counts(&search.current).0,
        dice: search.current_dice,
        steps: search.steps,
        fine_tunes: search.fine_tunes,
        stopped,
        cancelled,
    };
    Ok(AutoResult {
        checkpoint: search.current,
        plan,
        trace,
    })
}

/// The search's state between steps.
struct Search<'a> {
    settings: &'a AutoSettings,
    dense: &'a Checkpoint,
    dense_dice: RegionScores,
    dense_subset: RegionScores,
    dense_macs: u64,
    device: Device,
    current: Checkpoint,
    current_dice: RegionScores,
    current_subset: RegionScores,
    current_macs: u64,
    /// Groups whose cut failed on the validation cases since the last fine-tune.
    blocked: Vec<usize>,
    /// Kept steps since the last fine-tune.
    since_tune: usize,
    steps: Vec<AutoStep>,
    fine_tunes: Vec<AutoFineTune>,
}

/// A cut of one group, scored.
struct Candidate {
    group: usize,
    checkpoint: Checkpoint,
    macs: u64,
    subset: RegionScores,
    /// MACs removed per share of the budget used (higher is better).
    efficiency: f64,
}

impl Search<'_> {
    /// Steps until no cut fits, the step limit, or a cancel; returns why it stopped.
    fn run(&mut self, hooks: &mut dyn AutoHooks) -> Result<(String, bool)> {
        while self.steps.len() < self.settings.max_steps {
            let step = self.steps.len() + 1;
            let Some(mut candidates) = self.candidates(step, hooks)? else {
                return Ok(("cancelled".into(), true));
            };
            candidates.sort_by(|a, b| b.efficiency.total_cmp(&a.efficiency));
            let kept = self.confirm_best(candidates, step, hooks)?;
            if hooks.cancelled() {
                return Ok(("cancelled".into(), true));
            }
            if !kept {
                // A fine-tune may win back the slack a further cut needs; without one, or
                // right after one, no step fits.
                if self.since_tune > 0 && self.fine_tune(hooks)? {
                    continue;
                }
                return Ok(("no cut of any group stays within the budget".into(), false));
            }
            if self.settings.fine_tune_every > 0 && self.since_tune >= self.settings.fine_tune_every
            {
                self.fine_tune(hooks)?;
            }
        }
        Ok((
            format!("the step limit ({}) was reached", self.settings.max_steps),
            false,
        ))
    }

    /// One cut per group that can lose channels, each scored on the subset; those that stay
    /// within the budget there. `None` when cancelled.
    fn candidates(
        &mut self,
        step: usize,
        hooks: &mut dyn AutoHooks,
    ) -> Result<Option<Vec<Candidate>>> {
        let graph = ChannelGraph::of(&self.current.config);
        let open: Vec<usize> = (0..graph.groups.len())
            .filter(|g| graph.groups[*g].1 > 1 && !self.blocked.contains(g))
            .collect();
        let target = self.settings.step_share * self.dense_macs as f64;
        let current_cost = self.cost(&self.current_subset);
        let mut feasible = Vec::new();
        for (done, &g) in open.iter().enumerate() {
            if hooks.cancelled() {
                return Ok(None);
            }
            let (checkpoint, macs) = self.cut_for_target(&graph, g, target)?;
            let subset = hooks.score_subset(&checkpoint)?;
            hooks.on_event(&AutoEvent::Candidate {
                step,
                done: done + 1,
                total: open.len(),
            });
            if !self.within(&self.dense_subset, &subset) {
                continue;
            }
            let removed = self.current_macs.saturating_sub(macs) as f64;
            // A cut that loses nothing (or gains) counts as losing a hundredth of the budget,
            // so that among free cuts the largest wins.
            let spent = (self.cost(&subset) - current_cost).max(0.01);
            feasible.push(Candidate {
                group: g,
                checkpoint,
                macs,
                subset,
                efficiency: removed / spent,
            });
        }
        Ok(Some(feasible))
    }

    /// The smallest cut of group `g` that removes `target` MACs; half the group (at least one
    /// channel kept) when no cut reaches it.
    fn cut_for_target(
        &self,
        graph: &ChannelGraph,
        g: usize,
        target: f64,
    ) -> Result<(Checkpoint, u64)> {
        let width = graph.groups[g].1;
        let goal = self.current_macs as f64 - target;
        let (mut lo, mut hi) = (1, width - 1);
        let widest = self.cut(graph, g, hi)?;
        if widest.1 as f64 > goal {
            return self.cut(graph, g, width.div_ceil(2).min(width - 1));
        }
        let mut best = widest;
        while lo < hi {
            let mid = (lo + hi) / 2;
            let tried = self.cut(graph, g, mid)?;
            if tried.1 as f64 <= goal {
                hi = mid;
                best = tried;
            } else {
                lo = mid + 1;
            }
        }
        // `best` is the cut of `hi` channels, the fewest that reach the goal.
        Ok(best)
    }

    /// The current model with `cut` channels of group `g` removed (the least important by the
    /// method), and its MACs.
    fn cut(&self, graph: &ChannelGraph, g: usize, cut: usize) -> Result<(Checkpoint, u64)> {
        let width = graph.groups[g].1;
        let mut ratios = vec![0.0; graph.groups.len()];
        ratios[g] = cut as f64 / width as f64;
        let pruned = super::prune_checkpoint(
            &self.current,
            PruneMethod::Structured(self.settings.method),
            &Ratios::PerGroup(ratios),
            None,
        )
        .with_context(|| format!("cutting {cut} channel(s) of {}", graph.groups[g].0))?;
        let macs = macs_of(&pruned, self.settings.mac_side, &self.device)?;
        Ok((pruned, macs))
    }

    /// Confirms the candidates on the validation cases, best first, up to `confirm_tries`;
    /// keeps the first within the budget. Candidates that fail are blocked until a fine-tune.
    fn confirm_best(
        &mut self,
        candidates: Vec<Candidate>,
        step: usize,
        hooks: &mut dyn AutoHooks,
    ) -> Result<bool> {
        let total = candidates.len();
        for candidate in candidates.into_iter().take(self.settings.confirm_tries) {
            if hooks.cancelled() {
                return Ok(false);
            }
            let confirmed = hooks.confirm(&candidate.checkpoint)?;
            if !self.within(&self.dense_dice, &confirmed) {
                self.blocked.push(candidate.group);
                continue;
            }
            let graph = ChannelGraph::of(&self.current.config);
            let (name, width_before) = graph.groups[candidate.group].clone();
            let width_after = candidate.checkpoint.config.plan.groups()[candidate.group].1;
            self.current = candidate.checkpoint;
            self.current_dice = confirmed;
            self.current_subset = candidate.subset;
            self.current_macs = candidate.macs;
            self.since_tune += 1;
            let record = AutoStep {
                step,
                group: name,
                width_before,
                width_after,
                macs: candidate.macs,
                params: super::parameter_counts(&self.current).0,
                subset_dice: candidate.subset,
                confirmed_dice: confirmed,
                candidates: total,
                ratios: ratios_against(&ChannelGraph::of(&self.dense.config), &self.current),
            };
            hooks.on_event(&AutoEvent::Kept(record.clone()));
            self.steps.push(record);
            return Ok(true);
        }
        Ok(false)
    }

    /// Fine-tunes the current model; keeps the tuned weights when they confirm better (the
    /// lowest share of the budget used). Returns whether they were kept.
    fn fine_tune(&mut self, hooks: &mut dyn AutoHooks) -> Result<bool> {
        let Some(tuned) = hooks.fine_tune(&self.current)? else {
            return Ok(false);
        };
        let after_step = self.steps.len();
        self.since_tune = 0;
        let confirmed = hooks.confirm(&tuned)?;
        let kept = self.drop_cost(&self.dense_dice, &confirmed)
            < self.drop_cost(&self.dense_dice, &self.current_dice);
        self.fine_tunes.push(AutoFineTune {
            after_step,
            before: self.current_dice,
            after: confirmed,
            kept,
        });
        if kept {
            self.current_subset = hooks.score_subset(&tuned)?;
            self.current = tuned;
            self.current_dice = confirmed;
            self.blocked.clear();
            hooks.on_event(&AutoEvent::FineTuned { confirmed });
        }
        Ok(kept)
    }

    /// Whether `scores` lose at most the budget against `reference` in every region.
    fn within(&self, reference: &RegionScores, scores: &RegionScores) -> bool {
        within_budget(&self.settings.budget, reference, scores)
    }

    /// The largest share of its budget any region has lost on the subset.
    fn cost(&self, subset: &RegionScores) -> f64 {
        self.drop_cost(&self.dense_subset, subset)
    }

    fn drop_cost(&self, reference: &RegionScores, scores: &RegionScores) -> f64 {
        let budget = self.settings.budget.as_array();
        let (r, s) = (reference.as_array(), scores.as_array());
        (0..3)
            .map(|i| (r[i] - s[i]) / budget[i].max(1e-6))
            .fold(f64::MIN, f64::max)
    }
}

/// Whether `scores` lose at most `budget` against `reference` in every region.
pub fn within_budget(
    budget: &RegionScores,
    reference: &RegionScores,
    scores: &RegionScores,
) -> bool {
    let (b, r, s) = (budget.as_array(), reference.as_array(), scores.as_array());
    (0..3).all(|i| r[i] - s[i] <= b[i] + 1e-9)
}

/// Share removed per group of `dense_graph`, by name, for `model`'s widths.
fn ratios_against(dense_graph: &ChannelGraph, model: &Checkpoint) -> BTreeMap<String, f64> {
    dense_graph
        .groups
        .iter()
        .zip(model.config.plan.groups())
        .map(|((name, before), (_, after))| (name.clone(), 1.0 - after as f64 / *before as f64))
        .collect()
}

/// MACs of one `side` x `side` input through the checkpoint's model.
pub fn macs_of(checkpoint: &Checkpoint, side: usize, device: &Device) -> Result<u64> {
    let model = checkpoint.config.init(device);
    Ok(count_macs(&model, side, side))
}

/// A fixed subset of tumour slices of some cases, each cut to a square around the tumour: the
/// search's fast score.
pub struct TumourSlices {
    /// Per case: the slices and the window they are cut to.
    picks: Vec<(usize, Vec<usize>, PlaneWindow)>,
    truth: Vec<u8>,
}

impl TumourSlices {
    /// Up to `count` slices spread evenly over the cases' tumours (axial slices with whole
    /// tumour, evenly spaced through each case's tumour), cut to `side` x `side` around the
    /// tumour's centre. Cases without a segmentation are skipped.
    pub fn pick(cases: &[PreparedCase], count: usize, side: usize) -> TumourSlices {
        let labelled: Vec<usize> = (0..cases.len())
            .filter(|&i| cases[i].regions.is_some())
            .collect();
        let per_case = count.div_ceil(labelled.len().max(1)).max(1);
        let mut picks = Vec::new();
        let mut truth = Vec::new();
        for &i in &labelled {
            let case = &cases[i];
            let regions = case.regions.as_ref().expect("labelled");
            let [nx, ny, nz] = case.dims;
            let plane = nx * ny;
            let tumour: Vec<usize> = (0..nz)
                .filter(|&z| regions[z * plane..(z + 1) * plane].iter().any(|&r| r != 0))
                .collect();
            if tumour.is_empty() {
                continue;
            }
            let zs: Vec<usize> = (0..per_case.min(tumour.len()))
                .map(|k| tumour[(2 * k + 1) * tumour.len() / (2 * per_case.min(tumour.len()))])
                .collect();
            let window = tumour_window(regions, case.dims, &tumour, side);
            let codes: Vec<f32> = regions.iter().map(|&r| r as f32).collect();
            for &z in &zs {
                truth.extend(
                    window_slice(&codes, case.dims, z, window)
                        .iter()
                        .map(|&v| v as u8),
                );
            }
            picks.push((i, zs, window));
        }
        TumourSlices { picks, truth }
    }

    /// Slices in the subset.
    pub fn len(&self) -> usize {
        self.picks.iter().map(|(_, zs, _)| zs.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dice per region over all the subset's voxels together (pooled: steadier than a mean
    /// over slices, where a slice with a few voxels of a region weighs as much as any).
    /// `checkpoint` runs on the CPU; `cases` are the ones the subset was picked from.
    pub fn dice(
        &self,
        checkpoint: &Checkpoint,
        cases: &[PreparedCase],
        threshold: f32,
    ) -> Result<RegionScores, crate::model::ModelError> {
        let device = &crate::backend::cpu_device();
        let model = checkpoint.build(device)?.folded();
        let head = checkpoint.config.head;
        let mut predicted = Vec::with_capacity(self.truth.len());
        for (case, zs, window) in &self.picks {
            for chunk in zs.chunks(8) {
                let inputs = slice_batch(&cases[*case], chunk, *window, device);
                predicted.extend(codes_from_probabilities(
                    model.forward(inputs),
                    head,
                    threshold,
                ));
            }
        }
        Ok(RegionScores::from_array(region_dice(
            &predicted,
            &self.truth,
        )))
    }
}

/// A `side` x `side` window centred on the tumour's in-plane bounding box over slices `zs`.
fn tumour_window(regions: &[u8], dims: [usize; 3], zs: &[usize], side: usize) -> PlaneWindow {
    let [nx, ny, _] = dims;
    let (mut lo, mut hi) = ([usize::MAX; 2], [0usize; 2]);
    for &z in zs {
        for y in 0..ny {
            for x in 0..nx {
                if regions[(z * ny + y) * nx + x] != 0 {
                    lo = [lo[0].min(x), lo[1].min(y)];
                    hi = [hi[0].max(x), hi[1].max(y)];
                }
            }
        }
    }
    let start = |a: usize| (lo[a] + hi[a] + 1) as i64 / 2 - side as i64 / 2;
    PlaneWindow {
        x0: start(0),
        y0: start(1),
        w: side,
        h: side,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::plan::tests::small;

    /// Scores that fall by `per_channel` for every channel `fragile` loses and by nothing
    /// otherwise: the search must leave `fragile` alone and cut the rest.
    struct Fragile {
        fragile: &'static str,
        dense_width: usize,
        per_channel: f64,
        scored: usize,
        cancel_after: Option<usize>,
    }

    impl Fragile {
        fn dice(&mut self, checkpoint: &Checkpoint) -> RegionScores {
            self.scored += 1;
            let graph = ChannelGraph::of(&checkpoint.config);
            let width = graph.groups[graph.group_index(self.fragile).unwrap()].1;
            let lost = (self.dense_width - width) as f64 * self.per_channel;
            RegionScores::from_array([0.9, 0.8 - lost, 0.7])
        }
    }

    impl AutoHooks for Fragile {
        fn score_subset(&mut self, checkpoint: &Checkpoint) -> Result<RegionScores> {
            Ok(self.dice(checkpoint))
        }
        fn confirm(&mut self, checkpoint: &Checkpoint) -> Result<RegionScores> {
            Ok(self.dice(checkpoint))
        }
        fn fine_tune(&mut self, _checkpoint: &Checkpoint) -> Result<Option<Checkpoint>> {
            Ok(None)
        }
        fn cancelled(&self) -> bool {
            self.cancel_after.is_some_and(|n| self.scored >= n)
        }
    }

    fn fragile(cancel_after: Option<usize>) -> Fragile {
        Fragile {
            fragile: "enc5.out",
            dense_width: 128,
            per_channel: 0.03,
            scored: 0,
            cancel_after,
        }
    }

    #[test]
    fn the_search_cuts_what_costs_nothing_and_leaves_a_fragile_group_whole() {
        let dense = small();
        let settings = AutoSettings {
            max_steps: 4,
            step_share: 0.05,
            ..AutoSettings::default()
        };
        let result = auto_prune(&dense, &settings, &mut fragile(None)).unwrap();
        let trace = &result.trace;
        assert_eq!(trace.steps.len(), 4, "{}", trace.stopped);
        assert!(!trace.cancelled);
        assert!(trace.steps.iter().all(|s| s.group != "enc5.out"));
        // Each step removes MACs, at least the step's share when the group allows it.
        let mut before = trace.dense_macs;
        for step in &trace.steps {
            assert!(step.macs < before, "step {} removed nothing", step.step);
            before = step.macs;
        }
        assert_eq!(result.plan.group_ratios.get("enc5.out"), None);
        assert_eq!(
            result.checkpoint.config.plan.groups(),
            result
                .plan
                .apply(&dense, None)
                .unwrap()
                .config
                .plan
                .groups(),
            "the plan's ratios give the searched widths"
        );
        assert_eq!(trace.dice, trace.dense_dice);
    }

    #[test]
    fn the_step_limit_and_a_cancel_end_the_search_and_bad_settings_are_named() {
        let dense = small();
        let settings = AutoSettings {
            max_steps: 1,
            ..AutoSettings::default()
        };
        let result = auto_prune(&dense, &settings, &mut fragile(None)).unwrap();
        assert_eq!(result.trace.steps.len(), 1);
        assert!(result.trace.stopped.contains("step limit"));
        // Cancelled while scoring the first step's candidates: the dense model comes back.
        let result = auto_prune(&dense, &settings, &mut fragile(Some(5))).unwrap();
        assert!(result.trace.cancelled);
        assert!(result.trace.steps.is_empty());
        assert_eq!(result.checkpoint.config, dense.config);
        // Impossible settings are refused, naming the setting.
        let bad = AutoSettings {
            budget: RegionScores::from_array([0.02, f64::NAN, 0.02]),
            ..AutoSettings::default()
        };
        let error = auto_prune(&dense, &bad, &mut fragile(None)).unwrap_err();
        assert!(error.to_string().contains("TC"), "{error}");
    }
}

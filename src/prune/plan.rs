//! A pruning plan: what turns a base model into a pruned one (method, ratios, hand-picked
//! channels, schedule, fine-tuning), as a JSON file the app's plan tree and `prune --plan` share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    ChannelGraph, PruneError, PruneMethod, Ratios, Schedule, SnipBatch, check_ratio,
    prune_checkpoint, remove_channels,
};
use crate::metrics::RegionScores;
use crate::model::Checkpoint;

/// Version of the plan file format (checked on read).
pub const PLAN_FORMAT: u32 = 1;

/// Everything that describes one pruned model relative to its base model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrunePlan {
    pub method: PruneMethod,
    /// One share of all channels under one threshold (channel methods) or of all weights (mask
    /// methods); when set, `group_ratios` is ignored.
    #[serde(default)]
    pub global_ratio: Option<f64>,
    /// Share removed per channel group, by the group names `info` and the app show; groups not
    /// named keep every channel. Mask methods take one ratio: the mean over all groups, the
    /// groups not named counting as 0 (what the app's per-group sliders mean for them).
    #[serde(default)]
    pub group_ratios: BTreeMap<String, f64>,
    /// Channels removed by hand (the filter view), per group, before any ratio applies; the
    /// ratios then prune what is left.
    #[serde(default)]
    pub removed_channels: BTreeMap<String, Vec<usize>>,
    /// How the ratio is reached (`prune --plan`; the app prunes one-shot).
    #[serde(default = "one_shot")]
    pub schedule: Schedule,
    /// The fine-tuning this plan's model received, if any.
    #[serde(default)]
    pub fine_tune: Option<FineTuneRecord>,
    /// The fine-tuned weights, when they were saved (the app's plan tree).
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
    /// The Dice budget these ratios were searched under (`prune --auto`, the app's budget
    /// search); its weights are then in `checkpoint`.
    #[serde(default)]
    pub budget_search: Option<BudgetSearchRecord>,
}

/// How a plan's ratios were found by the budget search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetSearchRecord {
    /// Largest Dice drop allowed per region.
    pub budget: RegionScores,
    /// Steps it kept.
    pub steps: usize,
    /// Adam steps of its fine-tunes.
    pub fine_tune_steps: usize,
}

fn one_shot() -> Schedule {
    Schedule::OneShot
}

/// How a plan's model was fine-tuned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneRecord {
    pub epochs: usize,
    pub learning_rate: f64,
    /// Batches per epoch (`None`: every batch).
    #[serde(default)]
    pub batches_per_epoch: Option<usize>,
    /// Where it ran (the adapter's name or "CPU").
    #[serde(default)]
    pub device: String,
}

/// The plan file: the format version beside the plan.
#[derive(Serialize, Deserialize)]
struct PlanFile {
    format: u32,
    #[serde(flatten)]
    plan: PrunePlan,
}

impl PrunePlan {
    /// The dense model: nothing removed.
    pub fn dense(method: PruneMethod) -> PrunePlan {
        PrunePlan {
            method,
            global_ratio: None,
            group_ratios: BTreeMap::new(),
            removed_channels: BTreeMap::new(),
            schedule: Schedule::OneShot,
            fine_tune: None,
            checkpoint: None,
            budget_search: None,
        }
    }

    /// The ratios for a model whose groups are `graph`'s, checked: every named group exists,
    /// every share is in [0, 1).
    pub fn ratios(&self, graph: &ChannelGraph) -> Result<Ratios, PruneError> {
        if let Some(r) = self.global_ratio {
            check_ratio("global ratio", r)?;
            return Ok(match self.method {
                PruneMethod::Structured(_) => Ratios::Global(r),
                PruneMethod::Unstructured(_) => Ratios::Uniform(r),
            });
        }
        let mut per_group = vec![0.0; graph.groups.len()];
        for (name, ratio) in &self.group_ratios {
            let g = group_of(graph, name)?;
            check_ratio(name, *ratio)?;
            per_group[g] = *ratio;
        }
        Ok(match self.method {
            PruneMethod::Structured(_) => Ratios::PerGroup(per_group),
            PruneMethod::Unstructured(_) => {
                Ratios::Uniform(per_group.iter().sum::<f64>() / per_group.len().max(1) as f64)
            }
        })
    }

    /// `base` without the hand-picked channels (a smaller ordinary model); `base` itself when
    /// none are picked.
    pub fn without_picked(&self, base: &Checkpoint) -> Result<Checkpoint, PruneError> {
        if self.removed_channels.values().all(Vec::is_empty) {
            return Ok(base.clone());
        }
        if !base.masks.is_empty() {
            return Err(PruneError::Invalid(
                "this model carries unstructured masks; channels can be removed by hand only \
                 from a model without them"
                    .into(),
            ));
        }
        let graph = ChannelGraph::of(&base.config);
        let kept = self.kept_after_picks(&graph)?;
        let (config, weights) = remove_channels(&base.config, &base.weights, &kept)?;
        Ok(Checkpoint::new(config, weights))
    }

    /// Channels each group keeps once the hand-picked ones are gone (graph order).
    pub fn kept_after_picks(&self, graph: &ChannelGraph) -> Result<Vec<Vec<usize>>, PruneError> {
        let mut kept: Vec<Vec<usize>> = graph
            .groups
            .iter()
            .map(|(_, w)| (0..*w).collect())
            .collect();
        for (name, removed) in &self.removed_channels {
            let g = group_of(graph, name)?;
            let width = graph.groups[g].1;
            if let Some(bad) = removed.iter().find(|&&c| c >= width) {
                return Err(PruneError::Invalid(format!(
                    "{name}: channel {bad} picked for removal, the group has {width} (0..{})",
                    width - 1
                )));
            }
            kept[g].retain(|c| !removed.contains(c));
            if kept[g].is_empty() {
                return Err(PruneError::EmptyGroup(name.clone()));
            }
        }
        Ok(kept)
    }

    /// The pruned model, one-shot: the picked channels removed, then the ratios applied to what
    /// is left. SNIP needs `snip`.
    pub fn apply(
        &self,
        base: &Checkpoint,
        snip: Option<&SnipBatch>,
    ) -> Result<Checkpoint, PruneError> {
        let picked = self.without_picked(base)?;
        let ratios = self.ratios(&ChannelGraph::of(&picked.config))?;
        prune_checkpoint(&picked, self.method, &ratios, snip)
    }

    /// Reads a plan file, naming the file and what is wrong with it.
    pub fn read(path: &Path) -> Result<PrunePlan, PruneError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PruneError::Invalid(format!("{}: {e}", path.display())))?;
        let file: PlanFile = serde_json::from_str(&text).map_err(|e| {
            PruneError::Invalid(format!("{}: not a pruning plan: {e}", path.display()))
        })?;
        if file.format != PLAN_FORMAT {
            return Err(PruneError::Invalid(format!(
                "{}: plan format {} (this version reads {PLAN_FORMAT})",
                path.display(),
                file.format
            )));
        }
        Ok(file.plan)
    }

    /// Writes the plan as JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<(), PruneError> {
        let file = PlanFile {
            format: PLAN_FORMAT,
            plan: self.clone(),
        };
        let text = serde_json::to_string_pretty(&file).expect("a plan serialises");
        crate::atomic::write_bytes(path, text.as_bytes())
            .map_err(|e| PruneError::Invalid(format!("{}: {e}", path.display())))
    }
}

fn group_of(graph: &ChannelGraph, name: &str) -> Result<usize, PruneError> {
    graph.group_index(name).ok_or_else(|| {
        let names: Vec<&str> = graph.groups.iter().map(|(n, _)| n.as_str()).collect();
        PruneError::Invalid(format!(
            "no channel group {name:?}; the groups are {}",
            names.join(", ")
        ))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::prune::StructuredMethod;
    use burn::prelude::*;
    use burn::tensor::Distribution;

    /// A fresh quarter-width model (random weights).
    pub(crate) fn small() -> Checkpoint {
        use crate::model::config::{Head, ModelConfig, Variant};
        let config = ModelConfig::with_width_multiplier(Variant::Base, Head::Regions3, 0.25);
        let model = config.init(&crate::backend::cpu_device());
        Checkpoint::from_model(&config, &model)
    }

    #[test]
    fn a_plan_round_trips_through_its_file_and_applies_picks_then_ratios() {
        let dense = small();
        let mut plan = PrunePlan::dense(PruneMethod::Structured(StructuredMethod::L2));
        plan.removed_channels.insert("enc2.out".into(), vec![0, 3]);
        plan.group_ratios.insert("enc2.out".into(), 0.5);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        plan.write(&path).unwrap();
        assert_eq!(PrunePlan::read(&path).unwrap(), plan);
        let pruned = plan.apply(&dense, None).unwrap();
        let width = |c: &Checkpoint| {
            c.config
                .plan
                .groups()
                .into_iter()
                .find(|(n, _)| n == "enc2.out")
                .unwrap()
                .1
        };
        let before = width(&dense);
        // Two picked, then half of what is left.
        assert_eq!(width(&pruned), ((before - 2) as f64 * 0.5).round() as usize);
    }

    #[test]
    fn bad_plans_are_refused_by_name() {
        let dense = small();
        let mut plan = PrunePlan::dense(PruneMethod::Structured(StructuredMethod::L2));
        plan.group_ratios.insert("enc9.out".into(), 0.5);
        let err = plan.apply(&dense, None).unwrap_err().to_string();
        assert!(err.contains("enc9.out"), "{err}");
        let mut plan = PrunePlan::dense(PruneMethod::Structured(StructuredMethod::L2));
        plan.removed_channels.insert("enc1.out".into(), vec![99]);
        let err = plan.apply(&dense, None).unwrap_err().to_string();
        assert!(err.contains("channel 99"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.json");
        std::fs::write(&path, "{\"format\": 1, \"method\": \"l9\"}").unwrap();
        let err = PrunePlan::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("broken.json") && err.contains("not a pruning plan"),
            "{err}"
        );
    }

    #[test]
    fn picked_channels_are_removed_exactly_and_match_silencing_them_in_the_dense_model() {
        use crate::prune::{parameter_counts, zero_channels};
        let dense = crate::defaults::default_checkpoint();
        let mut plan = PrunePlan::dense(PruneMethod::Structured(StructuredMethod::L2));
        let picks: [(&str, &[usize]); 6] = [
            ("enc1.out", &[1, 5]),
            ("enc3.branch2", &[0]),
            ("att3", &[2]),
            ("dec4", &[0, 3]),
            ("up2", &[1]),
            ("enc5.out", &[7]),
        ];
        for (group, channels) in picks {
            plan.removed_channels
                .insert(group.into(), channels.to_vec());
        }
        let pruned = plan.apply(&dense, None).unwrap();
        // Each group lost exactly its picks, and the weights fit a model of those widths.
        for ((name, before), (_, after)) in dense
            .config
            .plan
            .groups()
            .into_iter()
            .zip(pruned.config.plan.groups())
        {
            let picked = plan.removed_channels.get(&name).map_or(0, Vec::len);
            assert_eq!(after, before - picked, "{name}");
        }
        let device = crate::backend::cpu_device();
        let fresh = Checkpoint::from_model(&pruned.config, &pruned.config.init(&device));
        assert_eq!(parameter_counts(&pruned).0, parameter_counts(&fresh).0);
        assert!(parameter_counts(&pruned).0 < parameter_counts(&dense).0);
        // The smaller model computes what the dense one does with those channels silenced.
        let graph = ChannelGraph::of(&dense.config);
        let kept = plan.kept_after_picks(&graph).unwrap();
        let silenced = Checkpoint::new(
            dense.config.clone(),
            zero_channels(&dense.config, &dense.weights, &kept).unwrap(),
        );
        let input = Tensor::<4>::random([2, 4, 64, 64], Distribution::Normal(0.0, 1.0), &device);
        let run = |c: &Checkpoint| {
            c.build(&device)
                .unwrap()
                .forward_logits(input.clone())
                .into_data()
                .try_to_vec_as::<f32>()
                .unwrap()
        };
        let (small, zeroed, full) = (run(&pruned), run(&silenced), run(&dense));
        let diff = crate::analysis::max_abs_diff(&small, &zeroed);
        assert!(diff < 1e-5, "removed vs silenced differ by {diff}");
        assert!(
            crate::analysis::max_abs_diff(&full, &zeroed) > 1e-3,
            "the picks matter"
        );
    }
}

//! Pruning as a transformation of (config, weights) into (config, weights): the channel
//! dependency graph, channel importance, and structured removal of channels.

pub mod auto;
pub mod auto_run;
pub mod channels;
pub mod graph;
pub mod importance;
pub mod plan;
pub mod schedule;
pub mod structured;
pub mod study;
pub mod study_run;
pub mod sweep;
pub mod tuning;
pub mod unstructured;

use burn::prelude::*;

use crate::model::{Checkpoint, ModelConfig, ModelError, WeightMap};

pub use graph::ChannelGraph;
pub use importance::{StructuredMethod, channel_importance, keep_top};
pub use plan::{BudgetSearchRecord, FineTuneRecord, PrunePlan};
pub use schedule::{
    Schedule, ScheduleHooks, ScheduledModel, ScoredStep, StepRecord, effective_schedule,
    parameter_counts, run_schedule, run_steps, step_count,
};
pub use structured::{remove_channels, zero_channels};
pub use unstructured::UnstructuredMethod;

/// Everything that can go wrong pruning.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(
        "channel group {0} would keep no channels; every group needs at least one \
         (lower its ratio)"
    )]
    EmptyGroup(String),
    #[error("pruning: {0}")]
    Invalid(String),
    #[error("pruning: the weights lack {0}")]
    MissingWeight(String),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Any pruning method: channels removed (structured) or weights masked (unstructured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum PruneMethod {
    Structured(StructuredMethod),
    Unstructured(UnstructuredMethod),
}

impl PruneMethod {
    /// Every method, in the order tables and plots show them.
    pub const ALL: [PruneMethod; 6] = [
        PruneMethod::Structured(StructuredMethod::L2),
        PruneMethod::Structured(StructuredMethod::BnGamma),
        PruneMethod::Structured(StructuredMethod::GroupL2),
        PruneMethod::Unstructured(UnstructuredMethod::L1),
        PruneMethod::Unstructured(UnstructuredMethod::L1Global),
        PruneMethod::Unstructured(UnstructuredMethod::Snip),
    ];

    /// The command-line spelling (`l2`, `bn-gamma`, `group-l2`, `l1`, `l1-global`, `snip`).
    pub fn key(self) -> &'static str {
        match self {
            PruneMethod::Structured(m) => m.key(),
            PruneMethod::Unstructured(m) => m.key(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PruneMethod::Structured(m) => m.name(),
            PruneMethod::Unstructured(m) => m.name(),
        }
    }

    /// Parses a [`PruneMethod::key`], naming every valid key when it is none of them.
    pub fn parse(key: &str) -> Result<PruneMethod, String> {
        let key = key.trim();
        PruneMethod::ALL
            .into_iter()
            .find(|m| m.key().eq_ignore_ascii_case(key))
            .ok_or_else(|| {
                let keys: Vec<&str> = PruneMethod::ALL.iter().map(|m| m.key()).collect();
                format!(
                    "unknown pruning method {key:?}; use one of {}",
                    keys.join(", ")
                )
            })
    }
}

impl From<PruneMethod> for String {
    fn from(m: PruneMethod) -> String {
        m.key().to_string()
    }
}

impl TryFrom<String> for PruneMethod {
    type Error = String;
    fn try_from(key: String) -> Result<PruneMethod, String> {
        PruneMethod::parse(&key)
    }
}

/// One batch (on an autodiff device) that SNIP scores its weights on.
pub struct SnipBatch {
    pub inputs: Tensor<4>,
    pub targets: Tensor<4>,
    pub device: Device,
}

/// Prunes a checkpoint by any method: a smaller model for structured methods, the same model
/// with masks (added to any it already has) for unstructured ones. SNIP needs `snip`.
pub fn prune_checkpoint(
    checkpoint: &Checkpoint,
    method: PruneMethod,
    ratios: &Ratios,
    snip: Option<&SnipBatch>,
) -> Result<Checkpoint, PruneError> {
    prune_checkpoint_in(checkpoint, method, ratios, snip, None)
}

/// [`prune_checkpoint`]; an unstructured method masks only the weights under `module` (a
/// top-level module such as `enc3`) when given.
pub fn prune_checkpoint_in(
    checkpoint: &Checkpoint,
    method: PruneMethod,
    ratios: &Ratios,
    snip: Option<&SnipBatch>,
    module: Option<&str>,
) -> Result<Checkpoint, PruneError> {
    match method {
        PruneMethod::Structured(m) => {
            if !checkpoint.masks.is_empty() {
                return Err(PruneError::Invalid(
                    "this model carries unstructured masks; remove channels before masking \
                     weights, not after"
                        .into(),
                ));
            }
            let (config, weights) =
                prune_structured(&checkpoint.config, &checkpoint.weights, m, ratios)?;
            Ok(Checkpoint::new(config, weights))
        }
        PruneMethod::Unstructured(m) => {
            let ratio = match ratios {
                Ratios::Uniform(r) | Ratios::Global(r) => *r,
                Ratios::PerGroup(_) => {
                    return Err(PruneError::Invalid(format!(
                        "{} takes one ratio (per-group ratios are for channel pruning)",
                        m.name()
                    )));
                }
            };
            let scores = match (m, snip) {
                (UnstructuredMethod::Snip, Some(batch)) => unstructured::snip_scores(
                    checkpoint,
                    batch.inputs.clone(),
                    batch.targets.clone(),
                    &batch.device,
                )?,
                (UnstructuredMethod::Snip, None) => {
                    return Err(PruneError::Invalid(
                        "SNIP needs a batch of training data to score weights on".into(),
                    ));
                }
                _ => unstructured::magnitude_scores(&checkpoint.weights),
            };
            let scores = match module {
                Some(module) => unstructured::within_module(scores, module),
                None => scores,
            };
            let masks = unstructured::masks_from_scores(&scores, m, ratio, &checkpoint.masks)?;
            unstructured::masked_checkpoint(checkpoint, masks)
        }
    }
}

/// How much to prune: one ratio for every group, per-group ratios in [`ChannelGraph::groups`]
/// order, or a global ratio of all channels with one importance threshold across groups.
#[derive(Debug, Clone, PartialEq)]
pub enum Ratios {
    Uniform(f64),
    PerGroup(Vec<f64>),
    /// Removes this share of all prunable channels, the least important first, comparing
    /// importances across groups after dividing each group's by its mean (raw norms differ in
    /// scale between layers); every group keeps at least one channel.
    Global(f64),
}

impl Ratios {
    /// Whether these ratios remove no channel or weight anywhere.
    pub fn removes_nothing(&self) -> bool {
        match self {
            Ratios::Uniform(r) | Ratios::Global(r) => *r == 0.0,
            Ratios::PerGroup(ratios) => ratios.iter().all(|r| *r == 0.0),
        }
    }
}

/// Structured pruning: ranks channels with `method` and removes `ratios` of each group.
pub fn prune_structured(
    config: &ModelConfig,
    weights: &WeightMap,
    method: StructuredMethod,
    ratios: &Ratios,
) -> Result<(ModelConfig, WeightMap), PruneError> {
    let graph = ChannelGraph::of(config);
    if let Ratios::PerGroup(rs) = ratios
        && rs.len() != graph.groups.len()
    {
        return Err(PruneError::Invalid(format!(
            "{} ratios given, the model has {} channel groups",
            rs.len(),
            graph.groups.len()
        )));
    }
    let importance = channel_importance(method, &graph, weights)?;
    let kept = match ratios {
        Ratios::Global(ratio) => keep_global(&importance, *ratio)?,
        Ratios::Uniform(_) | Ratios::PerGroup(_) => graph
            .groups
            .iter()
            .zip(&importance)
            .enumerate()
            .map(|(g, ((name, _), scores))| {
                let ratio = match ratios {
                    Ratios::PerGroup(rs) => rs[g],
                    Ratios::Uniform(r) | Ratios::Global(r) => *r,
                };
                keep_top(name, scores, ratio)
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    remove_channels(config, weights, &kept)
}

/// Checks a share to remove: 0 (nothing: the dense model) up to, not including, 1 (which
/// would remove everything). `what` names it in the error.
pub fn check_ratio(what: &str, ratio: f64) -> Result<(), PruneError> {
    if (0.0..1.0).contains(&ratio) {
        return Ok(());
    }
    Err(PruneError::Invalid(format!(
        "{what}: a pruning ratio is the share removed, at least 0 (the dense model) and below 1 \
         (1 would remove everything); got {ratio}"
    )))
}

/// Channels kept per group under one threshold over mean-normalised importances.
fn keep_global(importance: &[Vec<f32>], ratio: f64) -> Result<Vec<Vec<usize>>, PruneError> {
    check_ratio("global ratio", ratio)?;
    let normalised: Vec<Vec<f64>> = importance
        .iter()
        .map(|scores| {
            let mean = scores.iter().map(|s| *s as f64).sum::<f64>() / scores.len().max(1) as f64;
            scores.iter().map(|s| *s as f64 / mean.max(1e-12)).collect()
        })
        .collect();
    // (score, group, channel), least important first; ties by position for determinism.
    let mut all: Vec<(f64, usize, usize)> = normalised
        .iter()
        .enumerate()
        .flat_map(|(g, s)| s.iter().enumerate().map(move |(c, v)| (*v, g, c)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let to_remove = (all.len() as f64 * ratio).round() as usize;
    let mut keep: Vec<Vec<bool>> = importance.iter().map(|s| vec![true; s.len()]).collect();
    let mut left: Vec<usize> = importance.iter().map(Vec::len).collect();
    let mut removed = 0;
    for &(_, g, c) in &all {
        if removed == to_remove {
            break;
        }
        // A group's last channel stays; the next least important channel elsewhere goes instead.
        if left[g] > 1 {
            keep[g][c] = false;
            left[g] -= 1;
            removed += 1;
        }
    }
    Ok(keep
        .into_iter()
        .map(|k| {
            k.iter()
                .enumerate()
                .filter(|(_, k)| **k)
                .map(|(c, _)| c)
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ratio_removes_the_least_important_share_across_groups() {
        // Group 0 has one weak channel; group 1 is uniform.
        let importance = vec![vec![1.0, 1.0, 0.1, 1.0], vec![1.0, 1.0]];
        let kept = keep_global(&importance, 1.0 / 6.0).unwrap();
        assert_eq!(kept, vec![vec![0, 1, 3], vec![0, 1]]);
        // Asking for almost everything still leaves one channel per group.
        let kept = keep_global(&importance, 0.99).unwrap();
        assert_eq!(kept.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1]);
        assert!(keep_global(&importance, 1.0).is_err());
    }
}

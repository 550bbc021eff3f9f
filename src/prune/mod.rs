//! Pruning as a transformation of (config, weights) into (config, weights): the channel
//! dependency graph, channel importance, and structured removal of channels.

pub mod graph;
pub mod importance;
pub mod structured;

use crate::model::{ModelConfig, ModelError, WeightMap};

pub use graph::ChannelGraph;
pub use importance::{StructuredMethod, channel_importance, keep_top};
pub use structured::remove_channels;

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

/// Per-group pruning ratios in [`ChannelGraph::groups`] order, or one ratio for every group.
#[derive(Debug, Clone, PartialEq)]
pub enum Ratios {
    Uniform(f64),
    PerGroup(Vec<f64>),
}

impl Ratios {
    fn of(&self, group: usize) -> f64 {
        match self {
            Ratios::Uniform(r) => *r,
            Ratios::PerGroup(rs) => rs[group],
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
    let kept = graph
        .groups
        .iter()
        .zip(&importance)
        .enumerate()
        .map(|(g, ((name, _), scores))| keep_top(name, scores, ratios.of(g)))
        .collect::<Result<Vec<_>, _>>()?;
    remove_channels(config, weights, &kept)
}

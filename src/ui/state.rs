//! The app's shared plain data that panels read and the shell writes: the pruning settings
//! (and the plan they describe), the GPU the fine-tune may use, a fine-tuning epoch. A leaf of
//! `ui`: no panel, no shell.

use std::collections::BTreeMap;

use crate::prune::{FineTuneRecord, PruneMethod, PrunePlan};
use crate::worker::ModelView;

/// One fine-tuning epoch received from the worker.
#[derive(Debug, Clone)]
pub struct TrainPoint {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_dice: [f64; 3],
    /// Wall time of the epoch, validation included.
    pub secs: f64,
}

/// What the app knows of the GPU the fine-tune may run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuState {
    /// Not looked for yet (looking opens an adapter, so it waits until GPU or auto is chosen).
    Unknown,
    Probing,
    /// The adapter's name.
    Found(String),
    /// Why no adapter can be used.
    Missing(String),
}

/// The ratios the panel drives: per group, or one global share, and the channels picked by
/// hand in the filter view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PruningState {
    pub group_ratios: Vec<f64>,
    pub global_ratio: f64,
    pub use_global: bool,
    /// Channels removed by hand, per group name (sorted).
    pub removed: BTreeMap<String, Vec<usize>>,
    /// The fine-tuning and saved weights of the plan tree node these settings came from
    /// (cleared by any change: new settings describe a model not yet tuned).
    pub fine_tune: Option<FineTuneRecord>,
    pub checkpoint: Option<std::path::PathBuf>,
}

impl PruningState {
    /// The plan these settings describe for `model`'s groups, pruned by `method`.
    pub fn plan(&self, method: PruneMethod, model: &ModelView) -> PrunePlan {
        let mut plan = PrunePlan::dense(method);
        plan.global_ratio = self.use_global.then_some(self.global_ratio);
        plan.group_ratios = model
            .groups
            .iter()
            .zip(&self.group_ratios)
            .filter(|(_, r)| **r > 0.0)
            .map(|(g, r)| (g.name.clone(), *r))
            .collect();
        plan.removed_channels = self
            .removed
            .iter()
            .filter(|(_, picked)| !picked.is_empty())
            .map(|(g, picked)| (g.clone(), picked.clone()))
            .collect();
        plan.fine_tune = self.fine_tune.clone();
        plan.checkpoint = self.checkpoint.clone();
        plan
    }

    /// Settings that describe `plan` on `model`'s groups.
    pub fn restore(&mut self, plan: &PrunePlan, model: &ModelView) {
        self.use_global = plan.global_ratio.is_some();
        if let Some(r) = plan.global_ratio {
            self.global_ratio = r;
        }
        self.group_ratios = model
            .groups
            .iter()
            .map(|g| plan.group_ratios.get(&g.name).copied().unwrap_or(0.0))
            .collect();
        self.removed = plan.removed_channels.clone();
        self.fine_tune = plan.fine_tune.clone();
        self.checkpoint = plan.checkpoint.clone();
    }

    /// Marks or unmarks one channel of `group` for removal.
    pub fn toggle_channel(&mut self, group: &str, channel: usize) {
        let picked = self.removed.entry(group.to_string()).or_default();
        match picked.binary_search(&channel) {
            Ok(i) => {
                picked.remove(i);
            }
            Err(i) => picked.insert(i, channel),
        }
    }
}

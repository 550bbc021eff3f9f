//! The Pruning panel: method, global or per-group ratios, presets, and the dense vs pruned
//! model's size.

use std::collections::BTreeMap;

use eframe::egui;

use super::LabApp;
use crate::prune::{FineTuneRecord, PruneMethod, PrunePlan};
use crate::worker::ModelView;

/// The ratios the panel drives: per group, or one global share, and the channels picked by
/// hand in the filter view.
#[derive(Debug, Clone, Default)]
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

impl LabApp {
    pub(super) fn pruning_panel_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Pruning");
        let before = (
            self.settings.method,
            self.pruning.use_global,
            self.pruning.global_ratio,
            self.pruning.group_ratios.clone(),
            self.pruning.removed.clone(),
        );
        egui::ComboBox::from_label("Method")
            .selected_text(self.settings.method.key())
            .show_ui(ui, |ui| {
                for method in PruneMethod::ALL {
                    ui.selectable_value(&mut self.settings.method, method, method.key())
                        .on_hover_text(method_help(method));
                }
            })
            .response
            .on_hover_text(method_help(self.settings.method));
        ui.horizontal(|ui| {
            ui.label("Presets:");
            for (name, ratio, help) in [
                ("none", 0.0, "The dense model"),
                ("gentle 10%", 0.1, "10% of every group's channels"),
                ("quarter", 0.25, "A quarter of every group's channels"),
                (
                    "half",
                    0.5,
                    "Half of every group's channels: about 2.4x fewer MACs",
                ),
                (
                    "aggressive 75%",
                    0.75,
                    "Three quarters of every group's channels: watch the regions fail",
                ),
            ] {
                let help = format!(
                    "{help}, except the first encoder level and the last decoder level, which \
                     stay whole (the sensitivity heatmap shows why)"
                );
                if ui.small_button(name).on_hover_text(help).clicked()
                    && let Some(model) = &self.model
                {
                    self.pruning.use_global = false;
                    self.pruning.group_ratios = preset_ratios(model, ratio);
                }
            }
        });
        ui.checkbox(&mut self.pruning.use_global, "One global ratio")
            .on_hover_text(
                "One importance threshold across all groups instead of a ratio per group",
            );
        ui.add_enabled(
            self.pruning.use_global,
            egui::Slider::new(&mut self.pruning.global_ratio, 0.0..=0.95).text("Global ratio"),
        );
        self.keep_plan_ui(ui);
        if let Some(model) = self.model.clone() {
            ui.separator();
            self.model_stats_ui(ui, &model);
            ui.separator();
            self.jobs_ui(ui);
            ui.separator();
            self.budget_ui(ui);
            ui.separator();
            ui.label("Share of channels removed per group (kept / total):");
            egui::ScrollArea::vertical().show(ui, |ui| {
                for (g, group) in model.groups.iter().enumerate() {
                    let kept = self
                        .preview
                        .as_ref()
                        .and_then(|p| p.kept.get(g))
                        .copied()
                        .unwrap_or(group.channels);
                    let mean_importance =
                        group.importance.iter().sum::<f32>() / group.importance.len().max(1) as f32;
                    let picked = self.pruning.removed.get(&group.name).map_or(0, Vec::len);
                    let label = if picked > 0 {
                        format!("{} {kept}/{} ({picked} picked)", group.name, group.channels)
                    } else {
                        format!("{} {kept}/{}", group.name, group.channels)
                    };
                    let hover = format!("mean filter L2 importance {mean_importance:.3}");
                    if self.pruning.use_global {
                        // The global threshold decides each group's share: show what it removed.
                        let mut effective = 1.0 - kept as f64 / group.channels.max(1) as f64;
                        ui.add_enabled(
                            false,
                            egui::Slider::new(&mut effective, 0.0..=1.0).text(label),
                        )
                        .on_hover_text(format!("{hover}; set by the global ratio"));
                    } else {
                        ui.add(
                            egui::Slider::new(&mut self.pruning.group_ratios[g], 0.0..=0.95)
                                .text(label),
                        )
                        .on_hover_text(hover);
                    }
                }
            });
        }
        let after = (
            self.settings.method,
            self.pruning.use_global,
            self.pruning.global_ratio,
            self.pruning.group_ratios.clone(),
            self.pruning.removed.clone(),
        );
        if before != after {
            self.pruning_changed();
        }
    }

    pub(super) fn model_stats_ui(&self, ui: &mut egui::Ui, model: &ModelView) {
        ui.label(&model.description);
        egui::Grid::new("stats").show(ui, |ui| {
            ui.label("");
            ui.label("dense");
            ui.label("pruned");
            ui.end_row();
            let (params, nonzero, macs) = match &self.preview {
                Some(p) => (
                    p.params.to_string(),
                    p.nonzero_params.to_string(),
                    format!("{:.3} G", p.macs as f64 / 1e9),
                ),
                None => ("…".into(), "…".into(), "…".into()),
            };
            ui.label("params");
            ui.label(model.params.to_string());
            ui.label(params);
            ui.end_row();
            ui.label("non-zero params");
            ui.label(model.params.to_string());
            ui.label(nonzero);
            ui.end_row();
            ui.label("MACs (192x192)");
            ui.label(format!("{:.3} G", model.macs as f64 / 1e9));
            ui.label(macs);
            ui.end_row();
        });
    }
}

/// Per-group ratios of a preset: `ratio` everywhere but the first encoder level and the last
/// decoder level, the groups whose loss alone wrecks the segmentation (the usual practice of
/// leaving a network's first and last layers unpruned).
pub fn preset_ratios(model: &ModelView, ratio: f64) -> Vec<f64> {
    let protected =
        |name: &str| name.starts_with("enc1.") || ["up2", "att2", "dec2"].contains(&name);
    model
        .groups
        .iter()
        .map(|g| if protected(&g.name) { 0.0 } else { ratio })
        .collect()
}

/// A sentence per method for the hover text (teaching).
pub fn method_help(method: PruneMethod) -> &'static str {
    use crate::prune::{StructuredMethod as S, UnstructuredMethod as U};
    match method {
        PruneMethod::Structured(S::L2) => {
            "Removes the channels whose filters have the smallest L2 norm (Li et al. 2017). The model really gets smaller and faster."
        }
        PruneMethod::Structured(S::BnGamma) => {
            "Network slimming (Liu et al. 2017): removes channels whose batch-norm scale |gamma| is smallest; best after training with an L1 penalty on gammas."
        }
        PruneMethod::Structured(S::GroupL2) => {
            "DepGraph (Fang et al. 2023): scores a channel by the L2 norm of every parameter coupled to it across layers."
        }
        PruneMethod::Unstructured(U::L1) => {
            "Zeroes the smallest-magnitude weights in every layer (same share per layer). Sparse, not smaller: MACs stay the same on a CPU."
        }
        PruneMethod::Unstructured(U::L1Global) => {
            "Zeroes the smallest-magnitude weights under one threshold across all layers."
        }
        PruneMethod::Unstructured(U::Snip) => {
            "SNIP (Lee et al. 2019): zeroes weights with the smallest |gradient x weight| on one batch. Needs data; the live preview falls back to magnitude."
        }
    }
}

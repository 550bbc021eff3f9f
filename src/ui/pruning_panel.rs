//! The Pruning panel: method, global or per-group ratios, presets, and the dense vs pruned
//! model's size. The settings are the app's (shared with the other views): the panel edits a
//! copy and asks the shell to take it; the fine-tune and budget sections draw within it.

use eframe::egui;

use super::budget_panel::BudgetState;
use super::command::{AppView, PanelCommand};
use super::fine_tune_panel::{FineTuneForm, fine_tune_ui};
use super::state::PruningState;
use crate::plan_tree::PlanNode;
use crate::prune::PruneMethod;
use crate::worker::ModelView;

/// The sections of the panel that own their state, and the plan tree node it may differ from.
pub(super) struct Sections<'a> {
    pub fine_tune: &'a mut FineTuneForm,
    pub budget: &'a mut BudgetState,
    pub selected_node: Option<&'a PlanNode>,
}

/// The Pruning panel; returns what was asked (the edited settings among it, when they
/// changed).
pub(super) fn pruning_panel_ui(
    ui: &mut egui::Ui,
    view: &AppView<'_>,
    sections: Sections<'_>,
) -> Vec<PanelCommand> {
    let mut commands = Vec::new();
    let mut method = view.settings.method;
    let mut pruning = view.pruning.clone();
    ui.heading("Pruning");
    method_ui(ui, &mut method);
    presets_ui(ui, view.model, &mut pruning);
    ui.checkbox(&mut pruning.use_global, "One global ratio")
        .on_hover_text("One importance threshold across all groups instead of a ratio per group");
    ui.add_enabled(
        pruning.use_global,
        egui::Slider::new(&mut pruning.global_ratio, 0.0..=0.95).text("Global ratio"),
    );
    let current = view.model.map(|model| pruning.plan(method, model));
    commands.extend(super::plans::keep_plan_ui(
        ui,
        sections.selected_node,
        current.as_ref(),
    ));
    if let Some(model) = view.model {
        ui.separator();
        model_stats_ui(ui, view, model);
        ui.separator();
        commands.extend(fine_tune_ui(sections.fine_tune, view, ui));
        ui.separator();
        commands.extend(sections.budget.ui(ui, view));
        ui.separator();
        group_sliders_ui(ui, view, model, &mut pruning);
    }
    if method != view.settings.method || pruning != *view.pruning {
        commands.push(PanelCommand::SetPruning { method, pruning });
    }
    commands
}

fn method_ui(ui: &mut egui::Ui, method: &mut PruneMethod) {
    egui::ComboBox::from_label("Method")
        .selected_text(method.key())
        .show_ui(ui, |ui| {
            for choice in PruneMethod::ALL {
                ui.selectable_value(method, choice, choice.key())
                    .on_hover_text(method_help(choice));
            }
        })
        .response
        .on_hover_text(method_help(*method));
}

fn presets_ui(ui: &mut egui::Ui, model: Option<&ModelView>, pruning: &mut PruningState) {
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
                && let Some(model) = model
            {
                pruning.use_global = false;
                pruning.group_ratios = preset_ratios(model, ratio);
            }
        }
    });
}

/// A slider per channel group (disabled under a global ratio, showing what it removed).
fn group_sliders_ui(
    ui: &mut egui::Ui,
    view: &AppView<'_>,
    model: &ModelView,
    pruning: &mut PruningState,
) {
    ui.label("Share of channels removed per group (kept / total):");
    egui::ScrollArea::vertical().show(ui, |ui| {
        for (g, group) in model.groups.iter().enumerate() {
            let kept = view
                .preview
                .and_then(|p| p.kept.get(g))
                .copied()
                .unwrap_or(group.channels);
            let mean_importance =
                group.importance.iter().sum::<f32>() / group.importance.len().max(1) as f32;
            let picked = pruning.removed.get(&group.name).map_or(0, Vec::len);
            let label = if picked > 0 {
                format!("{} {kept}/{} ({picked} picked)", group.name, group.channels)
            } else {
                format!("{} {kept}/{}", group.name, group.channels)
            };
            let hover = format!("mean filter L2 importance {mean_importance:.3}");
            if pruning.use_global {
                // The global threshold decides each group's share: show what it removed.
                let mut effective = 1.0 - kept as f64 / group.channels.max(1) as f64;
                ui.add_enabled(
                    false,
                    egui::Slider::new(&mut effective, 0.0..=1.0).text(label),
                )
                .on_hover_text(format!("{hover}; set by the global ratio"));
            } else {
                ui.add(egui::Slider::new(&mut pruning.group_ratios[g], 0.0..=0.95).text(label))
                    .on_hover_text(hover);
            }
        }
    });
}

fn model_stats_ui(ui: &mut egui::Ui, view: &AppView<'_>, model: &ModelView) {
    ui.label(&model.description);
    egui::Grid::new("stats").show(ui, |ui| {
        ui.label("");
        ui.label("dense");
        ui.label("pruned");
        ui.end_row();
        let (params, nonzero, macs) = match view.preview {
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

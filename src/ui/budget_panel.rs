//! The budget search section of the Pruning panel: the largest Dice drop allowed per region,
//! the search run in the background (progress, stop), the per-group sliders moved as it keeps
//! steps, the node it ends as, and its Dice-vs-MACs chart beside the uniform ratios (drawn in
//! the Plots tab). The section owns the search's settings and results; the shell starts and
//! stops the search and moves the sliders.

use std::path::PathBuf;

use eframe::egui;
use egui_plot::{Corner, Legend, Line, Plot, PlotPoints, Points};

use super::command::{AppView, PanelCommand};
use super::palette::colour;
use crate::metrics::RegionScores;
use crate::prune::auto::AutoSettings;
use crate::prune::{FineTuneRecord, PruneMethod, PrunePlan, StructuredMethod};
use crate::worker::{AutoOutcome, AutoPoint, AutoPruneRequest, AutoStepView, ModelView};

const REGIONS: [&str; 3] = ["WT", "TC", "ET"];

/// The search's settings and what it has sent so far.
#[derive(Debug, Clone)]
pub struct BudgetState {
    /// Largest Dice drop allowed per region (WT, TC, ET).
    pub budget: [f64; 3],
    /// Share of the dense MACs each step tries to remove.
    pub step_share: f64,
    pub max_steps: usize,
    /// Fine-tune after this many kept steps (0: never), for `fine_tune_steps` Adam steps.
    pub fine_tune_every: usize,
    pub fine_tune_steps: usize,
    /// Region the chart shows.
    pub chart_region: usize,
    pub uniform: Vec<AutoPoint>,
    pub trail: Vec<AutoStepView>,
    pub result: Option<AutoOutcome>,
    /// The model and the plan tree node the running search started from.
    pub started_from: Option<(Option<PathBuf>, Option<u64>)>,
}

impl Default for BudgetState {
    fn default() -> Self {
        BudgetState {
            budget: [0.02; 3],
            step_share: 0.03,
            max_steps: 20,
            fine_tune_every: 3,
            fine_tune_steps: 20,
            chart_region: 1,
            uniform: Vec::new(),
            trail: Vec::new(),
            result: None,
            started_from: None,
        }
    }
}

/// A finished search as the plan tree node it becomes: the model and node it started from,
/// the node's name, plan and fine-tuning.
pub(super) struct FoundNode {
    pub source: Option<PathBuf>,
    pub parent: Option<u64>,
    pub name: String,
    pub plan: PrunePlan,
    pub record: Option<FineTuneRecord>,
}

impl BudgetState {
    pub(super) fn ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) -> Vec<PanelCommand> {
        let mut commands = Vec::new();
        egui::CollapsingHeader::new("Budget search (automatic ratios)")
            .id_salt("budget-search")
            .show(ui, |ui| {
                ui.label("Largest Dice drop allowed on this case:")
                    .on_hover_text(
                        "The search cuts, step by step, the channel group whose cut removes the \
                         most MACs per unit of Dice lost (scored on the case's tumour slices, \
                         each kept step confirmed on the whole case), fine-tuning briefly every \
                         few steps, until no cut stays within these drops.",
                    );
                ui.horizontal(|ui| {
                    for (r, name) in REGIONS.iter().enumerate() {
                        let label = ui.label(*name);
                        ui.add(
                            egui::DragValue::new(&mut self.budget[r])
                                .range(0.0..=0.5)
                                .speed(0.005)
                                .fixed_decimals(3),
                        )
                        .labelled_by(label.id);
                    }
                });
                self.settings_ui(ui);
                commands.extend(self.actions_ui(ui, view));
                self.result_ui(ui);
            });
        commands
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        let b = self;
        egui::Grid::new("budget-settings").show(ui, |ui| {
            let label = ui
                .label("MACs per step")
                .on_hover_text("Share of the dense model's MACs each step tries to remove");
            ui.add(
                egui::DragValue::new(&mut b.step_share)
                    .range(0.005..=0.5)
                    .speed(0.005)
                    .fixed_decimals(3),
            )
            .labelled_by(label.id);
            let label = ui.label("Steps at most");
            ui.add(egui::DragValue::new(&mut b.max_steps).range(1..=200))
                .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Fine-tune every").on_hover_text(
                "Kept steps between brief fine-tunes (0: none; each takes a while on a CPU)",
            );
            ui.add(egui::DragValue::new(&mut b.fine_tune_every).range(0..=50))
                .labelled_by(label.id);
            let label = ui.label("Adam steps each");
            ui.add(egui::DragValue::new(&mut b.fine_tune_steps).range(1..=500))
                .labelled_by(label.id);
            ui.end_row();
        });
    }

    fn actions_ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) -> Option<PanelCommand> {
        let mut command = None;
        let running = view.job.is_some();
        let searching = running && self.started_from.is_some();
        let method = match view.settings.method {
            PruneMethod::Structured(m) => Some(m),
            PruneMethod::Unstructured(_) => None,
        };
        ui.horizontal(|ui| {
            let start = ui
                .add_enabled(
                    !running && method.is_some(),
                    egui::Button::new("Search ratios"),
                )
                .on_hover_text("Run the budget search with the method above (a channel method)");
            if start.clicked()
                && let Some(method) = method
            {
                command = Some(PanelCommand::StartBudgetSearch(method));
            }
            if ui
                .add_enabled(searching, egui::Button::new("Stop search"))
                .clicked()
            {
                command = Some(PanelCommand::CancelJob);
            }
        });
        if method.is_none() {
            ui.weak("The search removes channels: pick l2, bn-gamma or group-l2.");
        }
        if searching && let Some((done, total, label)) = view.job {
            ui.add(
                egui::ProgressBar::new(*done as f32 / (*total).max(1) as f32).text(label.as_str()),
            );
        }
        command
    }

    /// The search request of these settings; the results of a previous search are dropped and
    /// where this one starts from (model, node) is remembered for the node it becomes.
    pub(super) fn start(
        &mut self,
        method: StructuredMethod,
        started_from: (Option<PathBuf>, Option<u64>),
    ) -> AutoPruneRequest {
        let request = AutoPruneRequest {
            settings: AutoSettings {
                method,
                budget: RegionScores::from_array(self.budget),
                step_share: self.step_share,
                fine_tune_every: self.fine_tune_every,
                max_steps: self.max_steps,
                ..AutoSettings::default()
            },
            fine_tune_steps: if self.fine_tune_every > 0 {
                self.fine_tune_steps
            } else {
                0
            },
        };
        self.started_from = Some(started_from);
        self.uniform.clear();
        self.trail.clear();
        self.result = None;
        request
    }

    fn result_ui(&mut self, ui: &mut egui::Ui) {
        let Some(result) = &self.result else {
            return;
        };
        let d = |s: &RegionScores| format!("{:.3}/{:.3}/{:.3}", s.wt, s.tc, s.et);
        ui.label(format!(
            "Found in {} step(s): {:.3} G MACs ({:.2}x fewer); case Dice {} (dense {})",
            result.steps,
            result.macs as f64 / 1e9,
            result.dense_macs as f64 / result.macs.max(1) as f64,
            d(&result.case_dice),
            d(&result.dense_case_dice),
        ));
        ui.weak(format!(
            "Stopped: {}. Kept as a plan; the Plots tab draws it beside the uniform ratios.",
            result.stopped
        ));
    }

    /// The Plots tab's chart: Dice on the tumour slices vs MACs, uniform ratios and the search.
    pub(super) fn chart_ui(&mut self, ui: &mut egui::Ui, height: f32) {
        let b = self;
        ui.horizontal(|ui| {
            ui.strong("Budget search: Dice vs MACs").on_hover_text(
                "Dice on the open case's tumour slices (what ranks the search's candidates) \
                     against MACs: the method's uniform ratios 0-60% and each step the search \
                     kept.",
            );
            egui::ComboBox::from_label("Chart region")
                .width(50.0)
                .selected_text(REGIONS[b.chart_region])
                .show_ui(ui, |ui| {
                    for (r, name) in REGIONS.iter().enumerate() {
                        ui.selectable_value(&mut b.chart_region, r, *name);
                    }
                });
        });
        if b.uniform.is_empty() {
            // No empty axes: say where the chart's data comes from.
            ui.add_space(height / 3.0);
            ui.vertical_centered(|ui| {
                ui.label("No budget search yet.");
                ui.label("Budget search (automatic ratios) in the right panel fills this chart.");
            });
            return;
        }
        let r = b.chart_region;
        let point = |macs: u64, dice: &RegionScores| [macs as f64 / 1e9, dice.as_array()[r]];
        let uniform: PlotPoints = b
            .uniform
            .iter()
            .map(|p| point(p.macs, &p.subset_dice))
            .collect();
        let dense = b.uniform.first().map(|p| point(p.macs, &p.subset_dice));
        let trail: PlotPoints = dense
            .into_iter()
            .chain(b.trail.iter().map(|s| point(s.macs, &s.subset_dice)))
            .collect();
        let result = b
            .result
            .as_ref()
            .map(|res| point(res.macs, &res.subset_dice));
        Plot::new("budget-chart")
            .height(height)
            // Top left: the uniform curve falls away from there, and the search stays right.
            .legend(Legend::default().position(Corner::LeftTop))
            .x_axis_label("MACs (G, 192x192)")
            .y_axis_label(format!("Dice {} (tumour slices)", REGIONS[r]))
            .include_y(0.0)
            .include_y(1.0)
            .allow_scroll(false)
            .show(ui, |plot| {
                plot.line(
                    Line::new("uniform ratios", uniform)
                        .color(colour(0))
                        .width(2.0),
                );
                plot.line(Line::new("search steps", trail).color(colour(1)).width(2.0));
                if let Some(p) = result {
                    plot.points(
                        Points::new("search result", vec![p])
                            .radius(5.0)
                            .color(colour(2)),
                    );
                }
            });
    }

    /// The search's result becomes a plan tree node (with its weights, kept by the shell);
    /// none when no search was started from here.
    pub(super) fn finish(&mut self, outcome: AutoOutcome) -> Option<FoundNode> {
        let (source, parent) = self.started_from.take()?;
        let mut plan = outcome.plan.clone();
        if let Some(search) = plan.budget_search.as_mut() {
            search.fine_tune_steps = outcome.fine_tune_steps;
        }
        let record = (outcome.fine_tune_steps > 0).then(|| FineTuneRecord {
            epochs: outcome
                .fine_tune_steps
                .div_ceil(self.fine_tune_steps.max(1)),
            learning_rate: 1e-4,
            batches_per_epoch: Some(self.fine_tune_steps),
            device: "CPU".into(),
        });
        let budget = &self.budget;
        let name = format!(
            "auto budget {}/{}/{}: {:.3} G MACs",
            budget[0],
            budget[1],
            budget[2],
            outcome.macs as f64 / 1e9
        );
        self.result = Some(outcome);
        Some(FoundNode {
            source,
            parent,
            name,
            plan,
            record,
        })
    }
}

/// The per-group ratios of a kept step on `model`'s groups (the sliders show them).
pub(super) fn step_ratios(model: &ModelView, step: &AutoStepView) -> Vec<f64> {
    model
        .groups
        .iter()
        .map(|g| {
            step.group_names
                .iter()
                .position(|n| *n == g.name)
                .map_or(0.0, |i| step.ratios[i])
        })
        .collect()
}

//! The Plots tab (egui_plot): BN-gamma histogram of a channel group with the current cut,
//! Dice vs sparsity per method for one region (from the background sweep), and the loss and
//! validation Dice of the last fine-tune, and the budget search against uniform ratios or the
//! compression study (its own panel). The tab owns its choices and the study panel.

use eframe::egui;
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints, VLine};

use super::budget_panel::BudgetState;
use super::command::{AppView, PanelCommand};
use super::palette::colour;
use super::state::TrainPoint;
use super::study_panel::{StudyCommand, StudyPanel};
use crate::prune::PruneMethod;
use crate::prune::study::StudyFile;
use crate::prune::sweep::SweepPoint;

const REGIONS: [&str; 3] = ["WT", "TC", "ET"];

/// The charts the Plots tab's lower right can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LowerRight {
    Budget,
    Study,
}
const HISTOGRAM_BINS: usize = 16;

/// The Plots tab's choices, the embedded model's shipped sweep and the study chart.
#[derive(Default)]
pub struct PlotsTab {
    /// Group whose BN-gamma histogram is shown.
    pub histogram_group: usize,
    /// Region of the Dice-vs-sparsity plot (0 WT, 1 TC, 2 ET).
    pub plot_region: usize,
    /// The embedded model's shipped sweep (read once, when the tab first needs it).
    pub shipped_sweep: Vec<SweepPoint>,
    /// The compression study chart.
    study: StudyPanel,
    /// What the lower right shows (`None`: the budget search once it has points, else the
    /// study).
    lower_right: Option<LowerRight>,
}

impl PlotsTab {
    /// Points of the study shown (0: none).
    pub fn study_points(&self) -> usize {
        self.study.points()
    }

    /// Where the study shown came from.
    pub fn study_source(&self) -> Option<&str> {
        self.study.source()
    }

    /// A study file the worker read: shown in the lower right from now on.
    pub fn show_study(&mut self, source: String, file: StudyFile) {
        self.study.show_file(source, file);
        self.lower_right = Some(LowerRight::Study);
    }

    /// The tab; the budget search's chart is drawn from (and picks the region of) `budget`.
    pub(super) fn ui(
        &mut self,
        ui: &mut egui::Ui,
        view: &AppView<'_>,
        budget: &mut BudgetState,
    ) -> Vec<PanelCommand> {
        let mut commands = Vec::new();
        let height = ((ui.available_height() - 120.0) / 2.0).max(150.0);
        ui.columns(2, |columns| {
            self.histogram_ui(&mut columns[0], view, height);
            commands.extend(self.sweep_plot_ui(&mut columns[1], view, height));
        });
        ui.columns(2, |columns| {
            training_plot_ui(&mut columns[0], view, height);
            commands.extend(self.lower_right_ui(&mut columns[1], budget, height));
        });
        commands
    }

    /// The budget search's chart or the compression study's, as chosen (by default the search
    /// once it has points).
    fn lower_right_ui(
        &mut self,
        ui: &mut egui::Ui,
        budget: &mut BudgetState,
        height: f32,
    ) -> Option<PanelCommand> {
        let automatic = if budget.uniform.is_empty() {
            LowerRight::Study
        } else {
            LowerRight::Budget
        };
        let mut shown = self.lower_right.unwrap_or(automatic);
        ui.horizontal(|ui| {
            ui.selectable_value(&mut shown, LowerRight::Budget, "Budget search");
            ui.selectable_value(&mut shown, LowerRight::Study, "Compression study");
        });
        if shown != self.lower_right.unwrap_or(automatic) {
            self.lower_right = Some(shown);
        }
        match shown {
            LowerRight::Budget => {
                budget.chart_ui(ui, height);
                None
            }
            LowerRight::Study => self
                .study
                .ui(ui, height)
                .map(|StudyCommand::OpenFile| PanelCommand::OpenStudyDialog),
        }
    }

    fn histogram_ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>, height: f32) {
        let Some(model) = view.model else {
            return;
        };
        ui.strong("BN gamma per channel")
            .on_hover_text("Network slimming removes the channels with the smallest |gamma|: those left of the red line at the current ratio.");
        let g = self
            .histogram_group
            .min(model.groups.len().saturating_sub(1));
        egui::ComboBox::from_label("Group")
            .selected_text(&model.groups[g].name)
            .show_ui(ui, |ui| {
                for (i, group) in model.groups.iter().enumerate() {
                    ui.selectable_value(&mut self.histogram_group, i, &group.name);
                }
            });
        let gammas = &model.groups[g].bn_gamma;
        let (max, bins) = histogram(gammas, HISTOGRAM_BINS);
        let width = max / HISTOGRAM_BINS as f64;
        let bars: Vec<Bar> = bins
            .iter()
            .enumerate()
            .map(|(i, count)| Bar::new((i as f64 + 0.5) * width, *count as f64).width(width * 0.9))
            .collect();
        // The share this group actually loses in the preview (under a global ratio it differs
        // from group to group), else its slider.
        let ratio = match view.preview.and_then(|p| p.kept.get(g)) {
            Some(kept) => 1.0 - *kept as f64 / model.groups[g].channels.max(1) as f64,
            None => view.pruning.group_ratios.get(g).copied().unwrap_or(0.0),
        };
        let cut = threshold(gammas, ratio);
        Plot::new("gamma-histogram")
            .height(height)
            .x_axis_label("|gamma|")
            .y_axis_label("channels")
            .allow_scroll(false)
            .show(ui, |plot| {
                plot.bar_chart(BarChart::new("channels", bars).color(colour(0)));
                if let Some(cut) = cut {
                    plot.vline(
                        VLine::new(format!("cut at ratio {ratio:.2}"), cut)
                            .color(egui::Color32::RED)
                            .width(2.0),
                    );
                }
            });
    }

    fn sweep_plot_ui(
        &mut self,
        ui: &mut egui::Ui,
        view: &AppView<'_>,
        height: f32,
    ) -> Option<PanelCommand> {
        let mut command = None;
        // Until a sweep of its own has run, the embedded model shows the sweep it ships with.
        let embedded = view.model.is_some_and(|m| m.source.is_none());
        if view.sweep_points.is_empty() && embedded && self.shipped_sweep.is_empty() {
            self.shipped_sweep = crate::defaults::default_model_sweep();
        }
        let shipped = view.sweep_points.is_empty() && embedded;
        let points = if shipped {
            self.shipped_sweep.as_slice()
        } else {
            view.sweep_points
        };
        ui.horizontal(|ui| {
            let title = if shipped {
                "Dice vs sparsity (shipped: 10 held-out cases)"
            } else {
                "Dice vs sparsity (this case)"
            };
            ui.strong(title)
                .on_hover_text("Run sweep (right panel) prunes the dense model by every method at 0-75% and segments the whole case; no fine-tuning.");
            for (r, name) in REGIONS.iter().enumerate() {
                ui.selectable_value(&mut self.plot_region, r, *name);
            }
        });
        if points.is_empty() {
            // No empty axes: say what fills them and offer to do it.
            ui.add_space(height / 3.0);
            ui.vertical_centered(|ui| {
                ui.label("No sweep of this model yet.");
                let running = view.job.is_some();
                if ui
                    .add_enabled(!running, egui::Button::new("Run sweep"))
                    .on_hover_text("Prunes by every method at 0-75 % and segments the open case")
                    .clicked()
                {
                    command = Some(PanelCommand::StartSweep);
                }
            });
            return command;
        }
        let region = self.plot_region;
        let mut methods: Vec<PruneMethod> = points.iter().map(|p| p.method).collect();
        methods.dedup();
        Plot::new("dice-sparsity")
            .height(height)
            .legend(Legend::default())
            .x_axis_label("share of parameters removed")
            .y_axis_label(format!("Dice {}", REGIONS[region]))
            .include_y(0.0)
            .include_y(1.0)
            .allow_scroll(false)
            .show(ui, |plot| {
                for (i, method) in methods.iter().enumerate() {
                    let curve: PlotPoints = points
                        .iter()
                        .filter(|p| p.method == *method)
                        .map(|p| [p.sparsity, p.dice.as_array()[region]])
                        .collect();
                    plot.line(Line::new(method.key(), curve).color(colour(i)).width(2.0));
                }
            });
        if shipped {
            ui.label(
                "Shown: the embedded model's own sweep on held-out cases 10000-10009 (shipped \
                 with the program, no fine-tuning). Run sweep replaces it with the open case's.",
            );
        }
        command
    }
}

/// The last fine-tune's epochs, or until the app fine-tunes the open model's own training
/// (from its checkpoint).
fn training_plot_ui(ui: &mut egui::Ui, view: &AppView<'_>, height: f32) {
    let own: Vec<TrainPoint> = match view.model {
        Some(model) if view.fine_tune_history.is_empty() => model
            .training
            .iter()
            .map(|e| TrainPoint {
                epoch: e.epoch,
                train_loss: e.train_loss,
                val_loss: e.metrics.val_loss,
                val_dice: e.metrics.val_dice,
                secs: e.metrics.elapsed_secs,
            })
            .collect(),
        _ => Vec::new(),
    };
    let showing_own = !own.is_empty();
    if showing_own {
        ui.strong("Training of the open model: loss and validation Dice per epoch")
                .on_hover_text("Read from the model's checkpoint; a fine-tune (right panel) replaces it with its own epochs.");
    } else {
        ui.strong("Fine-tuning: loss and validation Dice per epoch")
            .on_hover_text("Filled in while a fine-tune runs (right panel).");
    }
    let history = if showing_own {
        own.as_slice()
    } else {
        view.fine_tune_history
    };
    Plot::new("training")
        .height(height)
        .legend(Legend::default())
        .x_axis_label("epoch")
        .include_y(0.0)
        .allow_scroll(false)
        .show(ui, |plot| {
            let series = |f: &dyn Fn(&TrainPoint) -> f64| -> PlotPoints {
                history.iter().map(|p| [p.epoch as f64, f(p)]).collect()
            };
            plot.line(
                Line::new("train loss", series(&|p| p.train_loss))
                    .color(colour(1))
                    .width(2.0),
            );
            plot.line(
                Line::new("val loss", series(&|p| p.val_loss))
                    .color(colour(5))
                    .width(2.0),
            );
            for (r, name) in REGIONS.iter().enumerate() {
                let points = series(&|p| p.val_dice[r]);
                plot.line(
                    Line::new(format!("val Dice {name}"), points)
                        .color(colour(2 + r))
                        .width(2.0),
                );
            }
        });
    if history.is_empty() {
        ui.label("The open model's checkpoint records no training; fine-tune it (right panel) to plot epochs here.");
    }
}

/// Counts of `values` in `bins` equal bins over [0, max]; returns (max, counts).
fn histogram(values: &[f32], bins: usize) -> (f64, Vec<usize>) {
    let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6) as f64;
    let mut counts = vec![0; bins];
    for v in values {
        let bin = ((v.abs() as f64 / max) * bins as f64) as usize;
        counts[bin.min(bins - 1)] += 1;
    }
    (max, counts)
}

/// The score below which `ratio` of `values` fall (what BN-gamma pruning cuts), if any.
fn threshold(values: &[f32], ratio: f64) -> Option<f64> {
    let removed = (values.len() as f64 * ratio).round() as usize;
    if removed == 0 || values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let below = sorted[removed - 1] as f64;
    let above = sorted.get(removed).map_or(below, |v| *v as f64);
    Some((below + above) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_and_threshold_split_the_values() {
        let values = [0.1, 0.2, 0.3, 0.9];
        let (max, counts) = histogram(&values, 3);
        assert!((max - 0.9).abs() < 1e-6);
        assert_eq!(counts, vec![2, 1, 1]);
        assert_eq!(threshold(&values, 0.0), None);
        let cut = threshold(&values, 0.5).unwrap();
        assert!(cut > 0.2 && cut < 0.3);
    }
}

//! The Layers tab: which channel groups the model cannot spare (per-group sensitivity, group x
//! ratio heatmap of whole-case Dice) and how alike two models' level outputs are (CKA, level x
//! level heatmap), both computed by background jobs on the open case. The tab owns its
//! choices and results; the shell starts the jobs it asks for.

use eframe::egui;

use super::command::{AppView, PanelCommand};
use super::heatmap::Heatmap;
use crate::analysis::sensitivity::{SensitivityCell, region_matrix};
use crate::worker::CkaView;

/// The ratios a sensitivity run prunes each group by.
pub const SENSITIVITY_RATIOS: [f64; 3] = [0.25, 0.5, 0.75];

/// A model CKA can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CkaModel {
    Dense,
    /// The model the pruning panel describes now.
    Pruned,
    /// The last fine-tuned model.
    FineTuned,
}

impl CkaModel {
    pub fn label(self) -> &'static str {
        match self {
            CkaModel::Dense => "dense",
            CkaModel::Pruned => "pruned (panel)",
            CkaModel::FineTuned => "fine-tuned",
        }
    }
}

/// What the Layers tab holds.
#[derive(Debug, Clone)]
pub struct LayersState {
    pub sensitivity: Vec<SensitivityCell>,
    /// Region of the sensitivity heatmap (0 WT, 1 TC, 2 ET).
    pub region: usize,
    pub cka: Option<CkaView>,
    pub cka_rows: CkaModel,
    pub cka_columns: CkaModel,
}

impl Default for LayersState {
    fn default() -> Self {
        LayersState {
            sensitivity: Vec::new(),
            region: 1,
            cka: None,
            cka_rows: CkaModel::Dense,
            cka_columns: CkaModel::Pruned,
        }
    }
}

impl LayersState {
    pub(super) fn ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) -> Vec<PanelCommand> {
        let mut commands = Vec::new();
        ui.columns(2, |columns| {
            egui::ScrollArea::vertical()
                .id_salt("sensitivity")
                .show(&mut columns[0], |ui| {
                    commands.extend(self.sensitivity_ui(ui, view));
                });
            egui::ScrollArea::vertical()
                .id_salt("cka")
                .show(&mut columns[1], |ui| commands.extend(self.cka_ui(ui, view)));
        });
        commands
    }

    fn sensitivity_ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) -> Option<PanelCommand> {
        let mut command = None;
        ui.strong("Sensitivity: one group pruned at a time")
            .on_hover_text("Each channel group alone is pruned by 25%, 50% and 75% (the others intact) with the panel's channel method, and the whole open case is segmented. Dark cells are groups the model cannot spare.");
        let busy = view.job.is_some();
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!busy, egui::Button::new("Run sensitivity"))
                .clicked()
            {
                command = Some(PanelCommand::StartSensitivity);
            }
            for (i, name) in ["WT", "TC", "ET"].iter().enumerate() {
                ui.selectable_value(&mut self.region, i, *name);
            }
        });
        let Some(model) = view.model else {
            return command;
        };
        if self.sensitivity.is_empty() {
            ui.label("No sensitivity run yet (111 whole-case segmentations: several minutes on the CPU).");
            return command;
        }
        let groups: Vec<usize> = (0..model.groups.len()).collect();
        let rows: Vec<String> = model
            .groups
            .iter()
            .map(|g| format!("{} ({})", g.name, g.channels))
            .collect();
        let columns: Vec<String> = SENSITIVITY_RATIOS
            .iter()
            .map(|r| format!("{:.0}%", r * 100.0))
            .collect();
        let values = region_matrix(&self.sensitivity, &groups, &SENSITIVITY_RATIOS, self.region);
        ui.label(format!(
            "Dice {} of the open case, {} of {} cells",
            ["WT", "TC", "ET"][self.region],
            self.sensitivity.len(),
            groups.len() * SENSITIVITY_RATIOS.len()
        ));
        Heatmap {
            rows: &rows,
            columns: &columns,
            values: &values,
            cell: egui::vec2(48.0, 18.0),
        }
        .show(ui);
        command
    }

    fn cka_ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) -> Option<PanelCommand> {
        let mut command = None;
        ui.strong("CKA between level outputs")
            .on_hover_text("Linear centred kernel alignment (unbiased minibatch HSIC) between the outputs of every encoder and decoder level of two models, on 32 tumour slices of the open case. 1: the same representation up to rotation and scale.");
        let busy = view.job.is_some();
        let choices = [CkaModel::Dense, CkaModel::Pruned, CkaModel::FineTuned];
        let tuned = view.tuned_available;
        ui.horizontal(|ui| {
            for (label, slot) in [
                ("Rows", &mut self.cka_rows),
                ("Columns", &mut self.cka_columns),
            ] {
                egui::ComboBox::from_label(label)
                    .selected_text(slot.label())
                    .show_ui(ui, |ui| {
                        for choice in choices {
                            if choice != CkaModel::FineTuned || tuned {
                                ui.selectable_value(slot, choice, choice.label());
                            }
                        }
                    });
            }
        });
        if ui
            .add_enabled(!busy, egui::Button::new("Compute CKA"))
            .clicked()
        {
            command = Some(PanelCommand::StartCka);
        }
        let Some(cka) = &self.cka else {
            ui.label("No CKA yet.");
            return command;
        };
        ui.label(format!("{}, {} slices", cka.title, cka.slices));
        // Fit the columns to the panel (row labels take about 40 points).
        let width = (ui.available_width() - 40.0) / cka.columns.len().max(1) as f32;
        Heatmap {
            rows: &cka.rows,
            columns: &cka.columns,
            values: &cka.values,
            cell: egui::vec2(width.clamp(24.0, 44.0), 30.0),
        }
        .show(ui);
        command
    }
}

//! The Layers tab: which channel groups the model cannot spare (per-group sensitivity, group x
//! ratio heatmap of whole-case Dice) and how alike two models' level outputs are (CKA, level x
//! level heatmap), both computed by background jobs on the open case.

use eframe::egui;

use super::LabApp;
use super::heatmap::Heatmap;
use crate::analysis::sensitivity::{SensitivityCell, region_matrix};
use crate::prune::PruneMethod;
use crate::worker::{CkaView, PreviewRequest, Request};

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

impl LabApp {
    /// Starts a sensitivity run of the dense model on the open case (the panel's channel method).
    pub fn start_sensitivity(&mut self) {
        self.layers.sensitivity.clear();
        let method = match self.settings.method {
            PruneMethod::Structured(_) => self.settings.method,
            PruneMethod::Unstructured(_) => {
                PruneMethod::Structured(crate::prune::StructuredMethod::L2)
            }
        };
        let ratios = SENSITIVITY_RATIOS.to_vec();
        let _ = self
            .worker
            .requests
            .send(Request::StartSensitivity { method, ratios });
        self.job = Some((0, 1, "sensitivity: starting".into()));
    }

    /// Starts a CKA between the two chosen models on the open case.
    pub fn start_cka(&mut self) {
        let (a, b) = (
            self.cka_request(self.layers.cka_rows),
            self.cka_request(self.layers.cka_columns),
        );
        let _ = self.worker.requests.send(Request::StartCka { a, b });
        self.job = Some((0, 1, "CKA: starting".into()));
    }

    fn cka_request(&self, model: CkaModel) -> Option<PreviewRequest> {
        let request = self.current_request()?;
        match model {
            CkaModel::Dense => None,
            CkaModel::Pruned => Some(PreviewRequest {
                fine_tuned: false,
                ..request
            }),
            CkaModel::FineTuned => Some(PreviewRequest {
                fine_tuned: true,
                ..request
            }),
        }
    }

    pub(super) fn layers_ui(&mut self, ui: &mut egui::Ui) {
        ui.columns(2, |columns| {
            egui::ScrollArea::vertical()
                .id_salt("sensitivity")
                .show(&mut columns[0], |ui| self.sensitivity_ui(ui));
            egui::ScrollArea::vertical()
                .id_salt("cka")
                .show(&mut columns[1], |ui| self.cka_ui(ui));
        });
    }

    fn sensitivity_ui(&mut self, ui: &mut egui::Ui) {
        ui.strong("Sensitivity: one group pruned at a time")
            .on_hover_text("Each channel group alone is pruned by 25%, 50% and 75% (the others intact) with the panel's channel method, and the whole open case is segmented. Dark cells are groups the model cannot spare.");
        let busy = self.job.is_some();
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!busy, egui::Button::new("Run sensitivity"))
                .clicked()
            {
                self.start_sensitivity();
            }
            for (i, name) in ["WT", "TC", "ET"].iter().enumerate() {
                ui.selectable_value(&mut self.layers.region, i, *name);
            }
        });
        let Some(model) = &self.model else {
            return;
        };
        if self.layers.sensitivity.is_empty() {
            ui.label("No sensitivity run yet (111 whole-case segmentations: several minutes on the CPU).");
            return;
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
        let values = region_matrix(
            &self.layers.sensitivity,
            &groups,
            &SENSITIVITY_RATIOS,
            self.layers.region,
        );
        ui.label(format!(
            "Dice {} of the open case, {} of {} cells",
            ["WT", "TC", "ET"][self.layers.region],
            self.layers.sensitivity.len(),
            groups.len() * SENSITIVITY_RATIOS.len()
        ));
        Heatmap {
            rows: &rows,
            columns: &columns,
            values: &values,
            cell: egui::vec2(48.0, 18.0),
        }
        .show(ui);
    }

    fn cka_ui(&mut self, ui: &mut egui::Ui) {
        ui.strong("CKA between level outputs")
            .on_hover_text("Linear centred kernel alignment (unbiased minibatch HSIC) between the outputs of every encoder and decoder level of two models, on 32 tumour slices of the open case. 1: the same representation up to rotation and scale.");
        let busy = self.job.is_some();
        let choices = [CkaModel::Dense, CkaModel::Pruned, CkaModel::FineTuned];
        let tuned = self.fine_tune.tuned_available;
        ui.horizontal(|ui| {
            for (label, slot) in [
                ("Rows", &mut self.layers.cka_rows),
                ("Columns", &mut self.layers.cka_columns),
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
            self.start_cka();
        }
        let Some(cka) = &self.layers.cka else {
            ui.label("No CKA yet.");
            return;
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
    }
}

//! The View panel: axis, modality, slice, window/level, overlay style, and Dice per region.

use eframe::egui;

use super::LabApp;
use super::MODALITIES;
use crate::render::{REGION_NAMES, SliceAxis, Window, plane_codes};
use crate::worker::region_dice;

impl LabApp {
    pub(super) fn view_panel_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("View");
        ui.horizontal(|ui| {
            for axis in SliceAxis::ALL {
                if ui
                    .selectable_label(self.settings.axis == axis, axis.name())
                    .clicked()
                {
                    self.settings.axis = axis;
                    if let Some(case) = &self.case {
                        self.slice_idx = axis.slices(case.dims) / 2;
                    }
                }
            }
        });
        egui::ComboBox::from_label("Modality")
            .selected_text(MODALITIES[self.settings.modality])
            .show_ui(ui, |ui| {
                for (i, name) in MODALITIES.iter().enumerate() {
                    ui.selectable_value(&mut self.settings.modality, i, *name);
                }
            });
        if let Some(case) = &self.case {
            let slices = self.settings.axis.slices(case.dims);
            let before = self.slice_idx;
            ui.add(
                egui::Slider::new(&mut self.slice_idx, 0..=slices.saturating_sub(1)).text("Slice"),
            );
            if before != self.slice_idx && self.settings.axis == SliceAxis::Axial {
                self.preview_wanted = true;
            }
        }
        ui.horizontal(|ui| {
            ui.label(format!(
                "Window {:.1}, level {:.1}",
                self.settings.window.width, self.settings.window.level
            ))
            .on_hover_text("Drag on an image: left/right = width, up/down = level");
            if ui.small_button("Reset").clicked() {
                self.settings.window = Window::default();
            }
        });
        ui.separator();
        ui.heading("Overlay");
        for (r, name) in REGION_NAMES.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.checkbox(&mut self.settings.overlay.visible[r], *name);
                ui.color_edit_button_srgb(&mut self.settings.overlay.colours[r]);
            });
        }
        ui.add(egui::Slider::new(&mut self.settings.overlay.opacity, 0.0..=1.0).text("Opacity"));
        ui.checkbox(&mut self.settings.overlay.outline, "Outline only");
        ui.separator();
        self.dice_ui(ui);
    }

    /// Dice WT/TC/ET of the dense and the pruned model on the previewed axial slice.
    pub fn slice_dice(&self) -> (Option<[f64; 3]>, Option<[f64; 3]>) {
        let (Some(case), Some(preview)) = (&self.case, &self.preview) else {
            return (None, None);
        };
        let Some(truth) = &case.truth else {
            return (None, None);
        };
        let slice_truth = plane_codes(truth, case.dims, SliceAxis::Axial, preview.slice_idx);
        let dense = self.dense_codes.as_ref().map(|codes| {
            let dense_plane = plane_codes(codes, case.dims, SliceAxis::Axial, preview.slice_idx);
            region_dice(&dense_plane, &slice_truth)
        });
        (dense, Some(region_dice(&preview.codes, &slice_truth)))
    }

    pub(super) fn dice_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Dice");
        let Some(case) = &self.case else { return };
        if case.truth.is_none() {
            ui.label("no ground truth in this case");
            return;
        }
        let (dense_slice, pruned_slice) = self.slice_dice();
        egui::Grid::new("dice").striped(true).show(ui, |ui| {
            ui.label("");
            for region in ["WT", "TC", "ET"] {
                ui.label(region);
            }
            ui.end_row();
            let row = |ui: &mut egui::Ui, label: &str, values: Option<[f64; 3]>, hover: &str| {
                ui.label(label).on_hover_text(hover);
                for r in 0..3 {
                    ui.label(values.map_or("…".into(), |v| format!("{:.3}", v[r])));
                }
                ui.end_row();
            };
            row(
                ui,
                "dense, case",
                self.dense_case_dice,
                "Dense model vs ground truth over the whole volume",
            );
            row(
                ui,
                "pruned, case",
                self.preview_case_dice,
                "Pruned model vs ground truth over the whole volume (computed in the background after each change; … while it runs)",
            );
            row(
                ui,
                "dense, slice",
                dense_slice,
                "Dense model on the previewed axial slice",
            );
            row(
                ui,
                "pruned, slice",
                pruned_slice,
                "Pruned model on the previewed axial slice",
            );
        });
    }
}

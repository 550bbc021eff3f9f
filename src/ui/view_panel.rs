//! The View panel: axis, modality, slice, window/level, overlay style, and Dice per region.
//! It has no state of its own: it draws the shared settings and asks for changes.

use crate::precision::Precision;
use eframe::egui;

use super::MODALITIES;
use super::command::{AppView, PanelCommand};
use crate::data::resample::{MODEL_SPACING_MM, differs_from};
use crate::render::{REGION_NAMES, SliceAxis, Window, plane_codes};
use crate::worker::{CaseView, PreviewResult, region_dice};

/// The View panel; returns the changes asked for.
pub(super) fn view_panel_ui(ui: &mut egui::Ui, view: &AppView<'_>) -> Vec<PanelCommand> {
    let mut commands = Vec::new();
    let settings = view.settings;
    ui.heading("View");
    ui.horizontal(|ui| {
        for axis in SliceAxis::ALL {
            if ui
                .selectable_label(settings.axis == axis, axis.name())
                .clicked()
            {
                commands.push(PanelCommand::SetAxis(axis));
            }
        }
    });
    let mut modality = settings.modality;
    egui::ComboBox::from_label("Modality")
        .selected_text(MODALITIES[modality])
        .show_ui(ui, |ui| {
            for (i, name) in MODALITIES.iter().enumerate() {
                ui.selectable_value(&mut modality, i, *name);
            }
        });
    if modality != settings.modality {
        commands.push(PanelCommand::SetModality(modality));
    }
    if let Some(case) = view.case {
        let slices = settings.axis.slices(case.dims);
        let mut slice = view.slice_idx;
        ui.add(egui::Slider::new(&mut slice, 0..=slices.saturating_sub(1)).text("Slice"));
        if slice != view.slice_idx {
            commands.push(PanelCommand::SetSlice(slice));
        }
        grid_ui(ui, case, settings.resample, &mut commands);
    }
    ui.horizontal(|ui| {
        ui.label(format!(
            "Window {:.1}, level {:.1}",
            settings.window.width, settings.window.level
        ))
        .on_hover_text("Drag on an image: left/right = width, up/down = level");
        if ui.small_button("Reset").clicked() {
            commands.push(PanelCommand::SetWindow(Window::default()));
        }
    });
    ui.separator();
    overlay_ui(ui, view, &mut commands);
    ui.separator();
    dice_ui(ui, view, &mut commands);
    commands
}

/// The case's voxel size against the model's 1 mm, and the choice to segment on the model's grid.
fn grid_ui(ui: &mut egui::Ui, case: &CaseView, resample: bool, commands: &mut Vec<PanelCommand>) {
    let [x, y, z] = case.spacing_mm;
    let off_grid = differs_from(case.spacing_mm, MODEL_SPACING_MM);
    ui.label(format!("Voxels {x:.2} x {y:.2} x {z:.2} mm"))
        .on_hover_text(INPUT_EXPECTED);
    let mut wanted = resample;
    ui.checkbox(&mut wanted, "Segment on the model's 1 mm grid")
        .on_hover_text(
            "Whole-case segmentations (volumes, lesions, Dice, exports) are made on a 1 mm grid \
             (images trilinear) and written back onto this case's own voxels (nearest); the \
             slice preview stays on the case's own slices.",
        );
    if wanted != resample {
        commands.push(PanelCommand::SetResample(wanted));
    }
    if off_grid && !resample {
        ui.small("The model was trained on 1 mm voxels: tick the box above for this case.");
    }
}

/// What the model expects of its input, and how to get there from the scanner.
pub const INPUT_EXPECTED: &str = "The model expects skull-stripped, co-registered BraTS-style \
    MRI (T1, T1ce, T2, FLAIR on one grid). From DICOM: convert each series with dcm2niix, then \
    run a BraTS preprocessing pipeline (co-registration to one template, skull stripping), as \
    the BraTS challenge prepares its cases.";

/// The overlay's regions, colours, opacity and outline.
fn overlay_ui(ui: &mut egui::Ui, view: &AppView<'_>, commands: &mut Vec<PanelCommand>) {
    ui.heading("Overlay");
    let mut overlay = view.settings.overlay.clone();
    for (r, name) in REGION_NAMES.iter().enumerate() {
        ui.horizontal(|ui| {
            ui.checkbox(&mut overlay.visible[r], *name);
            ui.color_edit_button_srgb(&mut overlay.colours[r]);
        });
    }
    ui.add(egui::Slider::new(&mut overlay.opacity, 0.0..=1.0).text("Opacity"));
    ui.checkbox(&mut overlay.outline, "Outline only");
    if overlay != view.settings.overlay {
        commands.push(PanelCommand::SetOverlay(overlay));
    }
}

/// Dice WT/TC/ET of the dense model (its `dense_codes`) and of the pruned one on the
/// previewed axial slice.
pub(super) fn slice_dice(
    case: Option<&CaseView>,
    preview: Option<&PreviewResult>,
    dense_codes: Option<&[u8]>,
) -> (Option<[f64; 3]>, Option<[f64; 3]>) {
    let (Some(case), Some(preview)) = (case, preview) else {
        return (None, None);
    };
    let Some(truth) = &case.truth else {
        return (None, None);
    };
    let slice_truth = plane_codes(truth, case.dims, SliceAxis::Axial, preview.slice_idx);
    let dense = dense_codes.map(|codes| {
        let dense_plane = plane_codes(codes, case.dims, SliceAxis::Axial, preview.slice_idx);
        region_dice(&dense_plane, &slice_truth)
    });
    (dense, Some(region_dice(&preview.codes, &slice_truth)))
}

fn dice_ui(ui: &mut egui::Ui, view: &AppView<'_>, commands: &mut Vec<PanelCommand>) {
    ui.heading("Dice");
    let Some(case) = view.case else { return };
    if case.truth.is_none() {
        ui.label("no ground truth in this case");
        return;
    }
    let case = view.case.map(|c| &**c);
    let (dense_slice, pruned_slice) = slice_dice(case, view.preview, view.dense_codes);
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
            view.dense_case_dice,
            "Dense model vs ground truth over the whole volume",
        );
        let pruned_case = match view.case_dice_precision {
            Precision::Fp32 => "pruned, case".to_string(),
            other => format!("pruned, case ({})", other.name()),
        };
        row(
            ui,
            &pruned_case,
            view.preview_case_dice,
            "Pruned model vs ground truth over the whole volume (computed in the background after each change; … while it runs), in the number format chosen below",
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
    let mut precision = view.case_dice_precision;
    ui.horizontal(|ui| {
        ui.label("pruned, case in");
        egui::ComboBox::from_id_salt("case dice precision")
            .selected_text(precision.name())
            .show_ui(ui, |ui| {
                for p in Precision::ALL {
                    ui.selectable_value(&mut precision, p, p.name());
                }
            })
            .response
            .on_hover_text(
                "Score the pruned model's whole-case Dice as an export in this precision \
                 computes it: fp16 rounds the weights to half; int8 is static INT8 (weights \
                 and activations on 8-bit grids calibrated on generated tumour slices), as \
                 \"Export model…\" writes it",
            );
    });
    if precision != view.case_dice_precision {
        commands.push(PanelCommand::SetCaseDicePrecision(precision));
    }
}

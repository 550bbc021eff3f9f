//! The Slices tab's findings side panel: each region's volume (ml) in the ground truth, the
//! dense and the pruned segmentation with the pruned-minus-dense difference, and the lesion list
//! of one region (volume, centroid in scanner mm, what each model found), where clicking a lesion
//! takes the viewer to it and lesions the pruned model lost are flagged.

use eframe::egui;

use super::command::{AppView, PanelCommand};
use crate::clinical_report::region_label;
use crate::metrics::Region;
use crate::metrics::findings::{Lesion, MIN_LISTED_EXTRA_ML, VolumeTable, lesion_status};
use crate::worker::FindingsView;

/// Rows of the volume table: the sub-regions, then the composites.
const VOLUME_ROWS: [Region; 5] = [Region::Ncr, Region::Ed, Region::Et, Region::Tc, Region::Wt];
/// Height of the lesion list's scrolling area (points).
const LIST_HEIGHT: f32 = 150.0;
/// The colour of a lost lesion's flag.
const LOST: egui::Color32 = egui::Color32::from_rgb(220, 70, 60);

/// The panel's own choice: whose lesions it lists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FindingsPanel {
    pub region: Region,
}

impl Default for FindingsPanel {
    fn default() -> Self {
        FindingsPanel { region: Region::Wt }
    }
}

impl FindingsPanel {
    /// The volume table and, beside it, the lesion list.
    pub(super) fn ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) -> Vec<PanelCommand> {
        let mut commands = Vec::new();
        let Some(findings) = view.findings else {
            ui.label(
                "Volumes and lesions: waiting for the dense model's segmentation of the case…",
            );
            return commands;
        };
        let current = view.pruned_findings_current;
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.horizontal(|ui| {
                    ui.strong("Volume per region (ml)");
                    if ui
                        .button("Report…")
                        .on_hover_text(
                            "A one-page PNG: key slices of truth, dense and pruned, these \
                             volumes, Dice and lesions",
                        )
                        .clicked()
                    {
                        commands.push(PanelCommand::SaveReport);
                    }
                });
                volume_table_ui(ui, &findings.volumes, current);
                if let Some(case) = view.case {
                    let [x, y, z] = case.spacing_mm;
                    ui.small(format!(
                        "voxels x {x:.2} x {y:.2} x {z:.2} mm (header spacing)"
                    ));
                }
            });
            ui.separator();
            ui.vertical(|ui| {
                ui.horizontal(|ui| {
                    ui.strong("Lesions of");
                    for region in [Region::Wt, Region::Tc, Region::Et] {
                        ui.selectable_value(&mut self.region, region, region.name());
                    }
                });
                lesion_list_ui(ui, findings, self.region, current, &mut commands);
            });
        });
        commands
    }
}

/// Truth, dense, pruned and pruned - dense (ml and %) per region.
fn volume_table_ui(ui: &mut egui::Ui, volumes: &VolumeTable, pruned_current: bool) {
    let pruned = volumes.pruned_ml.filter(|_| pruned_current);
    egui::Grid::new("volumes").striped(true).show(ui, |ui| {
        for header in ["ml", "truth", "dense", "pruned", "Δ ml", "Δ %"] {
            ui.strong(header);
        }
        ui.end_row();
        for region in VOLUME_ROWS {
            let value =
                |table: Option<crate::metrics::SubRegionScores>| table.map(|t| t.get(region));
            let (truth, dense, pruned) = (
                value(volumes.truth_ml),
                value(volumes.dense_ml),
                value(pruned),
            );
            ui.label(region_label(region));
            ui.label(truth.map_or("—".into(), |v| format!("{v:.2}")));
            let vs_truth = |v: f64| {
                truth.map_or(String::new(), |t| {
                    format!("{:+.2} ml against the ground truth", v - t)
                })
            };
            match dense {
                Some(d) => ui.label(format!("{d:.2}")).on_hover_text(vs_truth(d)),
                None => ui.label("…"),
            };
            match pruned {
                Some(p) => ui.label(format!("{p:.2}")).on_hover_text(vs_truth(p)),
                None => ui
                    .label("…")
                    .on_hover_text("scored once the pruned model has segmented the whole case"),
            };
            match (dense, pruned) {
                (Some(d), Some(p)) => {
                    ui.label(format!("{:+.2}", p - d));
                    ui.label(if d > 0.0 {
                        format!("{:+.1}", 100.0 * (p - d) / d)
                    } else {
                        "—".into()
                    });
                }
                _ => {
                    ui.label("");
                    ui.label("");
                }
            }
            ui.end_row();
        }
    });
    ui.small("Δ: pruned minus dense.");
}

/// One region's lesions; a click on one asks the viewer to go there.
fn lesion_list_ui(
    ui: &mut egui::Ui,
    findings: &FindingsView,
    region: Region,
    pruned_current: bool,
    commands: &mut Vec<PanelCommand>,
) {
    let of_region = findings.lesions.iter().filter(|l| l.region == region);
    let listed: Vec<&Lesion> = of_region.clone().filter(|l| l.worth_listing()).collect();
    let specks = of_region.count() - listed.len();
    if listed.is_empty() {
        ui.label(format!("No {} lesion in any segmentation.", region.name()));
        return;
    }
    let lost = listed
        .iter()
        .filter(|l| pruned_current && l.lost_by_pruning())
        .count();
    if lost > 0 {
        ui.colored_label(
            LOST,
            format!("The pruned model lost {lost} lesion(s) the dense model found."),
        );
    }
    egui::ScrollArea::vertical()
        .id_salt("lesions")
        // A fixed height: one taken from the panel would let the panel grow frame by frame.
        .max_height(LIST_HEIGHT)
        .show(ui, |ui| {
            egui::Grid::new("lesion list").striped(true).show(ui, |ui| {
                for header in ["", "in", "ml", "centre (mm)", "dense ml", "pruned ml", ""] {
                    ui.strong(header);
                }
                ui.end_row();
                for (i, lesion) in listed.iter().enumerate() {
                    lesion_row_ui(ui, i + 1, lesion, pruned_current, commands);
                    ui.end_row();
                }
            });
        });
    if specks > 0 {
        ui.small(format!(
            "{specks} smaller component(s) the models add (under {MIN_LISTED_EXTRA_ML} ml) not listed."
        ));
    }
    ui.small(
        "Lesions: 26-connected components; click # to go to one. Centre: the header's world \
         coordinates.",
    );
}

fn lesion_row_ui(
    ui: &mut egui::Ui,
    number: usize,
    lesion: &Lesion,
    pruned_current: bool,
    commands: &mut Vec<PanelCommand>,
) {
    let [x, y, z] = lesion.anchor_voxel;
    if ui
        .button(format!("#{number}"))
        .on_hover_text(format!("Go to voxel ({x}, {y}, {z}) in every plane"))
        .clicked()
    {
        commands.push(PanelCommand::GoToVoxel(lesion.anchor_voxel));
    }
    ui.label(lesion.origin.name());
    ui.label(format!("{:.3}", lesion.volume_ml));
    let [cx, cy, cz] = lesion.centroid_mm;
    ui.label(format!("{cx:.0}, {cy:.0}, {cz:.0}"));
    // The pruned figures of another model than the one previewed are not shown.
    let shown = Lesion {
        pruned_ml: lesion.pruned_ml.filter(|_| pruned_current),
        ..lesion.clone()
    };
    let ml = |v: Option<f64>| v.map_or("…".into(), |v| format!("{v:.3}"));
    ui.label(ml(shown.dense_ml));
    ui.label(ml(shown.pruned_ml));
    let status = lesion_status(&shown);
    if shown.lost_by_pruning() {
        ui.colored_label(LOST, status);
    } else {
        ui.label(status);
    }
}

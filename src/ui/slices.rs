//! The Slices tab: ground truth | dense | pruned | disagreement images of the current slice,
//! with hover read-out, wheel scrolling and window/level drag. The tab owns its texture cache.

use eframe::egui;

use super::command::{AppView, PanelCommand};
use super::findings_panel::FindingsPanel;
use super::viewer;
use crate::render::{SliceAxis, Window, plane_codes, render_disagreement, render_slice};
use crate::worker::CaseView;

/// The Slices tab: its textures, re-uploaded only when what they show changes.
#[derive(Default)]
pub struct SlicesTab {
    textures: viewer::TextureCache,
    /// What the disagreement image of the slice shows, counted when it was rendered (not per
    /// frame): the voxels where dense and pruned differ, and where either finds tumour.
    disagreement: Option<(viewer::TextureKey, SliceAgreement)>,
    /// The volumes and lesions below the images.
    pub findings: FindingsPanel,
}

/// How dense and pruned compare on one slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SliceAgreement {
    differing: usize,
    tumour: usize,
}

impl SliceAgreement {
    fn of(dense: &[u8], pruned: &[u8]) -> SliceAgreement {
        let pairs = || dense.iter().zip(pruned);
        SliceAgreement {
            differing: pairs().filter(|(a, b)| a != b).count(),
            tumour: pairs().filter(|(a, b)| **a != 0 || **b != 0).count(),
        }
    }

    /// The caption under the disagreement image.
    fn caption(self) -> String {
        match (self.differing, self.tumour) {
            (0, 0) => "Dense and pruned agree on this slice: neither finds tumour here.".into(),
            (0, t) => {
                format!("Dense and pruned agree on every voxel of this slice ({t} tumour voxels).")
            }
            (d, t) => format!(
                "{d} voxel(s) differ on this slice ({:.1} % of the {t} tumour voxels either \
                 model finds).",
                100.0 * d as f64 / t.max(1) as f64
            ),
        }
    }
}

impl SlicesTab {
    /// Slice textures rendered and uploaded since the start.
    pub fn uploads(&self) -> u64 {
        self.textures.uploads
    }

    pub(super) fn ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) -> Vec<PanelCommand> {
        let mut commands = Vec::new();
        let Some(case) = view.case else {
            ui.centered_and_justified(|ui| ui.spinner());
            return commands;
        };
        egui::Panel::bottom("findings")
            .resizable(true)
            .default_size(230.0)
            .show(ui, |ui| {
                egui::ScrollArea::horizontal()
                    .id_salt("findings")
                    .show(ui, |ui| commands.extend(self.findings.ui(ui, view)));
            });
        let axis = view.settings.axis;
        let panels: [(&str, Option<&[u8]>); 3] = [
            ("Ground truth", case.truth.as_deref()),
            ("Dense", view.dense_codes),
            ("Pruned", view.pruned_codes),
        ];
        // A 2x2 grid that fits the panel: each image at most half the width and half the height.
        let [w, h] = axis.plane(case.dims);
        let aspect = h as f32 / w as f32;
        let by_height = (ui.available_height() - 90.0) / 2.0 / aspect;
        let width = (ui.available_width() / 2.0 - 12.0)
            .min(by_height)
            .max(120.0);
        let slice = view.slice_idx.min(axis.slices(case.dims).saturating_sub(1));
        let key = viewer::TextureKey {
            case_id: case.id.clone(),
            axis,
            slice,
            modality: view.settings.modality,
            window: view.settings.window,
            overlay: view.settings.overlay.clone(),
            codes_generation: view.codes_generation,
        };
        let mut scroll = 0.0;
        egui::Grid::new("slices").show(ui, |ui| {
            for (i, (title, codes)) in panels.iter().enumerate() {
                let texture = self.textures.get_or_render(ui.ctx(), title, &key, || {
                    render_slice(
                        &case.modalities[key.modality],
                        *codes,
                        case.dims,
                        axis,
                        slice,
                        key.window,
                        &key.overlay,
                    )
                });
                let image = Image { title, texture: &texture, width, case, codes: *codes };
                scroll += image_ui(ui, view, &image, &mut commands);
                if i % 2 == 1 {
                    ui.end_row();
                }
            }
            if let (Some(dense), Some(pruned)) = (view.dense_codes, view.pruned_codes) {
                let title =
                    "Dense vs pruned (grey: agree, red: dense only, blue: pruned only, orange: other region)";
                let mut counted = None;
                let texture = self.textures.get_or_render(ui.ctx(), title, &key, || {
                    let plane = axis.plane(case.dims);
                    let a = plane_codes(dense, case.dims, axis, slice);
                    let b = plane_codes(pruned, case.dims, axis, slice);
                    counted = Some(SliceAgreement::of(&a, &b));
                    (plane, render_disagreement(&a, &b, plane))
                });
                if let Some(agreement) = counted {
                    self.disagreement = Some((key.clone(), agreement));
                }
                let image = Image { title, texture: &texture, width, case, codes: None };
                ui.vertical(|ui| {
                    image_ui(ui, view, &image, &mut commands);
                    if let Some((_, agreement)) =
                        self.disagreement.as_ref().filter(|(shown, _)| *shown == key)
                    {
                        // As wide as the image: a grid cell would let a long line run on.
                        ui.set_max_width(width);
                        ui.label(agreement.caption());
                    }
                });
            } else {
                ui.label("Disagreement map: waiting for both predictions");
            }
            ui.end_row();
        });
        if axis != SliceAxis::Axial && !view.pruned_whole_case {
            ui.label(
                "The pruned preview is computed on axial slices (the whole case follows when it \
                 has been segmented); switch to Axial to scroll it.",
            );
        }
        if scroll != 0.0 {
            commands.push(PanelCommand::MoveSlice(scroll as i64));
        }
        commands
    }
}

/// One image of the grid: its title, texture, width on screen, and the codes it shows.
struct Image<'a> {
    title: &'a str,
    texture: &'a egui::TextureHandle,
    width: f32,
    case: &'a CaseView,
    codes: Option<&'a [u8]>,
}

/// One slice image with hover read-out and window/level drag; returns wheel steps over it.
fn image_ui(
    ui: &mut egui::Ui,
    view: &AppView<'_>,
    image: &Image<'_>,
    commands: &mut Vec<PanelCommand>,
) -> f32 {
    let mut wheel = 0.0;
    ui.vertical(|ui| {
        ui.label(image.title);
        let plane = image.texture.size();
        let aspect = plane[1] as f32 / plane[0] as f32;
        let size = egui::vec2(image.width, image.width * aspect);
        let response = ui.add(
            egui::Image::new(image.texture)
                .fit_to_exact_size(size)
                .sense(egui::Sense::click_and_drag()),
        );
        if let Some(voxel) = view.cursor {
            mark_cursor(ui, &response.rect, view, image.case, voxel);
        }
        if response.dragged() {
            let delta = response.drag_delta();
            let mut w = view.settings.window;
            w.width = (w.width + delta.x * 0.02).clamp(0.1, 20.0);
            w.level += -delta.y * 0.02;
            commands.push(PanelCommand::SetWindow(w));
        }
        if response.double_clicked() {
            commands.push(PanelCommand::SetWindow(Window::default()));
        }
        if let Some(pos) = response.hover_pos() {
            let delta = ui.input(|i| i.smooth_scroll_delta.y);
            // (f32::signum(0.0) is 1.0, so no movement must stay no movement.)
            if delta != 0.0 {
                wheel = delta.signum();
            }
            let rel = (pos - response.rect.min) / response.rect.size();
            let u = ((rel.x * plane[0] as f32) as usize).min(plane[0] - 1);
            let v = ((rel.y * plane[1] as f32) as usize).min(plane[1] - 1);
            let axis = view.settings.axis;
            let s = view.slice_idx.min(axis.slices(image.case.dims) - 1);
            let voxel = axis.voxel(image.case.dims, s, u, v);
            response.on_hover_text(viewer::voxel_readout(image.case, voxel, image.codes));
        }
    });
    wheel
}

/// A ring round the cursor's voxel when it lies on the shown slice (where a clicked lesion is).
fn mark_cursor(
    ui: &egui::Ui,
    rect: &egui::Rect,
    view: &AppView<'_>,
    case: &CaseView,
    voxel: [usize; 3],
) {
    let axis = view.settings.axis;
    if axis.slice_of(voxel) != view.slice_idx || voxel.iter().zip(case.dims).any(|(v, d)| *v >= d) {
        return;
    }
    let plane = axis.plane(case.dims);
    let [u, v] = axis.pixel_of(case.dims, voxel);
    let at = rect.min
        + egui::vec2(
            (u as f32 + 0.5) / plane[0] as f32 * rect.width(),
            (v as f32 + 0.5) / plane[1] as f32 * rect.height(),
        );
    let stroke = egui::Stroke::new(1.5, egui::Color32::YELLOW);
    ui.painter().circle_stroke(at, 9.0, stroke);
}

/// The axial slice with the most tumour (or the middle one): where a viewer should open.
pub(super) fn best_slice(case: &CaseView) -> usize {
    let [nx, ny, nz] = case.dims;
    let Some(truth) = &case.truth else {
        return nz / 2;
    };
    (0..nz)
        .max_by_key(|z| {
            truth[z * nx * ny..(z + 1) * nx * ny]
                .iter()
                .filter(|c| **c > 0)
                .count()
        })
        .unwrap_or(nz / 2)
}

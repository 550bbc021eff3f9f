//! The Slices tab: ground truth | dense | pruned | disagreement images of the current slice,
//! with hover read-out, wheel scrolling and window/level drag.

use eframe::egui;

use super::LabApp;
use super::viewer;
use crate::render::{SliceAxis, Window, plane_codes, render_disagreement, render_slice};
use crate::worker::CaseView;

impl LabApp {
    pub(super) fn slices_ui(&mut self, ui: &mut egui::Ui) {
        let Some(case) = self.case.clone() else {
            ui.centered_and_justified(|ui| ui.spinner());
            return;
        };
        let axis = self.settings.axis;
        // Taken out for the frame so the images can borrow them while `self` is mutated.
        let dense_codes = self.dense_codes.take();
        let pruned_codes = self.pruned_codes.take();
        let panels: [(&str, Option<&[u8]>); 3] = [
            ("Ground truth", case.truth.as_deref()),
            ("Dense", dense_codes.as_deref()),
            ("Pruned", pruned_codes.as_deref()),
        ];
        // A 2x2 grid that fits the panel: each image at most half the width and half the height.
        let [w, h] = axis.plane(case.dims);
        let aspect = h as f32 / w as f32;
        let by_height = (ui.available_height() - 90.0) / 2.0 / aspect;
        let width = (ui.available_width() / 2.0 - 12.0)
            .min(by_height)
            .max(120.0);
        let slice = self.slice_idx.min(axis.slices(case.dims).saturating_sub(1));
        let key = viewer::TextureKey {
            case_id: case.id.clone(),
            axis,
            slice,
            modality: self.settings.modality,
            window: self.settings.window,
            overlay: self.settings.overlay.clone(),
            codes_generation: self.codes_generation,
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
                scroll += self.image_ui(ui, title, &texture, width, &case, *codes);
                if i % 2 == 1 {
                    ui.end_row();
                }
            }
            if let (Some(dense), Some(pruned)) = (&dense_codes, &pruned_codes) {
                let title =
                    "Dense vs pruned (grey: agree, red: dense only, blue: pruned only, orange: other region)";
                let texture = self.textures.get_or_render(ui.ctx(), title, &key, || {
                    let plane = axis.plane(case.dims);
                    let a = plane_codes(dense, case.dims, axis, slice);
                    let b = plane_codes(pruned, case.dims, axis, slice);
                    (plane, render_disagreement(&a, &b, plane))
                });
                self.image_ui(ui, title, &texture, width, &case, None);
            } else {
                ui.label("Disagreement map: waiting for both predictions");
            }
            ui.end_row();
        });
        self.dense_codes = dense_codes;
        self.pruned_codes = pruned_codes;
        if axis != SliceAxis::Axial {
            ui.label(
                "The pruned preview is computed on axial slices; switch to Axial to scroll it.",
            );
        }
        let slices = axis.slices(case.dims);
        self.move_slice(scroll as i64, slices);
    }

    /// One slice image with hover read-out and window/level drag; returns wheel steps over it.
    pub(super) fn image_ui(
        &mut self,
        ui: &mut egui::Ui,
        title: &str,
        texture: &egui::TextureHandle,
        width: f32,
        case: &CaseView,
        codes: Option<&[u8]>,
    ) -> f32 {
        let mut wheel = 0.0;
        ui.vertical(|ui| {
            ui.label(title);
            let plane = texture.size();
            let aspect = plane[1] as f32 / plane[0] as f32;
            let size = egui::vec2(width, width * aspect);
            let response = ui.add(
                egui::Image::new(texture)
                    .fit_to_exact_size(size)
                    .sense(egui::Sense::click_and_drag()),
            );
            if response.dragged() {
                let delta = response.drag_delta();
                let w = &mut self.settings.window;
                w.width = (w.width + delta.x * 0.02).clamp(0.1, 20.0);
                w.level += -delta.y * 0.02;
            }
            if response.double_clicked() {
                self.settings.window = Window::default();
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
                let s = self.slice_idx.min(self.settings.axis.slices(case.dims) - 1);
                let voxel = self.settings.axis.voxel(case.dims, s, u, v);
                response.on_hover_text(viewer::voxel_readout(case, voxel, codes));
            }
        });
        wheel
    }
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

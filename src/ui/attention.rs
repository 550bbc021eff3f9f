//! The Attention tab: where each of RAAGR2-Net's four attention gates looks on the current
//! slice (psi averaged over its channels, over FLAIR), for the dense and the pruned model, and
//! their difference, each with its own opacity. The tab owns its opacities and textures and
//! asks nothing of the app.

use eframe::egui;

use super::command::AppView;
use super::viewer::map_texture;
use crate::analysis::maps::{PSI_DIFFERENCE_LIMIT, finite_range};
use crate::render::MapPalette;

/// Opacities of the three overlays and the textures drawn with them.
pub struct AttentionState {
    pub opacity_dense: f32,
    pub opacity_pruned: f32,
    pub opacity_difference: f32,
    /// Per gate: dense, pruned, difference; drawn from the maps and opacities of the key.
    textures: Option<(GateTexturesKey, Vec<[egui::TextureHandle; 3]>)>,
}

/// What the gate textures were drawn from: the maps' id and the three opacities.
type GateTexturesKey = (u64, [f32; 3]);

impl Default for AttentionState {
    fn default() -> Self {
        AttentionState {
            opacity_dense: 0.6,
            opacity_pruned: 0.6,
            opacity_difference: 0.9,
            textures: None,
        }
    }
}

impl AttentionState {
    pub(super) fn ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) {
        let Some(case) = view.case else {
            ui.spinner();
            return;
        };
        ui.horizontal(|ui| {
            ui.spacing_mut().slider_width = 90.0;
            let a = &mut *self;
            ui.label("Opacity:");
            ui.add(egui::Slider::new(&mut a.opacity_dense, 0.0..=1.0).text("dense"));
            ui.add(egui::Slider::new(&mut a.opacity_pruned, 0.0..=1.0).text("pruned"));
            ui.add(egui::Slider::new(&mut a.opacity_difference, 0.0..=1.0).text("difference"));
        });
        let Some(maps) = view.maps.filter(|m| !m.attention_dense.is_empty()) else {
            ui.label("computing the attention maps…");
            ui.spinner();
            return;
        };
        let opacities = [
            self.opacity_dense,
            self.opacity_pruned,
            self.opacity_difference,
        ];
        let (low, high) = finite_range(maps.attention_dense.iter().map(|(_, m)| m.as_slice()))
            .unwrap_or((0.0, 1.0));
        ui.add(
            egui::Label::new(format!(
                "Mean gate value psi per pixel (colour scale {low:.2}-{high:.2}, shared by both \
             models); difference: orange where pruning opened the gate, blue where it closed it \
             (full colour at ±{PSI_DIFFERENCE_LIMIT}). Axial slice {}, computed in {:.0} ms.",
                maps.slice_idx, maps.millis
            ))
            .wrap(),
        );
        let key = (maps.id, opacities);
        let stale = self.textures.as_ref().is_none_or(|(k, _)| *k != key);
        if stale {
            let window = view.settings.window;
            let ctx = ui.ctx().clone();
            let texture = |name: String, map: &[f32], palette, opacity| {
                map_texture(
                    &ctx,
                    name,
                    case,
                    maps.slice_idx,
                    window,
                    map,
                    palette,
                    opacity,
                )
            };
            let heat = MapPalette::Heat { low, high };
            let diverging = MapPalette::Diverging {
                limit: PSI_DIFFERENCE_LIMIT,
            };
            let textures = maps
                .attention_dense
                .iter()
                .zip(&maps.attention_pruned)
                .map(|((gate, dense), (_, pruned))| {
                    let difference: Vec<f32> =
                        pruned.iter().zip(dense).map(|(p, d)| p - d).collect();
                    [
                        texture(format!("{gate} dense"), dense, heat, opacities[0]),
                        texture(format!("{gate} pruned"), pruned, heat, opacities[1]),
                        texture(
                            format!("{gate} difference"),
                            &difference,
                            diverging,
                            opacities[2],
                        ),
                    ]
                })
                .collect();
            self.textures = Some((key, textures));
        }
        let Some((_, textures)) = &self.textures else {
            return;
        };
        let side = ((ui.available_height() - 40.0) / textures.len() as f32)
            .min((ui.available_width() - 120.0) / 3.0)
            .max(80.0);
        egui::ScrollArea::vertical()
            .id_salt("gates")
            .show(ui, |ui| {
                egui::Grid::new("gates").show(ui, |ui| {
                    ui.label("");
                    for title in ["dense", "pruned", "pruned - dense"] {
                        ui.strong(title);
                    }
                    ui.end_row();
                    for ((gate, _), row) in maps.attention_dense.iter().zip(textures) {
                        ui.label(gate);
                        for texture in row {
                            ui.add(
                                egui::Image::new(texture).fit_to_exact_size(egui::vec2(side, side)),
                            );
                        }
                        ui.end_row();
                    }
                });
            });
    }
}

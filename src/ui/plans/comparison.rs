//! The Plans tab's comparison of two ticked nodes: their statistics side by side and their
//! segmentations of one slice with where they disagree.

use eframe::egui;

use super::PlansState;
use crate::plan_tree::{NodeStats, PlanNode};
use crate::render::{OverlayStyle, SliceAxis, render_disagreement, render_slice};
use crate::ui::command::{AppView, PanelCommand};
use crate::ui::viewer::upload;

/// A comparison table row: its name and how a node's statistics print in it.
type Row = (&'static str, fn(&NodeStats) -> String);

impl PlansState {
    pub(super) fn comparison_ui(
        &mut self,
        ui: &mut egui::Ui,
        view: &AppView<'_>,
    ) -> Option<PanelCommand> {
        let mut command = None;
        ui.strong("Compare two nodes");
        let ticked: Vec<PlanNode> = self
            .compare
            .iter()
            .filter_map(|id| self.tree.node(*id).cloned())
            .collect();
        if ticked.len() < 2 {
            ui.label("Tick two nodes in the tree.");
            return command;
        }
        let open = view.model.map(|m| m.source.clone());
        if ticked.iter().any(|n| Some(&n.model) != open.as_ref()) {
            ui.label("Both nodes must belong to the open model (select one to open its model).");
            return command;
        }
        if ui
            .button("Compare on this slice")
            .on_hover_text("Segment the current axial slice with both and show where they disagree")
            .clicked()
        {
            command = Some(PanelCommand::CompareNodes);
        }
        comparison_table(ui, &ticked[0], &ticked[1]);
        self.comparison_images_ui(ui, view, &ticked[0].name, &ticked[1].name);
        command
    }

    fn comparison_images_ui(
        &mut self,
        ui: &mut egui::Ui,
        view: &AppView<'_>,
        a_name: &str,
        b_name: &str,
    ) {
        let (Some((id, slice, a, b)), Some(case)) = (&self.comparison, view.case) else {
            return;
        };
        let (id, slice) = (*id, *slice);
        let stale = self
            .comparison_textures
            .as_ref()
            .is_none_or(|(cached, _)| *cached != id);
        if stale {
            let plane = [case.dims[0], case.dims[1]];
            // One slice as a one-slice volume: the renderer needs no copy of the case.
            let flair = &case.modalities[3][slice * plane[0] * plane[1]..][..plane[0] * plane[1]];
            let render = |codes: &[u8]| {
                render_slice(
                    flair,
                    Some(codes),
                    [plane[0], plane[1], 1],
                    SliceAxis::Axial,
                    0,
                    view.settings.window,
                    &OverlayStyle::default(),
                )
            };
            let ctx = ui.ctx().clone();
            let textures = [
                upload(&ctx, "compare-a", render(a)),
                upload(&ctx, "compare-b", render(b)),
                upload(
                    &ctx,
                    "compare-diff",
                    (plane, render_disagreement(a, b, plane)),
                ),
            ];
            self.comparison_textures = Some((id, textures));
        }
        let Some((_, textures)) = &self.comparison_textures else {
            return;
        };
        let side = ((ui.available_width() - 48.0) / 3.0).clamp(80.0, 260.0);
        ui.horizontal(|ui| {
            let captions = [
                a_name.to_string(),
                b_name.to_string(),
                "disagreement (red: first only, blue: second only)".to_string(),
            ];
            for (texture, caption) in textures.iter().zip(captions) {
                ui.vertical(|ui| {
                    ui.add(egui::Image::new(texture).fit_to_exact_size(egui::vec2(side, side)));
                    ui.label(egui::RichText::new(caption).small());
                });
            }
        });
        ui.label(format!("axial slice {slice}"));
    }
}

/// The two nodes' statistics side by side.
fn comparison_table(ui: &mut egui::Ui, a: &PlanNode, b: &PlanNode) {
    let cell =
        |s: &Option<NodeStats>, f: fn(&NodeStats) -> String| s.as_ref().map_or("-".to_string(), f);
    ui.label(format!("A: {}", a.name));
    ui.label(format!("B: {}", b.name));
    if a.stats.is_none() || b.stats.is_none() {
        ui.weak("(\"Measure all\" fills the table)");
    }
    let rows: [Row; 7] = [
        ("params", |s| s.params.to_string()),
        ("MACs (192x192)", |s| {
            format!("{:.3} G", s.macs as f64 / 1e9)
        }),
        ("latency here", |s| format!("{:.1} ms", s.latency_ms)),
        ("Dice WT (held-out)", |s| {
            format!("{:.3}", s.dice_held_out[0])
        }),
        ("Dice TC (held-out)", |s| {
            format!("{:.3}", s.dice_held_out[1])
        }),
        ("Dice ET (held-out)", |s| {
            format!("{:.3}", s.dice_held_out[2])
        }),
        ("Dice WT/TC/ET (case)", |s| {
            s.dice_case.map_or("-".into(), |d| {
                format!("{:.3}/{:.3}/{:.3}", d[0], d[1], d[2])
            })
        }),
    ];
    egui::Grid::new("comparison").striped(true).show(ui, |ui| {
        ui.label("");
        ui.strong("A");
        ui.strong("B");
        ui.end_row();
        for (name, f) in rows {
            ui.label(name);
            ui.label(cell(&a.stats, f));
            ui.label(cell(&b.stats, f));
            ui.end_row();
        }
    });
}

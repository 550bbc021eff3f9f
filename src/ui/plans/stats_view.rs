//! The Plans tab's statistics of every measured node as small multiples (one bar chart per
//! figure, bars in tree order).

use eframe::egui;
use egui_plot::{Bar, BarChart, Plot};

use crate::plan_tree::{NodeStats, PlanNode, PlanTree};
use crate::ui::palette::colour;

/// A small multiple: its title and the figure it shows.
type Metric = (&'static str, fn(&NodeStats) -> f64);

pub(super) fn small_multiples_ui(ui: &mut egui::Ui, tree: &PlanTree) {
    let nodes: Vec<&PlanNode> = tree
        .in_order()
        .into_iter()
        .filter(|(_, n)| n.stats.is_some())
        .map(|(_, n)| n)
        .collect();
    if nodes.is_empty() {
        ui.label("Statistics per node: press \"Measure all\".");
        return;
    }
    ui.strong("Statistics per node (bars in tree order; hover for the node)");
    ui.horizontal_wrapped(|ui| {
        for (i, n) in nodes.iter().enumerate() {
            ui.colored_label(colour(i), format!("{} {}", i + 1, n.name));
        }
    });
    let metrics: [Metric; 7] = [
        ("params (M)", |s| s.params as f64 / 1e6),
        ("MACs (G, 192x192)", |s| s.macs as f64 / 1e9),
        ("latency (ms)", |s| s.latency_ms),
        ("Dice WT held-out", |s| s.dice_held_out[0]),
        ("Dice TC held-out", |s| s.dice_held_out[1]),
        ("Dice ET held-out", |s| s.dice_held_out[2]),
        ("Dice WT this case", |s| {
            s.dice_case.map_or(f64::NAN, |d| d[0])
        }),
    ];
    let width = (ui.available_width() / 4.0 - 44.0).max(100.0);
    egui::Grid::new("small multiples").show(ui, |ui| {
        for (i, (title, value)) in metrics.iter().enumerate() {
            ui.vertical(|ui| {
                ui.label(*title);
                let bars: Vec<Bar> = nodes
                    .iter()
                    .enumerate()
                    .map(|(x, n)| {
                        let v = n.stats.as_ref().map_or(f64::NAN, value);
                        Bar::new(x as f64, if v.is_finite() { v } else { 0.0 })
                            .name(&n.name)
                            .width(0.7)
                            .fill(colour(x))
                    })
                    .collect();
                Plot::new(format!("multiple {title}"))
                    .width(width)
                    .height(90.0)
                    .include_x(-0.6)
                    .include_x(nodes.len() as f64 - 0.4)
                    .include_y(0.0)
                    .show_axes([false, true])
                    .allow_drag(false)
                    .allow_zoom(false)
                    .allow_scroll(false)
                    .show(ui, |plot| plot.bar_chart(BarChart::new(*title, bars)));
            });
            if i % 4 == 3 {
                ui.end_row();
            }
        }
    });
}

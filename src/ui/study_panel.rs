//! The compression study on the Plots tab: Dice per region against MACs or size, one curve per
//! way of making the network smaller, from a study file the user opened. The panel owns its
//! state; the file is read by the worker.

use std::sync::Arc;

use eframe::egui;
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use super::palette::colour;
use crate::prune::study::{StudyAxis, StudyFile, pareto_series};

const REGIONS: [&str; 3] = ["WT", "TC", "ET"];

/// What the panel asks of the app.
pub enum StudyCommand {
    /// Let the user pick a study file (the worker reads it).
    OpenFile,
}

/// A study on screen and where it came from.
struct ShownStudy {
    source: String,
    file: Arc<StudyFile>,
}

pub struct StudyPanel {
    /// The study shown: the shipped one until the user opens another.
    opened: Option<ShownStudy>,
    region: usize,
    axis: StudyAxis,
}

impl Default for StudyPanel {
    /// Shows the study shipped with the program (the half-width study family's, not the open
    /// model's), so the chart never starts empty.
    fn default() -> Self {
        let (path, text) = crate::defaults::SHIPPED_STUDY;
        let opened = serde_json::from_str::<StudyFile>(text)
            .ok()
            .map(|file| ShownStudy {
                source: format!("the shipped study of the half-width study family ({path})"),
                file: Arc::new(file),
            });
        StudyPanel {
            opened,
            region: 0,
            axis: StudyAxis::default(),
        }
    }
}

impl StudyPanel {
    /// Where the shown study came from (the shipped one, or the file the user opened).
    pub fn source(&self) -> Option<&str> {
        self.opened.as_ref().map(|s| s.source.as_str())
    }

    /// A study file the worker read.
    pub fn show_file(&mut self, source: String, file: StudyFile) {
        self.opened = Some(ShownStudy {
            source,
            file: Arc::new(file),
        });
    }

    /// How many points the open study has (0: none open).
    pub fn points(&self) -> usize {
        self.opened.as_ref().map_or(0, |s| s.file.results.len())
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, height: f32) -> Option<StudyCommand> {
        let mut command = None;
        ui.horizontal_wrapped(|ui| {
            ui.strong("Compression study: Dice vs cost").on_hover_text(
                "Every way to a smaller network at matched shares of parameters removed: \
                 pruning methods, the weight-shared variants and both combined (the `study` \
                 command). Dice is the fine-tuned one where measured, else after BN \
                 recalibration, else as cut.",
            );
            for (r, name) in REGIONS.iter().enumerate() {
                ui.selectable_value(&mut self.region, r, *name);
            }
            ui.separator();
            ui.selectable_value(&mut self.axis, StudyAxis::Macs, "MACs");
            ui.selectable_value(&mut self.axis, StudyAxis::Size, "size");
            if ui
                .button("Open study…")
                .on_hover_text("A study file (`study -o OUT` writes OUT.json)")
                .clicked()
            {
                command = Some(StudyCommand::OpenFile);
            }
        });
        let (region, axis) = (self.region, self.axis);
        let Some(shown) = &self.opened else {
            ui.add(
                egui::Label::new(
                    "No study open: `raagr2-lab study -o OUT` writes OUT.json; Open study… \
                     shows it here.",
                )
                .wrap(),
            );
            return command;
        };
        let results = &shown.file.results;
        let side = results.first().map_or(240, |r| r.slice_side);
        let series = pareto_series(results, region, |r| axis.value(r));
        Plot::new("study-chart")
            .height(height)
            .legend(Legend::default())
            .x_axis_label(axis.label(side))
            .y_axis_label(format!("Dice {}", REGIONS[region]))
            .include_y(0.0)
            .include_y(1.0)
            .include_x(0.0)
            .allow_scroll(false)
            .show(ui, |plot| {
                for s in &series {
                    let points: Vec<[f64; 2]> = s.points.iter().map(|(x, y)| [*x, *y]).collect();
                    let colour = colour(s.colour_index);
                    let mut line =
                        Line::new(s.name.clone(), PlotPoints::from(points.clone())).color(colour);
                    if s.dashed {
                        line = line.style(egui_plot::LineStyle::dashed_loose());
                    }
                    plot.line(line.width(2.0));
                    plot.points(
                        Points::new(s.name.clone(), points)
                            .color(colour)
                            .radius(3.0),
                    );
                }
            });
        ui.add(
            egui::Label::new(format!(
                "Shown: {} ({} points, {} held-out cases each).",
                shown.source,
                results.len(),
                results.first().map_or(0, |r| r.eval_cases)
            ))
            .wrap(),
        );
        command
    }
}

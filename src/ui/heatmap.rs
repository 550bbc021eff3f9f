//! A labelled heatmap widget (values in [0, 1], viridis-like colours shared with the PNG
//! heatmaps), with the value of the cell under the pointer on hover.

use eframe::egui;

use crate::plot::heat_colour;

/// What one heatmap shows.
pub struct Heatmap<'a> {
    pub rows: &'a [String],
    pub columns: &'a [String],
    /// `values[row][column]`; NaN cells (not computed, or undefined) are grey.
    pub values: &'a [Vec<f64>],
    /// Size of a cell in points; values are written in cells at least 34 points wide.
    pub cell: egui::Vec2,
}

impl Heatmap<'_> {
    /// Draws the grid with row labels on the left and column labels below.
    pub fn show(&self, ui: &mut egui::Ui) -> egui::Response {
        let font = egui::FontId::proportional(12.0);
        let label_width = self
            .rows
            .iter()
            .map(|r| {
                ui.fonts_mut(|f| {
                    f.layout_no_wrap(r.clone(), font.clone(), egui::Color32::WHITE)
                        .size()
                        .x
                })
            })
            .fold(0.0f32, f32::max)
            + 8.0;
        let grid = egui::vec2(
            self.cell.x * self.columns.len() as f32,
            self.cell.y * self.rows.len() as f32,
        );
        let size = egui::vec2(label_width + grid.x, grid.y + 20.0);
        let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
        let painter = ui.painter_at(rect);
        let text_colour = ui.visuals().text_color();
        let origin = rect.min + egui::vec2(label_width, 0.0);
        for (r, row) in self.values.iter().enumerate() {
            let y = origin.y + r as f32 * self.cell.y;
            painter.text(
                egui::pos2(rect.min.x, y + self.cell.y / 2.0),
                egui::Align2::LEFT_CENTER,
                &self.rows[r],
                font.clone(),
                text_colour,
            );
            for (c, value) in row.iter().enumerate() {
                let min = egui::pos2(origin.x + c as f32 * self.cell.x, y);
                let cell = egui::Rect::from_min_size(min, self.cell - egui::vec2(1.0, 1.0));
                let (red, green, blue) = heat_colour(*value);
                painter.rect_filled(cell, 0.0, egui::Color32::from_rgb(red, green, blue));
                if self.cell.x >= 34.0 && value.is_finite() {
                    let ink = if *value > 0.6 {
                        egui::Color32::BLACK
                    } else {
                        egui::Color32::WHITE
                    };
                    painter.text(
                        cell.center(),
                        egui::Align2::CENTER_CENTER,
                        format!("{value:.2}"),
                        font.clone(),
                        ink,
                    );
                }
            }
        }
        for (c, name) in self.columns.iter().enumerate() {
            painter.text(
                egui::pos2(
                    origin.x + (c as f32 + 0.5) * self.cell.x,
                    origin.y + grid.y + 3.0,
                ),
                egui::Align2::CENTER_TOP,
                name,
                font.clone(),
                text_colour,
            );
        }
        let hovered = response
            .hover_pos()
            .and_then(|p| self.cell_at(p - origin.to_vec2()));
        match hovered {
            Some((r, c)) => response.on_hover_text(format!(
                "{} / {}: {}",
                self.rows[r],
                self.columns[c],
                shown(self.values[r][c])
            )),
            None => response,
        }
    }

    /// The (row, column) under a point given relative to the grid's top-left corner.
    fn cell_at(&self, p: egui::Pos2) -> Option<(usize, usize)> {
        if p.x < 0.0 || p.y < 0.0 {
            return None;
        }
        let (r, c) = ((p.y / self.cell.y) as usize, (p.x / self.cell.x) as usize);
        (r < self.rows.len() && c < self.columns.len()).then_some((r, c))
    }
}

fn shown(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "not computed / undefined".into()
    }
}

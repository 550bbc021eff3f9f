//! The one series palette of every chart and legend in the app (the PNG plots' colours).

use eframe::egui;

use crate::plot::PALETTE;

/// The `i`-th series colour (the palette repeats).
pub(super) fn colour(i: usize) -> egui::Color32 {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    egui::Color32::from_rgb(r, g, b)
}

//! PNG line charts for the command line (sweep curves): panels of named series drawn with
//! plotters into a pixel buffer, text in egui's embedded font, written atomically as PNG.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// One curve: a name for the legend, its points, whether it is drawn dashed (e.g. "before
/// fine-tuning"), and optionally a spread per point drawn as a whisker of +- that much.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub colour_index: usize,
    pub dashed: bool,
    /// One value per point (e.g. the sd over cases); `None` draws no whiskers.
    pub spread: Option<Vec<f64>>,
}

/// One panel: a title and its curves over shared axis labels.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

/// Distinguishable line colours (Okabe-Ito, safe for colour-blind readers).
pub const PALETTE: [(u8, u8, u8); 7] = [
    (0, 114, 178),
    (213, 94, 0),
    (0, 158, 115),
    (204, 121, 167),
    (230, 159, 0),
    (86, 180, 233),
    (0, 0, 0),
];

const FONT: &str = "sans-serif";
const PANEL_WIDTH: u32 = 460;
const HEIGHT: u32 = 470;
const LEGEND_HEIGHT: u32 = 60;
/// Legend entries per row of the strip.
const LEGEND_COLUMNS: usize = 6;

fn register_fonts() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The font ships inside the binary, so plots need no system fonts.
        let bytes = epaint_default_fonts::UBUNTU_LIGHT;
        let _ = register_font(FONT, FontStyle::Normal, bytes);
        let _ = register_font(FONT, FontStyle::Bold, bytes);
    });
}

/// Draws `panels` side by side (x from `x_range`, y from 0 to 1) and writes a PNG to `path`.
pub fn write_panels_png(
    path: &Path,
    panels: &[Panel],
    x_label: &str,
    y_label: &str,
    x_range: (f64, f64),
) -> anyhow::Result<()> {
    let pixels = render_panels(panels, x_label, y_label, x_range)?;
    let width = PANEL_WIDTH * panels.len().max(1) as u32;
    let image = image::RgbImage::from_raw(width, HEIGHT, pixels)
        .ok_or_else(|| anyhow::anyhow!("plot buffer has the wrong size"))?;
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    crate::atomic::write_bytes(path, &png).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The panels as RGB pixels (`PANEL_WIDTH * panels` x `HEIGHT`).
pub fn render_panels(
    panels: &[Panel],
    x_label: &str,
    y_label: &str,
    x_range: (f64, f64),
) -> anyhow::Result<Vec<u8>> {
    register_fonts();
    let width = PANEL_WIDTH * panels.len().max(1) as u32;
    let mut pixels = vec![255u8; (width * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        // The legend gets its own strip below the panels so it never hides a curve.
        let (charts, legend) = root.split_vertically(HEIGHT - LEGEND_HEIGHT);
        let areas = charts.split_evenly((1, panels.len().max(1)));
        for (panel, area) in panels.iter().zip(areas) {
            draw_panel(&area, panel, x_label, y_label, x_range)?;
        }
        if let Some(first) = panels.first() {
            draw_legend(&legend, &first.series)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(pixels)
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    panel: &Panel,
    x_label: &str,
    y_label: &str,
    (x0, x1): (f64, f64),
) -> anyhow::Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(x0..x1, 0.0..1.02)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .x_labels(8)
        .y_labels(6)
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(draw_error)?;
    for series in &panel.series {
        let (r, g, b) = PALETTE[series.colour_index % PALETTE.len()];
        let colour = RGBColor(r, g, b);
        let style = colour.stroke_width(2);
        let points = series.points.clone();
        let drawn = if series.dashed {
            chart.draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style))
        }
        .map_err(draw_error)?;
        drawn
            .label(series.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
            .map_err(draw_error)?;
        if let Some(spread) = &series.spread {
            let whiskers = points.iter().zip(spread).map(|(&(x, y), &s)| {
                PathElement::new(vec![(x, (y - s).max(0.0)), (x, (y + s).min(1.02))], colour)
            });
            chart.draw_series(whiskers).map_err(draw_error)?;
        }
    }
    Ok(())
}

/// One entry per series: a short line (dashed where the series is) and its name, in rows.
fn draw_legend(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    series: &[Series],
) -> anyhow::Result<()> {
    let (width, _) = area.dim_in_pixel();
    let column = width as i32 / LEGEND_COLUMNS as i32;
    for (i, s) in series.iter().enumerate() {
        let x = 20 + (i % LEGEND_COLUMNS) as i32 * column;
        let y = 14 + (i / LEGEND_COLUMNS) as i32 * 22;
        let (r, g, b) = PALETTE[s.colour_index % PALETTE.len()];
        let style = RGBColor(r, g, b).stroke_width(2);
        if s.dashed {
            for dash in 0..3 {
                let from = x + dash * 9;
                area.draw(&PathElement::new(vec![(from, y), (from + 5, y)], style))
                    .map_err(draw_error)?;
            }
        } else {
            area.draw(&PathElement::new(vec![(x, y), (x + 24, y)], style))
                .map_err(draw_error)?;
        }
        area.draw(&Text::new(s.name.clone(), (x + 30, y - 8), (FONT, 14)))
            .map_err(draw_error)?;
    }
    Ok(())
}

/// A labelled heatmap of values in [0, 1] (rows top to bottom, columns left to right), each
/// cell coloured from dark blue (0) to yellow (1) with its value written in it, as a PNG.
pub fn write_heatmap_png(
    path: &Path,
    title: &str,
    rows: &[String],
    columns: &[String],
    values: &[Vec<f64>],
) -> anyhow::Result<()> {
    register_fonts();
    let cell = 54u32;
    // Room for the longest row label and for the whole title (about 8 px per character).
    let longest = rows.iter().map(|r| r.chars().count()).max().unwrap_or(4) as u32;
    let (left, top) = (20 + 8 * longest, 60u32);
    let title_width = 20 + 8 * title.chars().count() as u32;
    let width = (left + cell * columns.len() as u32 + 20).max(title_width);
    let height = top + cell * rows.len() as u32 + 50;
    let mut pixels = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        root.draw(&Text::new(title.to_string(), (10, 18), (FONT, 16)))
            .map_err(draw_error)?;
        for (r, row) in values.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                let x = (left + c as u32 * cell) as i32;
                let y = (top + r as u32 * cell) as i32;
                let colour = ramp(*value);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell as i32 - 2, y + cell as i32 - 2)],
                    colour.filled(),
                ))
                .map_err(draw_error)?;
                let ink = if value.is_finite() && *value > 0.6 {
                    BLACK
                } else {
                    WHITE
                };
                let text = if value.is_finite() {
                    format!("{value:.2}")
                } else {
                    "-".into()
                };
                root.draw(&Text::new(
                    text,
                    (x + 12, y + 20),
                    (FONT, 14).into_font().color(&ink),
                ))
                .map_err(draw_error)?;
            }
            let label = rows[r].clone();
            root.draw(&Text::new(
                label,
                (10, (top + r as u32 * cell) as i32 + 20),
                (FONT, 15),
            ))
            .map_err(draw_error)?;
        }
        for (c, name) in columns.iter().enumerate() {
            let x = (left + c as u32 * cell) as i32 + 8;
            let y = (top + cell * rows.len() as u32) as i32 + 10;
            root.draw(&Text::new(name.clone(), (x, y), (FONT, 15)))
                .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    let image = image::RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| anyhow::anyhow!("heatmap buffer has the wrong size"))?;
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    crate::atomic::write_bytes(path, &png).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// One picture in a [`write_tiles_png`] grid: RGBA pixels, row-major, with a caption.
pub struct Tile {
    pub caption: String,
    pub size: [usize; 2],
    pub rgba: Vec<u8>,
}

/// Tiles in a grid of `columns` (rows of tiles top to bottom), each captioned, under a title,
/// as a PNG (figures of activation and attention maps).
pub fn write_tiles_png(
    path: &Path,
    title: &str,
    tiles: &[Tile],
    columns: usize,
) -> anyhow::Result<()> {
    let page = Page {
        title: title.to_string(),
        lines: Vec::new(),
        tiles,
        columns,
        tables: Vec::new(),
    };
    write_page_png(path, &page)
}

/// A table drawn as text: a title, column headers, rows of cells, and the rows to draw in red
/// (what a reader must not miss).
#[derive(Debug, Clone, Default)]
pub struct TextTable {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub flagged: Vec<bool>,
}

/// A one-page figure: a title, lines of text under it, a grid of captioned tiles, then tables.
pub struct Page<'a> {
    pub title: String,
    pub lines: Vec<String>,
    pub tiles: &'a [Tile],
    pub columns: usize,
    pub tables: Vec<TextTable>,
}

/// Pixel layout constants of a [`Page`].
const GAP: u32 = 6;
const CAPTION: u32 = 20;
const LINE: u32 = 18;
/// Width per character of a table cell (the font is proportional: generous).
const CHAR_WIDTH: u32 = 8;

impl TextTable {
    /// Each column's width in pixels.
    fn column_widths(&self) -> Vec<u32> {
        (0..self.headers.len())
            .map(|c| {
                // A row of fewer cells (a note under the table) runs across; it sets no width.
                let full_rows = self.rows.iter().filter(|r| r.len() == self.headers.len());
                let widest = std::iter::once(&self.headers[c])
                    .chain(full_rows.filter_map(|r| r.get(c)))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0);
                widest as u32 * CHAR_WIDTH + 14
            })
            .collect()
    }

    fn height(&self) -> u32 {
        LINE * (self.rows.len() as u32 + 2) + GAP * 2
    }
}

/// Writes `page` as a PNG (atomically).
pub fn write_page_png(path: &Path, page: &Page<'_>) -> anyhow::Result<()> {
    let (width, height, pixels) = render_page(page)?;
    let image = image::RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| anyhow::anyhow!("page buffer has the wrong size"))?;
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    crate::atomic::write_bytes(path, &png).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// `page` as RGB pixels: (width, height, pixels).
pub fn render_page(page: &Page<'_>) -> anyhow::Result<(u32, u32, Vec<u8>)> {
    register_fonts();
    let tiles = page.tiles;
    let columns = page.columns.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(columns);
    let tile_w = tiles.iter().map(|t| t.size[0]).max().unwrap_or(1) as u32;
    let tile_h = tiles.iter().map(|t| t.size[1]).max().unwrap_or(1) as u32;
    let top = 34 + LINE * page.lines.len() as u32;
    let grid_height = rows as u32 * (tile_h + CAPTION + GAP);
    let text_width = |text: &str| 20 + CHAR_WIDTH * text.chars().count() as u32;
    let width = (columns as u32 * (tile_w + GAP) + GAP)
        .max(text_width(&page.title))
        .max(page.lines.iter().map(|l| text_width(l)).max().unwrap_or(0))
        .max(
            page.tables
                .iter()
                .map(|t| 20 + t.column_widths().iter().sum::<u32>())
                .max()
                .unwrap_or(0),
        );
    let tables_height: u32 = page.tables.iter().map(TextTable::height).sum();
    let height = top + grid_height + tables_height;
    let mut pixels = vec![255u8; (width * height * 3) as usize];
    for (i, tile) in tiles.iter().enumerate() {
        let x0 = GAP + (i % columns) as u32 * (tile_w + GAP);
        let y0 = top + (i / columns) as u32 * (tile_h + CAPTION + GAP) + CAPTION;
        for (p, px) in tile.rgba.chunks_exact(4).enumerate() {
            let (x, y) = (
                x0 + (p % tile.size[0]) as u32,
                y0 + (p / tile.size[0]) as u32,
            );
            let at = ((y * width + x) * 3) as usize;
            pixels[at..at + 3].copy_from_slice(&px[..3]);
        }
    }
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        let text = |s: &str, x: u32, y: u32, size: u32, colour: RGBColor| {
            let style = TextStyle::from((FONT, size)).color(&colour);
            root.draw(&Text::new(s.to_string(), (x as i32, y as i32), style))
                .map_err(draw_error)
        };
        text(&page.title, 10, 10, 16, BLACK)?;
        for (l, line) in page.lines.iter().enumerate() {
            text(line, 10, 34 + LINE * l as u32, 14, BLACK)?;
        }
        for (i, tile) in tiles.iter().enumerate() {
            let x0 = GAP + (i % columns) as u32 * (tile_w + GAP);
            let y0 = top + (i / columns) as u32 * (tile_h + CAPTION + GAP);
            text(&tile.caption, x0, y0 + 2, 14, BLACK)?;
        }
        let mut y = top + grid_height + GAP;
        let flag = RGBColor(200, 40, 30);
        for table in &page.tables {
            text(&table.title, 10, y, 15, BLACK)?;
            let widths = table.column_widths();
            let mut x = 10;
            for (header, w) in table.headers.iter().zip(&widths) {
                text(header, x, y + LINE, 14, RGBColor(90, 90, 90))?;
                x += w;
            }
            for (r, row) in table.rows.iter().enumerate() {
                let colour = if table.flagged.get(r).copied().unwrap_or(false) {
                    flag
                } else {
                    BLACK
                };
                let mut x = 10;
                for (cell, w) in row.iter().zip(&widths) {
                    text(cell, x, y + LINE * (r as u32 + 2), 14, colour)?;
                    x += w;
                }
            }
            y += table.height();
        }
        root.present().map_err(draw_error)?;
    }
    Ok((width, height, pixels))
}

/// The heatmap colour of a value in [0, 1]: dark blue (0) through teal to yellow (1), close
/// to viridis; grey for non-finite values. The app's heatmaps use it too.
pub fn heat_colour(value: f64) -> (u8, u8, u8) {
    if !value.is_finite() {
        return (200, 200, 200);
    }
    let stops = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = value.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (t.floor() as usize).min(stops.len() - 2);
    let f = t - i as f64;
    let mix = |a: f64, b: f64| (a + (b - a) * f) as u8;
    let (a, b) = (stops[i], stops[i + 1]);
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn ramp(value: f64) -> RGBColor {
    let (r, g, b) = heat_colour(value);
    RGBColor(r, g, b)
}

fn draw_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_put_their_colour_on_the_canvas() {
        let panel = Panel {
            title: "WT".into(),
            series: vec![Series {
                name: "l2".into(),
                points: vec![(0.0, 1.0), (0.5, 0.5), (0.9, 0.1)],
                colour_index: 1,
                dashed: false,
                spread: None,
            }],
        };
        let pixels = render_panels(&[panel], "sparsity", "Dice", (0.0, 1.0)).unwrap();
        let (r, g, b) = PALETTE[1];
        let coloured = pixels
            .chunks_exact(3)
            .filter(|p| p[0] == r && p[1] == g && p[2] == b)
            .count();
        assert!(
            coloured > 100,
            "only {coloured} pixels of the series colour"
        );
        // Text was drawn: some pixels are dark grey/black anti-aliased glyphs.
        assert!(
            pixels
                .chunks_exact(3)
                .any(|p| p[0] < 80 && p[1] < 80 && p[2] < 80)
        );
    }
}

//! A case at a glance as a PNG: its four modalities (T1, T1ce, T2, FLAIR) and the labels over
//! FLAIR on the axial slice with the most tumour, side by side (drawn by the viewer's own slice
//! renderer, `crate::render`, so the picture matches the app).

use std::path::Path;

use anyhow::{Context, Result};

use crate::data::dataset::PreparedCase;
use crate::render::{OverlayStyle, SliceAxis, Window, render_slice};

/// The axial slice with the most tumour voxels (the middle slice when there is none).
pub fn tumour_slice(case: &PreparedCase) -> usize {
    let plane = case.dims[0] * case.dims[1];
    let Some(regions) = &case.regions else {
        return case.dims[2] / 2;
    };
    (0..case.dims[2])
        .max_by_key(|&z| {
            let count = regions[z * plane..(z + 1) * plane]
                .iter()
                .filter(|&&r| r != 0)
                .count();
            // Ties (no tumour anywhere) go to the slice nearest the middle.
            (count, usize::MAX - z.abs_diff(case.dims[2] / 2))
        })
        .unwrap_or(0)
}

/// A display window from the 0.5th to the 99.5th percentile of the brain's values (so a bright
/// enhancing rim is not clipped white).
pub fn display_window(values: &[f32]) -> Window {
    let mut brain: Vec<f32> = values.iter().copied().filter(|v| *v != 0.0).collect();
    if brain.is_empty() {
        return Window::default();
    }
    brain.sort_by(f32::total_cmp);
    let at = |q: f64| brain[((brain.len() - 1) as f64 * q) as usize];
    let (low, high) = (at(0.005), at(0.995));
    Window {
        level: (low + high) / 2.0,
        width: (high - low).max(1e-3),
    }
}

/// Writes the montage of `case` at axial slice `z` to `path` (atomically).
pub fn write_montage(case: &PreparedCase, z: usize, path: &Path) -> Result<()> {
    let bare = OverlayStyle {
        visible: [false; 3],
        ..OverlayStyle::default()
    };
    let windows: Vec<Window> = case.modalities.iter().map(|m| display_window(m)).collect();
    let mut tiles: Vec<([usize; 2], Vec<u8>)> = (0..4)
        .map(|m| {
            render_slice(
                &case.modalities[m],
                None,
                case.dims,
                SliceAxis::Axial,
                z,
                windows[m],
                &bare,
            )
        })
        .collect();
    tiles.push(render_slice(
        &case.modalities[3],
        case.regions.as_deref(),
        case.dims,
        SliceAxis::Axial,
        z,
        windows[3],
        &OverlayStyle::default(),
    ));
    let [w, h] = tiles[0].0;
    let gap = 4;
    let width = tiles.len() * w + (tiles.len() - 1) * gap;
    let mut image = image::RgbImage::new(width as u32, h as u32);
    for (t, (_, pixels)) in tiles.iter().enumerate() {
        for (i, px) in pixels.chunks_exact(4).enumerate() {
            let (x, y) = (t * (w + gap) + i % w, i / w);
            image.put_pixel(x as u32, y as u32, image::Rgb([px[0], px[1], px[2]]));
        }
    }
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .context("encoding the montage")?;
    crate::atomic::write_bytes(path, &bytes).with_context(|| path.display().to_string())
}

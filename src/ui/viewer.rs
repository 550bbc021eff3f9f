//! Slice images in the viewer: the texture cache (a panel is re-uploaded only when what it
//! shows changes), uploads of the pixels `crate::render` draws, and the hover read-out.

use eframe::egui;

use crate::render::{MapPalette, OverlayStyle, REGION_NAMES, SliceAxis, Window, render_map};

/// What a slice texture shows; a texture is uploaded again only when this changes.
#[derive(Debug, Clone, PartialEq)]
pub struct TextureKey {
    pub case_id: String,
    pub axis: SliceAxis,
    pub slice: usize,
    pub modality: usize,
    pub window: Window,
    pub overlay: OverlayStyle,
    /// Changes with any segmentation the viewer shows.
    pub codes_generation: u64,
}

/// The viewer's textures by panel title, each with the key it was rendered for.
#[derive(Default)]
pub struct TextureCache {
    entries: std::collections::HashMap<String, (TextureKey, egui::TextureHandle)>,
    /// Textures rendered and uploaded so far (the frame benchmark reads it).
    pub uploads: u64,
}

impl TextureCache {
    /// The texture of panel `title` for `key`, rendering (`render` gives the plane size and
    /// RGBA pixels) and uploading it only when the key differs from last time.
    pub fn get_or_render(
        &mut self,
        ctx: &egui::Context,
        title: &str,
        key: &TextureKey,
        render: impl FnOnce() -> ([usize; 2], Vec<u8>),
    ) -> egui::TextureHandle {
        if let Some((cached, texture)) = self.entries.get(title)
            && cached == key
        {
            return texture.clone();
        }
        let (plane, pixels) = render();
        let image = egui::ColorImage::from_rgba_unmultiplied(plane, &pixels);
        let options = egui::TextureOptions::NEAREST;
        self.uploads += 1;
        let texture = match self.entries.remove(title) {
            Some((_, mut texture)) => {
                texture.set(image, options);
                texture
            }
            None => ctx.load_texture(title, image, options),
        };
        self.entries
            .insert(title.to_string(), (key.clone(), texture.clone()));
        texture
    }
}

/// The hover read-out of one voxel: (x, y, z), its position in mm from the first voxel, every
/// modality's value and the region `codes` gives it.
pub fn voxel_readout(case: &crate::worker::CaseView, voxel: usize, codes: Option<&[u8]>) -> String {
    let [nx, ny, _] = case.dims;
    let (x, y, z) = (voxel % nx, (voxel / nx) % ny, voxel / (nx * ny));
    let mm = [x, y, z]
        .iter()
        .zip(case.spacing_mm)
        .map(|(i, s)| format!("{:.1}", *i as f32 * s))
        .collect::<Vec<_>>()
        .join(", ");
    let values = super::MODALITIES
        .iter()
        .zip(case.modalities.iter())
        .map(|(name, volume)| format!("{name} {:.2}", volume[voxel]))
        .collect::<Vec<_>>()
        .join("  ");
    let code = codes.map_or(0, |c| c[voxel]);
    let region = if code == 0 {
        "background"
    } else {
        REGION_NAMES[code as usize - 1]
    };
    format!("voxel ({x}, {y}, {z}) at ({mm}) mm\n{values}\n{region}")
}

/// Uploads RGBA pixels (as the render functions give them) as a texture.
pub fn upload(
    ctx: &egui::Context,
    name: impl Into<String>,
    (size, rgba): ([usize; 2], Vec<u8>),
) -> egui::TextureHandle {
    ctx.load_texture(
        name,
        egui::ColorImage::from_rgba_unmultiplied(size, &rgba),
        egui::TextureOptions::LINEAR,
    )
}

/// A map of the open case's plane over its FLAIR slice `z` ([`render_map`]), uploaded.
#[allow(clippy::too_many_arguments)]
pub fn map_texture(
    ctx: &egui::Context,
    name: impl Into<String>,
    case: &crate::worker::CaseView,
    z: usize,
    window: Window,
    map: &[f32],
    palette: MapPalette,
    opacity: f32,
) -> egui::TextureHandle {
    let flair = &case.modalities[3];
    upload(
        ctx,
        name,
        render_map(flair, case.dims, z, window, map, palette, opacity),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hover_readout_gives_position_millimetres_and_every_modality() {
        let dims = [4, 3, 2];
        let n = 24;
        let case = crate::worker::CaseView {
            id: "c".into(),
            dims,
            spacing_mm: [1.0, 2.0, 2.5],
            modalities: std::array::from_fn(|m| (0..n).map(|i| (m * 100 + i) as f32).collect()),
            truth: None,
        };
        let voxel = 2 + 4 * (1 + 3); // (2, 1, 1)
        let codes = vec![3u8; n];
        let text = voxel_readout(&case, voxel, Some(&codes));
        assert!(
            text.contains("voxel (2, 1, 1) at (2.0, 2.0, 2.5) mm"),
            "{text}"
        );
        assert!(
            text.contains("T1 18.00") && text.contains("FLAIR 318.00"),
            "{text}"
        );
        assert!(text.ends_with("ET"), "{text}");
    }
}

//! Pixel rendering of slices, as plain RGBA pixels (no UI): a modality plane under
//! window/level with the tumour sub-regions overlaid (fill or outline, per-region toggle,
//! colour and opacity), a map coloured over a slice, and where two segmentations disagree. The
//! app's viewer, `montage` and the `attention`/`activations` commands draw with the same
//! functions, so a PNG matches what the app shows. A leaf beside `plot.rs`.

/// Which plane of the volume is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SliceAxis {
    Axial,
    Coronal,
    Sagittal,
}

impl SliceAxis {
    pub const ALL: [SliceAxis; 3] = [SliceAxis::Axial, SliceAxis::Coronal, SliceAxis::Sagittal];

    pub fn name(self) -> &'static str {
        match self {
            SliceAxis::Axial => "Axial",
            SliceAxis::Coronal => "Coronal",
            SliceAxis::Sagittal => "Sagittal",
        }
    }

    /// Number of slices along this axis for a volume of `dims` (x, y, z).
    pub fn slices(self, dims: [usize; 3]) -> usize {
        match self {
            SliceAxis::Axial => dims[2],
            SliceAxis::Coronal => dims[1],
            SliceAxis::Sagittal => dims[0],
        }
    }

    /// The slice of this axis through voxel (x, y, z).
    pub fn slice_of(self, voxel: [usize; 3]) -> usize {
        match self {
            SliceAxis::Axial => voxel[2],
            SliceAxis::Coronal => voxel[1],
            SliceAxis::Sagittal => voxel[0],
        }
    }

    /// Plane pixel (u, v) of voxel (x, y, z) on its slice (the inverse of [`SliceAxis::voxel`]).
    pub fn pixel_of(self, dims: [usize; 3], voxel: [usize; 3]) -> [usize; 2] {
        let [x, y, z] = voxel;
        let flipped = dims[2].saturating_sub(1).saturating_sub(z);
        match self {
            SliceAxis::Axial => [x, y],
            SliceAxis::Coronal => [x, flipped],
            SliceAxis::Sagittal => [y, flipped],
        }
    }

    /// Width and height of the plane.
    pub fn plane(self, dims: [usize; 3]) -> [usize; 2] {
        match self {
            SliceAxis::Axial => [dims[0], dims[1]],
            SliceAxis::Coronal => [dims[0], dims[2]],
            SliceAxis::Sagittal => [dims[1], dims[2]],
        }
    }

    /// Volume index of plane pixel (u, v) on slice `s`; v = 0 is the top row (superior for
    /// coronal and sagittal, so those planes are flipped vertically as radiologists expect).
    pub fn voxel(self, dims: [usize; 3], s: usize, u: usize, v: usize) -> usize {
        let [nx, ny, nz] = dims;
        let (x, y, z) = match self {
            SliceAxis::Axial => (u, v, s),
            SliceAxis::Coronal => (u, s, nz - 1 - v),
            SliceAxis::Sagittal => (s, u, nz - 1 - v),
        };
        debug_assert!(x < nx && y < ny && z < nz);
        x + nx * (y + ny * z)
    }
}

/// The three sub-regions drawn in the overlay, by code (1 NCR/NET, 2 ED, 3 ET).
pub const REGION_NAMES: [&str; 3] = ["NCR/NET", "ED", "ET"];

/// How labels are drawn.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OverlayStyle {
    pub visible: [bool; 3],
    pub colours: [[u8; 3]; 3],
    pub opacity: f32,
    pub outline: bool,
}

impl Default for OverlayStyle {
    fn default() -> Self {
        OverlayStyle {
            visible: [true; 3],
            // ITK-SNAP's BraTS look: red necrosis, green oedema, yellow enhancing tumour.
            colours: [[230, 40, 40], [40, 200, 70], [250, 220, 40]],
            opacity: 0.45,
            outline: false,
        }
    }
}

/// Window/level over z-scored intensities.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub level: f32,
    pub width: f32,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            level: 0.5,
            width: 5.0,
        }
    }
}

impl Window {
    fn grey(self, value: f32) -> u8 {
        let low = self.level - self.width / 2.0;
        (((value - low) / self.width.max(1e-3)).clamp(0.0, 1.0) * 255.0) as u8
    }
}

/// One plane of `intensities` with `codes` overlaid: RGBA pixels of `plane` size, row-major.
pub fn render_slice(
    intensities: &[f32],
    codes: Option<&[u8]>,
    dims: [usize; 3],
    axis: SliceAxis,
    slice_idx: usize,
    window: Window,
    style: &OverlayStyle,
) -> ([usize; 2], Vec<u8>) {
    let [w, h] = axis.plane(dims);
    let s = slice_idx.min(axis.slices(dims).saturating_sub(1));
    let code_at = |u: usize, v: usize| -> u8 { codes.map_or(0, |c| c[axis.voxel(dims, s, u, v)]) };
    let mut pixels = Vec::with_capacity(w * h * 4);
    for v in 0..h {
        for u in 0..w {
            let value = intensities[axis.voxel(dims, s, u, v)];
            // Outside the brain the z-scored volume is exactly zero: draw it black, not grey.
            let g = if value == 0.0 {
                0.0
            } else {
                window.grey(value) as f32
            };
            let mut rgb = [g; 3];
            let code = code_at(u, v);
            if (1..=3).contains(&code) && style.visible[code as usize - 1] {
                let edge = !style.outline || is_edge(u, v, [w, h], code, &code_at);
                if edge {
                    let alpha = if style.outline { 1.0 } else { style.opacity };
                    let colour = style.colours[code as usize - 1];
                    for c in 0..3 {
                        rgb[c] = rgb[c] * (1.0 - alpha) + colour[c] as f32 * alpha;
                    }
                }
            }
            pixels.extend([rgb[0] as u8, rgb[1] as u8, rgb[2] as u8, 255]);
        }
    }
    ([w, h], pixels)
}

/// How a map drawn by [`render_map`] is coloured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MapPalette {
    /// `low` dark blue through teal to yellow at `high` (the heatmaps' ramp).
    Heat { low: f32, high: f32 },
    /// Blue below zero, orange-red above, fading out towards zero; `limit` is full colour.
    Diverging { limit: f32 },
}

impl MapPalette {
    /// (colour, how strongly it covers the background in [0, 1]) of one value; NaN (no
    /// value) leaves the background bare.
    fn colour(self, value: f32) -> ([f32; 3], f32) {
        if value.is_nan() {
            return ([0.0; 3], 0.0);
        }
        match self {
            MapPalette::Heat { low, high } => {
                let t = ((value - low) / (high - low).max(1e-6)).clamp(0.0, 1.0);
                let (r, g, b) = crate::plot::heat_colour(t as f64);
                ([r as f32, g as f32, b as f32], 1.0)
            }
            MapPalette::Diverging { limit } => {
                let t = (value / limit.max(1e-6)).clamp(-1.0, 1.0);
                let colour = if t >= 0.0 {
                    [255.0, 90.0, 30.0]
                } else {
                    [40.0, 140.0, 255.0]
                };
                (colour, t.abs())
            }
        }
    }
}

/// An axial map of the case's plane (`nx * ny`, x fastest) coloured by `palette` over axial
/// slice `z` of `background` at `opacity` (1: the map alone where it covers): RGBA pixels in
/// the viewer's orientation.
pub fn render_map(
    background: &[f32],
    dims: [usize; 3],
    z: usize,
    window: Window,
    map: &[f32],
    palette: MapPalette,
    opacity: f32,
) -> ([usize; 2], Vec<u8>) {
    let bare = OverlayStyle {
        visible: [false; 3],
        ..OverlayStyle::default()
    };
    let (plane, mut pixels) =
        render_slice(background, None, dims, SliceAxis::Axial, z, window, &bare);
    if map.len() != dims[0] * dims[1] {
        // A map of another case: the slice alone rather than pixels read out of range.
        return (plane, pixels);
    }
    let map_dims = [dims[0], dims[1], 1];
    for v in 0..plane[1] {
        for u in 0..plane[0] {
            let (colour, cover) = palette.colour(map[SliceAxis::Axial.voxel(map_dims, 0, u, v)]);
            let alpha = (cover * opacity).clamp(0.0, 1.0);
            let px = &mut pixels[(v * plane[0] + u) * 4..][..3];
            for c in 0..3 {
                px[c] = (px[c] as f32 * (1.0 - alpha) + colour[c] * alpha) as u8;
            }
        }
    }
    (plane, pixels)
}

/// Whether (u, v) labelled `code` touches a pixel with another code (4-neighbourhood).
fn is_edge(
    u: usize,
    v: usize,
    [w, h]: [usize; 2],
    code: u8,
    code_at: &impl Fn(usize, usize) -> u8,
) -> bool {
    (u == 0 || code_at(u - 1, v) != code)
        || (u + 1 == w || code_at(u + 1, v) != code)
        || (v == 0 || code_at(u, v - 1) != code)
        || (v + 1 == h || code_at(u, v + 1) != code)
}

/// Where two segmentations of one plane disagree: red where only `a` has tumour, blue where
/// only `b` has, orange where both have tumour of different sub-regions, dark grey elsewhere.
pub fn render_disagreement(a: &[u8], b: &[u8], plane: [usize; 2]) -> Vec<u8> {
    let mut pixels = Vec::with_capacity(plane[0] * plane[1] * 4);
    for (x, y) in a.iter().zip(b) {
        let rgb = match (*x, *y) {
            // Agreement stays grey, tumour lighter than background, so a slice where the two
            // models agree still shows what they agree on instead of a blank square.
            (0, 0) => [25, 25, 25],
            (p, q) if p == q => [95, 95, 95],
            (_, 0) => [230, 60, 60],
            (0, _) => [70, 130, 240],
            _ => [240, 160, 40],
        };
        pixels.extend([rgb[0], rgb[1], rgb[2], 255]);
    }
    pixels
}

/// One plane of a code volume (the prediction shown beside the image).
pub fn plane_codes(codes: &[u8], dims: [usize; 3], axis: SliceAxis, slice_idx: usize) -> Vec<u8> {
    let [w, h] = axis.plane(dims);
    let s = slice_idx.min(axis.slices(dims).saturating_sub(1));
    (0..h)
        .flat_map(|v| (0..w).map(move |u| (u, v)))
        .map(|(u, v)| codes[axis.voxel(dims, s, u, v)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disagreement_colours_tell_every_case_apart() {
        // background, tumour agreed, dense only, pruned only, other region
        let dense = [0, 2, 1, 0, 1];
        let pruned = [0, 2, 0, 3, 3];
        let pixels = render_disagreement(&dense, &pruned, [5, 1]);
        let colours: Vec<&[u8]> = pixels.chunks(4).collect();
        for i in 0..colours.len() {
            for j in i + 1..colours.len() {
                assert_ne!(colours[i], colours[j], "pixels {i} and {j}");
            }
        }
    }

    #[test]
    fn a_voxel_lies_on_its_slice_at_its_pixel_in_every_plane() {
        let dims = [4, 3, 5];
        for axis in SliceAxis::ALL {
            for (x, y, z) in [(0, 0, 0), (3, 2, 4), (1, 2, 3)] {
                let [u, v] = axis.pixel_of(dims, [x, y, z]);
                let index = axis.voxel(dims, axis.slice_of([x, y, z]), u, v);
                assert_eq!(index, x + 4 * (y + 3 * z), "{axis:?} ({x}, {y}, {z})");
            }
        }
    }

    #[test]
    fn planes_index_the_right_voxels() {
        let dims = [4, 3, 2];
        // Axial slice 1, pixel (2, 1) is x 2, y 1, z 1.
        assert_eq!(SliceAxis::Axial.voxel(dims, 1, 2, 1), 2 + 4 * (1 + 3));
        // Coronal top row is the highest z.
        assert_eq!(SliceAxis::Coronal.voxel(dims, 2, 3, 0), 3 + 4 * (2 + 3));
        assert_eq!(SliceAxis::Sagittal.plane(dims), [3, 2]);
    }

    #[test]
    fn overlay_colours_only_visible_regions() {
        let dims = [2, 1, 1];
        let style = OverlayStyle {
            visible: [false, true, true],
            opacity: 1.0,
            ..OverlayStyle::default()
        };
        let (_, px) = render_slice(
            &[0.0, 0.0],
            Some(&[1, 2]),
            dims,
            SliceAxis::Axial,
            0,
            Window::default(),
            &style,
        );
        assert_eq!(&px[0..3], &[px[0], px[0], px[0]], "hidden NCR stays grey");
        assert_eq!(&px[4..7], &style.colours[1], "ED drawn in its colour");
    }
}

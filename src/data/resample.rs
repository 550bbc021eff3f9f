//! Opt-in resampling between a case's own grid and the model's isotropic 1 mm grid: images
//! trilinearly (the brain's outline by nearest neighbour, so the background stays exactly
//! zero), labels by nearest neighbour. Both grids share the first voxel's centre and the axes'
//! directions, so the affine keeps its origin and direction and only its scale changes;
//! predictions made on the 1 mm grid go back onto the case's own grid and overlay the original.

use super::dataset::PreparedCase;
use crate::metrics::findings::CaseGrid;

/// The spacing (mm) the model was trained on.
pub const MODEL_SPACING_MM: f32 = 1.0;

/// Whether a grid of `spacing_mm` differs from an isotropic `target` grid (by more than 0.1 %).
pub fn differs_from(spacing_mm: [f32; 3], target: f32) -> bool {
    spacing_mm
        .iter()
        .any(|s| (s - target).abs() > 1e-3 * target)
}

/// `grid` resampled to `spacing` mm along every axis: the same first voxel, axes and extent.
pub fn isotropic_grid(grid: &CaseGrid, spacing: f32) -> CaseGrid {
    let dims = std::array::from_fn(|a| {
        let extent = (grid.dims[a].max(1) - 1) as f64 * grid.spacing_mm[a] as f64;
        // The last voxel centre inside the extent (a hair of tolerance for rounding).
        (extent / spacing as f64 + 1e-6).floor() as usize + 1
    });
    let affine = std::array::from_fn(|r| {
        let row = grid.affine[r];
        [
            row[0] * spacing as f64 / grid.spacing_mm[0] as f64,
            row[1] * spacing as f64 / grid.spacing_mm[1] as f64,
            row[2] * spacing as f64 / grid.spacing_mm[2] as f64,
            row[3],
        ]
    });
    CaseGrid {
        dims,
        spacing_mm: [spacing; 3],
        affine,
    }
}

/// Along one axis: for each target index, the source index below it and the weight of the one
/// above (clamped at the edges).
fn axis_taps(from: &CaseGrid, to: &CaseGrid, axis: usize) -> Vec<(usize, usize, f32)> {
    let scale = to.spacing_mm[axis] as f64 / from.spacing_mm[axis] as f64;
    let last = from.dims[axis] - 1;
    (0..to.dims[axis])
        .map(|q| {
            let p = (q as f64 * scale).clamp(0.0, last as f64);
            let below = p.floor() as usize;
            let above = (below + 1).min(last);
            (below, above, (p - below as f64) as f32)
        })
        .collect()
}

/// `values` (on `from`) trilinearly interpolated at the voxel centres of `to`.
pub fn trilinear(values: &[f32], from: &CaseGrid, to: &CaseGrid) -> Vec<f32> {
    let [tx, ty, tz] = [0, 1, 2].map(|a| axis_taps(from, to, a));
    let [nx, ny, _] = from.dims;
    let at = |x: usize, y: usize, z: usize| values[x + nx * (y + ny * z)];
    let mut out = Vec::with_capacity(to.dims.iter().product());
    for &(z0, z1, wz) in &tz {
        for &(y0, y1, wy) in &ty {
            for &(x0, x1, wx) in &tx {
                let lerp = |a: f32, b: f32, w: f32| a + (b - a) * w;
                let plane = |z| {
                    lerp(
                        lerp(at(x0, y0, z), at(x1, y0, z), wx),
                        lerp(at(x0, y1, z), at(x1, y1, z), wx),
                        wy,
                    )
                };
                out.push(lerp(plane(z0), plane(z1), wz));
            }
        }
    }
    out
}

/// `codes` (on `from`) at the voxel centres of `to`, each taking the nearest source voxel.
pub fn nearest(codes: &[u8], from: &CaseGrid, to: &CaseGrid) -> Vec<u8> {
    let index = |axis: usize| -> Vec<usize> {
        let scale = to.spacing_mm[axis] as f64 / from.spacing_mm[axis] as f64;
        (0..to.dims[axis])
            .map(|q| ((q as f64 * scale).round() as usize).min(from.dims[axis] - 1))
            .collect()
    };
    let [ix, iy, iz] = [0, 1, 2].map(index);
    let [nx, ny, _] = from.dims;
    let mut out = Vec::with_capacity(to.dims.iter().product());
    for &z in &iz {
        for &y in &iy {
            for &x in &ix {
                out.push(codes[x + nx * (y + ny * z)]);
            }
        }
    }
    out
}

/// `case` on the isotropic grid of `spacing` mm: modalities trilinear inside the brain (zero
/// outside it, the brain's outline taken by nearest neighbour), labels nearest, affine scaled.
pub fn resample_case(case: &PreparedCase, spacing: f32) -> PreparedCase {
    let from = case.grid();
    resample_case_onto(case, &isotropic_grid(&from, spacing))
}

/// `case` resampled onto `to` (a grid sharing its first voxel and axes).
pub fn resample_case_onto(case: &PreparedCase, to: &CaseGrid) -> PreparedCase {
    let from = case.grid();
    let brain: Vec<u8> = (0..case.modalities[0].len())
        .map(|i| case.modalities.iter().any(|m| m[i] != 0.0) as u8)
        .collect();
    let brain = nearest(&brain, &from, to);
    let modalities = std::array::from_fn(|m| {
        let mut values = trilinear(&case.modalities[m], &from, to);
        for (v, inside) in values.iter_mut().zip(&brain) {
            if *inside == 0 {
                *v = 0.0;
            }
        }
        values
    });
    PreparedCase {
        id: case.id.clone(),
        dims: to.dims,
        spacing_mm: to.spacing_mm,
        affine: to.affine,
        modalities,
        regions: case.regions.as_ref().map(|r| nearest(r, &from, to)),
        convention: case.convention,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(dims: [usize; 3], spacing: [f32; 3]) -> CaseGrid {
        CaseGrid {
            dims,
            spacing_mm: spacing,
            affine: [
                [-(spacing[0] as f64), 0.0, 0.0, 90.0],
                [0.0, spacing[1] as f64, 0.0, -120.0],
                [0.0, 0.0, spacing[2] as f64, -60.0],
            ],
        }
    }

    #[test]
    fn the_isotropic_grid_keeps_the_first_voxel_the_axes_and_the_extent() {
        let coarse = grid([10, 20, 6], [0.94, 0.94, 3.0]);
        let fine = isotropic_grid(&coarse, 1.0);
        assert_eq!(fine.dims, [9, 18, 16]);
        assert_eq!(fine.affine[0], [-1.0, 0.0, 0.0, 90.0]);
        assert_eq!(fine.affine[2], [0.0, 0.0, 1.0, -60.0]);
        // A world point lands on the same spot through either grid.
        let world = coarse.to_mm([3.0, 4.0, 2.0]);
        let fine_index = [3.0 * 0.94, 4.0 * 0.94, 2.0 * 3.0];
        let through_fine = fine.to_mm(fine_index);
        for a in 0..3 {
            assert!(
                (world[a] - through_fine[a]).abs() < 1e-6,
                "{world:?} {through_fine:?}"
            );
        }
    }

    #[test]
    fn trilinear_reproduces_a_linear_ramp_and_nearest_keeps_labels() {
        let from = grid([5, 4, 3], [2.0, 2.0, 3.0]);
        let to = isotropic_grid(&from, 1.0);
        let ramp: Vec<f32> = (0..60)
            .map(|i| {
                let (x, y, z) = (i % 5, (i / 5) % 4, i / 20);
                // Linear in millimetres: 0.5 per mm of x, 0.25 per mm of y, 1 per mm of z.
                0.5 * (2 * x) as f32 + 0.25 * (2 * y) as f32 + (3 * z) as f32
            })
            .collect();
        let fine = trilinear(&ramp, &from, &to);
        assert_eq!(to.dims, [9, 7, 7]);
        for (i, v) in fine.iter().enumerate() {
            let (x, y, z) = (i % 9, (i / 9) % 7, i / 63);
            let expected = 0.5 * x as f32 + 0.25 * y as f32 + z as f32;
            assert!((v - expected).abs() < 1e-5, "voxel {i}: {v} vs {expected}");
        }
        let labels: Vec<u8> = (0..60).map(|i| (i % 5) as u8).collect();
        let fine_labels = nearest(&labels, &from, &to);
        // Fine x = 3 mm is source x = 1.5 (rounds to 2); fine x = 2 mm is source x = 1.
        assert_eq!(&fine_labels[..9], &[0, 1, 1, 2, 2, 3, 3, 4, 4]);
        // And back onto the coarse grid: the original labels exactly.
        assert_eq!(nearest(&fine_labels, &to, &from), labels);
    }
}

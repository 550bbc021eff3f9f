//! Surface distances between two 3-D masks, in millimetres: HD95 and the normalised surface
//! distance (NSD, surface Dice at a tolerance).
//!
//! Surfaces are the mask voxels with at least one 6-neighbour outside the mask (or on the volume
//! border), as MedPy and the BraTS evaluation find them. Distances come from an exact Euclidean
//! distance transform with anisotropic voxel spacing (Felzenszwalb & Huttenlocher 2012,
//! "Distance Transforms of Sampled Functions"), in mm: the BraTS evaluation package works in
//! voxels and ignores spacing, which is the same on BraTS's 1 mm grids and wrong on anisotropic
//! data.
//!
//! HD95 by default pools both directions' surface distances and takes one 95th percentile (the
//! BraTS evaluation package and MedPy); [`Hd95Convention::MaxOfDirected`] takes the larger of
//! the two directed 95th percentiles instead (what this project did before, and CaPTk's
//! reading of "symmetric"). The two differ when one surface has a few far-off voxels (a small
//! false-positive blob far from the tumour). Empty masks: both empty gives 0; exactly one empty
//! gives the volume's diagonal in mm (373.13 on BraTS's 240x240x155 at 1 mm).

use serde::{Deserialize, Serialize};

/// How HD95 combines the two directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hd95Convention {
    /// One 95th percentile over both directions' distances pooled (BraTS evaluation, MedPy).
    #[default]
    Pooled,
    /// The larger of the two directed 95th percentiles.
    MaxOfDirected,
}

/// HD95 in mm between `a` and `b`, masks over a grid `dims` (x fastest) of `spacing_mm`, by
/// the default (pooled) convention.
pub fn hd95(a: &[bool], b: &[bool], dims: [usize; 3], spacing_mm: [f32; 3]) -> f64 {
    hd95_with(a, b, dims, spacing_mm, Hd95Convention::Pooled)
}

/// HD95 in mm by `convention`.
pub fn hd95_with(
    a: &[bool],
    b: &[bool],
    dims: [usize; 3],
    spacing_mm: [f32; 3],
    convention: Hd95Convention,
) -> f64 {
    let Some(d) = SurfaceDistances::between(a, b, dims, spacing_mm) else {
        return empty_case_distance(a, b, dims, spacing_mm);
    };
    match convention {
        Hd95Convention::Pooled => {
            let mut all = d.a_to_b;
            all.extend(d.b_to_a);
            percentile_95(all)
        }
        Hd95Convention::MaxOfDirected => percentile_95(d.a_to_b).max(percentile_95(d.b_to_a)),
    }
}

/// Normalised surface distance: the share of both surfaces' voxels that lie within
/// `tolerance_mm` of the other surface (1 for two empty masks, 0 when exactly one is empty).
pub fn nsd(
    a: &[bool],
    b: &[bool],
    dims: [usize; 3],
    spacing_mm: [f32; 3],
    tolerance_mm: f64,
) -> f64 {
    let Some(d) = SurfaceDistances::between(a, b, dims, spacing_mm) else {
        let both_empty = !a.iter().any(|v| *v) && !b.iter().any(|v| *v);
        return if both_empty { 1.0 } else { 0.0 };
    };
    let close = |ds: &[f64]| ds.iter().filter(|d| **d <= tolerance_mm).count();
    (close(&d.a_to_b) + close(&d.b_to_a)) as f64 / (d.a_to_b.len() + d.b_to_a.len()) as f64
}

/// HD95 when at least one mask is empty: 0 for both, the diagonal for one.
fn empty_case_distance(a: &[bool], b: &[bool], dims: [usize; 3], spacing_mm: [f32; 3]) -> f64 {
    if !a.iter().any(|v| *v) && !b.iter().any(|v| *v) {
        0.0
    } else {
        diagonal_mm(dims, spacing_mm)
    }
}

/// Each surface voxel's distance to the other mask's surface, both ways.
struct SurfaceDistances {
    a_to_b: Vec<f64>,
    b_to_a: Vec<f64>,
}

impl SurfaceDistances {
    /// `None` when either mask is empty (no surface to measure from).
    fn between(
        a: &[bool],
        b: &[bool],
        dims: [usize; 3],
        spacing_mm: [f32; 3],
    ) -> Option<SurfaceDistances> {
        let n: usize = dims.iter().product();
        assert!(a.len() == n && b.len() == n, "masks must cover the grid");
        if !a.iter().any(|v| *v) || !b.iter().any(|v| *v) {
            return None;
        }
        // Surfaces on the whole grid (its border is a surface), distances within the box around
        // both masks: every surface voxel lies in it, and the distance transform of a box is
        // exact for features inside it. A tumour's box is about 1 % of a BraTS volume.
        let (surface_a, surface_b) = (surface(a, dims), surface(b, dims));
        let crop = Crop::around(a, b, dims);
        let (surface_a, surface_b) = (crop.cut(&surface_a), crop.cut(&surface_b));
        let to_b = distance_to(&surface_b, crop.dims, spacing_mm);
        let to_a = distance_to(&surface_a, crop.dims, spacing_mm);
        let on = |surface: &[bool], distance: &[f64]| -> Vec<f64> {
            surface
                .iter()
                .zip(distance)
                .filter(|(s, _)| **s)
                .map(|(_, d)| *d)
                .collect()
        };
        Some(SurfaceDistances {
            a_to_b: on(&surface_a, &to_b),
            b_to_a: on(&surface_b, &to_a),
        })
    }
}

/// A box of the grid: its first voxel and its size per axis.
struct Crop {
    origin: [usize; 3],
    dims: [usize; 3],
    grid: [usize; 3],
}

impl Crop {
    /// The bounding box of the voxels set in `a` or `b` (at least one is set).
    fn around(a: &[bool], b: &[bool], grid: [usize; 3]) -> Crop {
        let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
        let [nx, ny, _] = grid;
        for (i, _) in a.iter().zip(b).enumerate().filter(|(_, (x, y))| **x || **y) {
            let at = [i % nx, (i / nx) % ny, i / (nx * ny)];
            for axis in 0..3 {
                lo[axis] = lo[axis].min(at[axis]);
                hi[axis] = hi[axis].max(at[axis]);
            }
        }
        Crop {
            origin: lo,
            dims: std::array::from_fn(|axis| hi[axis] + 1 - lo[axis]),
            grid,
        }
    }

    /// The box's values of a whole-grid mask, x fastest.
    fn cut(&self, mask: &[bool]) -> Vec<bool> {
        let [nx, ny, _] = self.grid;
        let [ox, oy, oz] = self.origin;
        let [cx, cy, cz] = self.dims;
        let mut out = Vec::with_capacity(cx * cy * cz);
        for z in oz..oz + cz {
            for y in oy..oy + cy {
                let row = nx * (y + ny * z);
                out.extend_from_slice(&mask[row + ox..row + ox + cx]);
            }
        }
        out
    }
}

/// The length of the grid's diagonal in mm.
pub fn diagonal_mm(dims: [usize; 3], spacing_mm: [f32; 3]) -> f64 {
    (0..3)
        .map(|i| (dims[i] as f64 * spacing_mm[i] as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Mask voxels with a 6-neighbour outside the mask or outside the grid.
fn surface(mask: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let [nx, ny, nz] = dims;
    let mut out = vec![false; mask.len()];
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let i = x + nx * (y + ny * z);
                if !mask[i] {
                    continue;
                }
                let on_border =
                    x == 0 || y == 0 || z == 0 || x + 1 == nx || y + 1 == ny || z + 1 == nz;
                out[i] = on_border
                    || !mask[i - 1]
                    || !mask[i + 1]
                    || !mask[i - nx]
                    || !mask[i + nx]
                    || !mask[i - nx * ny]
                    || !mask[i + nx * ny];
            }
        }
    }
    out
}

/// Euclidean distance in mm from every voxel to the nearest `feature` voxel.
fn distance_to(feature: &[bool], dims: [usize; 3], spacing_mm: [f32; 3]) -> Vec<f64> {
    let mut squared: Vec<f64> = feature
        .iter()
        .map(|f| if *f { 0.0 } else { f64::INFINITY })
        .collect();
    let strides = [1, dims[0], dims[0] * dims[1]];
    for axis in 0..3 {
        let len = dims[axis];
        let step = strides[axis];
        let spacing = spacing_mm[axis] as f64;
        let mut line = vec![0.0; len];
        let mut result = vec![0.0; len];
        // Every line along `axis`: start indices are all voxels whose coordinate on `axis` is 0.
        for start in 0..squared.len() {
            if !(start / step).is_multiple_of(len) {
                continue;
            }
            for (k, v) in line.iter_mut().enumerate() {
                *v = squared[start + k * step];
            }
            squared_distance_1d(&line, spacing, &mut result);
            for (k, v) in result.iter().enumerate() {
                squared[start + k * step] = *v;
            }
        }
    }
    squared.into_iter().map(f64::sqrt).collect()
}

/// 1-D squared distance transform of `f` (lower envelope of parabolas) for samples `spacing` mm
/// apart: `out[q] = min_p (f[p] + ((q - p) * spacing)^2)`.
fn squared_distance_1d(f: &[f64], spacing: f64, out: &mut [f64]) {
    let n = f.len();
    let pos = |i: usize| i as f64 * spacing;
    // Parabola apexes (indices) in the envelope and the boundaries between them.
    let mut apex = vec![0usize; n];
    let mut bound = vec![0.0f64; n + 1];
    let mut k: usize = 0;
    let first = f.iter().position(|v| v.is_finite());
    let Some(first) = first else {
        out.fill(f64::INFINITY);
        return;
    };
    apex[0] = first;
    bound[0] = f64::NEG_INFINITY;
    bound[1] = f64::INFINITY;
    for q in first + 1..n {
        if !f[q].is_finite() {
            continue;
        }
        loop {
            let p = apex[k];
            let s =
                ((f[q] + pos(q) * pos(q)) - (f[p] + pos(p) * pos(p))) / (2.0 * (pos(q) - pos(p)));
            // bound[0] is -inf, so this never steps below the first parabola.
            if s <= bound[k] {
                k -= 1;
                continue;
            }
            k += 1;
            apex[k] = q;
            bound[k] = s;
            bound[k + 1] = f64::INFINITY;
            break;
        }
    }
    let mut k = 0;
    for (q, o) in out.iter_mut().enumerate() {
        while bound[k + 1] < pos(q) {
            k += 1;
        }
        let d = pos(q) - pos(apex[k]);
        *o = d * d + f[apex[k]];
    }
}

/// The 95th percentile (linear interpolation, as numpy's default) of `values` (not empty).
fn percentile_95(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = 0.95 * (values.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (rank - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::rng::SplitMix64;

    /// Distances by brute force over all feature voxels.
    fn brute_distance(feature: &[bool], dims: [usize; 3], s: [f32; 3]) -> Vec<f64> {
        let coords = |i: usize| {
            [
                (i % dims[0]) as f64 * s[0] as f64,
                ((i / dims[0]) % dims[1]) as f64 * s[1] as f64,
                (i / (dims[0] * dims[1])) as f64 * s[2] as f64,
            ]
        };
        (0..feature.len())
            .map(|i| {
                let c = coords(i);
                (0..feature.len())
                    .filter(|j| feature[*j])
                    .map(|j| {
                        let d = coords(j);
                        ((c[0] - d[0]).powi(2) + (c[1] - d[1]).powi(2) + (c[2] - d[2]).powi(2))
                            .sqrt()
                    })
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    #[test]
    fn distance_transform_matches_brute_force_with_anisotropic_spacing() {
        let dims = [7, 5, 6];
        let spacing = [1.0, 2.5, 0.7];
        let mut rng = SplitMix64::new(7);
        for _ in 0..5 {
            let feature: Vec<bool> = (0..210).map(|_| rng.uniform() < 0.05).collect();
            if !feature.iter().any(|f| *f) {
                continue;
            }
            let fast = distance_to(&feature, dims, spacing);
            let slow = brute_distance(&feature, dims, spacing);
            for (f, s) in fast.iter().zip(&slow) {
                assert!((f - s).abs() < 1e-9, "{f} vs {s}");
            }
        }
    }

    #[test]
    fn surface_distances_within_the_box_are_those_over_the_whole_grid() {
        let dims = [14, 11, 9];
        let spacing = [1.0, 0.8, 2.5];
        let mut rng = SplitMix64::new(3);
        // Sparse masks in a corner region, some voxels on the grid's border.
        let mask = |rng: &mut SplitMix64| -> Vec<bool> {
            (0..dims.iter().product::<usize>())
                .map(|i| {
                    let (x, y) = (i % 14, (i / 14) % 11);
                    x < 9 && y > 2 && rng.uniform() < 0.3
                })
                .collect()
        };
        for _ in 0..4 {
            let (a, b) = (mask(&mut rng), mask(&mut rng));
            let d = SurfaceDistances::between(&a, &b, dims, spacing).unwrap();
            let (sa, sb) = (surface(&a, dims), surface(&b, dims));
            let whole = |from: &[bool], to: &[bool]| -> Vec<f64> {
                let distance = brute_distance(to, dims, spacing);
                (0..from.len())
                    .filter(|i| from[*i])
                    .map(|i| distance[i])
                    .collect()
            };
            assert_eq!(d.a_to_b.len(), whole(&sa, &sb).len());
            for (cropped, full) in d.a_to_b.iter().zip(whole(&sa, &sb)) {
                assert!((cropped - full).abs() < 1e-9, "{cropped} vs {full}");
            }
            for (cropped, full) in d.b_to_a.iter().zip(whole(&sb, &sa)) {
                assert!((cropped - full).abs() < 1e-9, "{cropped} vs {full}");
            }
        }
    }

    /// A 6x6x6 cube at (5 + offset, 5, 5) in a 20^3 grid.
    fn cube(offset: usize) -> Vec<bool> {
        (0..8000)
            .map(|i| {
                let (x, y, z) = (i % 20, (i / 20) % 20, i / 400);
                (5 + offset..11 + offset).contains(&x)
                    && (5..11).contains(&y)
                    && (5..11).contains(&z)
            })
            .collect()
    }

    #[test]
    fn shifted_cube_has_hd95_of_the_shift() {
        let dims = [20, 20, 20];
        let spacing = [2.0, 1.0, 1.0];
        assert_eq!(hd95(&cube(0), &cube(0), dims, spacing), 0.0);
        // Shifted 3 voxels along x (2 mm each): the far faces are 6 mm apart.
        let d = hd95(&cube(0), &cube(3), dims, spacing);
        assert!((d - 6.0).abs() < 1e-9, "{d}");
    }

    #[test]
    fn a_far_blob_moves_the_directed_hd95_but_not_the_pooled_one() {
        // Identical 8x8x8 cubes (296 surface voxels each); the prediction adds a line of 20
        // voxels 16-35 mm away: 6.3% of the prediction's surface, 3.3% of both pooled.
        let dims = [50, 12, 12];
        let at = |x: usize, y: usize, z: usize| x + 50 * (y + 12 * z);
        let mut truth = vec![false; 50 * 144];
        for z in 2..10 {
            for y in 2..10 {
                for x in 2..10 {
                    truth[at(x, y, z)] = true;
                }
            }
        }
        let mut pred = truth.clone();
        for x in 25..45 {
            pred[at(x, 5, 5)] = true;
        }
        let pooled = hd95(&pred, &truth, dims, [1.0; 3]);
        let directed = hd95_with(&pred, &truth, dims, [1.0; 3], Hd95Convention::MaxOfDirected);
        assert_eq!(pooled, 0.0);
        // The 95th percentile of 316 values falls on the 4th far voxel (19 mm) and a bit beyond.
        assert!(directed > 19.0 && directed < 20.0, "{directed}");
    }

    #[test]
    fn nsd_counts_surface_voxels_within_the_tolerance() {
        let dims = [20, 20, 20];
        assert_eq!(nsd(&cube(0), &cube(0), dims, [1.0; 3], 1.0), 1.0);
        let shifted = nsd(&cube(0), &cube(2), dims, [1.0; 3], 1.0);
        assert!(shifted > 0.3 && shifted < 1.0, "{shifted}");
        assert_eq!(nsd(&cube(0), &cube(2), dims, [1.0; 3], 2.0), 1.0);
        let empty = vec![false; 8000];
        assert_eq!(nsd(&empty, &empty, dims, [1.0; 3], 1.0), 1.0);
        assert_eq!(nsd(&empty, &cube(0), dims, [1.0; 3], 1.0), 0.0);
    }

    #[test]
    fn empty_masks_follow_the_brats_convention() {
        let empty = vec![false; 8];
        let mut one = vec![false; 8];
        one[3] = true;
        assert_eq!(hd95(&empty, &empty, [2, 2, 2], [1.0; 3]), 0.0);
        let d = hd95(&empty, &one, [2, 2, 2], [1.0; 3]);
        assert!((d - 12f64.sqrt()).abs() < 1e-12);
    }
}

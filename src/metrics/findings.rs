//! What a clinician reads of one case: each region's volume in the ground truth, the dense and
//! the pruned segmentation, and the lesion list (26-connected components, as lesion-wise
//! scoring finds them) with volume, centroid in scanner millimetres, and how much of each lesion
//! each model labelled, lesions the dense model found and the pruned one lost flagged.

use serde::Serialize;

use super::lesions::components;
use super::{Region, RegionMap, SubRegionScores, region_volumes_ml};

/// Where a case's voxels lie: the grid and its voxel-to-world affine (3x4, row-major, mm).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaseGrid {
    pub dims: [usize; 3],
    pub spacing_mm: [f32; 3],
    pub affine: [[f64; 4]; 3],
}

impl CaseGrid {
    /// The world position (mm) of a voxel position (fractional indices allowed).
    pub fn to_mm(&self, voxel: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|r| {
            let row = self.affine[r];
            row[0] * voxel[0] + row[1] * voxel[1] + row[2] * voxel[2] + row[3]
        })
    }

    fn voxel_ml(&self) -> f64 {
        self.spacing_mm.iter().map(|s| *s as f64).product::<f64>() / 1000.0
    }
}

/// Each region's volume (ml) in the segmentations a case has.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VolumeTable {
    pub truth_ml: Option<SubRegionScores>,
    pub dense_ml: Option<SubRegionScores>,
    pub pruned_ml: Option<SubRegionScores>,
}

/// The case's segmentations, as sub-region code maps on its grid.
#[derive(Debug, Clone, Copy, Default)]
pub struct Segmentations<'a> {
    pub truth: Option<&'a RegionMap>,
    pub dense: Option<&'a RegionMap>,
    pub pruned: Option<&'a RegionMap>,
}

impl Segmentations<'_> {
    /// The volume table of every segmentation present.
    pub fn volumes(&self, grid: &CaseGrid) -> VolumeTable {
        let volumes = |map: Option<&RegionMap>| map.map(|m| region_volumes_ml(m, grid.spacing_mm));
        VolumeTable {
            truth_ml: volumes(self.truth),
            dense_ml: volumes(self.dense),
            pruned_ml: volumes(self.pruned),
        }
    }

    /// The segmentation lesions are listed from: the ground truth when present, else the dense
    /// model's.
    fn reference(&self) -> Option<(LesionOrigin, &RegionMap)> {
        match (self.truth, self.dense) {
            (Some(truth), _) => Some((LesionOrigin::Truth, truth)),
            (None, Some(dense)) => Some((LesionOrigin::Dense, dense)),
            (None, None) => None,
        }
    }
}

/// Which segmentation a listed lesion is a component of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LesionOrigin {
    /// The ground truth (the reference when the case has one).
    Truth,
    /// The dense model's segmentation (the reference when the case has no ground truth).
    Dense,
    /// A model's component touching no reference lesion: a lesion the reference does not have.
    ModelsOnly,
}

impl LesionOrigin {
    pub fn name(self) -> &'static str {
        match self {
            LesionOrigin::Truth => "truth",
            LesionOrigin::Dense => "dense",
            LesionOrigin::ModelsOnly => "models only",
        }
    }
}

/// One lesion of one region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lesion {
    pub region: Region,
    pub origin: LesionOrigin,
    pub voxels: usize,
    pub volume_ml: f64,
    /// Mean voxel index (x, y, z).
    pub centroid_voxel: [f64; 3],
    /// The centroid in the case's world coordinates (its header's affine), mm.
    pub centroid_mm: [f64; 3],
    /// The voxel nearest the centroid that belongs to the lesion (where a viewer jumps: a
    /// crescent's centroid can lie outside it).
    pub anchor_voxel: [usize; 3],
    /// Volume (ml) inside the lesion that the dense model labels as the region (`None`: no dense
    /// segmentation given).
    pub dense_ml: Option<f64>,
    /// The same for the pruned model.
    pub pruned_ml: Option<f64>,
}

/// Components the models add outside every reference lesion are listed from this volume (ml)
/// up: BraTS 2023's smallest counted lesion (50 mm³); smaller specks are only counted.
pub const MIN_LISTED_EXTRA_ML: f64 = 0.05;

impl Lesion {
    /// Whether a list shows it: every reference lesion, and what the models add from
    /// [`MIN_LISTED_EXTRA_ML`] up.
    pub fn worth_listing(&self) -> bool {
        self.origin != LesionOrigin::ModelsOnly || self.volume_ml >= MIN_LISTED_EXTRA_ML
    }

    /// The dense model found this lesion (labelled part of it) and the pruned model did not.
    pub fn lost_by_pruning(&self) -> bool {
        matches!((self.dense_ml, self.pruned_ml), (Some(d), Some(p)) if d > 0.0 && p == 0.0)
    }
}

/// What happened to a lesion, in words (the pruned model's part left out when `pruned_ml` is
/// `None`).
pub fn lesion_status(lesion: &Lesion) -> &'static str {
    let found = |v: Option<f64>| v.map(|v| v > 0.0);
    match (
        lesion.origin,
        found(lesion.dense_ml),
        found(lesion.pruned_ml),
    ) {
        (LesionOrigin::ModelsOnly, Some(true), Some(true)) => "both models add it",
        (LesionOrigin::ModelsOnly, Some(true), _) => "dense adds it",
        (LesionOrigin::ModelsOnly, _, Some(true)) => "pruned adds it",
        (_, Some(true), Some(false)) => "LOST by pruning",
        (_, Some(true), Some(true)) => "both found it",
        (_, Some(false), Some(true)) => "only pruned found it",
        (_, Some(false), Some(false)) => "both missed it",
        (_, Some(true), None) => "dense found it",
        (_, Some(false), None) => "dense missed it",
        _ => "",
    }
}

/// The lesions of `region`: the reference's components (largest first), then the components of
/// the models' segmentations that touch no reference lesion (largest first), each with the
/// volume each model labels inside it.
pub fn lesions(maps: &Segmentations<'_>, grid: &CaseGrid, region: Region) -> Vec<Lesion> {
    let Some((origin, reference)) = maps.reference() else {
        return Vec::new();
    };
    let mask = |map: &RegionMap| -> Vec<bool> { map.iter().map(|c| region.contains(*c)).collect() };
    let reference_mask = mask(reference);
    let dense_mask = maps.dense.map(mask);
    let pruned_mask = maps.pruned.map(mask);
    let measured = MeasuredMasks {
        dense: dense_mask.as_deref(),
        pruned: pruned_mask.as_deref(),
        grid,
        region,
    };
    let mut listed = measured.components_of(&reference_mask, origin);
    // What the models label outside every reference lesion (for a dense reference: what only
    // the pruned model adds).
    let models_outside: Vec<bool> = (0..reference_mask.len())
        .map(|i| {
            let labelled = |m: &Option<Vec<bool>>| m.as_ref().is_some_and(|m| m[i]);
            let in_reference_model = origin == LesionOrigin::Dense;
            !reference_mask[i]
                && ((labelled(&dense_mask) && !in_reference_model) || labelled(&pruned_mask))
        })
        .collect();
    let extras = measured.components_of(&models_outside, LesionOrigin::ModelsOnly);
    // A component outside the reference may still touch a reference lesion (it grows out of
    // it): only those that touch none are lesions of their own.
    let touching = touches(&reference_mask, grid.dims);
    listed.extend(
        extras
            .into_iter()
            .filter(|lesion| !touching(&lesion.anchor_voxel, &models_outside)),
    );
    listed
}

/// The models' masks a component is measured against.
struct MeasuredMasks<'a> {
    dense: Option<&'a [bool]>,
    pruned: Option<&'a [bool]>,
    grid: &'a CaseGrid,
    region: Region,
}

impl MeasuredMasks<'_> {
    /// Every component of `mask` as a lesion, largest first.
    fn components_of(&self, mask: &[bool], origin: LesionOrigin) -> Vec<Lesion> {
        let dims = self.grid.dims;
        let (labels, count) = components(mask, dims);
        let mut sums = vec![Accumulator::default(); count];
        for (i, label) in labels.iter().enumerate() {
            if *label == 0 {
                continue;
            }
            let sum = &mut sums[*label as usize - 1];
            let (x, y, z) = (
                i % dims[0],
                (i / dims[0]) % dims[1],
                i / (dims[0] * dims[1]),
            );
            sum.add([x, y, z]);
            sum.dense += self.dense.is_some_and(|m| m[i]) as usize;
            sum.pruned += self.pruned.is_some_and(|m| m[i]) as usize;
        }
        // The member nearest each centroid, found in a second pass once the centroids are known.
        let centroids: Vec<[f64; 3]> = sums.iter().map(Accumulator::centroid).collect();
        let mut anchors: Vec<(f64, [usize; 3])> = vec![(f64::INFINITY, [0; 3]); count];
        for (i, label) in labels.iter().enumerate() {
            if *label == 0 {
                continue;
            }
            let k = *label as usize - 1;
            let voxel = [
                i % dims[0],
                (i / dims[0]) % dims[1],
                i / (dims[0] * dims[1]),
            ];
            let distance: f64 = (0..3)
                .map(|a| {
                    ((voxel[a] as f64 - centroids[k][a]) * self.grid.spacing_mm[a] as f64).powi(2)
                })
                .sum();
            if distance < anchors[k].0 {
                anchors[k] = (distance, voxel);
            }
        }
        let voxel_ml = self.grid.voxel_ml();
        let mut lesions: Vec<Lesion> = sums
            .iter()
            .zip(centroids.iter().zip(&anchors))
            .map(|(sum, (centroid, anchor))| Lesion {
                region: self.region,
                origin,
                voxels: sum.voxels,
                volume_ml: sum.voxels as f64 * voxel_ml,
                centroid_voxel: *centroid,
                centroid_mm: self.grid.to_mm(*centroid),
                anchor_voxel: anchor.1,
                dense_ml: self.dense.map(|_| sum.dense as f64 * voxel_ml),
                pruned_ml: self.pruned.map(|_| sum.pruned as f64 * voxel_ml),
            })
            .collect();
        lesions.sort_by_key(|lesion| std::cmp::Reverse(lesion.voxels));
        lesions
    }
}

/// Running sums of one component.
#[derive(Debug, Clone, Copy, Default)]
struct Accumulator {
    voxels: usize,
    sum: [f64; 3],
    dense: usize,
    pruned: usize,
}

impl Accumulator {
    fn add(&mut self, voxel: [usize; 3]) {
        self.voxels += 1;
        for (sum, v) in self.sum.iter_mut().zip(voxel) {
            *sum += v as f64;
        }
    }

    fn centroid(&self) -> [f64; 3] {
        self.sum.map(|s| s / self.voxels.max(1) as f64)
    }
}

/// Whether the component of `mask` holding `start` touches (26-connectivity) a voxel of
/// `reference`.
fn touches(reference: &[bool], dims: [usize; 3]) -> impl Fn(&[usize; 3], &[bool]) -> bool + '_ {
    move |start, mask| {
        let index = |v: [usize; 3]| v[0] + dims[0] * (v[1] + dims[1] * v[2]);
        let mut seen = vec![false; mask.len()];
        let mut stack = vec![*start];
        seen[index(*start)] = true;
        while let Some(v) = stack.pop() {
            for neighbour in neighbours(v, dims) {
                let i = index(neighbour);
                if reference[i] {
                    return true;
                }
                if mask[i] && !seen[i] {
                    seen[i] = true;
                    stack.push(neighbour);
                }
            }
        }
        false
    }
}

/// The up to 26 voxels around `v` inside the grid.
fn neighbours(v: [usize; 3], dims: [usize; 3]) -> impl Iterator<Item = [usize; 3]> {
    (0..27).filter(|k| *k != 13).filter_map(move |k| {
        let step = [k % 3, (k / 3) % 3, k / 9];
        let mut out = [0; 3];
        for a in 0..3 {
            let moved = (v[a] + step[a]).checked_sub(1)?;
            if moved >= dims[a] {
                return None;
            }
            out[a] = moved;
        }
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIMS: [usize; 3] = [30, 20, 10];

    fn grid(spacing: f32) -> CaseGrid {
        let s = spacing as f64;
        CaseGrid {
            dims: DIMS,
            spacing_mm: [spacing; 3],
            affine: [
                [-s, 0.0, 0.0, 100.0],
                [0.0, s, 0.0, -50.0],
                [0.0, 0.0, s, 7.0],
            ],
        }
    }

    /// A code map with `code` in each box ([lo, hi) per axis).
    fn boxes(list: &[([usize; 3], [usize; 3], u8)]) -> Vec<u8> {
        let mut map = vec![0u8; DIMS.iter().product()];
        for (lo, hi, code) in list {
            for z in lo[2]..hi[2] {
                for y in lo[1]..hi[1] {
                    for x in lo[0]..hi[0] {
                        map[x + DIMS[0] * (y + DIMS[1] * z)] = *code;
                    }
                }
            }
        }
        map
    }

    #[test]
    fn a_lesion_the_pruned_model_misses_is_flagged_with_its_volume_and_world_centroid() {
        // Two enhancing lesions: 4x4x4 at the origin corner and 2x2x2 further on.
        let truth = boxes(&[([0, 0, 0], [4, 4, 4], 3), ([20, 10, 5], [22, 12, 7], 3)]);
        let dense = truth.clone();
        // The pruned model finds the big one and labels a blob elsewhere.
        let pruned = boxes(&[([0, 0, 0], [4, 4, 4], 3), ([10, 15, 0], [11, 16, 1], 3)]);
        let maps = Segmentations {
            truth: Some(&truth),
            dense: Some(&dense),
            pruned: Some(&pruned),
        };
        let list = lesions(&maps, &grid(2.0), Region::Et);
        assert_eq!(list.len(), 3, "{list:?}");
        let big = &list[0];
        assert_eq!((big.origin, big.voxels), (LesionOrigin::Truth, 64));
        assert!((big.volume_ml - 64.0 * 8.0 / 1000.0).abs() < 1e-12);
        assert_eq!(big.centroid_voxel, [1.5, 1.5, 1.5]);
        assert_eq!(big.centroid_mm, [97.0, -47.0, 10.0]);
        assert!(!big.lost_by_pruning());
        let small = &list[1];
        assert_eq!(small.voxels, 8);
        assert_eq!(small.anchor_voxel, [20, 10, 5]);
        assert_eq!(small.pruned_ml, Some(0.0));
        assert!(small.lost_by_pruning());
        assert_eq!(lesion_status(small), "LOST by pruning");
        let extra = &list[2];
        assert_eq!((extra.origin, extra.voxels), (LesionOrigin::ModelsOnly, 1));
        assert_eq!((extra.dense_ml, extra.pruned_ml), (Some(0.0), Some(0.008)));
        // A one-voxel speck the pruned model adds is counted, not listed; a small true lesion is.
        assert!(!extra.worth_listing() && small.worth_listing());
    }

    #[test]
    fn spacing_scales_volumes_and_an_overgrowth_is_not_a_lesion_of_its_own() {
        let truth = boxes(&[([5, 5, 2], [9, 9, 6], 1)]);
        // The model labels the lesion and a rim touching it: no extra lesion.
        let dense = boxes(&[([5, 5, 2], [10, 9, 6], 1)]);
        let maps = Segmentations {
            truth: Some(&truth),
            dense: Some(&dense),
            pruned: None,
        };
        let at_1mm = lesions(&maps, &grid(1.0), Region::Tc);
        let at_1_2mm = lesions(&maps, &grid(1.2), Region::Tc);
        assert_eq!(at_1mm.len(), 1, "{at_1mm:?}");
        assert!((at_1mm[0].volume_ml - 0.064).abs() < 1e-12);
        assert!((at_1_2mm[0].volume_ml / at_1mm[0].volume_ml - 1.728).abs() < 1e-6);
        assert_eq!(at_1mm[0].pruned_ml, None);
        assert!(!at_1mm[0].lost_by_pruning());
        // NCR is TC but not ET.
        assert!(lesions(&maps, &grid(1.0), Region::Et).is_empty());
        let volumes = maps.volumes(&grid(1.0));
        assert!((volumes.dense_ml.unwrap().get(Region::Tc) - 0.080).abs() < 1e-12);
        assert!(volumes.pruned_ml.is_none());
    }

    #[test]
    fn without_truth_the_dense_lesions_are_the_reference() {
        let dense = boxes(&[([0, 0, 0], [3, 3, 3], 2), ([20, 0, 0], [23, 3, 3], 2)]);
        let pruned = boxes(&[([20, 0, 0], [23, 3, 3], 2), ([10, 10, 5], [12, 12, 7], 2)]);
        let maps = Segmentations {
            truth: None,
            dense: Some(&dense),
            pruned: Some(&pruned),
        };
        let list = lesions(&maps, &grid(1.0), Region::Wt);
        let origins: Vec<_> = list.iter().map(|l| l.origin).collect();
        assert_eq!(
            origins,
            [
                LesionOrigin::Dense,
                LesionOrigin::Dense,
                LesionOrigin::ModelsOnly
            ]
        );
        assert_eq!(list.iter().filter(|l| l.lost_by_pruning()).count(), 1);
        assert_eq!(list[2].voxels, 8);
    }
}

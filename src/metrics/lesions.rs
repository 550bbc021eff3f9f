//! Lesion-wise Dice and HD95 of the BraTS 2023 challenges: each ground-truth lesion (a
//! 26-connected component, components closer than the dilation merged into one lesion) is
//! scored against the predicted components that touch it; predicted components that touch no
//! lesion are false positives, missed lesions false negatives, each scoring Dice 0 and the
//! penalty HD95; the case's figure is the mean over lesions and false positives.

use serde::Serialize;

use super::mask_overlap;
use super::surface::hd95;

/// The parameters of the lesion-wise definition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LesionRules {
    /// Dilations (each by the 3x3x3 cross plus edges, 18-connectivity) of the ground truth
    /// before its components are found: lesions this close count as one.
    pub dilation_iterations: usize,
    /// Ground-truth lesions of at most this volume (mm³) are left out of the mean.
    pub min_lesion_mm3: f64,
    /// HD95 (mm) of a missed lesion or a false positive.
    pub penalty_hd95_mm: f64,
}

impl Default for LesionRules {
    /// The BraTS 2023 glioma settings.
    fn default() -> Self {
        LesionRules {
            dilation_iterations: 3,
            min_lesion_mm3: 50.0,
            penalty_hd95_mm: 374.0,
        }
    }
}

/// Lesion-wise figures of one region of one case.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LesionScores {
    pub dice: f64,
    pub hd95_mm: f64,
    /// Ground-truth lesions counted (above the size limit).
    pub lesions: usize,
    /// Counted lesions no predicted component touches.
    pub missed: usize,
    /// Predicted components that touch no ground-truth lesion.
    pub false_positives: usize,
}

/// Lesion-wise Dice and HD95 of `pred` against `truth` (masks over `dims`, x fastest).
pub fn lesion_wise(
    pred: &[bool],
    truth: &[bool],
    dims: [usize; 3],
    spacing_mm: [f32; 3],
    rules: LesionRules,
) -> LesionScores {
    let voxel_mm3: f64 = spacing_mm.iter().map(|s| *s as f64).product();
    let (pred_components, _) = components(pred, dims);
    let lesions = truth_lesions(truth, dims, rules.dilation_iterations);
    let mut touched = vec![false; pred_components.iter().copied().max().unwrap_or(0) as usize + 1];
    let (mut dice_sum, mut hd_sum, mut counted, mut missed) = (0.0, 0.0, 0, 0);
    for lesion in &lesions {
        // Predicted components overlapping the lesion's dilated extent are its matches.
        let matched: Vec<u32> = {
            let mut ids: Vec<u32> = lesion
                .dilated
                .iter()
                .map(|&i| pred_components[i])
                .filter(|&c| c != 0)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        for &c in &matched {
            touched[c as usize] = true;
        }
        if lesion.voxels.len() as f64 * voxel_mm3 <= rules.min_lesion_mm3 {
            continue;
        }
        counted += 1;
        if matched.is_empty() {
            missed += 1;
            hd_sum += rules.penalty_hd95_mm;
            continue;
        }
        let lesion_mask = mask_of(&lesion.voxels, truth.len());
        let matched_mask: Vec<bool> = pred_components
            .iter()
            .map(|c| *c != 0 && matched.binary_search(c).is_ok())
            .collect();
        dice_sum += mask_overlap(&matched_mask, &lesion_mask).dice;
        hd_sum += hd95(&matched_mask, &lesion_mask, dims, spacing_mm);
    }
    let false_positives = touched.iter().skip(1).filter(|t| !**t).count();
    let total = counted + false_positives;
    if total == 0 {
        // No lesion to find and nothing predicted (or only lesions under the size limit).
        return LesionScores {
            dice: 1.0,
            hd95_mm: 0.0,
            lesions: 0,
            missed: 0,
            false_positives: 0,
        };
    }
    LesionScores {
        dice: dice_sum / total as f64,
        hd95_mm: (hd_sum + false_positives as f64 * rules.penalty_hd95_mm) / total as f64,
        lesions: counted,
        missed,
        false_positives,
    }
}

/// One ground-truth lesion: its voxels and those of its dilated extent (indices).
struct Lesion {
    voxels: Vec<usize>,
    dilated: Vec<usize>,
}

/// Ground-truth lesions: components of the dilated truth, each keeping the truth voxels inside
/// it (so nearby blobs merge) and its dilated extent (for matching predictions).
fn truth_lesions(truth: &[bool], dims: [usize; 3], dilations: usize) -> Vec<Lesion> {
    let mut dilated = truth.to_vec();
    for _ in 0..dilations {
        dilated = dilate_18(&dilated, dims);
    }
    let (labels, count) = components(&dilated, dims);
    let mut lesions: Vec<Lesion> = (0..count)
        .map(|_| Lesion {
            voxels: Vec::new(),
            dilated: Vec::new(),
        })
        .collect();
    for (i, &label) in labels.iter().enumerate() {
        if label == 0 {
            continue;
        }
        let lesion = &mut lesions[label as usize - 1];
        lesion.dilated.push(i);
        if truth[i] {
            lesion.voxels.push(i);
        }
    }
    lesions
}

fn mask_of(voxels: &[usize], len: usize) -> Vec<bool> {
    let mut mask = vec![false; len];
    for &i in voxels {
        mask[i] = true;
    }
    mask
}

/// Offsets of the neighbours within `max_axes` non-zero axes (1: faces, 2: +edges, 3: +corners).
fn neighbour_offsets(max_axes: usize) -> Vec<[i64; 3]> {
    let mut out = Vec::new();
    for dz in -1i64..=1 {
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                let axes = [dx, dy, dz].iter().filter(|d| **d != 0).count();
                if axes > 0 && axes <= max_axes {
                    out.push([dx, dy, dz]);
                }
            }
        }
    }
    out
}

/// The voxel at `offset` from `i`, if it is inside the grid.
fn neighbour(i: usize, offset: [i64; 3], dims: [usize; 3]) -> Option<usize> {
    let [nx, ny, nz] = dims.map(|d| d as i64);
    let (x, y, z) = ((i as i64) % nx, (i as i64 / nx) % ny, i as i64 / (nx * ny));
    let (x, y, z) = (x + offset[0], y + offset[1], z + offset[2]);
    if x < 0 || y < 0 || z < 0 || x >= nx || y >= ny || z >= nz {
        return None;
    }
    Some((x + nx * (y + ny * z)) as usize)
}

/// One binary dilation with the 18-connected structuring element (scipy's
/// `generate_binary_structure(3, 2)`).
fn dilate_18(mask: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let offsets = neighbour_offsets(2);
    let mut out = mask.to_vec();
    for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        for &o in &offsets {
            if let Some(j) = neighbour(i, o, dims) {
                out[j] = true;
            }
        }
    }
    out
}

/// 26-connected components of `mask`: a label per voxel (0 outside, 1..=count inside) and the
/// count, labels in order of each component's first voxel.
pub fn components(mask: &[bool], dims: [usize; 3]) -> (Vec<u32>, usize) {
    let offsets = neighbour_offsets(3);
    let mut labels = vec![0u32; mask.len()];
    let mut count = 0;
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        count += 1;
        labels[start] = count as u32;
        stack.push(start);
        while let Some(i) = stack.pop() {
            for &o in &offsets {
                if let Some(j) = neighbour(i, o, dims)
                    && mask[j]
                    && labels[j] == 0
                {
                    labels[j] = count as u32;
                    stack.push(j);
                }
            }
        }
    }
    (labels, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIMS: [usize; 3] = [40, 20, 20];

    /// A mask with boxes [lo, hi) filled.
    fn boxes(list: &[([usize; 3], [usize; 3])]) -> Vec<bool> {
        let mut m = vec![false; DIMS.iter().product()];
        for (lo, hi) in list {
            for z in lo[2]..hi[2] {
                for y in lo[1]..hi[1] {
                    for x in lo[0]..hi[0] {
                        m[x + DIMS[0] * (y + DIMS[1] * z)] = true;
                    }
                }
            }
        }
        m
    }

    fn score(pred: &[bool], truth: &[bool]) -> LesionScores {
        lesion_wise(pred, truth, DIMS, [1.0; 3], LesionRules::default())
    }

    #[test]
    fn diagonal_neighbours_are_one_component() {
        let mut m = vec![false; 27];
        m[0] = true;
        m[26] = true; // (2, 2, 2): not touching (0, 0, 0)
        m[13] = true; // (1, 1, 1): touches both by a corner
        assert_eq!(components(&m, [3, 3, 3]).1, 1);
        m[13] = false;
        assert_eq!(components(&m, [3, 3, 3]).1, 2);
    }

    #[test]
    fn two_lesions_one_found_exactly_scores_half() {
        // Two 5x5x5 lesions (125 voxels each) 20 voxels apart; the prediction finds one.
        let a = ([2, 2, 2], [7, 7, 7]);
        let b = ([27, 2, 2], [32, 7, 7]);
        let truth = boxes(&[a, b]);
        let s = score(&boxes(&[a]), &truth);
        assert_eq!((s.lesions, s.missed, s.false_positives), (2, 1, 0));
        assert_eq!(s.dice, 0.5);
        assert_eq!(s.hd95_mm, 374.0 / 2.0);
    }

    #[test]
    fn a_false_positive_blob_counts_as_a_lesion_scoring_zero() {
        let a = ([2, 2, 2], [7, 7, 7]);
        let truth = boxes(&[a]);
        let s = score(&boxes(&[a, ([30, 12, 12], [32, 14, 14])]), &truth);
        assert_eq!((s.lesions, s.missed, s.false_positives), (1, 0, 1));
        assert_eq!(s.dice, 0.5);
        assert_eq!(s.hd95_mm, 374.0 / 2.0);
    }

    #[test]
    fn blobs_within_the_dilation_merge_and_small_lesions_are_left_out() {
        // Two 5x5x5 blobs 4 voxels apart merge into one lesion under 3 dilations; a 3x3x3
        // lesion (27 mm³) is under the 50 mm³ limit and not counted even when missed.
        let truth = boxes(&[
            ([2, 2, 2], [7, 7, 7]),
            ([11, 2, 2], [16, 7, 7]),
            ([30, 12, 12], [33, 15, 15]),
        ]);
        let pred = boxes(&[([2, 2, 2], [7, 7, 7]), ([11, 2, 2], [16, 7, 7])]);
        let s = score(&pred, &truth);
        assert_eq!((s.lesions, s.missed, s.false_positives), (1, 0, 0));
        assert_eq!((s.dice, s.hd95_mm), (1.0, 0.0));
    }

    #[test]
    fn empty_truth_and_prediction_score_one_and_a_lone_prediction_zero() {
        let empty = vec![false; DIMS.iter().product()];
        let s = score(&empty, &empty);
        assert_eq!((s.dice, s.hd95_mm), (1.0, 0.0));
        let s = score(&boxes(&[([2, 2, 2], [7, 7, 7])]), &empty);
        assert_eq!((s.dice, s.hd95_mm, s.false_positives), (0.0, 374.0, 1));
    }
}

//! Preprocessing as the reference did it: per-modality z-score over brain voxels, axial slices
//! centre-cropped (or zero-padded) to the network's size, slice selection and a patient-level
//! train/val/test split.

use super::brats::LabelConvention;
use crate::util::rng::SplitMix64;

/// Z-scores the non-zero (brain) voxels of one modality; background stays 0. A volume with no
/// brain voxels, or a constant one, is returned unchanged rather than divided by zero.
pub fn zscore_brain(values: &[f32]) -> Vec<f32> {
    let brain: Vec<f64> = values
        .iter()
        .filter(|v| **v != 0.0)
        .map(|v| *v as f64)
        .collect();
    if brain.len() < 2 {
        return values.to_vec();
    }
    let mean = brain.iter().sum::<f64>() / brain.len() as f64;
    let var = brain.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / brain.len() as f64;
    let std = var.sqrt();
    if std < 1e-12 {
        return values.to_vec();
    }
    values
        .iter()
        .map(|v| {
            if *v == 0.0 {
                0.0
            } else {
                ((*v as f64 - mean) / std) as f32
            }
        })
        .collect()
}

/// A `w` x `h` window of an axial plane whose top-left corner sits at (`x0`, `y0`) of the
/// plane; parts outside the plane read as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneWindow {
    pub x0: i64,
    pub y0: i64,
    pub w: usize,
    pub h: usize,
}

impl PlaneWindow {
    /// The `size` x `size` square centred on a plane of `dims` (cropping or zero-padding).
    pub fn centred(dims: [usize; 3], size: usize) -> PlaneWindow {
        let offset = |n: usize| {
            if n >= size {
                ((n - size) / 2) as i64
            } else {
                -(((size - n) / 2) as i64)
            }
        };
        PlaneWindow {
            x0: offset(dims[0]),
            y0: offset(dims[1]),
            w: size,
            h: size,
        }
    }

    /// The rows the window shares with the plane: (start within the volume's slice plane,
    /// start within the window, run length).
    fn runs(self, dims: [usize; 3]) -> impl Iterator<Item = (usize, usize, usize)> {
        let [nx, ny, _] = dims.map(|n| n as i64);
        let x_start = self.x0.max(0);
        let x_end = (self.x0 + self.w as i64).min(nx);
        let run = (x_end - x_start).max(0) as usize;
        (0..self.h as i64).filter_map(move |row| {
            let y = self.y0 + row;
            (run > 0 && (0..ny).contains(&y)).then(|| {
                (
                    (y * nx + x_start) as usize,
                    (row * self.w as i64 + x_start - self.x0) as usize,
                    run,
                )
            })
        })
    }
}

/// The axial slice `z` of a volume (x fastest, dims `[nx, ny, nz]`), centre-cropped or
/// zero-padded to `size` x `size`; returned row-major as `[y][x]`.
pub fn axial_slice(values: &[f32], dims: [usize; 3], z: usize, size: usize) -> Vec<f32> {
    window_slice(values, dims, z, PlaneWindow::centred(dims, size))
}

/// Window `window` of axial slice `z`, row-major `[h][w]`, zero outside the volume.
pub fn window_slice(values: &[f32], dims: [usize; 3], z: usize, window: PlaneWindow) -> Vec<f32> {
    let mut out = vec![0.0; window.w * window.h];
    let plane = z * dims[0] * dims[1];
    for (src, dst, w) in window.runs(dims) {
        out[dst..dst + w].copy_from_slice(&values[plane + src..plane + src + w]);
    }
    out
}

/// The inverse of [`window_slice`]: the window's pixels inside the volume go back to slice `z`.
pub fn paste_window<T: Copy>(
    volume: &mut [T],
    dims: [usize; 3],
    z: usize,
    window: PlaneWindow,
    slice: &[T],
) {
    let plane = z * dims[0] * dims[1];
    for (src, dst, w) in window.runs(dims) {
        volume[plane + src..plane + src + w].copy_from_slice(&slice[dst..dst + w]);
    }
}

/// WT, TC and ET masks (1.0 / 0.0) of a label slice under `convention`.
pub fn region_targets(labels: &[f32], convention: LabelConvention) -> [Vec<f32>; 3] {
    let regions: Vec<u8> = labels
        .iter()
        .map(|l| convention.region_of(*l as u8))
        .collect();
    let mask = |f: fn(u8) -> bool| regions.iter().map(|r| f(*r) as u8 as f32).collect();
    [
        mask(|r| r != 0),
        mask(|r| r == 1 || r == 3),
        mask(|r| r == 3),
    ]
}

/// Slices to train on: every slice with tumour, plus `tumour_free_share` of the tumour-free
/// slices that contain brain (seeded choice), in ascending order.
pub fn select_slices(
    labels: &[f32],
    brain: &[f32],
    dims: [usize; 3],
    tumour_free_share: f32,
    seed: u64,
) -> Vec<usize> {
    let per_slice = dims[0] * dims[1];
    let mut rng = SplitMix64::new(seed);
    (0..dims[2])
        .filter(|&z| {
            let range = z * per_slice..(z + 1) * per_slice;
            let tumour = labels[range.clone()].iter().any(|l| *l != 0.0);
            let has_brain = brain[range].iter().any(|v| *v != 0.0);
            tumour || (has_brain && rng.uniform() < tumour_free_share)
        })
        .collect()
}

/// Patient ids split into train / validation / test sets; one patient's slices never span sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientSplit {
    pub train: Vec<String>,
    pub val: Vec<String>,
    pub test: Vec<String>,
}

/// Shuffles patients with `seed` and splits them; validation and test get at least one patient
/// each when there are three or more.
pub fn split_patients(
    ids: &[String],
    val_fraction: f32,
    test_fraction: f32,
    seed: u64,
) -> PatientSplit {
    let mut shuffled: Vec<String> = ids.to_vec();
    shuffled.sort();
    let mut rng = SplitMix64::new(seed);
    for i in (1..shuffled.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        shuffled.swap(i, j);
    }
    let n = shuffled.len();
    // A positive fraction gets at least one patient (with three or more); zero gets none.
    let share = |f: f32| {
        if n >= 3 && f > 0.0 {
            ((n as f32 * f).round() as usize).max(1)
        } else {
            0
        }
    };
    // At least one patient always stays for training.
    let n_test = share(test_fraction).min(n.saturating_sub(1));
    let n_val = share(val_fraction).min(n.saturating_sub(1 + n_test));
    let test = shuffled[..n_test].to_vec();
    let val = shuffled[n_test..n_test + n_val].to_vec();
    let train = shuffled[n_test + n_val..].to_vec();
    PatientSplit { train, val, test }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zscore_uses_brain_voxels_only() {
        let v = [0.0, 2.0, 4.0, 0.0, 6.0];
        let z = zscore_brain(&v);
        assert_eq!(z[0], 0.0);
        assert_eq!(z[3], 0.0);
        let brain = [z[1], z[2], z[4]];
        let mean: f32 = brain.iter().sum::<f32>() / 3.0;
        let var: f32 = brain.iter().map(|b| (b - mean) * (b - mean)).sum::<f32>() / 3.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
        assert_eq!(
            zscore_brain(&[0.0, 5.0, 5.0]),
            vec![0.0, 5.0, 5.0],
            "constant stays"
        );
    }

    #[test]
    fn slices_are_centre_cropped_and_padded() {
        // 4x2x1 volume, values = x + 10 y.
        let v: Vec<f32> = (0..8).map(|i| ((i % 4) + 10 * (i / 4)) as f32).collect();
        let cropped = axial_slice(&v, [4, 2, 1], 0, 2);
        assert_eq!(cropped, vec![1.0, 2.0, 11.0, 12.0]);
        let padded = axial_slice(&v, [4, 2, 1], 0, 4);
        assert_eq!(&padded[0..4], &[0.0; 4]);
        assert_eq!(&padded[4..8], &[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(&padded[8..12], &[10.0, 11.0, 12.0, 13.0]);
    }

    #[test]
    fn pasting_inverts_padding_and_off_centre_windows() {
        let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let dims = [4, 3, 2];
        let mut back = vec![-1.0; 24];
        let centred = PlaneWindow::centred(dims, 16);
        for z in 0..2 {
            paste_window(&mut back, dims, z, centred, &axial_slice(&v, dims, z, 16));
        }
        assert_eq!(back, v);
        // A window hanging over the top-left corner: outside reads 0, inside maps back.
        let corner = PlaneWindow {
            x0: -1,
            y0: -2,
            w: 3,
            h: 3,
        };
        let slice = window_slice(&v, dims, 1, corner);
        assert_eq!(slice, vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 12.0, 13.0]);
        let mut plane = vec![0.0; 12];
        paste_window(&mut plane, [4, 3, 1], 0, corner, &slice);
        assert_eq!(&plane[..3], &[12.0, 13.0, 0.0]);
    }

    #[test]
    fn region_targets_follow_the_convention() {
        let labels = [0.0, 1.0, 2.0, 3.0, 4.0];
        let [wt, tc, et] = region_targets(&labels, LabelConvention::Brats2021);
        assert_eq!(wt, vec![0.0, 1.0, 1.0, 0.0, 1.0]);
        assert_eq!(tc, vec![0.0, 1.0, 0.0, 0.0, 1.0]);
        assert_eq!(et, vec![0.0, 0.0, 0.0, 0.0, 1.0]);
        let [wt, _, et] = region_targets(&labels, LabelConvention::Brats2023);
        assert_eq!(wt, vec![0.0, 1.0, 1.0, 1.0, 0.0]);
        assert_eq!(et, vec![0.0, 0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn split_is_by_patient_disjoint_and_seeded() {
        let ids: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
        let a = split_patients(&ids, 0.2, 0.2, 1);
        assert_eq!(a, split_patients(&ids, 0.2, 0.2, 1));
        assert_eq!((a.train.len(), a.val.len(), a.test.len()), (6, 2, 2));
        let mut all: Vec<&String> = a.train.iter().chain(&a.val).chain(&a.test).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 10);
        let no_test = split_patients(&ids, 0.2, 0.0, 1);
        assert_eq!(
            (no_test.train.len(), no_test.test.len()),
            (8, 0),
            "zero means none"
        );
        let greedy = split_patients(&ids[..3], 0.9, 0.5, 1);
        assert_eq!(
            greedy.train.len(),
            1,
            "one patient always trains: {greedy:?}"
        );
    }

    #[test]
    fn every_tumour_slice_is_selected() {
        let dims = [2, 1, 4];
        let labels = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0];
        let brain = [1.0; 8];
        assert_eq!(select_slices(&labels, &brain, dims, 0.0, 3), vec![1, 3]);
        assert_eq!(
            select_slices(&labels, &brain, dims, 1.0, 3),
            vec![0, 1, 2, 3]
        );
    }
}

//! Whole-volume segmentation with a model: every axial slice with brain, over the brain's
//! bounding box padded to a multiple of 16 (no crop of the brain, so nothing outside the training
//! crop is lost), thresholded per region and combined into sub-region codes and BraTS labels.
//! A case whose whole predicted enhancing tumour is tiny gets it relabelled as necrosis (the
//! BraTS post-processing of nnU-Net: a few stray voxels in a non-enhancing tumour otherwise
//! score ET Dice 0 where the truth has none).

use burn::prelude::*;

use crate::data::dataset::PreparedCase;
use crate::data::preprocess::{PlaneWindow, paste_window, window_slice};
use crate::data::resample;
use crate::data::{DataError, LabelConvention};
use crate::metrics::{CaseMetrics, Region, RegionScores, evaluate_case, overlap};
use crate::model::config::SPATIAL_MULTIPLE;
use crate::model::{Head, Segmenter};

/// Settings of a prediction.
#[derive(Debug, Clone, Copy)]
pub struct InferenceOptions {
    /// Probability above which a voxel belongs to a region (the reference used 0.2; default 0.5).
    pub threshold: f32,
    /// Slices per forward pass.
    pub batch: usize,
    /// A case's predicted enhancing tumour smaller than this (ml) becomes necrosis; 0 keeps it.
    pub min_enhancing_ml: f32,
    /// Segment on an isotropic grid of this spacing (mm; the model's is 1) and write the
    /// labels back onto the case's own grid; `None` segments the case's voxels as they are.
    pub resample_mm: Option<f32>,
}

impl Default for InferenceOptions {
    fn default() -> Self {
        InferenceOptions {
            threshold: 0.5,
            batch: 8,
            min_enhancing_ml: DEFAULT_MIN_ENHANCING_ML,
            resample_mm: None,
        }
    }
}

/// Default of [`InferenceOptions::min_enhancing_ml`]: 200 voxels of 1 mm, a tenth of the
/// smallest enhancing rim of the held-out synthetic cases.
pub const DEFAULT_MIN_ENHANCING_ML: f32 = 0.2;

/// Relabels all enhancing tumour (code 3) as necrosis (code 1) when there is less than
/// `min_ml` of it; returns whether it did.
pub fn suppress_small_enhancing(regions: &mut [u8], spacing_mm: [f32; 3], min_ml: f32) -> bool {
    let voxel_ml = spacing_mm.iter().product::<f32>() / 1000.0;
    let enhancing = regions.iter().filter(|&&r| r == 3).count();
    if enhancing == 0 || enhancing as f32 * voxel_ml >= min_ml {
        return false;
    }
    for r in regions.iter_mut().filter(|r| **r == 3) {
        *r = 1;
    }
    true
}

/// The side of the square the network sees for a grid of `dims`: the larger in-plane size,
/// rounded up to a multiple of 16.
pub fn padded_size(dims: [usize; 3]) -> usize {
    dims[0].max(dims[1]).div_ceil(SPATIAL_MULTIPLE) * SPATIAL_MULTIPLE
}

/// Sub-region codes (0 bg, 1 NCR, 2 ED, 3 ET) from WT/TC/ET decisions: ET wins, then the rest of
/// TC is NCR, then the rest of WT is ED (the usual BraTS hierarchy).
pub fn region_code(wt: bool, tc: bool, et: bool) -> u8 {
    if et {
        3
    } else if tc {
        1
    } else if wt {
        2
    } else {
        0
    }
}

/// `checkpoint`'s segmentation of the whole of `case` on the CPU (sub-region codes): what the
/// app's exports and jobs and `report` compare.
pub fn segment_on_cpu(
    checkpoint: &crate::model::Checkpoint,
    case: &PreparedCase,
    options: InferenceOptions,
) -> anyhow::Result<Vec<u8>> {
    let device = crate::backend::cpu_device();
    let model = checkpoint.build(&device)?;
    let head = checkpoint.config.head;
    Ok(predict_regions(
        &model,
        head,
        case,
        options,
        &device,
        |_, _| {},
    ))
}

/// Segments the whole volume of `case`; returns sub-region codes in the case's voxel order.
/// `on_slices(done, total)` reports progress. Runs a copy of `model` prepared for inference
/// (batch norms folded into their convolutions), as every inference here does.
pub fn predict_regions<M: Segmenter>(
    model: &M,
    head: Head,
    case: &PreparedCase,
    options: InferenceOptions,
    device: &Device,
    on_slices: impl FnMut(usize, usize),
) -> Vec<u8> {
    predict_regions_until(model, head, case, options, device, on_slices, || false)
        .expect("never stopped")
}

/// [`predict_regions`] that gives up (returning `None`) as soon as `stop()` says so between
/// batches of slices: the app's worker abandons a whole-case Dice when a newer request waits.
pub fn predict_regions_until<M: Segmenter>(
    model: &M,
    head: Head,
    case: &PreparedCase,
    options: InferenceOptions,
    device: &Device,
    mut on_slices: impl FnMut(usize, usize),
    stop: impl Fn() -> bool,
) -> Option<Vec<u8>> {
    if let Some(spacing) = options
        .resample_mm
        .filter(|s| resample::differs_from(case.spacing_mm, *s))
    {
        let on_grid = resample::resample_case(case, spacing);
        let options = InferenceOptions {
            resample_mm: None,
            ..options
        };
        let codes = predict_regions_until(model, head, &on_grid, options, device, on_slices, stop)?;
        return Some(resample::nearest(&codes, &on_grid.grid(), &case.grid()));
    }
    let model = &model.prepared();
    let dims = case.dims;
    let window = brain_window(case);
    let area = window.w * window.h;
    let mut regions = vec![0u8; dims.iter().product()];
    // Slices without brain are background by definition; only the others go through the model.
    let with_brain: Vec<usize> = (0..dims[2]).filter(|&z| has_brain(case, z)).collect();
    let mut done = 0;
    for chunk in with_brain.chunks(options.batch.max(1)) {
        if stop() {
            return None;
        }
        let inputs = slice_batch(case, chunk, window, device);
        let codes = codes_from_probabilities(model.segment(inputs), head, options.threshold);
        for (k, &z) in chunk.iter().enumerate() {
            paste_window(&mut regions, dims, z, window, &codes[k * area..][..area]);
        }
        done += chunk.len();
        on_slices(done, with_brain.len());
    }
    suppress_small_enhancing(&mut regions, case.spacing_mm, options.min_enhancing_ml);
    Some(regions)
}

/// Segments and scores every case (each must have a segmentation); `on_case` is called after
/// each one.
pub fn evaluate_cases<M: Segmenter>(
    model: &M,
    head: Head,
    cases: &[PreparedCase],
    options: InferenceOptions,
    device: &Device,
    mut on_case: impl FnMut(&CaseMetrics),
) -> Result<Vec<CaseMetrics>, DataError> {
    score_cases(
        model,
        head,
        cases,
        options,
        device,
        |case, predicted, truth| {
            let metrics = evaluate_case(&case.id, predicted, truth, case.dims, case.spacing_mm);
            on_case(&metrics);
            metrics
        },
    )
}

/// The Dice of WT, TC and ET per case (each must have a segmentation): what pruning's scoring
/// needs, without the surface distances of [`evaluate_cases`] (distance transforms per region
/// that a schedule scoring every step pays for nothing).
pub fn dice_of_cases<M: Segmenter>(
    model: &M,
    head: Head,
    cases: &[PreparedCase],
    options: InferenceOptions,
    device: &Device,
) -> Result<Vec<RegionScores>, DataError> {
    score_cases(
        model,
        head,
        cases,
        options,
        device,
        |_, predicted, truth| {
            RegionScores::from_array(
                [Region::Wt, Region::Tc, Region::Et].map(|r| overlap(predicted, truth, r).dice),
            )
        },
    )
}

/// Segments each case and hands `score` the case, its prediction and its truth.
fn score_cases<M: Segmenter, T>(
    model: &M,
    head: Head,
    cases: &[PreparedCase],
    options: InferenceOptions,
    device: &Device,
    mut score: impl FnMut(&PreparedCase, &[u8], &[u8]) -> T,
) -> Result<Vec<T>, DataError> {
    let mut scored = Vec::with_capacity(cases.len());
    for case in cases {
        let Some(truth) = &case.regions else {
            return Err(DataError::Invalid(format!(
                "case {} has no segmentation to evaluate against",
                case.id
            )));
        };
        let predicted = predict_regions(model, head, case, options, device, |_, _| {});
        scored.push(score(case, &predicted, truth));
    }
    Ok(scored)
}

/// Sub-region codes of window `window` of axial slice `z`, `[h * w]` row-major (use the case's
/// [`brain_window`] to get exactly what [`predict_regions`] gives for that slice, before the
/// whole-case rule of [`suppress_small_enhancing`]).
pub fn predict_slice<M: Segmenter>(
    model: &M,
    head: Head,
    case: &PreparedCase,
    z: usize,
    window: PlaneWindow,
    threshold: f32,
    device: &Device,
) -> Vec<u8> {
    let inputs = slice_batch(case, &[z], window, device);
    codes_from_probabilities(model.prepared().segment(inputs), head, threshold)
}

/// The in-plane window whole-volume segmentation runs on: the brain's bounding box over all
/// slices plus a margin of [`BRAIN_MARGIN`] voxels, each side rounded up to a multiple of 16
/// (on BraTS's 240 x 240 the held-out synthetic cases get 176-208 x 208-224: 20-36 % fewer
/// pixels). Outside it the volume is background, which the network sees as zeros either way.
pub fn brain_window(case: &PreparedCase) -> PlaneWindow {
    let [nx, ny, _] = case.dims;
    let (mut lo, mut hi) = ([usize::MAX; 2], [0usize; 2]);
    let voxels = case.modalities[0].len();
    for i in (0..voxels).filter(|&i| case.modalities.iter().any(|m| m[i] != 0.0)) {
        let (x, y) = (i % nx, (i / nx) % ny);
        lo = [lo[0].min(x), lo[1].min(y)];
        hi = [hi[0].max(x), hi[1].max(y)];
    }
    if lo[0] > hi[0] {
        return PlaneWindow::centred(case.dims, padded_size(case.dims));
    }
    let side = |a: usize| {
        let extent = hi[a] - lo[a] + 1 + 2 * BRAIN_MARGIN;
        let size = extent.div_ceil(SPATIAL_MULTIPLE) * SPATIAL_MULTIPLE;
        let start = (lo[a] + hi[a] + 1) as i64 / 2 - size as i64 / 2;
        (start, size)
    };
    let ((x0, w), (y0, h)) = (side(0), side(1));
    PlaneWindow { x0, y0, w, h }
}

/// Voxels of background kept around the brain in [`brain_window`].
pub const BRAIN_MARGIN: usize = 16;

fn has_brain(case: &PreparedCase, z: usize) -> bool {
    let per_slice = case.dims[0] * case.dims[1];
    case.modalities.iter().any(|m| {
        m[z * per_slice..(z + 1) * per_slice]
            .iter()
            .any(|v| *v != 0.0)
    })
}

/// Window `window` of axial slices `zs` of the four modalities as `[B, 4, h, w]`.
pub fn slice_batch(
    case: &PreparedCase,
    zs: &[usize],
    window: PlaneWindow,
    device: &Device,
) -> Tensor<4> {
    let values: Vec<f32> = zs
        .iter()
        .flat_map(|&z| {
            case.modalities
                .iter()
                .flat_map(move |m| window_slice(m, case.dims, z, window))
        })
        .collect();
    Tensor::from_data(
        TensorData::new(values, [zs.len(), 4, window.h, window.w]),
        device,
    )
}

/// `[B, classes, S, S]` probabilities -> `[B * S * S]` sub-region codes.
pub fn codes_from_probabilities(probabilities: Tensor<4>, head: Head, threshold: f32) -> Vec<u8> {
    let [b, _, h, w] = probabilities.dims();
    let plane = h * w;
    let values: Vec<f32> = probabilities
        .into_data()
        .try_to_vec_as::<f32>()
        .expect("model outputs convert to f32");
    let classes = head.classes();
    let [wt, tc, et] = head.region_channels();
    let mut codes = Vec::with_capacity(b * plane);
    for i in 0..b {
        let channel = |c: usize, p: usize| values[(i * classes + c) * plane + p] > threshold;
        codes.extend(
            (0..plane).map(|p| region_code(channel(wt, p), channel(tc, p), channel(et, p))),
        );
    }
    codes
}

/// BraTS label values of sub-region codes under `convention` (2019-2021: 0/1/2/4).
pub fn labels_from_regions(regions: &[u8], convention: LabelConvention) -> Vec<u8> {
    regions
        .iter()
        .map(|r| if *r == 0 { 0 } else { convention.label_of(*r) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_brats_hierarchy() {
        assert_eq!(region_code(true, true, true), 3);
        assert_eq!(region_code(true, true, false), 1);
        assert_eq!(region_code(true, false, false), 2);
        assert_eq!(region_code(false, false, false), 0);
        // ET without WT still counts as ET (the model's channels are independent sigmoids).
        assert_eq!(region_code(false, false, true), 3);
        assert_eq!(
            labels_from_regions(&[0, 1, 2, 3], LabelConvention::Brats2021),
            vec![0, 1, 2, 4]
        );
    }

    #[test]
    fn a_slice_preview_is_the_whole_volume_prediction_of_that_slice() {
        use crate::data::dataset::synthetic_case_with;
        use crate::data::synth::{SynthKind, SynthOptions};
        let device = crate::backend::cpu_device();
        let checkpoint = crate::defaults::default_checkpoint();
        let model = checkpoint.build(&device).unwrap();
        let coarse = SynthOptions::over_brats_view(SynthKind::Realistic, Some(3.0)).unwrap();
        let case = synthetic_case_with(4, &coarse);
        let [nx, ny, nz] = case.dims;
        // One slice per forward pass in both, so both run the very same computation.
        let options = InferenceOptions {
            threshold: 0.5,
            batch: 1,
            min_enhancing_ml: 0.0,
            resample_mm: None,
        };
        let whole = predict_regions(&model, Head::Regions3, &case, options, &device, |_, _| {});
        let window = brain_window(&case);
        assert!(
            window.w < nx + 2 * BRAIN_MARGIN
                && window.w.is_multiple_of(16)
                && window.h.is_multiple_of(16)
        );
        for z in [nz / 3, nz / 2] {
            let slice = predict_slice(&model, Head::Regions3, &case, z, window, 0.5, &device);
            let mut plane = vec![0u8; nx * ny];
            paste_window(&mut plane, [nx, ny, 1], 0, window, &slice);
            assert_eq!(plane, whole[z * nx * ny..(z + 1) * nx * ny], "slice {z}");
        }
    }

    #[test]
    fn only_a_tiny_enhancing_prediction_becomes_necrosis() {
        let mut stray = vec![0u8; 1000];
        stray[..150].fill(3);
        stray[150..400].fill(2);
        assert!(suppress_small_enhancing(&mut stray, [1.0; 3], 0.2));
        assert!(stray[..150].iter().all(|&r| r == 1) && stray[150] == 2);
        // 250 voxels of 1 mm is 0.25 ml: kept; on a 2 mm grid 150 voxels is 1.2 ml: kept.
        let mut rim = vec![3u8; 250];
        assert!(!suppress_small_enhancing(&mut rim, [1.0; 3], 0.2));
        let mut coarse = vec![3u8; 150];
        assert!(!suppress_small_enhancing(&mut coarse, [2.0; 3], 0.2));
        assert!(!suppress_small_enhancing(&mut stray, [1.0; 3], 0.0));
    }

    #[test]
    fn padding_reaches_a_multiple_of_16() {
        assert_eq!(padded_size([240, 240, 155]), 240);
        assert_eq!(padded_size([128, 100, 80]), 128);
        assert_eq!(padded_size([130, 100, 80]), 144);
    }
}

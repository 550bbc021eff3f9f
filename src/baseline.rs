//! The non-learned reference every model must beat: one global threshold per region on z-scored
//! intensities (FLAIR for the whole tumour, T1ce for the tumour core and enhancing tumour),
//! chosen on training cases to maximise their mean Dice.

use serde::Serialize;

use crate::data::dataset::PreparedCase;
use crate::inference::region_code;
use crate::metrics::Region;

/// Modality indices in network order.
const T1CE: usize = 1;
const FLAIR: usize = 3;

/// Candidate thresholds: z-scores from `LOWEST` in steps of `STEP`.
const LOWEST: f32 = -2.0;
const STEP: f32 = 0.05;
const BINS: usize = 240;

/// Global z-score thresholds: WT where FLAIR reaches `wt_flair`, TC where T1ce reaches
/// `tc_t1ce`, ET where T1ce reaches `et_t1ce` (nested: ET within TC within WT).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ThresholdBaseline {
    pub wt_flair: f32,
    pub tc_t1ce: f32,
    pub et_t1ce: f32,
}

/// Per case and region: brain voxels in and out of the region counted per intensity bin.
struct Histograms {
    inside: Vec<u64>,
    outside: Vec<u64>,
}

impl Histograms {
    fn of(case: &PreparedCase, modality: usize, region: Region) -> Option<Histograms> {
        let regions = case.regions.as_ref()?;
        let mut h = Histograms {
            inside: vec![0; BINS],
            outside: vec![0; BINS],
        };
        for (&value, &code) in case.modalities[modality].iter().zip(regions) {
            if value == 0.0 {
                continue; // outside the brain
            }
            let bin = (((value - LOWEST) / STEP).floor().max(0.0) as usize).min(BINS - 1);
            if region.contains(code) {
                h.inside[bin] += 1;
            } else {
                h.outside[bin] += 1;
            }
        }
        Some(h)
    }

    /// Dice of "above the lower edge of bin k" for every k (BraTS: both empty scores 1).
    fn dice_per_threshold(&self) -> Vec<f64> {
        let total_in: u64 = self.inside.iter().sum();
        let (mut above_in, mut above_out) = (total_in, self.outside.iter().sum::<u64>());
        (0..BINS)
            .map(|k| {
                let dice = if total_in + above_out == 0 {
                    1.0
                } else {
                    2.0 * above_in as f64 / (total_in + above_in + above_out) as f64
                };
                above_in -= self.inside[k];
                above_out -= self.outside[k];
                dice
            })
            .collect()
    }
}

/// The threshold on `modality` that maximises the mean Dice of `region` over `cases`.
fn best_threshold(cases: &[PreparedCase], modality: usize, region: Region) -> f32 {
    let mut mean = vec![0.0; BINS];
    for case in cases {
        if let Some(h) = Histograms::of(case, modality, region) {
            for (m, d) in mean.iter_mut().zip(h.dice_per_threshold()) {
                *m += d;
            }
        }
    }
    let best = (0..BINS)
        .max_by(|&a, &b| mean[a].total_cmp(&mean[b]))
        .unwrap_or(0);
    LOWEST + best as f32 * STEP
}

impl ThresholdBaseline {
    /// Fits the three thresholds on `cases` (those without a segmentation are skipped).
    pub fn fit(cases: &[PreparedCase]) -> ThresholdBaseline {
        ThresholdBaseline {
            wt_flair: best_threshold(cases, FLAIR, Region::Wt),
            tc_t1ce: best_threshold(cases, T1CE, Region::Tc),
            et_t1ce: best_threshold(cases, T1CE, Region::Et),
        }
    }

    /// Sub-region codes (0 bg, 1 NCR, 2 ED, 3 ET) for every voxel of `case`.
    pub fn predict(&self, case: &PreparedCase) -> Vec<u8> {
        let flair = &case.modalities[FLAIR];
        let t1ce = &case.modalities[T1CE];
        flair
            .iter()
            .zip(t1ce)
            .map(|(&f, &t)| {
                if f == 0.0 && t == 0.0 {
                    return 0;
                }
                let et = t >= self.et_t1ce;
                let tc = et || t >= self.tc_t1ce;
                let wt = tc || f >= self.wt_flair;
                region_code(wt, tc, et)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::LabelConvention;

    /// A one-slice case where FLAIR above 1 is tumour and T1ce above 2 is enhancing (values
    /// off the bin edges, so the fitted thresholds reproduce the labels exactly).
    fn case() -> PreparedCase {
        let flair: Vec<f32> = (0..100).map(|i| i as f32 / 20.0 - 0.9877).collect();
        let t1ce: Vec<f32> = (0..100).map(|i| i as f32 / 20.0 - 1.4877).collect();
        let regions = (0..100)
            .map(|i| {
                let (f, t) = (flair[i], t1ce[i]);
                region_code(f > 1.0, t > 2.0, t > 2.0)
            })
            .collect();
        PreparedCase {
            id: "toy".into(),
            dims: [10, 10, 1],
            spacing_mm: [1.0; 3],
            affine: [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
            ],
            modalities: [flair.clone(), t1ce, flair.clone(), flair],
            regions: Some(regions),
            convention: LabelConvention::Brats2021,
        }
    }

    #[test]
    fn recovers_the_thresholds_that_made_the_labels() {
        let fitted = ThresholdBaseline::fit(&[case()]);
        assert!((fitted.wt_flair - 1.0).abs() < 0.051, "{fitted:?}");
        assert!((fitted.et_t1ce - 2.0).abs() < 0.051, "{fitted:?}");
        let c = case();
        assert_eq!(fitted.predict(&c), *c.regions.as_ref().unwrap());
    }
}

//! Everything `score` reports for a predicted label map against the truth, per BraTS region:
//! overlap (Dice, IoU, sensitivity, specificity), surface distances (HD95, NSD) and the BraTS
//! 2023 lesion-wise Dice and HD95.

use serde::Serialize;

use super::lesions::{LesionRules, lesion_wise};
use super::surface::{Hd95Convention, hd95_with, nsd};
use super::{
    HD95_REGIONS, Overlap, Region, RegionMap, SubRegionScores, overlap, region_volumes_ml,
};

/// How `score` measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreOptions {
    pub hd95: Hd95Convention,
    /// Tolerance of the normalised surface distance (mm).
    pub nsd_tolerance_mm: f64,
    pub lesions: LesionRules,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            hd95: Hd95Convention::Pooled,
            nsd_tolerance_mm: 1.0,
            lesions: LesionRules::default(),
        }
    }
}

/// One region's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RegionScore {
    pub dice: f64,
    pub iou: f64,
    pub hd95_mm: f64,
    pub nsd: f64,
    /// True positives over truth voxels (with no truth: 1 when nothing is predicted either, 0
    /// otherwise, as the BraTS 2023 script has it).
    pub sensitivity: f64,
    /// True negatives over non-truth voxels.
    pub specificity: f64,
    pub lesion_dice: f64,
    pub lesion_hd95_mm: f64,
    pub lesions: usize,
    pub missed_lesions: usize,
    pub false_positive_lesions: usize,
    pub truth_voxels: usize,
    pub predicted_voxels: usize,
}

/// WT, TC and ET figures of one case (or their mean over cases).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseScore {
    pub case_id: String,
    #[serde(rename = "WT")]
    pub wt: RegionScore,
    #[serde(rename = "TC")]
    pub tc: RegionScore,
    #[serde(rename = "ET")]
    pub et: RegionScore,
    /// Each region's volume in ml in the prediction and in the truth.
    pub volume_ml: SubRegionScores,
    pub truth_volume_ml: SubRegionScores,
}

impl CaseScore {
    /// The regions with their names, in WT, TC, ET order.
    pub fn regions(&self) -> [(Region, &RegionScore); 3] {
        [
            (Region::Wt, &self.wt),
            (Region::Tc, &self.tc),
            (Region::Et, &self.et),
        ]
    }
}

/// Scores sub-region codes `pred` against `truth` (0 bg, 1 NCR, 2 ED, 3 ET) on a grid.
pub fn score_case(
    case_id: &str,
    pred: &RegionMap,
    truth: &RegionMap,
    dims: [usize; 3],
    spacing_mm: [f32; 3],
    options: ScoreOptions,
) -> CaseScore {
    let [wt, tc, et] =
        HD95_REGIONS.map(|region| score_region(pred, truth, region, dims, spacing_mm, options));
    CaseScore {
        case_id: case_id.to_string(),
        wt,
        tc,
        et,
        volume_ml: region_volumes_ml(pred, spacing_mm),
        truth_volume_ml: region_volumes_ml(truth, spacing_mm),
    }
}

fn score_region(
    pred: &RegionMap,
    truth: &RegionMap,
    region: Region,
    dims: [usize; 3],
    spacing_mm: [f32; 3],
    options: ScoreOptions,
) -> RegionScore {
    let p: Vec<bool> = pred.iter().map(|c| region.contains(*c)).collect();
    let t: Vec<bool> = truth.iter().map(|c| region.contains(*c)).collect();
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for (&a, &b) in p.iter().zip(&t) {
        tp += (a && b) as usize;
        fp += (a && !b) as usize;
        fn_ += (!a && b) as usize;
    }
    let tn = p.len() - tp - fp - fn_;
    let ratio = |num: usize, den: usize, empty: f64| {
        if den == 0 {
            empty
        } else {
            num as f64 / den as f64
        }
    };
    let lesions = lesion_wise(&p, &t, dims, spacing_mm, options.lesions);
    // Dice and IoU from the one function `eval` uses too.
    let Overlap { dice, iou } = overlap(pred, truth, region);
    RegionScore {
        dice,
        iou,
        hd95_mm: hd95_with(&p, &t, dims, spacing_mm, options.hd95),
        nsd: nsd(&p, &t, dims, spacing_mm, options.nsd_tolerance_mm),
        sensitivity: ratio(tp, tp + fn_, if fp == 0 { 1.0 } else { 0.0 }),
        specificity: ratio(tn, tn + fp, 1.0),
        lesion_dice: lesions.dice,
        lesion_hd95_mm: lesions.hd95_mm,
        lesions: lesions.lesions,
        missed_lesions: lesions.missed,
        false_positive_lesions: lesions.false_positives,
        truth_voxels: tp + fn_,
        predicted_voxels: tp + fp,
    }
}

/// The mean of every figure over `cases` (counts too), with id "mean".
pub fn mean_score(cases: &[CaseScore]) -> CaseScore {
    let n = cases.len().max(1) as f64;
    let mean = |pick: fn(&CaseScore) -> &RegionScore| {
        let all: Vec<&RegionScore> = cases.iter().map(pick).collect();
        let avg = |f: fn(&RegionScore) -> f64| all.iter().map(|r| f(r)).sum::<f64>() / n;
        let avg_count = |f: fn(&RegionScore) -> usize| {
            (all.iter().map(|r| f(r)).sum::<usize>() as f64 / n).round() as usize
        };
        RegionScore {
            dice: avg(|r| r.dice),
            iou: avg(|r| r.iou),
            hd95_mm: avg(|r| r.hd95_mm),
            nsd: avg(|r| r.nsd),
            sensitivity: avg(|r| r.sensitivity),
            specificity: avg(|r| r.specificity),
            lesion_dice: avg(|r| r.lesion_dice),
            lesion_hd95_mm: avg(|r| r.lesion_hd95_mm),
            lesions: avg_count(|r| r.lesions),
            missed_lesions: avg_count(|r| r.missed_lesions),
            false_positive_lesions: avg_count(|r| r.false_positive_lesions),
            truth_voxels: avg_count(|r| r.truth_voxels),
            predicted_voxels: avg_count(|r| r.predicted_voxels),
        }
    };
    CaseScore {
        case_id: "mean".into(),
        wt: mean(|c| &c.wt),
        tc: mean(|c| &c.tc),
        et: mean(|c| &c.et),
        volume_ml: SubRegionScores::from_fn(|r| {
            cases.iter().map(|c| c.volume_ml.get(r)).sum::<f64>() / n
        }),
        truth_volume_ml: SubRegionScores::from_fn(|r| {
            cases.iter().map(|c| c.truth_volume_ml.get(r)).sum::<f64>() / n
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_figures_on_a_known_pair() {
        // 10 voxels in a row: truth ET at 0..4, prediction ET at 2..6.
        let truth: Vec<u8> = (0..10).map(|i| if i < 4 { 3 } else { 0 }).collect();
        let pred: Vec<u8> = (0..10)
            .map(|i| if (2..6).contains(&i) { 3 } else { 0 })
            .collect();
        let s = score_case(
            "c",
            &pred,
            &truth,
            [10, 1, 1],
            [1.0; 3],
            ScoreOptions::default(),
        );
        assert_eq!(s.et.dice, 0.5);
        assert_eq!(s.et.iou, 2.0 / 6.0);
        assert_eq!(s.et.sensitivity, 0.5);
        assert_eq!(s.et.specificity, 4.0 / 6.0);
        assert_eq!((s.et.truth_voxels, s.et.predicted_voxels), (4, 4));
        // WT equals ET here; TC too.
        assert_eq!(s.wt, s.et);
        let mean = mean_score(&[s.clone(), s]);
        assert_eq!(mean.et.dice, 0.5);
    }
}

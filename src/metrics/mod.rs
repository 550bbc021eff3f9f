//! Segmentation metrics per case in 3-D: Dice and IoU for the BraTS regions and sub-regions,
//! HD95 in mm for WT, TC and ET.
//!
//! Conventions (as BraTS reports them): when prediction and ground truth are both empty for a
//! region, Dice = IoU = 1 and HD95 = 0; when exactly one is empty, Dice = IoU = 0 and HD95 is the
//! volume's diagonal in mm (see [`surface`]).

pub mod lesions;
pub mod score;
pub mod surface;

use std::collections::BTreeMap;

use serde::Serialize;

pub use surface::{Hd95Convention, hd95, hd95_with, nsd};

/// Sub-region codes: 0 background, 1 NCR/NET, 2 ED, 3 ET (see `LabelConvention::region_of`).
pub type RegionMap = [u8];

/// The evaluated regions: composites WT, TC, ET and sub-regions NCR, ED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Region {
    Wt,
    Tc,
    Et,
    Ncr,
    Ed,
}

impl Region {
    pub const ALL: [Region; 5] = [Region::Wt, Region::Tc, Region::Et, Region::Ncr, Region::Ed];

    /// Whether sub-region code `code` belongs to this region.
    pub fn contains(self, code: u8) -> bool {
        match self {
            Region::Wt => code != 0,
            Region::Tc => code == 1 || code == 3,
            Region::Et => code == 3,
            Region::Ncr => code == 1,
            Region::Ed => code == 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Region::Wt => "WT",
            Region::Tc => "TC",
            Region::Et => "ET",
            Region::Ncr => "NCR",
            Region::Ed => "ED",
        }
    }
}

/// Overlap of one region.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Overlap {
    pub dice: f64,
    pub iou: f64,
}

/// Dice and IoU of `region` between two sub-region maps of equal length.
pub fn overlap(prediction: &RegionMap, truth: &RegionMap, region: Region) -> Overlap {
    assert_eq!(
        prediction.len(),
        truth.len(),
        "maps must cover the same voxels"
    );
    let (mut both, mut pred, mut gt) = (0u64, 0u64, 0u64);
    for (&p, &t) in prediction.iter().zip(truth) {
        let (p, t) = (region.contains(p), region.contains(t));
        both += (p && t) as u64;
        pred += p as u64;
        gt += t as u64;
    }
    if pred == 0 && gt == 0 {
        return Overlap {
            dice: 1.0,
            iou: 1.0,
        };
    }
    let union = pred + gt - both;
    Overlap {
        dice: 2.0 * both as f64 / (pred + gt) as f64,
        iou: both as f64 / union as f64,
    }
}

/// The regions that get a Hausdorff distance.
pub const HD95_REGIONS: [Region; 3] = [Region::Wt, Region::Tc, Region::Et];

/// One figure per BraTS region (WT, TC, ET); in JSON under the keys "WT", "TC", "ET".
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct RegionScores {
    #[serde(rename = "WT")]
    pub wt: f64,
    #[serde(rename = "TC")]
    pub tc: f64,
    #[serde(rename = "ET")]
    pub et: f64,
}

impl RegionScores {
    pub fn from_array([wt, tc, et]: [f64; 3]) -> RegionScores {
        RegionScores { wt, tc, et }
    }

    /// WT, TC, ET in that order.
    pub fn as_array(self) -> [f64; 3] {
        [self.wt, self.tc, self.et]
    }

    /// The WT, TC and ET entries of per-region values (NaN where one is missing).
    pub fn from_values(values: &RegionValues) -> RegionScores {
        let get = |r: Region| values.get(r.name()).copied().unwrap_or(f64::NAN);
        RegionScores {
            wt: get(Region::Wt),
            tc: get(Region::Tc),
            et: get(Region::Et),
        }
    }
}

/// Values per region, keyed by region name ("WT", "TC", ...), as they appear in JSON.
pub type RegionValues = BTreeMap<String, f64>;

/// All metrics of one case: Dice and IoU per [`Region::ALL`], HD95 per [`HD95_REGIONS`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseMetrics {
    pub case_id: String,
    pub dice: RegionValues,
    pub iou: RegionValues,
    pub hd95_mm: RegionValues,
}

impl CaseMetrics {
    pub fn dice(&self, region: Region) -> f64 {
        value(&self.dice, region)
    }

    pub fn iou(&self, region: Region) -> f64 {
        value(&self.iou, region)
    }

    pub fn hd95(&self, region: Region) -> f64 {
        value(&self.hd95_mm, region)
    }
}

fn value(values: &RegionValues, region: Region) -> f64 {
    values.get(region.name()).copied().unwrap_or(f64::NAN)
}

/// Evaluates a predicted sub-region map against the truth on a grid `dims` of `spacing_mm`.
pub fn evaluate_case(
    case_id: &str,
    prediction: &RegionMap,
    truth: &RegionMap,
    dims: [usize; 3],
    spacing_mm: [f32; 3],
) -> CaseMetrics {
    let overlaps: Vec<(Region, Overlap)> = Region::ALL
        .iter()
        .map(|r| (*r, overlap(prediction, truth, *r)))
        .collect();
    let mask = |map: &RegionMap, r: Region| map.iter().map(|c| r.contains(*c)).collect::<Vec<_>>();
    let hd95_mm = HD95_REGIONS
        .iter()
        .map(|r| {
            let d = hd95(&mask(prediction, *r), &mask(truth, *r), dims, spacing_mm);
            (r.name().to_string(), d)
        })
        .collect();
    CaseMetrics {
        case_id: case_id.to_string(),
        dice: by_name(&overlaps, |o| o.dice),
        iou: by_name(&overlaps, |o| o.iou),
        hd95_mm,
    }
}

fn by_name(overlaps: &[(Region, Overlap)], pick: fn(&Overlap) -> f64) -> RegionValues {
    overlaps
        .iter()
        .map(|(r, o)| (r.name().to_string(), pick(o)))
        .collect()
}

/// Mean of each metric over cases (every case counts equally), with id "mean".
pub fn mean_metrics(cases: &[CaseMetrics]) -> CaseMetrics {
    let mean_of = |pick: fn(&CaseMetrics) -> &RegionValues| -> RegionValues {
        let mut sums = RegionValues::new();
        for case in cases {
            for (name, v) in pick(case) {
                *sums.entry(name.clone()).or_default() += v / cases.len() as f64;
            }
        }
        sums
    };
    CaseMetrics {
        case_id: "mean".into(),
        dice: mean_of(|c| &c.dice),
        iou: mean_of(|c| &c.iou),
        hd95_mm: mean_of(|c| &c.hd95_mm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dice_and_iou_on_a_known_overlap() {
        // truth WT = 4 voxels, prediction WT = 4 voxels, 2 shared.
        let truth = [1, 2, 3, 3, 0, 0];
        let pred = [0, 0, 3, 3, 2, 1];
        let wt = overlap(&pred, &truth, Region::Wt);
        assert!((wt.dice - 0.5).abs() < 1e-12);
        assert!((wt.iou - 2.0 / 6.0).abs() < 1e-12);
        let et = overlap(&pred, &truth, Region::Et);
        assert_eq!(
            et,
            Overlap {
                dice: 1.0,
                iou: 1.0
            }
        );
    }

    #[test]
    fn empty_region_conventions() {
        let none = [0, 0, 2];
        let some = [0, 3, 2];
        assert_eq!(overlap(&none, &none, Region::Et).dice, 1.0, "both empty");
        assert_eq!(overlap(&none, &some, Region::Et).dice, 0.0, "one empty");
        assert_eq!(overlap(&some, &none, Region::Et).iou, 0.0, "one empty");
    }

    #[test]
    fn case_metrics_cover_every_region_and_average() {
        // 4x1x1 grid: truth NCR ED ET bg; prediction gets WT right but swaps NCR and ET.
        let truth = [1, 2, 3, 0];
        let pred = [3, 2, 1, 0];
        let m = evaluate_case("c", &pred, &truth, [4, 1, 1], [1.0; 3]);
        assert_eq!(m.dice(Region::Wt), 1.0);
        assert_eq!(m.dice(Region::Tc), 1.0);
        assert_eq!(m.dice(Region::Et), 0.0);
        assert_eq!(m.dice(Region::Ed), 1.0);
        assert_eq!(m.hd95(Region::Wt), 0.0);
        assert!((m.hd95(Region::Et) - 2.0).abs() < 1e-12);
        let perfect = evaluate_case("d", &truth, &truth, [4, 1, 1], [1.0; 3]);
        let mean = mean_metrics(&[m, perfect]);
        assert_eq!(mean.dice(Region::Et), 0.5);
        assert!((mean.hd95(Region::Et) - 1.0).abs() < 1e-12);
    }
}

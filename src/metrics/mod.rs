//! Segmentation metrics per case in 3-D: Dice and IoU for the BraTS regions and sub-regions.
//!
//! Conventions (as BraTS reports them): when prediction and ground truth are both empty for a
//! region, Dice = IoU = 1; when exactly one is empty, Dice = IoU = 0.

use serde::Serialize;

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
}

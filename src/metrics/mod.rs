//! Segmentation metrics per case in 3-D: Dice and IoU for the BraTS regions and sub-regions,
//! HD95 in mm for WT, TC and ET.
//!
//! Conventions (as BraTS reports them): when prediction and ground truth are both empty for a
//! region, Dice = IoU = 1 and HD95 = 0; when exactly one is empty, Dice = IoU = 0 and HD95 is the
//! volume's diagonal in mm (see [`surface`]).

pub mod findings;
pub mod lesions;
pub mod score;
pub mod surface;

use serde::Serialize;

pub use surface::{Hd95Convention, hd95, hd95_with, nsd};

/// Sub-region codes: 0 background, 1 NCR/NET, 2 ED, 3 ET (see `LabelConvention::region_of`).
pub type RegionMap = [u8];

/// The evaluated regions: composites WT, TC, ET and sub-regions NCR, ED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
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
    count_overlap(
        prediction
            .iter()
            .zip(truth)
            .map(|(&p, &t)| (region.contains(p), region.contains(t))),
    )
}

/// Dice and IoU of two boolean masks of equal length (e.g. one lesion against its match).
pub fn mask_overlap(prediction: &[bool], truth: &[bool]) -> Overlap {
    assert_eq!(
        prediction.len(),
        truth.len(),
        "masks must cover the same voxels"
    );
    count_overlap(prediction.iter().copied().zip(truth.iter().copied()))
}

/// Dice of `predicted` against `truth` for WT, TC and ET over one slice or volume of codes.
pub fn region_dice(predicted: &[u8], truth: &[u8]) -> [f64; 3] {
    [Region::Wt, Region::Tc, Region::Et].map(|region| overlap(predicted, truth, region).dice)
}

/// Dice and IoU from (predicted, true) voxel pairs; two empty masks agree perfectly (BraTS).
fn count_overlap(pairs: impl Iterator<Item = (bool, bool)>) -> Overlap {
    let (mut both, mut pred, mut gt) = (0u64, 0u64, 0u64);
    for (p, t) in pairs {
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
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, serde::Deserialize)]
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

    /// The figure of `region`; NaN for NCR and ED, which this type does not hold.
    pub fn get(&self, region: Region) -> f64 {
        match region {
            Region::Wt => self.wt,
            Region::Tc => self.tc,
            Region::Et => self.et,
            Region::Ncr | Region::Ed => f64::NAN,
        }
    }
}

/// One figure per sub-region of [`Region::ALL`] (WT, TC, ET, NCR, ED); in JSON a map from the
/// region's name.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SubRegionScores([f64; 5]);

impl SubRegionScores {
    pub fn from_fn(mut value: impl FnMut(Region) -> f64) -> SubRegionScores {
        SubRegionScores(Region::ALL.map(&mut value))
    }

    pub fn get(&self, region: Region) -> f64 {
        self.0[region_index(region)]
    }

    /// The WT, TC and ET figures.
    pub fn regions3(&self) -> RegionScores {
        RegionScores::from_array([Region::Wt, Region::Tc, Region::Et].map(|r| self.get(r)))
    }
}

fn region_index(region: Region) -> usize {
    Region::ALL
        .iter()
        .position(|r| *r == region)
        .expect("Region::ALL lists every region")
}

impl Serialize for SubRegionScores {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(Region::ALL.len()))?;
        for region in Region::ALL {
            map.serialize_entry(region.name(), &self.get(region))?;
        }
        map.end()
    }
}

/// Volume in millilitres of each sub-region of [`Region::ALL`] in `regions` (sub-region codes)
/// on a grid of `spacing_mm`: voxels counted times the voxel's volume, as 3D Slicer's segment
/// statistics and nibabel (count x `prod(zooms)`) give it.
pub fn region_volumes_ml(regions: &RegionMap, spacing_mm: [f32; 3]) -> SubRegionScores {
    let voxel_ml = spacing_mm.iter().map(|s| *s as f64).product::<f64>() / 1000.0;
    let mut per_code = [0usize; 256];
    for code in regions {
        per_code[*code as usize] += 1;
    }
    SubRegionScores::from_fn(|r| {
        let voxels: usize = (1..=255u8)
            .filter(|c| r.contains(*c))
            .map(|c| per_code[c as usize])
            .sum();
        voxels as f64 * voxel_ml
    })
}

/// All metrics of one case: Dice and IoU per [`Region::ALL`], HD95 per [`HD95_REGIONS`], and
/// each region's volume in the prediction and the truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseMetrics {
    pub case_id: String,
    pub dice: SubRegionScores,
    pub iou: SubRegionScores,
    pub hd95_mm: RegionScores,
    pub volume_ml: SubRegionScores,
    pub truth_volume_ml: SubRegionScores,
}

impl CaseMetrics {
    pub fn dice(&self, region: Region) -> f64 {
        self.dice.get(region)
    }

    pub fn iou(&self, region: Region) -> f64 {
        self.iou.get(region)
    }

    pub fn hd95(&self, region: Region) -> f64 {
        self.hd95_mm.get(region)
    }
}

/// Evaluates a predicted sub-region map against the truth on a grid `dims` of `spacing_mm`.
pub fn evaluate_case(
    case_id: &str,
    prediction: &RegionMap,
    truth: &RegionMap,
    dims: [usize; 3],
    spacing_mm: [f32; 3],
) -> CaseMetrics {
    let overlaps = Region::ALL.map(|r| overlap(prediction, truth, r));
    let mask = |map: &RegionMap, r: Region| map.iter().map(|c| r.contains(*c)).collect::<Vec<_>>();
    let hd95_of = |r: Region| hd95(&mask(prediction, r), &mask(truth, r), dims, spacing_mm);
    CaseMetrics {
        case_id: case_id.to_string(),
        dice: SubRegionScores::from_fn(|r| overlaps[region_index(r)].dice),
        iou: SubRegionScores::from_fn(|r| overlaps[region_index(r)].iou),
        hd95_mm: RegionScores::from_array(HD95_REGIONS.map(hd95_of)),
        volume_ml: region_volumes_ml(prediction, spacing_mm),
        truth_volume_ml: region_volumes_ml(truth, spacing_mm),
    }
}

/// Mean per region over cases, with the cases' sample standard deviation (none for one case):
/// how far apart cases lie, which says whether two means differ by more than case-to-case noise.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct RegionStats {
    pub mean: RegionScores,
    pub sd: Option<RegionScores>,
}

impl RegionStats {
    pub fn over(per_case: &[RegionScores]) -> RegionStats {
        let stats: [(f64, Option<f64>); 3] = std::array::from_fn(|r| {
            let values: Vec<f64> = per_case.iter().map(|s| s.as_array()[r]).collect();
            mean_and_sd(&values)
        });
        RegionStats {
            mean: RegionScores::from_array(stats.map(|(mean, _)| mean)),
            sd: (per_case.len() > 1)
                .then(|| RegionScores::from_array(stats.map(|(_, sd)| sd.unwrap_or(0.0)))),
        }
    }
}

/// The mean of `values` and their sample standard deviation (none for fewer than two).
pub fn mean_and_sd(values: &[f64]) -> (f64, Option<f64>) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.len() > 1)
        .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (mean, sd)
}

/// Mean of each metric over cases (every case counts equally), with id "mean".
pub fn mean_metrics(cases: &[CaseMetrics]) -> CaseMetrics {
    let n = cases.len() as f64;
    let mean = |pick: &dyn Fn(&CaseMetrics) -> f64| cases.iter().map(pick).sum::<f64>() / n;
    CaseMetrics {
        case_id: "mean".into(),
        dice: SubRegionScores::from_fn(|r| mean(&|c| c.dice(r))),
        iou: SubRegionScores::from_fn(|r| mean(&|c| c.iou(r))),
        hd95_mm: RegionScores::from_array(HD95_REGIONS.map(|r| mean(&|c| c.hd95(r)))),
        volume_ml: SubRegionScores::from_fn(|r| mean(&|c| c.volume_ml.get(r))),
        truth_volume_ml: SubRegionScores::from_fn(|r| mean(&|c| c.truth_volume_ml.get(r))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_stats_give_the_mean_and_the_sample_sd() {
        let cases = [
            RegionScores::from_array([0.5, 1.0, 0.0]),
            RegionScores::from_array([0.7, 1.0, 1.0]),
        ];
        let stats = RegionStats::over(&cases);
        assert!((stats.mean.wt - 0.6).abs() < 1e-12 && stats.mean.et == 0.5);
        let sd = stats.sd.expect("two cases have a spread");
        assert!((sd.wt - 0.2f64.hypot(0.0) / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(sd.tc, 0.0);
        assert!((sd.et - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(RegionStats::over(&cases[..1]).sd, None);
    }

    #[test]
    fn volumes_count_voxels_times_the_voxel_volume() {
        let regions = [1, 2, 3, 3, 0, 2, 2];
        let at_1mm = region_volumes_ml(&regions, [1.0, 1.0, 1.0]);
        assert_eq!(at_1mm.get(Region::Wt), 6.0 / 1000.0);
        assert_eq!(at_1mm.get(Region::Tc), 3.0 / 1000.0);
        assert_eq!(at_1mm.get(Region::Et), 2.0 / 1000.0);
        assert_eq!(at_1mm.get(Region::Ncr), 1.0 / 1000.0);
        assert_eq!(at_1mm.get(Region::Ed), 3.0 / 1000.0);
        // The same voxels on a 1.2 mm grid hold 1.728 times the volume.
        let coarse = region_volumes_ml(&regions, [1.2, 1.2, 1.2]);
        let ratio = coarse.get(Region::Wt) / at_1mm.get(Region::Wt);
        assert!((ratio - 1.728).abs() < 1e-6, "{ratio}");
    }

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

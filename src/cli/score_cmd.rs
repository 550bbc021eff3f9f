//! `score`: existing segmentations against ground truth, one pair or two folders matched by
//! case id, with BraTS's figures per region (see `metrics::score`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::data::nifti_io::{check_same_grid, read_grid, read_volume_with};
use crate::data::{LabelConvention, Volume};
use crate::metrics::Region;
use crate::metrics::score::{CaseScore, RegionScore, ScoreOptions, mean_score, score_case};
use crate::metrics::surface::Hd95Convention;

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// A predicted label map (.nii or .nii.gz).
    #[arg(requires = "gt")]
    pub pred: Option<PathBuf>,
    /// The ground-truth label map on the same grid.
    pub gt: Option<PathBuf>,
    /// A folder of predicted label maps (`<id>.nii.gz`, `<id>_seg.nii.gz`...), matched to
    /// --gt-dir by case id.
    #[arg(long, requires = "gt_dir", conflicts_with_all = ["pred", "gt"])]
    pub pred_dir: Option<PathBuf>,
    /// A folder of ground truths: BraTS case folders or label maps.
    #[arg(long, requires = "pred_dir")]
    pub gt_dir: Option<PathBuf>,
    /// Label convention of both files; by default from the values (4 without 3: 2019-2021,
    /// 3 without 4: 2023+).
    #[arg(long, value_enum)]
    pub labels: Option<LabelConvention>,
    /// How HD95 combines the two directions.
    #[arg(long, value_enum, default_value_t = Hd95Choice::Pooled)]
    pub hd95: Hd95Choice,
    /// Tolerance of the normalised surface distance, in mm.
    #[arg(long, default_value_t = 1.0)]
    pub nsd_tolerance_mm: f64,
    /// With folders: also write one CSV row per case to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// The command line's names for [`Hd95Convention`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Hd95Choice {
    /// One 95th percentile of both directions' distances pooled (the BraTS evaluation package).
    Pooled,
    /// The larger of the two directed 95th percentiles.
    MaxOfDirected,
}

impl From<Hd95Choice> for Hd95Convention {
    fn from(choice: Hd95Choice) -> Self {
        match choice {
            Hd95Choice::Pooled => Hd95Convention::Pooled,
            Hd95Choice::MaxOfDirected => Hd95Convention::MaxOfDirected,
        }
    }
}

#[derive(Serialize)]
struct FolderReport {
    cases: Vec<CaseScore>,
    mean: CaseScore,
    unmatched_predictions: Vec<PathBuf>,
    unmatched_truths: Vec<PathBuf>,
}

pub fn score(args: ScoreArgs) -> Result<()> {
    if !(args.nsd_tolerance_mm.is_finite() && args.nsd_tolerance_mm >= 0.0) {
        bail!(
            "--nsd-tolerance-mm must be a distance of 0 or more, got {}",
            args.nsd_tolerance_mm
        );
    }
    let options = ScoreOptions {
        hd95: args.hd95.into(),
        nsd_tolerance_mm: args.nsd_tolerance_mm,
        ..ScoreOptions::default()
    };
    match (&args.pred, &args.gt, &args.pred_dir, &args.gt_dir) {
        (Some(pred), Some(gt), None, None) => {
            let id = case_id_of(gt).unwrap_or_else(|| "case".into());
            let score = score_files(&id, pred, gt, args.labels, options)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&score)?);
            } else {
                print!("{}", render(&score));
            }
            Ok(())
        }
        (None, None, Some(pred_dir), Some(gt_dir)) => {
            score_folders(pred_dir, gt_dir, &args, options)
        }
        _ => bail!("give PRED and GT files, or --pred-dir and --gt-dir"),
    }
}

fn score_folders(
    pred_dir: &Path,
    gt_dir: &Path,
    args: &ScoreArgs,
    options: ScoreOptions,
) -> Result<()> {
    let predictions = label_maps(pred_dir, false)?;
    let truths = label_maps(gt_dir, true)?;
    let unmatched_predictions: Vec<PathBuf> = predictions
        .iter()
        .filter(|(id, _)| !truths.contains_key(*id))
        .map(|(_, p)| p.clone())
        .collect();
    let unmatched_truths: Vec<PathBuf> = truths
        .iter()
        .filter(|(id, _)| !predictions.contains_key(*id))
        .map(|(_, p)| p.clone())
        .collect();
    for path in &unmatched_predictions {
        eprintln!("score: no ground truth for {}", path.display());
    }
    for path in &unmatched_truths {
        eprintln!("score: no prediction for {}", path.display());
    }
    let mut cases = Vec::new();
    for (id, pred) in &predictions {
        if let Some(gt) = truths.get(id) {
            eprintln!("score: {id}");
            cases.push(score_files(id, pred, gt, args.labels, options)?);
        }
    }
    if cases.is_empty() {
        bail!(
            "no case of {} matches one of {} by case id ({} prediction(s), {} ground truth(s))",
            pred_dir.display(),
            gt_dir.display(),
            predictions.len(),
            truths.len()
        );
    }
    if let Some(path) = &args.csv {
        crate::atomic::write_bytes(path, csv(&cases).as_bytes())
            .with_context(|| format!("{}", path.display()))?;
    }
    let report = FolderReport {
        mean: mean_score(&cases),
        cases,
        unmatched_predictions,
        unmatched_truths,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report.mean));
        println!(
            "{} case(s) scored; {} prediction(s) and {} ground truth(s) unmatched",
            report.cases.len(),
            report.unmatched_predictions.len(),
            report.unmatched_truths.len()
        );
    }
    Ok(())
}

/// Reads both files (headers first: same grid, then voxels) and scores them.
fn score_files(
    id: &str,
    pred_path: &Path,
    gt_path: &Path,
    labels: Option<LabelConvention>,
    options: ScoreOptions,
) -> Result<CaseScore> {
    let (pred_header, pred_dims, _) = read_grid(pred_path)?;
    let (gt_header, gt_dims, spacing) = read_grid(gt_path)?;
    check_same_grid(
        (pred_path, &pred_header, pred_dims),
        (gt_path, &gt_header, gt_dims),
    )
    .map_err(anyhow::Error::msg)?;
    let pred = read_volume_with(pred_path, &pred_header)?;
    let gt = read_volume_with(gt_path, &gt_header)?;
    let convention = match labels {
        Some(c) => c,
        None => convention_of(&pred, &gt)?,
    };
    let (pred_codes, gt_codes) = (codes_of(&pred, convention)?, codes_of(&gt, convention)?);
    Ok(score_case(
        id,
        &pred_codes,
        &gt_codes,
        gt_dims,
        spacing,
        options,
    ))
}

/// The label convention the values imply: 4 without 3 is 2019-2021, 3 without 4 is 2023+.
fn convention_of(pred: &Volume, gt: &Volume) -> Result<LabelConvention> {
    let has = |v: f32| {
        pred.data
            .iter()
            .chain(&gt.data)
            .any(|x| (*x - v).abs() < 0.5)
    };
    Ok(match (has(3.0), has(4.0)) {
        (true, true) => bail!(
            "labels 3 and 4 both appear in {} / {}: pass --labels brats2021 (4 = ET) or \
             --labels brats2023 (3 = ET, 4 = resection cavity)",
            pred.path.display(),
            gt.path.display()
        ),
        (true, false) => LabelConvention::Brats2023,
        _ => LabelConvention::Brats2021,
    })
}

/// Sub-region codes of a label map; a value that is no label of `convention` is an error.
fn codes_of(volume: &Volume, convention: LabelConvention) -> Result<Vec<u8>> {
    let valid = |v: f32| v == v.round() && (0.0..=4.0).contains(&v);
    if let Some(i) = volume.data.iter().position(|v| !valid(*v)) {
        let [nx, ny, _] = volume.dims;
        bail!(
            "{}: value {} at (x={}, y={}, z={}) is not a BraTS label (0-4)",
            volume.path.display(),
            volume.data[i],
            i % nx,
            (i / nx) % ny,
            i / (nx * ny)
        );
    }
    Ok(volume
        .data
        .iter()
        .map(|v| convention.region_of(*v as u8))
        .collect())
}

/// Label maps under `dir` (and one level of sub-folders) by case id. With `truth_only`,
/// files named as BraTS modalities are skipped.
fn label_maps(dir: &Path, truth_only: bool) -> Result<BTreeMap<String, PathBuf>> {
    if !dir.is_dir() {
        bail!("{}: folder not found", dir.display());
    }
    let mut found = BTreeMap::new();
    let mut folders = vec![dir.to_path_buf()];
    let mut depth = 0;
    while !folders.is_empty() && depth < 2 {
        let mut next = Vec::new();
        for folder in folders {
            let entries =
                std::fs::read_dir(&folder).with_context(|| format!("{}", folder.display()))?;
            for entry in entries.filter_map(|e| e.ok()) {
                let path = entry.path();
                if path.is_dir() {
                    next.push(path);
                } else if let Some(id) = case_id_of(&path)
                    && !(truth_only && is_modality(&path))
                {
                    found.insert(id, path);
                }
            }
        }
        folders = next;
        depth += 1;
    }
    Ok(found)
}

/// The file's stem without .nii(.gz) and a trailing `_seg`, `-seg`, `_pred`... (None for
/// files that are not NIfTI).
fn case_id_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".nii.gz")
        .or_else(|| name.strip_suffix(".nii"))?;
    let id = [
        "_seg",
        "-seg",
        "_pred",
        "-pred",
        "_prediction",
        "-prediction",
    ]
    .iter()
    .find_map(|suffix| stem.strip_suffix(suffix))
    .unwrap_or(stem);
    Some(id.to_string())
}

fn is_modality(path: &Path) -> bool {
    let Some(id) = case_id_of(path) else {
        return false;
    };
    [LabelConvention::Brats2021, LabelConvention::Brats2023]
        .iter()
        .any(|c| {
            let (suffixes, sep) = c.naming();
            suffixes[..4]
                .iter()
                .any(|s| id.ends_with(&format!("{sep}{s}")))
        })
}

fn render(score: &CaseScore) -> String {
    let mut out = format!(
        "{:<6} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7} {:>9} {:>12} {:>7}\n",
        "region",
        "Dice",
        "IoU",
        "HD95 mm",
        "NSD",
        "sens",
        "spec",
        "LW Dice",
        "LW HD95 mm",
        "lesions"
    );
    for (region, r) in score.regions() {
        out += &format!(
            "{:<6} {:>7.4} {:>7.4} {:>9.2} {:>7.4} {:>7.4} {:>7.4} {:>9.4} {:>12.2} {:>7}\n",
            region.name(),
            r.dice,
            r.iou,
            r.hd95_mm,
            r.nsd,
            r.sensitivity,
            r.specificity,
            r.lesion_dice,
            r.lesion_hd95_mm,
            format!(
                "{}/{}+{}",
                r.lesions - r.missed_lesions,
                r.lesions,
                r.false_positive_lesions
            )
        );
    }
    out
}

/// One figure of a region's score.
type Figure = fn(&RegionScore) -> f64;

/// The figures of a CSV row, per region, with their column names.
const CSV_FIGURES: [(&str, Figure); 8] = [
    ("dice", |r| r.dice),
    ("iou", |r| r.iou),
    ("hd95_mm", |r| r.hd95_mm),
    ("nsd", |r| r.nsd),
    ("sensitivity", |r| r.sensitivity),
    ("specificity", |r| r.specificity),
    ("lesion_dice", |r| r.lesion_dice),
    ("lesion_hd95_mm", |r| r.lesion_hd95_mm),
];

/// One row per case: per region Dice, IoU, HD95, NSD, sensitivity, specificity, lesion-wise
/// Dice and HD95.
fn csv(cases: &[CaseScore]) -> String {
    let mut out = String::from("case_id");
    for region in ["WT", "TC", "ET"] {
        for (name, _) in CSV_FIGURES {
            out += &format!(",{region}_{name}");
        }
    }
    for region in Region::ALL {
        out += &format!(",{0}_volume_ml,{0}_truth_volume_ml", region.name());
    }
    out.push('\n');
    for case in cases {
        out += &case.case_id;
        for (_, r) in case.regions() {
            for (_, figure) in CSV_FIGURES {
                out += &format!(",{:.6}", figure(r));
            }
        }
        for region in Region::ALL {
            out += &format!(
                ",{:.6},{:.6}",
                case.volume_ml.get(region),
                case.truth_volume_ml.get(region)
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_come_from_file_names() {
        let id = |name: &str| case_id_of(Path::new(name));
        assert_eq!(
            id("BraTS-GLI-00001-000-seg.nii.gz").unwrap(),
            "BraTS-GLI-00001-000"
        );
        assert_eq!(
            id("BraTS-GLI-00001-000.nii.gz").unwrap(),
            "BraTS-GLI-00001-000"
        );
        assert_eq!(id("Synth_0001_seg.nii").unwrap(), "Synth_0001");
        assert_eq!(id("notes.txt"), None);
        assert!(is_modality(Path::new("Synth_0001_flair.nii.gz")));
        assert!(is_modality(Path::new("BraTS-GLI-00001-000-t2f.nii.gz")));
        assert!(!is_modality(Path::new("Synth_0001_seg.nii.gz")));
    }
}

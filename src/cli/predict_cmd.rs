//! `predict`: segment one case folder and write its label map on the input's grid.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::ProgressBar;
use serde::Serialize;

use super::eval_cmd::{check_min_et_ml, check_threshold};
use super::print_json;
use crate::backend::{self, DeviceChoice};
use crate::data::LabelConvention;
use crate::data::dataset::PreparedCase;
use crate::data::{load_case, write_label_map};
use crate::inference::{InferenceOptions, labels_from_regions, predict_regions};
use crate::metrics::findings::{Segmentations, lesions};
use crate::metrics::{CaseMetrics, Region, SubRegionScores, evaluate_case, region_volumes_ml};

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A BraTS case folder (four modalities; a seg, if present, is used to report Dice).
    pub case: PathBuf,
    /// Where to write the label map (.nii.gz or .nii).
    #[arg(short, long)]
    pub output: PathBuf,
    /// A checkpoint; the embedded default model when omitted.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// A case's predicted enhancing tumour smaller than this (ml) is relabelled necrosis
    /// (0 turns the rule off).
    #[arg(long, default_value_t = crate::inference::DEFAULT_MIN_ENHANCING_ML)]
    pub min_et_ml: f32,
    /// Segment each case on the model's 1 mm grid (images trilinear, labels nearest) and write
    /// the labels back onto the case's own grid; without it a case's voxels are taken as 1 mm.
    #[arg(long)]
    pub resample: bool,
    /// Label convention of the input and of the written labels; by default from the naming.
    #[arg(long, value_enum)]
    pub labels: Option<LabelConvention>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct PredictReport {
    case: PathBuf,
    output: PathBuf,
    model: String,
    voxels_per_region: Vec<(String, usize)>,
    /// Each region's volume in ml on the label map written (after the small-ET rule), by the
    /// case's own voxel spacing.
    volumes_ml: SubRegionScores,
    /// The label map's lesions: each region's 26-connected components, largest first.
    lesions: Vec<PredictedLesion>,
    metrics: Option<CaseMetrics>,
    elapsed_secs: f64,
}

/// One lesion of the label map written.
#[derive(Serialize)]
struct PredictedLesion {
    region: &'static str,
    voxels: usize,
    volume_ml: f64,
    /// Mean voxel index (x, y, z).
    centroid_voxel: [f64; 3],
    /// The centroid in the case's world coordinates (its header's affine), mm.
    centroid_mm: [f64; 3],
}

/// The lesions of the segmentation `regions` of `case`, WT then TC then ET.
fn predicted_lesions(case: &PreparedCase, regions: &[u8]) -> Vec<PredictedLesion> {
    let maps = Segmentations {
        dense: Some(regions),
        ..Segmentations::default()
    };
    [Region::Wt, Region::Tc, Region::Et]
        .into_iter()
        .flat_map(|region| lesions(&maps, &case.grid(), region))
        .map(|lesion| PredictedLesion {
            region: lesion.region.name(),
            voxels: lesion.voxels,
            volume_ml: lesion.volume_ml,
            centroid_voxel: lesion.centroid_voxel,
            centroid_mm: lesion.centroid_mm,
        })
        .collect()
}

pub fn predict(args: PredictArgs) -> Result<()> {
    check_threshold(args.threshold)?;
    check_min_et_ml(args.min_et_ml)?;
    let start = std::time::Instant::now();
    let (checkpoint, model_name) = super::defaults::model_or_default(args.model.as_deref())?;
    let source = load_case(&args.case, args.labels)?;
    let case = PreparedCase::from_brats(&source);
    let (device, _) = backend::resolve(args.device).map_err(anyhow::Error::msg)?;
    let model = checkpoint.build(&device)?;
    let options = InferenceOptions {
        threshold: args.threshold,
        min_enhancing_ml: args.min_et_ml,
        resample_mm: args
            .resample
            .then_some(crate::data::resample::MODEL_SPACING_MM),
        ..InferenceOptions::default()
    };
    let bar = ProgressBar::new(0);
    let regions = predict_regions(
        &model,
        checkpoint.config.head,
        &case,
        options,
        &device,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    );
    bar.finish_and_clear();
    let labels = labels_from_regions(&regions, case.convention);
    // The label map takes the first modality's header, so it overlays the input exactly.
    write_label_map(&args.output, &labels, &source.modalities[0])?;
    let report = PredictReport {
        case: args.case.clone(),
        output: args.output.clone(),
        model: model_name,
        voxels_per_region: [Region::Ncr, Region::Ed, Region::Et]
            .iter()
            .map(|r| {
                (
                    r.name().to_string(),
                    regions.iter().filter(|c| r.contains(**c)).count(),
                )
            })
            .collect(),
        volumes_ml: region_volumes_ml(&regions, case.spacing_mm),
        lesions: predicted_lesions(&case, &regions),
        metrics: case
            .regions
            .as_ref()
            .map(|truth| evaluate_case(&case.id, &regions, truth, case.dims, case.spacing_mm)),
        elapsed_secs: start.elapsed().as_secs_f64(),
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "wrote {} ({} labels, {:.2} s)",
        args.output.display(),
        match case.convention {
            LabelConvention::Brats2021 => "0/1/2/4",
            LabelConvention::Brats2023 => "0/1/2/3",
        },
        report.elapsed_secs
    );
    for region in [Region::Wt, Region::Tc, Region::Et] {
        let sizes: Vec<String> = report
            .lesions
            .iter()
            .filter(|l| l.region == region.name())
            .map(|l| format!("{:.3}", l.volume_ml))
            .collect();
        println!(
            "{}: {:.3} ml in {} lesion(s){}{}",
            region.name(),
            report.volumes_ml.get(region),
            sizes.len(),
            if sizes.is_empty() { "" } else { " of ml " },
            sizes.join(", ")
        );
    }
    if let Some(m) = &report.metrics {
        println!(
            "against {}'s seg: Dice WT {:.4} TC {:.4} ET {:.4}",
            case.id,
            m.dice(Region::Wt),
            m.dice(Region::Tc),
            m.dice(Region::Et)
        );
    }
    Ok(())
}

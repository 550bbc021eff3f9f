//! `report`: the one-page case report (key slices of truth, dense and pruned, volumes, Dice,
//! lesions, the models) as a PNG, for one case folder or the embedded default case.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use super::print_json;
use crate::clinical_report::{CaseReport, ReportModel};
use crate::data::dataset::open_case;
use crate::data::resample::MODEL_SPACING_MM;
use crate::inference::{InferenceOptions, segment_on_cpu};
use crate::metrics::findings::{Lesion, Segmentations, VolumeTable, lesions};
use crate::metrics::{Region, RegionScores, region_dice};
use crate::model::{Checkpoint, load_checkpoint};
use crate::prune::schedule::parameter_counts;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A BraTS case folder (or a file in one); the embedded default case when omitted.
    pub case: Option<PathBuf>,
    /// Where to write the report (PNG).
    #[arg(short, long)]
    pub output: PathBuf,
    /// The dense model's checkpoint; the embedded default model when omitted.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The pruned model: a pruning plan (the app's plan export) applied to --model...
    #[arg(long, conflicts_with = "pruned")]
    pub plan: Option<PathBuf>,
    /// ...or a pruned checkpoint (`prune -o`).
    #[arg(long)]
    pub pruned: Option<PathBuf>,
    /// Segment on the model's 1 mm grid, labels back on the case's own grid.
    #[arg(long)]
    pub resample: bool,
    /// Also print the report's figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The report's figures, as `--json` prints them.
#[derive(Serialize)]
struct ReportFigures {
    case: String,
    output: PathBuf,
    dense_model: String,
    pruned_model: Option<String>,
    volumes_ml: VolumeTable,
    dice_dense: Option<RegionScores>,
    dice_pruned: Option<RegionScores>,
    lesions: Vec<Lesion>,
}

pub fn report(args: ReportArgs) -> Result<()> {
    if args.output.extension().and_then(|e| e.to_str()) != Some("png") {
        bail!(
            "{}: the report is a PNG image; name it *.png",
            args.output.display()
        );
    }
    let case = match &args.case {
        Some(path) => open_case(path).map_err(anyhow::Error::msg)?.0,
        None => crate::defaults::default_case(),
    };
    let (dense_checkpoint, dense_name) = super::defaults::model_or_default(args.model.as_deref())?;
    let pruned_checkpoint = pruned_model(&args, &dense_checkpoint)?;
    let options = InferenceOptions {
        resample_mm: args.resample.then_some(MODEL_SPACING_MM),
        ..InferenceOptions::default()
    };
    let dense = segment_on_cpu(&dense_checkpoint, &case, options)?;
    let pruned = match &pruned_checkpoint {
        Some((checkpoint, _)) => Some(segment_on_cpu(checkpoint, &case, options)?),
        None => None,
    };
    let report = CaseReport {
        case: &case,
        dense: &dense,
        dense_model: ReportModel {
            name: dense_name.clone(),
            params: parameter_counts(&dense_checkpoint).0,
            plan: "dense".into(),
        },
        pruned: pruned.as_deref().zip(pruned_checkpoint.as_ref()).map(
            |(codes, (checkpoint, plan))| {
                let name = match &args.pruned {
                    Some(path) => path.display().to_string(),
                    None => dense_name.clone(),
                };
                let model = ReportModel {
                    name,
                    params: parameter_counts(checkpoint).0,
                    plan: plan.clone(),
                };
                (codes, model)
            },
        ),
    };
    report.write_png(&args.output)?;
    if args.json {
        let maps = Segmentations {
            truth: case.regions.as_deref(),
            dense: Some(&dense),
            pruned: pruned.as_deref(),
        };
        let dice = |codes: &[u8]| {
            case.regions
                .as_deref()
                .map(|truth| RegionScores::from_array(region_dice(codes, truth)))
        };
        return print_json(&ReportFigures {
            case: case.id.clone(),
            output: args.output.clone(),
            dense_model: dense_name,
            pruned_model: match &args.pruned {
                Some(path) => Some(path.display().to_string()),
                None => pruned_checkpoint.map(|(_, plan)| plan),
            },
            volumes_ml: maps.volumes(&case.grid()),
            dice_dense: dice(&dense),
            dice_pruned: pruned.as_deref().and_then(dice),
            lesions: [Region::Wt, Region::Tc, Region::Et]
                .into_iter()
                .flat_map(|r| lesions(&maps, &case.grid(), r))
                .collect(),
        });
    }
    println!("wrote {}", args.output.display());
    Ok(())
}

/// The pruned model of `--plan` or `--pruned`, with its description.
fn pruned_model(args: &ReportArgs, dense: &Checkpoint) -> Result<Option<(Checkpoint, String)>> {
    if let Some(path) = &args.pruned {
        let checkpoint = load_checkpoint(path)?;
        return Ok(Some((checkpoint, "a pruned checkpoint".into())));
    }
    let Some(path) = &args.plan else {
        return Ok(None);
    };
    let checkpoint = super::maps_cmd::plan_model(path, dense)?;
    Ok(Some((checkpoint, format!("plan {}", path.display()))))
}

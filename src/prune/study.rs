//! The compression study: every way to a lite RAAGR2-Net side by side at matched shares of the
//! base model's parameters removed: magnitude pruning, filter L2, slimming, SNIP, DepGraph, the
//! two weight-shared variants, and shared + pruning combined. What a row is (its model and
//! method), which points a study has, the ratio that reaches a target share, one point's
//! measured result, and the table, CSV and Pareto plots. The `study` command runs the points.

use serde::{Deserialize, Serialize};

use super::schedule::parameter_counts;
use super::{PruneMethod, Ratios, SnipBatch, StructuredMethod, UnstructuredMethod};
use crate::metrics::RegionScores;
use crate::model::Checkpoint;
use crate::plot::{PALETTE, Panel, Series, write_panels_png};
use crate::precision::Precision;

/// The trained models a study compares (one recipe, data and seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StudyModel {
    /// The base network.
    Base,
    /// The base network trained with network slimming's L1 term on BN gammas.
    Slimming,
    /// One depthwise kernel shared by all four dilations of each ReASPP3 module.
    DepthwiseShared,
    /// One shared kernel for dilations 1 and 3, another for 6 and 9.
    PairedShared,
}

impl StudyModel {
    pub const ALL: [StudyModel; 4] = [
        StudyModel::Base,
        StudyModel::Slimming,
        StudyModel::DepthwiseShared,
        StudyModel::PairedShared,
    ];

    pub fn key(self) -> &'static str {
        match self {
            StudyModel::Base => "base",
            StudyModel::Slimming => "slimming",
            StudyModel::DepthwiseShared => "depthwise-shared",
            StudyModel::PairedShared => "paired-shared",
        }
    }
}

/// One row of the study's table: a model and how it is made smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StudyRow {
    Dense,
    /// Unstructured, one magnitude threshold over all conv weights (global L1).
    Magnitude,
    /// Structured: filters with the smallest L2 norm.
    FilterL2,
    /// Structured: channels with the smallest BN |gamma|, on the slimming model.
    Slimming,
    /// Unstructured: connection sensitivity at initialisation of the cut (Lee et al. 2019).
    Snip,
    /// Structured: coupled channel groups by their joint L2 norm (dependency graph).
    DepGraph,
    DepthwiseShared,
    PairedShared,
    /// The depthwise-shared model pruned by filter L2.
    CombinedStructured,
    /// The depthwise-shared model pruned by magnitude (global L1).
    CombinedMagnitude,
}

impl StudyRow {
    /// Every row, in the table's order.
    pub const ALL: [StudyRow; 10] = [
        StudyRow::Dense,
        StudyRow::Magnitude,
        StudyRow::FilterL2,
        StudyRow::Slimming,
        StudyRow::Snip,
        StudyRow::DepGraph,
        StudyRow::DepthwiseShared,
        StudyRow::PairedShared,
        StudyRow::CombinedStructured,
        StudyRow::CombinedMagnitude,
    ];

    pub fn key(self) -> &'static str {
        match self {
            StudyRow::Dense => "dense",
            StudyRow::Magnitude => "magnitude",
            StudyRow::FilterL2 => "filter-l2",
            StudyRow::Slimming => "slimming",
            StudyRow::Snip => "snip",
            StudyRow::DepGraph => "depgraph",
            StudyRow::DepthwiseShared => "depthwise-shared",
            StudyRow::PairedShared => "paired-shared",
            StudyRow::CombinedStructured => "combined-structured",
            StudyRow::CombinedMagnitude => "combined-magnitude",
        }
    }

    /// The name the table, plots and docs use.
    pub fn name(self) -> &'static str {
        match self {
            StudyRow::Dense => "dense",
            StudyRow::Magnitude => "magnitude (global L1)",
            StudyRow::FilterL2 => "filter L2",
            StudyRow::Slimming => "slimming",
            StudyRow::Snip => "SNIP",
            StudyRow::DepGraph => "DepGraph",
            StudyRow::DepthwiseShared => "depthwise-shared",
            StudyRow::PairedShared => "paired-shared",
            StudyRow::CombinedStructured => "combined (shared + pruning), filter L2",
            StudyRow::CombinedMagnitude => "combined (shared + pruning), magnitude",
        }
    }

    pub fn parse(key: &str) -> Result<StudyRow, String> {
        let key = key.trim();
        StudyRow::ALL
            .into_iter()
            .find(|r| r.key().eq_ignore_ascii_case(key))
            .ok_or_else(|| {
                let keys: Vec<&str> = StudyRow::ALL.iter().map(|r| r.key()).collect();
                format!("unknown study row {key:?}; use one of {}", keys.join(", "))
            })
    }

    /// The trained model the row starts from.
    pub fn model(self) -> StudyModel {
        match self {
            StudyRow::Slimming => StudyModel::Slimming,
            StudyRow::DepthwiseShared
            | StudyRow::CombinedStructured
            | StudyRow::CombinedMagnitude => StudyModel::DepthwiseShared,
            StudyRow::PairedShared => StudyModel::PairedShared,
            _ => StudyModel::Base,
        }
    }

    /// How the row prunes its model; `None` for the rows that are a trained model as it is.
    pub fn method(self) -> Option<PruneMethod> {
        use PruneMethod::{Structured, Unstructured};
        match self {
            StudyRow::Dense | StudyRow::DepthwiseShared | StudyRow::PairedShared => None,
            StudyRow::Magnitude | StudyRow::CombinedMagnitude => {
                Some(Unstructured(UnstructuredMethod::L1Global))
            }
            StudyRow::FilterL2 | StudyRow::CombinedStructured => {
                Some(Structured(StructuredMethod::L2))
            }
            StudyRow::Slimming => Some(Structured(StructuredMethod::BnGamma)),
            StudyRow::Snip => Some(Unstructured(UnstructuredMethod::Snip)),
            StudyRow::DepGraph => Some(Structured(StructuredMethod::GroupL2)),
        }
    }
}

/// One point of the study: a row at a target share of the base model's parameters removed
/// (`None`: the row's model as trained).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StudyPoint {
    pub row: StudyRow,
    pub target: Option<f64>,
}

impl StudyPoint {
    /// `filter-l2@0.5`, `dense`: how points files and progress lines name it.
    pub fn label(&self) -> String {
        match self.target {
            Some(t) => format!("{}@{t}", self.row.key()),
            None => self.row.key().to_string(),
        }
    }
}

/// The study's points in table order: each model row once as trained, each pruning row at every
/// target, and the combined rows at the targets beyond what sharing alone removes
/// (`shared_share`: the depthwise-shared model's share of the base parameters removed) and at
/// `extreme`, a share for the combined rows only (the document's extreme compression).
pub fn study_points(
    rows: &[StudyRow],
    targets: &[f64],
    shared_share: f64,
    extreme: Option<f64>,
) -> Vec<StudyPoint> {
    let mut points = Vec::new();
    for &row in rows {
        match row {
            StudyRow::Dense | StudyRow::DepthwiseShared | StudyRow::PairedShared => {
                points.push(StudyPoint { row, target: None })
            }
            StudyRow::CombinedStructured | StudyRow::CombinedMagnitude => {
                let mut shares: Vec<f64> = targets
                    .iter()
                    .copied()
                    .filter(|&t| t > shared_share)
                    .collect();
                shares.extend(extreme.filter(|e| !shares.contains(e)));
                points.extend(shares.into_iter().map(|t| StudyPoint {
                    row,
                    target: Some(t),
                }))
            }
            _ => points.extend(targets.iter().map(|&t| StudyPoint {
                row,
                target: Some(t),
            })),
        }
    }
    points
}

/// Parameters the model has that no mask removes (what "parameters removed" counts).
pub fn nonzero_params(checkpoint: &Checkpoint) -> usize {
    parameter_counts(checkpoint).1
}

/// The uniform ratio of `method` that leaves `model` with the number of non-zero parameters
/// closest to `keep`, and the pruned model. Bisection over the ratio (more removed as it grows;
/// a ratio that would empty a channel group counts as too much); channel methods move in whole
/// channels, so the closest reachable count is taken, and one more than 5 % away is refused.
pub fn ratio_for_params(
    model: &Checkpoint,
    method: PruneMethod,
    keep: usize,
    snip: Option<&SnipBatch>,
) -> anyhow::Result<(f64, Checkpoint)> {
    let prune = |ratio: f64| super::prune_checkpoint(model, method, &Ratios::Uniform(ratio), snip);
    let mut best: Option<(f64, Checkpoint, usize)> = None;
    let (mut low, mut high) = (0.0_f64, 0.99_f64);
    for probe in 0..48 {
        // The first probe is the largest ratio (targets near it), then bisection.
        let ratio = if probe == 0 { high } else { 0.5 * (low + high) };
        let Ok(pruned) = prune(ratio) else {
            high = ratio;
            continue;
        };
        let kept = nonzero_params(&pruned);
        if best
            .as_ref()
            .is_none_or(|(_, _, b)| kept.abs_diff(keep) < b.abs_diff(keep))
        {
            best = Some((ratio, pruned, kept));
        }
        if probe == 0 {
            continue;
        }
        if kept > keep {
            low = ratio;
        } else {
            high = ratio;
        }
        if high - low < 1e-6 {
            break;
        }
    }
    match best {
        Some((ratio, pruned, kept)) if kept.abs_diff(keep) as f64 <= 0.05 * keep as f64 => {
            Ok((ratio, pruned))
        }
        Some((ratio, _, kept)) => anyhow::bail!(
            "{} cannot keep {keep} parameters: the closest uniform ratio ({ratio:.4}) keeps {kept}",
            method.name()
        ),
        None => anyhow::bail!("{} prunes no model at any ratio", method.name()),
    }
}

/// Dice per region over the evaluation cases: the mean and the sample sd over cases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiceSpread {
    pub mean: RegionScores,
    pub sd: Option<RegionScores>,
}

/// One fine-tuning seed's result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeedDice {
    pub seed: u64,
    pub dice: DiceSpread,
}

/// Size and speed of a model: what the table shows beside Dice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Structure {
    pub params: usize,
    pub nonzero_params: usize,
    /// MACs of one slice of the study's side (convolutions only).
    pub macs: u64,
    /// Median CPU latency of one slice, and the dense base model's, timed interleaved.
    pub latency_ms: f64,
    pub dense_latency_ms: f64,
}

/// Everything measured at one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyResult {
    pub point: StudyPoint,
    /// Side of the square slice MACs and latency refer to.
    pub slice_side: usize,
    pub model: StudyModel,
    /// The uniform ratio that reached the target (none for a model as trained).
    pub ratio: Option<f64>,
    /// Share of the base model's parameters removed (or masked).
    pub removed_share: f64,
    pub structure: Structure,
    /// The checkpoint's size in bytes (f32) and gzipped (what sparsity saves in storage).
    pub bytes_on_disk: u64,
    pub gzip_bytes: u64,
    /// Held-out Dice as cut, after BN recalibration (pruned rows), after each fine-tune.
    pub dice: DiceSpread,
    pub dice_recalibrated: Option<DiceSpread>,
    pub dice_fine_tuned: Vec<SeedDice>,
    /// The same row at the published full width (structure only: untrained weights).
    pub full_width: Structure,
    pub fine_tune_steps: usize,
    pub eval_cases: usize,
    /// The number format every Dice of the point was scored in (files from before it: fp32).
    #[serde(default)]
    pub precision: Precision,
}

impl StudyResult {
    /// Fine-tuned Dice: the mean over seeds of each seed's mean over cases, the sd of those
    /// means over seeds, and the mean over seeds of the sd over cases.
    pub fn fine_tuned_summary(&self) -> Option<(RegionScores, RegionScores, RegionScores)> {
        if self.dice_fine_tuned.is_empty() {
            return None;
        }
        let per_seed: Vec<[f64; 3]> = self
            .dice_fine_tuned
            .iter()
            .map(|s| s.dice.mean.as_array())
            .collect();
        let case_sd: Vec<[f64; 3]> = self
            .dice_fine_tuned
            .iter()
            .map(|s| s.dice.sd.map_or([0.0; 3], |sd| sd.as_array()))
            .collect();
        let column = |rows: &[[f64; 3]], r: usize| rows.iter().map(|v| v[r]).collect::<Vec<_>>();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let sd = |v: &[f64]| crate::metrics::mean_and_sd(v).1.unwrap_or(0.0);
        Some((
            RegionScores::from_array(std::array::from_fn(|r| mean(&column(&per_seed, r)))),
            RegionScores::from_array(std::array::from_fn(|r| sd(&column(&per_seed, r)))),
            RegionScores::from_array(std::array::from_fn(|r| mean(&column(&case_sd, r)))),
        ))
    }

    /// The Dice the Pareto plots use: fine-tuned when measured, else recalibrated, else as cut.
    pub fn best_known_dice(&self) -> RegionScores {
        self.fine_tuned_summary()
            .map(|(mean, _, _)| mean)
            .or(self.dice_recalibrated.map(|d| d.mean))
            .unwrap_or(self.dice.mean)
    }
}

/// The CSV's columns (one line per point).
pub const STUDY_CSV_HEADER: &str = "row,target,model,ratio,params,nonzero_params,removed_share,\
     bytes_on_disk,gzip_bytes,macs,latency_ms,dense_latency_ms,dice_wt,dice_tc,dice_et,\
     dice_wt_sd,dice_tc_sd,dice_et_sd,rc_dice_wt,rc_dice_tc,rc_dice_et,rc_dice_wt_sd,\
     rc_dice_tc_sd,rc_dice_et_sd,ft_dice_wt,ft_dice_tc,ft_dice_et,ft_seed_sd_wt,ft_seed_sd_tc,\
     ft_seed_sd_et,ft_case_sd_wt,ft_case_sd_tc,ft_case_sd_et,ft_seeds,fine_tune_steps,\
     eval_cases,full_params,full_nonzero_params,full_macs,full_latency_ms,\
     full_dense_latency_ms,precision";

/// The results as CSV (empty cells where a figure does not apply).
pub fn study_csv(results: &[StudyResult]) -> String {
    let mut text = format!("{STUDY_CSV_HEADER}\n");
    for r in results {
        let scores = |s: Option<RegionScores>| -> Vec<String> {
            s.map_or(vec![String::new(); 3], |s| {
                s.as_array().iter().map(|v| format!("{v:.4}")).collect()
            })
        };
        let tuned = r.fine_tuned_summary();
        let mut cells = vec![
            r.point.row.key().to_string(),
            r.point.target.map_or(String::new(), |t| t.to_string()),
            r.model.key().to_string(),
            r.ratio.map_or(String::new(), |v| format!("{v:.5}")),
            r.structure.params.to_string(),
            r.structure.nonzero_params.to_string(),
            format!("{:.4}", r.removed_share),
            r.bytes_on_disk.to_string(),
            r.gzip_bytes.to_string(),
            r.structure.macs.to_string(),
            format!("{:.2}", r.structure.latency_ms),
            format!("{:.2}", r.structure.dense_latency_ms),
        ];
        cells.extend(scores(Some(r.dice.mean)));
        cells.extend(scores(r.dice.sd));
        cells.extend(scores(r.dice_recalibrated.map(|d| d.mean)));
        cells.extend(scores(r.dice_recalibrated.and_then(|d| d.sd)));
        cells.extend(scores(tuned.map(|t| t.0)));
        cells.extend(scores(tuned.map(|t| t.1)));
        cells.extend(scores(tuned.map(|t| t.2)));
        cells.push(r.dice_fine_tuned.len().to_string());
        cells.push(r.fine_tune_steps.to_string());
        cells.push(r.eval_cases.to_string());
        cells.push(r.full_width.params.to_string());
        cells.push(r.full_width.nonzero_params.to_string());
        cells.push(r.full_width.macs.to_string());
        cells.push(format!("{:.2}", r.full_width.latency_ms));
        cells.push(format!("{:.2}", r.full_width.dense_latency_ms));
        cells.push(r.precision.name().to_string());
        text += &(cells.join(",") + "\n");
    }
    text
}

/// The results as two Markdown tables, as the documentation shows them: Dice per region as
/// cut, after BN recalibration and fine-tuned (mean ± sd over seeds), then size and speed at the
/// study's width and at the published full width.
pub fn study_markdown(results: &[StudyResult]) -> String {
    let dice = |d: RegionScores| format!("{:.3} / {:.3} / {:.3}", d.wt, d.tc, d.et);
    let removed = |r: &StudyResult| match r.point.target {
        Some(_) => format!("{:.1} %", 100.0 * r.removed_share),
        None => format!("{:.1} % (as trained)", 100.0 * r.removed_share),
    };
    let mut text = String::from(
        "| row | parameters removed | Dice WT / TC / ET as cut | after BN recalibration | \
         fine-tuned (mean over seeds) | sd over seeds | sd over cases (fine-tuned, else as cut) \
         |\n|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let tuned = r.fine_tuned_summary();
        text += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            row_label(r),
            removed(r),
            dice(r.dice.mean),
            r.dice_recalibrated.map_or("-".into(), |d| dice(d.mean)),
            tuned.map_or("-".into(), |t| dice(t.0)),
            tuned.map_or("-".into(), |t| dice(t.1)),
            tuned.map(|t| t.2).or(r.dice.sd).map_or("-".into(), dice),
        );
    }
    let side = results.first().map_or(240, |r| r.slice_side);
    text += &format!(
        "\n| row | parameters removed | non-zero parameters | size on disk (gzip) | \
         G MACs per {side}x{side} slice | CPU latency (x dense) | full width: non-zero parameters | \
         full width: G MACs | full width: latency (x dense) |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    let megabytes = |b: u64| format!("{:.2} MB", b as f64 / 1e6);
    // The ratio is the figure to read: each point is timed alongside the dense base model in the
    // same process, so it holds when other work slowed the machine; the milliseconds do not.
    let latency = |s: &Structure| {
        format!(
            "{:.1} ms ({:.2}x)",
            s.latency_ms,
            s.latency_ms / s.dense_latency_ms
        )
    };
    for r in results {
        text += &format!(
            "| {} | {} | {} | {} ({}) | {:.3} | {} | {} | {:.2} | {} |\n",
            row_label(r),
            removed(r),
            crate::report::thousands(r.structure.nonzero_params as u64),
            megabytes(r.bytes_on_disk),
            megabytes(r.gzip_bytes),
            r.structure.macs as f64 / 1e9,
            latency(&r.structure),
            crate::report::thousands(r.full_width.nonzero_params as u64),
            r.full_width.macs as f64 / 1e9,
            latency(&r.full_width),
        );
    }
    text
}

/// A row's name, with the precision its Dice was scored in when that is not float32.
fn row_label(r: &StudyResult) -> String {
    match r.precision {
        Precision::Fp32 => r.point.row.name().to_string(),
        other => format!("{}, Dice in {}", r.point.row.name(), other.name()),
    }
}

/// The study file: what `study` writes as JSON and the app's Plots tab opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyFile {
    pub format: u32,
    /// What produced it (the command line, the machine).
    pub description: String,
    pub results: Vec<StudyResult>,
}

/// Version of [`StudyFile`] (checked on read).
pub const STUDY_FORMAT: u32 = 1;

impl StudyFile {
    /// Reads a study JSON file; the error names the file and the problem.
    pub fn read(path: &std::path::Path) -> anyhow::Result<StudyFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let file: StudyFile = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a study file: {e}", path.display()))?;
        if file.format != STUDY_FORMAT {
            anyhow::bail!(
                "{}: study format {} (this version reads {STUDY_FORMAT})",
                path.display(),
                file.format
            );
        }
        Ok(file)
    }
}

/// One curve per row of `results`: (x of a result, its Dice of region `r`), sorted by x.
pub fn pareto_series(
    results: &[StudyResult],
    region: usize,
    x: impl Fn(&StudyResult) -> f64,
) -> Vec<Series> {
    let mut rows: Vec<StudyRow> = results.iter().map(|r| r.point.row).collect();
    rows.dedup();
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let mut points: Vec<(f64, f64)> = results
                .iter()
                .filter(|r| r.point.row == *row)
                .map(|r| (x(r), r.best_known_dice().as_array()[region]))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: row.name().to_string(),
                points,
                // Ten rows, seven colours: the last rows repeat a colour, dashed.
                colour_index: i % PALETTE.len(),
                dashed: i >= PALETTE.len(),
                spread: None,
            }
        })
        .collect()
}

/// What a study chart's x axis shows: MACs per slice, or size on disk (the `study` command's
/// PNGs and the app's study chart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StudyAxis {
    #[default]
    Macs,
    Size,
}

impl StudyAxis {
    pub const ALL: [StudyAxis; 2] = [StudyAxis::Macs, StudyAxis::Size];

    /// What the PNG plotted against it ends in (`OUT.macs.png`, `OUT.size.png`).
    pub fn suffix(self) -> &'static str {
        match self {
            StudyAxis::Macs => "macs",
            StudyAxis::Size => "size",
        }
    }

    /// The axis label, for slices of `side` x `side`.
    pub fn label(self, side: usize) -> String {
        match self {
            StudyAxis::Macs => format!("G MACs per {side}x{side} slice"),
            StudyAxis::Size => "MB on disk (gzip for masked models)".into(),
        }
    }

    /// A result's x: G MACs per slice, or MB on disk (the gzip size for a masked model).
    pub fn value(self, r: &StudyResult) -> f64 {
        match self {
            StudyAxis::Macs => r.structure.macs as f64 / 1e9,
            StudyAxis::Size => {
                let masked = r.structure.nonzero_params < r.structure.params;
                (if masked {
                    r.gzip_bytes
                } else {
                    r.bytes_on_disk
                }) as f64
                    / 1e6
            }
        }
    }
}

/// The Pareto plots: Dice (fine-tuned where measured) per region against each [`StudyAxis`]
/// (`*.macs.png`, `*.size.png`).
pub fn write_study_plots(stem: &std::path::Path, results: &[StudyResult]) -> anyhow::Result<()> {
    let side = results.first().map_or(240, |r| r.slice_side);
    for axis in StudyAxis::ALL {
        let x = |r: &StudyResult| axis.value(r);
        let panels: Vec<Panel> = ["WT", "TC", "ET"]
            .iter()
            .enumerate()
            .map(|(r, region)| Panel {
                title: format!("Dice {region}"),
                series: pareto_series(results, r, x),
            })
            .collect();
        let max_x = results.iter().map(x).fold(0.0, f64::max);
        let path = stem.with_extension(format!("{}.png", axis.suffix()));
        write_panels_png(
            &path,
            &panels,
            &axis.label(side),
            "Dice",
            (0.0, max_x * 1.05 + 1e-9),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_a_model_a_method_and_a_key_that_parses_back() {
        for row in StudyRow::ALL {
            assert_eq!(StudyRow::parse(row.key()), Ok(row));
            let trained_as_is = matches!(
                row,
                StudyRow::Dense | StudyRow::DepthwiseShared | StudyRow::PairedShared
            );
            assert_eq!(row.method().is_none(), trained_as_is, "{row:?}");
        }
        assert!(
            StudyRow::parse("pruning")
                .unwrap_err()
                .contains("filter-l2")
        );
    }

    #[test]
    fn combined_rows_only_go_beyond_what_sharing_removes() {
        let points = study_points(&StudyRow::ALL, &[0.25, 0.5, 0.75], 0.43, None);
        let count = |row| points.iter().filter(|p| p.row == row).count();
        assert_eq!(count(StudyRow::Dense), 1);
        assert_eq!(count(StudyRow::DepthwiseShared), 1);
        assert_eq!(count(StudyRow::FilterL2), 3);
        assert_eq!(count(StudyRow::CombinedStructured), 2);
        assert_eq!(count(StudyRow::CombinedMagnitude), 2);
        assert_eq!(points.len(), 1 + 5 * 3 + 2 + 2 * 2);
        assert_eq!(points[0].label(), "dense");
        assert_eq!(points[1].label(), "magnitude@0.25");
        let extreme = study_points(&StudyRow::ALL, &[0.25, 0.5, 0.75], 0.43, Some(0.9));
        assert_eq!(extreme.len(), points.len() + 2);
        assert_eq!(
            extreme.iter().filter(|p| p.target == Some(0.9)).count(),
            2,
            "only the combined rows go to the extreme share"
        );
    }

    #[test]
    fn the_ratio_search_reaches_the_asked_parameter_count() {
        let dense = crate::defaults::default_checkpoint();
        let total = nonzero_params(&dense);
        for (method, tolerance) in [
            (PruneMethod::Structured(StructuredMethod::L2), 0.02),
            (
                PruneMethod::Unstructured(UnstructuredMethod::L1Global),
                0.001,
            ),
        ] {
            let keep = total / 2;
            let (ratio, pruned) = ratio_for_params(&dense, method, keep, None).unwrap();
            let kept = nonzero_params(&pruned);
            assert!(
                (kept as f64 / keep as f64 - 1.0).abs() < tolerance,
                "{}: ratio {ratio} keeps {kept}, asked {keep}",
                method.key()
            );
            assert!(ratio > 0.0 && ratio < 0.98);
        }
        assert!(
            ratio_for_params(
                &dense,
                PruneMethod::Structured(StructuredMethod::L2),
                10,
                None
            )
            .is_err(),
            "a count below what the largest ratio leaves is refused"
        );
    }
}

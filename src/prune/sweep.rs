//! The Dice-vs-sparsity sweep: the one loop over methods x ratios, one point of it, its CSV and
//! its plot: what the `sweep` command writes, what the app exports and what `plot` reads back,
//! whoever wrote it (the app does not time models, so its rows leave the size and latency columns
//! empty).

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::PruneMethod;
use crate::metrics::RegionScores;
use crate::plot::{Panel, Series, write_panels_png};
use crate::precision::Precision;

/// Visits every method at every ratio (method-major), calling `point(index, method, ratio)`,
/// until `cancel` is set; returns whether it was cancelled. An error from `point` stops it.
pub fn for_each_point<E>(
    methods: &[PruneMethod],
    ratios: &[f64],
    cancel: &AtomicBool,
    mut point: impl FnMut(usize, PruneMethod, f64) -> Result<(), E>,
) -> Result<bool, E> {
    let grid = methods
        .iter()
        .flat_map(|&method| ratios.iter().map(move |&ratio| (method, ratio)));
    for (index, (method, ratio)) in grid.enumerate() {
        if cancel.load(Ordering::SeqCst) {
            return Ok(true);
        }
        point(index, method, ratio)?;
    }
    Ok(false)
}

/// One method at one ratio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    pub method: PruneMethod,
    pub ratio: f64,
    /// Share of the dense model's parameters removed or masked.
    pub sparsity: f64,
    pub params: Option<usize>,
    pub nonzero_params: Option<usize>,
    pub macs: Option<u64>,
    pub latency_ms: Option<f64>,
    pub dense_latency_ms: Option<f64>,
    pub dice: RegionScores,
    /// After fine-tuning, when the sweep fine-tunes.
    pub dice_fine_tuned: Option<RegionScores>,
    /// Sample sd of `dice` over the evaluation cases (none for one case, or where not measured).
    pub dice_sd: Option<RegionScores>,
    /// Sample sd of `dice_fine_tuned` likewise.
    pub dice_fine_tuned_sd: Option<RegionScores>,
    /// After BN recalibration of the pruned model, when the sweep recalibrates.
    pub dice_recalibrated: Option<RegionScores>,
    /// Sample sd of `dice_recalibrated` likewise.
    pub dice_recalibrated_sd: Option<RegionScores>,
    /// The number format every Dice of the point was scored in.
    pub precision: Precision,
}

impl SweepPoint {
    /// A point with Dice only (what the app measures).
    pub fn dice_only(method: PruneMethod, ratio: f64, sparsity: f64, dice: RegionScores) -> Self {
        SweepPoint {
            method,
            ratio,
            sparsity,
            params: None,
            nonzero_params: None,
            macs: None,
            latency_ms: None,
            dense_latency_ms: None,
            dice,
            dice_fine_tuned: None,
            dice_sd: None,
            dice_fine_tuned_sd: None,
            dice_recalibrated: None,
            dice_recalibrated_sd: None,
            precision: Precision::Fp32,
        }
    }
}

/// The CSV's columns: Dice means, their sample sd over the evaluation cases, then the Dice
/// after BN recalibration and its sd, then the precision the Dice was scored in.
pub const CSV_HEADER: &str = "method,ratio,params,nonzero_params,sparsity,macs,latency_ms,\
                              dense_latency_ms,speedup,dice_wt,dice_tc,dice_et,ft_dice_wt,\
                              ft_dice_tc,ft_dice_et,dice_wt_sd,dice_tc_sd,dice_et_sd,\
                              ft_dice_wt_sd,ft_dice_tc_sd,ft_dice_et_sd,rc_dice_wt,rc_dice_tc,\
                              rc_dice_et,rc_dice_wt_sd,rc_dice_tc_sd,rc_dice_et_sd,precision";

/// The columns of CSVs written before the precision was recorded (still read back: fp32).
const CSV_HEADER_WITHOUT_PRECISION: &str = "method,ratio,params,nonzero_params,sparsity,macs,\
                                            latency_ms,dense_latency_ms,speedup,dice_wt,\
                                            dice_tc,dice_et,ft_dice_wt,ft_dice_tc,ft_dice_et,\
                                            dice_wt_sd,dice_tc_sd,dice_et_sd,ft_dice_wt_sd,\
                                            ft_dice_tc_sd,ft_dice_et_sd,rc_dice_wt,rc_dice_tc,\
                                            rc_dice_et,rc_dice_wt_sd,rc_dice_tc_sd,\
                                            rc_dice_et_sd";

/// The columns of CSVs written before BN recalibration was recorded (still read back).
const CSV_HEADER_WITHOUT_RECALIBRATION: &str = "method,ratio,params,nonzero_params,sparsity,\
                                                macs,latency_ms,dense_latency_ms,speedup,\
                                                dice_wt,dice_tc,dice_et,ft_dice_wt,\
                                                ft_dice_tc,ft_dice_et,dice_wt_sd,dice_tc_sd,\
                                                dice_et_sd,ft_dice_wt_sd,ft_dice_tc_sd,\
                                                ft_dice_et_sd";

/// The columns of CSVs written before the spread was recorded (still read back).
const CSV_HEADER_WITHOUT_SPREAD: &str = "method,ratio,params,nonzero_params,sparsity,macs,\
                                         latency_ms,dense_latency_ms,speedup,dice_wt,dice_tc,\
                                         dice_et,ft_dice_wt,ft_dice_tc,ft_dice_et";

/// One CSV row's cells (empty where a figure was not measured).
pub fn row(p: &SweepPoint) -> Vec<String> {
    fn cell<T: ToString>(v: Option<T>) -> String {
        v.map(|v| v.to_string()).unwrap_or_default()
    }
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_default();
    let speedup = match (p.dense_latency_ms, p.latency_ms) {
        (Some(dense), Some(pruned)) => format!("{:.3}", dense / pruned),
        _ => String::new(),
    };
    let mut cells = vec![
        p.method.key().to_string(),
        format!("{}", p.ratio),
        cell(p.params),
        cell(p.nonzero_params),
        format!("{:.4}", p.sparsity),
        cell(p.macs),
        ms(p.latency_ms),
        ms(p.dense_latency_ms),
        speedup,
    ];
    for scores in [
        Some(p.dice),
        p.dice_fine_tuned,
        p.dice_sd,
        p.dice_fine_tuned_sd,
        p.dice_recalibrated,
        p.dice_recalibrated_sd,
    ] {
        for v in scores.map_or([None; 3], |s| s.as_array().map(Some)) {
            cells.push(v.map(|v| format!("{v:.4}")).unwrap_or_default());
        }
    }
    cells.push(p.precision.name().to_string());
    cells
}

/// The whole CSV.
pub fn to_csv(points: &[SweepPoint]) -> String {
    let mut text = format!("{CSV_HEADER}\n");
    for p in points {
        text += &(row(p).join(",") + "\n");
    }
    text
}

/// Sweep points back from [`to_csv`]'s text; errors name the row.
pub fn parse_csv(text: &str) -> Result<Vec<SweepPoint>, String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default().trim();
    let columns = [
        CSV_HEADER,
        CSV_HEADER_WITHOUT_PRECISION,
        CSV_HEADER_WITHOUT_RECALIBRATION,
        CSV_HEADER_WITHOUT_SPREAD,
    ]
    .into_iter()
    .find(|known| *known == header)
    .map(|known| known.split(',').count())
    .ok_or_else(|| format!("not a sweep CSV (expected the header {CSV_HEADER})"))?;
    lines
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| parse_row(i + 2, line, columns))
        .collect()
}

fn parse_row(row: usize, line: &str, columns: usize) -> Result<SweepPoint, String> {
    let cells: Vec<&str> = line.split(',').collect();
    if cells.len() != columns {
        return Err(format!(
            "row {row}: {} cells, expected {columns}",
            cells.len()
        ));
    }
    let optional = |c: usize| -> Result<Option<f64>, String> {
        if cells[c].trim().is_empty() {
            return Ok(None);
        }
        cells[c]
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("row {row}: {:?} is not a number", cells[c]))
    };
    let number =
        |c: usize| optional(c)?.ok_or_else(|| format!("row {row}: column {} is empty", c + 1));
    let regions = |first: usize| -> Result<Option<RegionScores>, String> {
        match (optional(first)?, optional(first + 1)?, optional(first + 2)?) {
            (Some(wt), Some(tc), Some(et)) => Ok(Some(RegionScores { wt, tc, et })),
            (None, None, None) => Ok(None),
            _ => Err(format!("row {row}: a Dice triple is partly empty")),
        }
    };
    Ok(SweepPoint {
        method: PruneMethod::parse(cells[0]).map_err(|e| format!("row {row}: {e}"))?,
        ratio: number(1)?,
        params: optional(2)?.map(|v| v as usize),
        nonzero_params: optional(3)?.map(|v| v as usize),
        sparsity: number(4)?,
        macs: optional(5)?.map(|v| v as u64),
        latency_ms: optional(6)?,
        dense_latency_ms: optional(7)?,
        dice: regions(9)?.ok_or_else(|| format!("row {row}: no Dice"))?,
        dice_fine_tuned: regions(12)?,
        dice_sd: if columns > 15 { regions(15)? } else { None },
        dice_fine_tuned_sd: if columns > 15 { regions(18)? } else { None },
        dice_recalibrated: if columns > 21 { regions(21)? } else { None },
        dice_recalibrated_sd: if columns > 21 { regions(24)? } else { None },
        precision: match cells.get(27) {
            Some(name) if columns > 27 => {
                <Precision as clap::ValueEnum>::from_str(name.trim(), true).map_err(|_| {
                    format!("row {row}: {name:?} is not a precision (fp32, fp16, int8)")
                })?
            }
            _ => Precision::Fp32,
        },
    })
}

/// Dice vs sparsity as a PNG, one panel per region, one colour per method; dashed = before
/// fine-tuning when the points have fine-tuned Dice too.
pub fn write_sweep_plot(
    path: &std::path::Path,
    points: &[SweepPoint],
    model_name: &str,
) -> anyhow::Result<()> {
    let mut methods: Vec<PruneMethod> = points.iter().map(|p| p.method).collect();
    methods.dedup();
    let panels: Vec<Panel> = ["WT", "TC", "ET"]
        .iter()
        .enumerate()
        .map(|(r, region)| {
            let mut series = Vec::new();
            for (i, method) in methods.iter().enumerate() {
                let of_method: Vec<&SweepPoint> =
                    points.iter().filter(|p| p.method == *method).collect();
                let tuned = of_method.iter().all(|p| p.dice_fine_tuned.is_some());
                let curve = |fine_tuned: bool| -> Vec<(f64, f64)> {
                    of_method
                        .iter()
                        .map(|p| {
                            let dice = match (p.dice_fine_tuned, fine_tuned) {
                                (Some(d), true) => d,
                                _ => p.dice,
                            };
                            (p.sparsity, dice.as_array()[r])
                        })
                        .collect()
                };
                // Whiskers of one sd over cases, where every point of the curve has one.
                let spread = |fine_tuned: bool| -> Option<Vec<f64>> {
                    of_method
                        .iter()
                        .map(|p| {
                            let sd = if fine_tuned {
                                p.dice_fine_tuned_sd
                            } else {
                                p.dice_sd
                            };
                            sd.map(|s| s.as_array()[r])
                        })
                        .collect()
                };
                let name = if tuned {
                    format!("{} (pruned)", method.key())
                } else {
                    method.key().to_string()
                };
                series.push(Series {
                    name,
                    points: curve(false),
                    colour_index: i,
                    dashed: tuned,
                    spread: spread(false),
                });
                if tuned {
                    series.push(Series {
                        name: format!("{} (fine-tuned)", method.key()),
                        points: curve(true),
                        colour_index: i,
                        dashed: false,
                        spread: spread(true),
                    });
                }
            }
            Panel {
                title: format!("Dice {region} - {model_name}"),
                series,
            }
        })
        .collect();
    let max_sparsity = points.iter().map(|p| p.sparsity).fold(0.0, f64::max);
    let x_max = (max_sparsity * 1.05).clamp(0.05, 1.0);
    write_panels_png(
        path,
        &panels,
        "share of parameters removed",
        "Dice",
        (0.0, x_max),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::StructuredMethod;

    #[test]
    fn points_with_and_without_timings_round_trip_through_the_csv() {
        let l2 = PruneMethod::Structured(StructuredMethod::L2);
        let app = SweepPoint::dice_only(
            l2,
            0.25,
            0.4,
            RegionScores {
                wt: 0.9,
                tc: 0.8,
                et: 0.7,
            },
        );
        let cli = SweepPoint {
            params: Some(1000),
            nonzero_params: Some(900),
            macs: Some(123),
            latency_ms: Some(2.5),
            dense_latency_ms: Some(5.0),
            dice_fine_tuned: Some(RegionScores {
                wt: 0.95,
                tc: 0.85,
                et: 0.75,
            }),
            dice_sd: Some(RegionScores::from_array([0.01, 0.02, 0.03])),
            dice_fine_tuned_sd: Some(RegionScores::from_array([0.04, 0.05, 0.06])),
            dice_recalibrated: Some(RegionScores::from_array([0.91, 0.81, 0.71])),
            dice_recalibrated_sd: Some(RegionScores::from_array([0.07, 0.08, 0.09])),
            precision: Precision::Int8,
            ..app.clone()
        };
        let back = parse_csv(&to_csv(&[app.clone(), cli.clone()])).unwrap();
        assert_eq!(back, vec![app.clone(), cli.clone()]);
        // A CSV from before the precision column reads as float32.
        let old = format!(
            "{CSV_HEADER_WITHOUT_PRECISION}\n{}\n",
            row(&cli)[..27].join(",")
        );
        let fp32 = SweepPoint {
            precision: Precision::Fp32,
            ..cli.clone()
        };
        assert_eq!(parse_csv(&old).unwrap(), vec![fp32]);
        // A CSV from before the recalibration columns still reads, without them.
        let unrecalibrated = SweepPoint {
            dice_recalibrated: None,
            dice_recalibrated_sd: None,
            precision: Precision::Fp32,
            ..cli
        };
        let old = format!(
            "{CSV_HEADER_WITHOUT_RECALIBRATION}\n{}\n",
            row(&unrecalibrated)[..21].join(",")
        );
        assert_eq!(parse_csv(&old).unwrap(), vec![unrecalibrated]);
        // A CSV from before the spread columns still reads, its spread unknown.
        let old = format!(
            "{CSV_HEADER_WITHOUT_SPREAD}\n{}\n",
            row(&app)[..15].join(",")
        );
        assert_eq!(parse_csv(&old).unwrap(), vec![app]);
        assert!(
            parse_csv("method,ratio\n")
                .unwrap_err()
                .contains("not a sweep CSV")
        );
    }
}

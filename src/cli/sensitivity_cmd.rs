//! `sensitivity`: prune one channel group at a time (the others intact) over a grid of ratios
//! and score each result: which layers matter, per tumour region. CSV and one PNG heatmap per
//! region (group x ratio).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use super::data_args::DataArgs;
use super::{defaults, print_json};
use crate::analysis::sensitivity::sensitivity_grid;
use crate::inference::InferenceOptions;
use crate::plot::write_heatmap_png;
use crate::prune::tuning::DiceEvaluator;
use crate::prune::{ChannelGraph, PruneMethod};

#[derive(Args, Debug)]
pub struct SensitivityArgs {
    /// A checkpoint; the embedded default model when omitted.
    pub model: Option<PathBuf>,
    /// A channel method: l2, bn-gamma or group-l2.
    #[arg(long, value_parser = PruneMethod::parse, default_value = "l2")]
    pub method: PruneMethod,
    /// Ratios of the one group pruned, comma-separated, each in (0, 1).
    #[arg(long, default_value = "0.25,0.5,0.75")]
    pub ratios: String,
    /// Only these groups (comma-separated names); all groups by default.
    #[arg(long)]
    pub groups: Option<String>,
    /// Cases scored (default: the held-out synthetic cases; one or two keep it quick).
    #[command(flatten)]
    pub data: DataArgs,
    /// Where the CSV goes; `<name>.wt.png`, `.tc.png`, `.et.png` heatmaps go beside it.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct SensitivityRow {
    group: String,
    ratio: f64,
    /// Dice WT, TC, ET with only this group pruned: mean over the cases and sample sd.
    dice: [f64; 3],
    dice_sd: Option<[f64; 3]>,
}

pub fn sensitivity(args: SensitivityArgs) -> Result<()> {
    if let PruneMethod::Unstructured(_) = args.method {
        bail!("--method: sensitivity prunes channel groups; use l2, bn-gamma or group-l2");
    }
    let ratios: Vec<f64> = args
        .ratios
        .split(',')
        .map(|r| {
            r.trim()
                .parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0 && *r < 1.0)
                .ok_or_else(|| anyhow::anyhow!("--ratios: {r:?} is not a ratio in (0, 1)"))
        })
        .collect::<Result<_>>()?;
    let (dense, model_name) = defaults::model_or_default(args.model.as_deref())?;
    let graph = ChannelGraph::of(&dense.config);
    let names: Vec<String> = graph.groups.iter().map(|(n, _)| n.clone()).collect();
    let chosen: Vec<usize> = match &args.groups {
        None => (0..names.len()).collect(),
        Some(list) => list
            .split(',')
            .map(|n| {
                graph.group_index(n.trim()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--groups: no channel group {n:?}; the groups are {}",
                        names.join(", ")
                    )
                })
            })
            .collect::<Result<_>>()?,
    };
    let evaluator = DiceEvaluator::new(
        defaults::data_or_held_out(&args.data).load(|id| eprintln!("sensitivity: loading {id}"))?,
        InferenceOptions::default(),
    );
    let cells = sensitivity_grid(
        &dense,
        args.method,
        names.len(),
        &chosen,
        &ratios,
        |pruned| evaluator.dice(pruned),
        |cell| {
            let [wt, tc, et] = cell.dice;
            eprintln!(
                "sensitivity: {} at {}: WT {wt:.3} TC {tc:.3} ET {et:.3}",
                names[cell.group], cell.ratio
            );
            true
        },
    )?;
    let rows: Vec<SensitivityRow> = cells
        .iter()
        .map(|c| SensitivityRow {
            group: names[c.group].clone(),
            ratio: c.ratio,
            dice: c.dice,
            dice_sd: c.dice_sd,
        })
        .collect();
    write_outputs(
        &args,
        &rows,
        &chosen.iter().map(|g| names[*g].clone()).collect::<Vec<_>>(),
        &ratios,
        &model_name,
    )?;
    if args.json {
        return print_json(&rows);
    }
    println!(
        "sensitivity of {model_name} by {} -> {}",
        args.method.name(),
        args.output.display()
    );
    Ok(())
}

fn write_outputs(
    args: &SensitivityArgs,
    rows: &[SensitivityRow],
    groups: &[String],
    ratios: &[f64],
    model_name: &str,
) -> Result<()> {
    let mut text =
        String::from("group,ratio,dice_wt,dice_tc,dice_et,dice_wt_sd,dice_tc_sd,dice_et_sd\n");
    for r in rows {
        let sd = r
            .dice_sd
            .map_or([String::new(), String::new(), String::new()], |s| {
                s.map(|v| format!("{v:.4}"))
            });
        text += &format!(
            "{},{},{:.4},{:.4},{:.4},{}\n",
            r.group,
            r.ratio,
            r.dice[0],
            r.dice[1],
            r.dice[2],
            sd.join(",")
        );
    }
    crate::atomic::write_bytes(&args.output, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.output.display()))?;
    let columns: Vec<String> = ratios.iter().map(|r| format!("{r}")).collect();
    for (k, region) in ["wt", "tc", "et"].iter().enumerate() {
        let values: Vec<Vec<f64>> = rows
            .chunks(ratios.len())
            .map(|c| c.iter().map(|r| r.dice[k]).collect())
            .collect();
        let path = args.output.with_extension(format!("{region}.png"));
        let title = format!(
            "Dice {} with one group pruned ({})",
            region.to_uppercase(),
            model_name
        );
        write_heatmap_png(&path, &title, groups, &columns, &values)?;
    }
    Ok(())
}

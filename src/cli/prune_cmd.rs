//! `prune`: structured pruning of a checkpoint (or the embedded model) by one method, with the
//! measured effect: parameters, MACs, CPU latency and held-out Dice before and after.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use super::pipeline::{DataArgs, TrainProgress, install_ctrl_c};
use super::{defaults, print_json};
use crate::backend;
use crate::bench::{Timing, compare_forward};
use crate::data::dataset::{PreparedCase, SliceDataset, SliceSelection};
use crate::data::preprocess::split_patients;
use crate::inference::{InferenceOptions, evaluate_cases};
use crate::metrics::{RegionValues, mean_metrics};
use crate::model::summary::summarize;
use crate::model::{Checkpoint, load_checkpoint, save_checkpoint};
use crate::prune::{ChannelGraph, Ratios, StructuredMethod, prune_structured};
use crate::report::{self, giga, thousands};
use crate::train::{CheckpointPaths, TrainOptions, TrainState, fit};

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// A checkpoint; the embedded default model when omitted.
    pub model: Option<PathBuf>,
    /// How channels are ranked.
    #[arg(long, value_enum, default_value_t = StructuredMethod::L2)]
    pub method: StructuredMethod,
    /// Share of channels removed from every group not named in --group-ratios.
    #[arg(long, default_value_t = 0.5)]
    pub ratio: f64,
    /// Per-group ratios, e.g. `enc5.out=0.7,dec2=0.2` (names as `info` and the app show them).
    #[arg(long, conflicts_with = "global")]
    pub group_ratios: Option<String>,
    /// Treat --ratio as a share of all channels, with one importance threshold across groups
    /// (each group's importances divided by their mean), instead of the same share per group.
    #[arg(long)]
    pub global: bool,
    /// Where the pruned checkpoint goes.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Input side for MACs and latency (multiple of 16).
    #[arg(long, default_value_t = 192)]
    pub size: usize,
    /// Timed forward runs per model (interleaved, after a warm-up).
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Cases the Dice is measured on (default: the held-out synthetic cases).
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// Fine-tuning epochs after pruning (0: none). Dice is then reported before and after.
    #[arg(long, default_value_t = 0)]
    pub fine_tune_epochs: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub fine_tune_lr: f64,
    /// Fine-tune on this BraTS folder instead of synthetic cases.
    #[arg(long)]
    pub fine_tune_data: Option<PathBuf>,
    /// Synthetic fine-tuning cases: seeds 0..N (the default model's own training cases).
    #[arg(long, default_value_t = 8)]
    pub fine_tune_cases: usize,
    /// Fine-tuning crop (multiple of 16).
    #[arg(long, default_value_t = 128)]
    pub fine_tune_crop: usize,
    /// Caps the fine-tuning batches per epoch.
    #[arg(long)]
    pub fine_tune_batches: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct GroupChange {
    name: String,
    ratio: f64,
    before: usize,
    after: usize,
}

#[derive(Serialize)]
struct PruneReport {
    model: String,
    output: PathBuf,
    method: StructuredMethod,
    groups: Vec<GroupChange>,
    params_before: usize,
    params_after: usize,
    macs_before: u64,
    macs_after: u64,
    /// MACs before / after.
    mac_reduction: f64,
    latency_before: Timing,
    latency_after: Timing,
    /// Median latency before / after, measured in one run.
    speedup: f64,
    /// Mean Dice per region over the evaluation cases: dense, pruned, and (when fine-tuned)
    /// after fine-tuning.
    dice_before: RegionValues,
    dice_after: RegionValues,
    dice_fine_tuned: Option<RegionValues>,
    fine_tune_epochs: usize,
    eval_cases: usize,
    /// Time to rank the channels and slice the weights (what the app's live preview pays).
    prune_secs: f64,
}

pub fn prune(args: PruneArgs) -> Result<()> {
    super::check_size("--size", args.size)?;
    super::pipeline::check_threshold(args.threshold)?;
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (dense, model_name) = defaults::model_or_default(args.model.as_deref())?;
    let ratios = if args.global {
        Ratios::Global(args.ratio)
    } else {
        parse_ratios(&dense, args.ratio, args.group_ratios.as_deref())?
    };
    let started = std::time::Instant::now();
    let (config, weights) = prune_structured(&dense.config, &dense.weights, args.method, &ratios)?;
    let prune_secs = started.elapsed().as_secs_f64();
    let pruned = Checkpoint {
        config,
        weights,
        metadata: Default::default(),
    };
    save_checkpoint(&args.output, &pruned)?;
    let fine_tuned = (args.fine_tune_epochs > 0)
        .then(|| fine_tune(&pruned, &args))
        .transpose()?;

    let device = backend::cpu_device();
    let (dense_model, pruned_model) = (dense.build(&device)?, pruned.build(&device)?);
    let before = summarize(&dense.config, &dense_model, args.size, args.size)?;
    let after = summarize(&pruned.config, &pruned_model, args.size, args.size)?;
    eprintln!("prune: timing both models ({} runs each)", args.runs);
    let [latency_before, latency_after] = compare_forward(
        &[&dense_model, &pruned_model],
        args.size,
        args.runs,
        &device,
    );
    let cases =
        defaults::data_or_held_out(&args.data).load(|id| eprintln!("prune: loading {id}"))?;
    let options = InferenceOptions {
        threshold: args.threshold,
        ..InferenceOptions::default()
    };
    eprintln!("prune: evaluating both models on {} case(s)", cases.len());
    let dice = |checkpoint: &Checkpoint, model| -> Result<RegionValues> {
        let scored = evaluate_cases(
            model,
            checkpoint.config.head,
            &cases,
            options,
            &device,
            |_| {},
        )?;
        Ok(mean_metrics(&scored).dice)
    };
    let report = PruneReport {
        model: model_name,
        output: args.output.clone(),
        method: args.method,
        groups: group_changes(&dense, &pruned, &ratios),
        params_before: before.params,
        params_after: after.params,
        macs_before: before.macs,
        macs_after: after.macs,
        mac_reduction: before.macs as f64 / after.macs.max(1) as f64,
        speedup: latency_before.median_secs / latency_after.median_secs,
        latency_before,
        latency_after,
        dice_before: dice(&dense, &dense_model)?,
        dice_after: dice(&pruned, &pruned_model)?,
        dice_fine_tuned: match &fine_tuned {
            Some(tuned) => Some(dice(tuned, &tuned.build(&device)?)?),
            None => None,
        },
        fine_tune_epochs: args.fine_tune_epochs,
        eval_cases: cases.len(),
        prune_secs,
    };
    if args.json {
        return print_json(&report);
    }
    print!("{}", render(&report));
    Ok(())
}

/// Fine-tunes the pruned model (Adam, validation on a seeded fifth of the cases); the best
/// epoch replaces the pruned checkpoint at `--output`, the last goes beside it.
fn fine_tune(pruned: &Checkpoint, args: &PruneArgs) -> Result<Checkpoint> {
    super::check_size("--fine-tune-crop", args.fine_tune_crop)?;
    let source = DataArgs {
        data: args.fine_tune_data.clone(),
        synthetic: args
            .fine_tune_data
            .is_none()
            .then_some(args.fine_tune_cases),
        synthetic_seed: 0,
        labels: args.data.labels,
    };
    let cases = source.load(|id| eprintln!("fine-tune: loading {id}"))?;
    if cases.len() < 2 {
        bail!("fine-tuning needs at least 2 cases, got {}", cases.len());
    }
    let ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
    let mut split = split_patients(&ids, 0.2, 0.0, 0);
    if split.val.is_empty() {
        split
            .val
            .push(split.train.pop().expect("two or more cases"));
    }
    let pick = |ids: &[String]| -> Vec<PreparedCase> {
        cases
            .iter()
            .filter(|c| ids.contains(&c.id))
            .cloned()
            .collect()
    };
    let selection = SliceSelection {
        tumour_free_share: 0.05,
        seed: 0,
    };
    let train = SliceDataset::from_cases(&pick(&split.train), args.fine_tune_crop, selection)?;
    let val = SliceDataset::from_cases(&pick(&split.val), args.fine_tune_crop, selection)?;
    let device = backend::cpu_device().autodiff();
    let options = TrainOptions {
        epochs: args.fine_tune_epochs,
        learning_rate: args.fine_tune_lr,
        max_batches_per_epoch: args.fine_tune_batches,
        ..TrainOptions::default()
    };
    let state = TrainState {
        train_ids: split.train,
        val_ids: split.val,
        ..TrainState::default()
    };
    let paths = CheckpointPaths::beside(&args.output);
    let progress = TrainProgress::new();
    let outcome = fit(
        &pruned.config,
        pruned.build(&device)?,
        &train,
        &val,
        &options,
        state,
        &paths,
        &install_ctrl_c(),
        |event| progress.show(&event),
    )?;
    progress.finish();
    if outcome.state.epochs_done == 0 {
        bail!("fine-tuning was cancelled before its first epoch finished");
    }
    Ok(load_checkpoint(&paths.best)?)
}

/// `--ratio` for every group, overridden per group by `name=ratio` pairs.
fn parse_ratios(dense: &Checkpoint, ratio: f64, per_group: Option<&str>) -> Result<Ratios> {
    let graph = ChannelGraph::of(&dense.config);
    let mut ratios = vec![ratio; graph.groups.len()];
    for pair in per_group
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--group-ratios: expected name=ratio, got {pair:?}");
        };
        let Some(g) = graph.group_index(name.trim()) else {
            let names: Vec<&str> = graph.groups.iter().map(|(n, _)| n.as_str()).collect();
            bail!(
                "--group-ratios: no channel group {name:?}; the groups are {}",
                names.join(", ")
            );
        };
        ratios[g] = value
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--group-ratios: {name}: {value:?} is not a number"))?;
    }
    Ok(Ratios::PerGroup(ratios))
}

fn group_changes(dense: &Checkpoint, pruned: &Checkpoint, ratios: &Ratios) -> Vec<GroupChange> {
    let groups = dense.config.plan.groups();
    groups
        .into_iter()
        .zip(pruned.config.plan.groups())
        .enumerate()
        .map(|(g, ((name, before), (_, after)))| GroupChange {
            name,
            // Under a global ratio each group's share is what the threshold left.
            ratio: match ratios {
                Ratios::PerGroup(rs) => rs[g],
                Ratios::Uniform(r) => *r,
                Ratios::Global(_) => 1.0 - after as f64 / before as f64,
            },
            before,
            after,
        })
        .collect()
}

fn render(r: &PruneReport) -> String {
    let change = |b: f64, a: f64| format!("{:.2}x", b / a.max(f64::MIN_POSITIVE));
    let mut rows = vec![
        vec![
            "params".into(),
            thousands(r.params_before as u64),
            thousands(r.params_after as u64),
            change(r.params_before as f64, r.params_after as f64),
        ],
        vec![
            "MACs".into(),
            giga(r.macs_before),
            giga(r.macs_after),
            change(r.macs_before as f64, r.macs_after as f64),
        ],
        vec![
            "CPU forward (median)".into(),
            format!("{:.1} ms", r.latency_before.median_secs * 1e3),
            format!("{:.1} ms", r.latency_after.median_secs * 1e3),
            format!("{:.2}x", r.speedup),
        ],
    ];
    for region in ["WT", "TC", "ET"] {
        let (b, a) = (r.dice_before[region], r.dice_after[region]);
        rows.push(vec![
            format!("Dice {region}"),
            format!("{b:.4}"),
            format!("{a:.4}"),
            format!("{:+.4}", a - b),
        ]);
    }
    if let Some(tuned) = &r.dice_fine_tuned {
        for region in ["WT", "TC", "ET"] {
            let (b, a) = (r.dice_before[region], tuned[region]);
            rows.push(vec![
                format!(
                    "Dice {region} after {} fine-tune epoch(s)",
                    r.fine_tune_epochs
                ),
                format!("{b:.4}"),
                format!("{a:.4}"),
                format!("{:+.4}", a - b),
            ]);
        }
    }
    format!(
        "pruned {} with {} in {:.1} ms -> {}\nDice over {} case(s); speedup / MAC reduction = {:.2}\n\n{}",
        r.model,
        r.method.name(),
        r.prune_secs * 1e3,
        r.output.display(),
        r.eval_cases,
        r.speedup / r.mac_reduction,
        report::table(&["", "before", "after", "change"], &rows)
    )
}

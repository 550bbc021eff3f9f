//! Statistics of plan tree nodes: size, measured latency and Dice on the open case and on
//! held-out cases, node by node.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend;
use crate::data::dataset::{PreparedCase, synthetic_case};
use crate::defaults::HELD_OUT_FIRST_SEED;
use crate::inference::{InferenceOptions, predict_regions};
use crate::metrics::region_dice;
use crate::model::Checkpoint;
use crate::model::summary::summarize;
use crate::plan_tree::NodeStats;
use crate::prune::parameter_counts;
use crate::timing::compare_forward;
use crate::worker::Response;

/// Held-out synthetic cases each node is scored on (a few: the app's job, not `eval`).
pub(in crate::worker) const HELD_OUT_FOR_NODES: u64 = 3;
/// Timed forwards per node (after a first call).
const LATENCY_RUNS: usize = 5;

/// Measures each (node, model) in turn; returns whether it was cancelled.
pub(in crate::worker) fn node_stats(
    nodes: &[(u64, Checkpoint)],
    case: Option<&PreparedCase>,
    cancel: &AtomicBool,
    reply: &impl Fn(Response),
) -> Result<bool, String> {
    let total = nodes.len() + 1;
    reply(Response::JobProgress {
        done: 0,
        total,
        label: "node statistics: generating the held-out cases".into(),
    });
    let held_out: Vec<PreparedCase> = (0..HELD_OUT_FOR_NODES)
        .map(|i| synthetic_case(HELD_OUT_FIRST_SEED + i))
        .collect();
    for (done, (node, checkpoint)) in nodes.iter().enumerate() {
        if cancel.load(Ordering::SeqCst) {
            return Ok(true);
        }
        reply(Response::JobProgress {
            done: done + 1,
            total,
            label: format!("node statistics: node {} of {}", done + 1, nodes.len()),
        });
        let stats = measure(checkpoint, case, &held_out)?;
        reply(Response::NodeStats { node: *node, stats });
    }
    Ok(false)
}

fn measure(
    checkpoint: &Checkpoint,
    case: Option<&PreparedCase>,
    held_out: &[PreparedCase],
) -> Result<NodeStats, String> {
    let device = backend::cpu_device();
    let model = checkpoint.build(&device).map_err(|e| e.to_string())?;
    let macs = summarize(&checkpoint.config, &model, 192, 192)
        .map_err(|e| e.to_string())?
        .macs;
    let (params, nonzero_params) = parameter_counts(checkpoint);
    let [latency] = compare_forward(&[&model.folded()], [1, 192, 192], LATENCY_RUNS, &device);
    let head = checkpoint.config.head;
    let dice = |case: &PreparedCase| {
        let codes = predict_regions(
            &model,
            head,
            case,
            InferenceOptions::default(),
            &device,
            |_, _| {},
        );
        case.regions
            .as_ref()
            .map(|truth| region_dice(&codes, truth))
    };
    let dice_case = case.and_then(dice);
    let scores: Vec<[f64; 3]> = held_out.iter().filter_map(dice).collect();
    let mean = |r: usize| scores.iter().map(|d| d[r]).sum::<f64>() / scores.len().max(1) as f64;
    Ok(NodeStats {
        params,
        nonzero_params,
        macs,
        latency_ms: latency.median_secs * 1e3,
        dice_case,
        dice_held_out: [mean(0), mean(1), mean(2)],
        held_out_cases: scores.len(),
    })
}

//! `bench --pruned RATIO`: the benched network with that share of every channel group removed
//! (L2 filter norms, structured), timed forward on this project's CPU backends and, in the same
//! run, in PyTorch and ONNX Runtime on the same pruned network (the PyTorch twin built from the
//! pruned checkpoint, exported by PyTorch's exporter); each one's speedup over its own dense
//! forward, divided by the MACs cut, says how much of the promised saving it turns into time.

use serde::Serialize;

use super::{BackendResult, BenchOptions, PytorchDevice, format_secs, pytorch, time_forwards};
use crate::backend::{self, DeviceChoice};
use crate::model::Checkpoint;
use crate::prune::{PruneMethod, Ratios, StructuredMethod, prune_checkpoint};
use crate::report;

/// The pruned network's rows and what each backend gained over its dense forward.
#[derive(Debug, Clone, Serialize)]
pub struct PrunedComparison {
    /// The share of every channel group removed.
    pub ratio: f64,
    pub model: String,
    pub params: usize,
    /// MACs of one input slice, dense and pruned.
    pub dense_macs: u64,
    pub pruned_macs: u64,
    pub results: Vec<BackendResult>,
    pub speedups: Vec<PruneSpeedup>,
}

/// One backend's dense time over its pruned time at one batch size, and that over the MACs cut
/// (1.0: time falls as fast as arithmetic).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneSpeedup {
    pub backend: String,
    pub batch: usize,
    pub speedup: f64,
    pub speedup_per_mac_cut: f64,
}

/// Prunes the benched network, times it on the CPU backends asked for and in PyTorch (with
/// ONNX Runtime) when asked, and sets each beside its row in `dense`.
pub fn run(
    options: &BenchOptions,
    ratio: f64,
    dense: &[BackendResult],
    progress: &mut dyn FnMut(&str),
) -> Result<PrunedComparison, String> {
    if !options.backends.iter().any(|c| *c != DeviceChoice::Gpu) {
        return Err(
            "the pruned network is timed on the CPU backends, and none was asked for".into(),
        );
    }
    let cpu = backend::cpu_device();
    let dense_checkpoint = Checkpoint::from_model(&options.config, &options.config.init(&cpu));
    let method = PruneMethod::Structured(StructuredMethod::L2);
    let pruned = prune_checkpoint(&dense_checkpoint, method, &Ratios::Uniform(ratio), None)
        .map_err(|e| format!("pruning {ratio} of every channel group: {e}"))?;
    let macs = |c: &Checkpoint| {
        crate::model::summary::count_macs(&c.config.init(&cpu), options.height, options.width)
    };
    let (dense_macs, pruned_macs) = (macs(&dense_checkpoint), macs(&pruned));
    let pruned_options = BenchOptions {
        config: pruned.config.clone(),
        train_batch: 0,
        ..options.clone()
    };
    let mut results = Vec::new();
    for &choice in options.backends.iter().filter(|c| **c != DeviceChoice::Gpu) {
        let Ok((device, label)) = backend::resolve(choice) else {
            continue;
        };
        let model = pruned.build(&device).map_err(|e| e.to_string())?;
        let model = if options.fold_norms {
            model.folded()
        } else {
            model
        };
        let forward = time_forwards(&pruned_options, &model, &device, "cpu", &label, progress);
        results.push(BackendResult {
            backend: label,
            peer: false,
            kind: "cpu".into(),
            forward,
            train_step: None,
            skipped: None,
        });
    }
    if options.pytorch.contains(&PytorchDevice::Cpu) {
        progress("pytorch (cpu): the pruned network's forward");
        let file = std::env::temp_dir().join(format!(
            "raagr2-bench-pruned-{}.safetensors",
            std::process::id()
        ));
        crate::model::save_checkpoint(&file, &pruned)
            .map_err(|e| format!("writing the pruned network to {}: {e}", file.display()))?;
        results.extend(pytorch::run_checkpoint(
            &pruned_options,
            PytorchDevice::Cpu,
            Some(&file),
        ));
        let _ = std::fs::remove_file(&file);
    }
    let cut = dense_macs as f64 / pruned_macs.max(1) as f64;
    Ok(PrunedComparison {
        ratio,
        model: pruned.config.describe(),
        params: crate::model::summary::count_params(&pruned.config.init(&cpu)),
        dense_macs,
        pruned_macs,
        speedups: speedups(dense, &results, cut),
        results,
    })
}

/// For every pruned row with a dense row of the same backend, the speedup per batch size both
/// measured, and that over the MACs cut `cut`.
fn speedups(dense: &[BackendResult], pruned: &[BackendResult], cut: f64) -> Vec<PruneSpeedup> {
    let mut out = Vec::new();
    for row in pruned.iter().filter(|r| r.skipped.is_none()) {
        let Some(before) = dense.iter().find(|d| d.backend == row.backend) else {
            continue;
        };
        for f in &row.forward {
            let Some(dense_time) = before.forward_at(f.batch) else {
                continue;
            };
            if f.timing.median_secs <= 0.0 {
                continue;
            }
            let speedup = dense_time.median_secs / f.timing.median_secs;
            out.push(PruneSpeedup {
                backend: row.backend.clone(),
                batch: f.batch,
                speedup,
                speedup_per_mac_cut: speedup / cut,
            });
        }
    }
    out
}

/// The pruned network's table: its rows' forward times, then each backend's speedup and
/// speedup per MAC cut.
pub fn render(comparison: &PrunedComparison, batches: &[usize]) -> String {
    let cut = comparison.dense_macs as f64 / comparison.pruned_macs.max(1) as f64;
    let mut headers = vec!["backend (pruned network)".to_string()];
    headers.extend(batches.iter().map(|b| format!("forward b{b}")));
    headers.extend(batches.iter().map(|b| format!("speedup b{b}")));
    headers.extend(batches.iter().map(|b| format!("per MAC cut b{b}")));
    let rows: Vec<Vec<String>> = comparison
        .results
        .iter()
        .map(|r| {
            let mut row = vec![r.backend.clone()];
            if let Some(reason) = &r.skipped {
                row.push(format!("skipped: {reason}"));
                row.resize(1 + 3 * batches.len(), String::new());
                return row;
            }
            let found = |b: usize| {
                comparison
                    .speedups
                    .iter()
                    .find(|s| s.backend == r.backend && s.batch == b)
            };
            for &b in batches {
                row.push(
                    r.forward_at(b)
                        .map_or_else(|| "-".into(), |t| format_secs(t.median_secs)),
                );
            }
            for &b in batches {
                row.push(found(b).map_or_else(|| "-".into(), |s| format!("{:.2}x", s.speedup)));
            }
            for &b in batches {
                row.push(
                    found(b)
                        .map_or_else(|| "-".into(), |s| format!("{:.2}", s.speedup_per_mac_cut)),
                );
            }
            row
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    format!(
        "\npruned: {:.0}% of every channel group removed (L2 filter norms): {} ({} params), \
         MACs per slice {} -> {} ({cut:.2}x fewer); speedup = dense time / pruned time of the \
         same backend, per MAC cut = speedup / {cut:.2} (1.00: time falls as fast as MACs)\n\n{}",
        comparison.ratio * 100.0,
        comparison.model,
        report::thousands(comparison.params as u64),
        report::thousands(comparison.dense_macs),
        report::thousands(comparison.pruned_macs),
        report::table(&headers, &rows)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::ForwardTiming;
    use crate::timing::Timing;

    fn row(backend: &str, times: &[(usize, f64)]) -> BackendResult {
        BackendResult {
            backend: backend.into(),
            peer: false,
            kind: "cpu".into(),
            forward: times
                .iter()
                .map(|&(batch, secs)| ForwardTiming {
                    batch,
                    timing: Timing::from_samples(secs, vec![secs]),
                })
                .collect(),
            train_step: None,
            skipped: None,
        }
    }

    #[test]
    fn speedups_pair_rows_by_backend_and_divide_by_the_mac_cut() {
        let dense = [
            row("cpu (flex)", &[(1, 0.8), (8, 4.0)]),
            row("torch", &[(8, 2.0)]),
        ];
        let pruned = [
            row("cpu (flex)", &[(8, 1.0)]),
            row("torch", &[(1, 0.1), (8, 1.0)]),
            row("ort", &[(8, 1.0)]),
        ];
        let got = speedups(&dense, &pruned, 4.0);
        assert_eq!(
            got,
            vec![
                PruneSpeedup {
                    backend: "cpu (flex)".into(),
                    batch: 8,
                    speedup: 4.0,
                    speedup_per_mac_cut: 1.0
                },
                PruneSpeedup {
                    backend: "torch".into(),
                    batch: 8,
                    speedup: 2.0,
                    speedup_per_mac_cut: 0.5
                },
            ]
        );
    }
}

//! The peer in `bench --against-pytorch`: the same network in PyTorch (tools/torch_bench.py,
//! embedded in the binary), timed in the same run with the same sizes, and its JSON read back.

use std::process::Command;

use serde::Deserialize;

use super::{BackendResult, BenchOptions, ForwardTiming, Timing};
use crate::model::ChannelPlan;

/// The script, embedded so `bench` works from any folder.
const SCRIPT: &str = include_str!("../../tools/torch_bench.py");

/// Where PyTorch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PytorchDevice {
    Cpu,
    Cuda,
}

impl PytorchDevice {
    pub fn as_str(self) -> &'static str {
        match self {
            PytorchDevice::Cpu => "cpu",
            PytorchDevice::Cuda => "cuda",
        }
    }

    /// The kind of row it is compared with.
    fn kind(self) -> &'static str {
        match self {
            PytorchDevice::Cpu => "cpu",
            PytorchDevice::Cuda => "gpu",
        }
    }
}

/// What tools/torch_bench.py prints with `--json` (fields this side does not use are ignored).
#[derive(Deserialize)]
struct PeerReport {
    version: String,
    device_name: String,
    threads: usize,
    forward: Vec<ForwardTiming>,
    train_step: Option<Timing>,
    /// The same forward in ONNX Runtime (CPU runs with `--onnx` only).
    onnxruntime: Option<OrtReport>,
}

/// ONNX Runtime's part of the script's report: timings, or why there are none.
#[derive(Deserialize)]
struct OrtReport {
    version: Option<String>,
    threads: Option<usize>,
    #[serde(default)]
    forward: Vec<ForwardTiming>,
    skipped: Option<String>,
}

/// PyTorch's timings as result rows (ONNX Runtime's too on the CPU), or a skipped row saying
/// why they could not be measured.
pub fn run(options: &BenchOptions, device: PytorchDevice) -> Vec<BackendResult> {
    let name = format!("pytorch ({})", device.as_str());
    let peer = match try_run(options, device) {
        Ok(peer) => peer,
        Err(reason) => {
            let mut row = BackendResult::skipped(name, device.kind(), reason);
            row.peer = true;
            return vec![row];
        }
    };
    let mut rows = vec![BackendResult {
        backend: format!(
            "pytorch {} ({}: {}, {} threads)",
            peer.version,
            device.as_str(),
            peer.device_name,
            peer.threads
        ),
        peer: true,
        kind: device.kind().into(),
        forward: peer.forward,
        train_step: peer.train_step,
        skipped: None,
    }];
    if let Some(ort) = peer.onnxruntime {
        let label = format!(
            "onnxruntime {} (cpu, {} threads)",
            ort.version.as_deref().unwrap_or("?"),
            ort.threads.unwrap_or(0)
        );
        rows.push(BackendResult {
            backend: label,
            peer: true,
            kind: device.kind().into(),
            forward: ort.forward,
            train_step: None,
            skipped: ort.skipped,
        });
    }
    rows
}

fn try_run(options: &BenchOptions, device: PytorchDevice) -> Result<PeerReport, String> {
    let config = &options.config;
    let widths = config.encoder_widths();
    let doubling = (1..5).all(|i| widths[i] == widths[0] << i);
    if config.plan != ChannelPlan::from_encoder_widths(widths) || !doubling {
        return Err("the PyTorch twin builds unpruned width-multiplier plans only".into());
    }
    if options.height != options.width {
        return Err("the PyTorch twin times square inputs only".into());
    }
    let script = std::env::temp_dir().join(format!("raagr2-torch-bench-{}.py", std::process::id()));
    std::fs::write(&script, SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
    let python = std::env::var("RAAGR2_PYTHON").unwrap_or_else(|_| "python3".into());
    let batches: Vec<String> = options
        .forward_batches
        .iter()
        .map(usize::to_string)
        .collect();
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .args(["--device", device.as_str()])
        .args(["--variant", config.variant.name()])
        .args(["--width", &(widths[0] as f64 / 32.0).to_string()])
        .args(["--outputs", &config.head.classes().to_string()])
        .args(["--size", &options.height.to_string()])
        .args(["--forward-batches", &batches.join(",")])
        .args(["--train-batch", &options.train_batch.to_string()])
        .args(["--runs", &options.runs.to_string()])
        // Both sides read the output back to the host, as a viewer must.
        .arg("--to-host")
        .arg("--json");
    if device == PytorchDevice::Cpu {
        command.arg("--onnx");
    }
    if let Some(threads) = options.pytorch_threads {
        command.args(["--threads", &threads.to_string()]);
    }
    let output = command.output();
    let _ = std::fs::remove_file(&script);
    let output = output.map_err(|e| format!("cannot run {python}: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "{python} tools/torch_bench.py failed ({}): {}",
            output.status,
            tail.join(" | ")
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("tools/torch_bench.py printed no report ({e})"))
}

//! The peer in `bench --against-pytorch`: the same network in PyTorch (tools/torch_bench.py,
//! embedded in the binary), timed in the same run with the same sizes, and its JSON read back.

use serde::Deserialize;

use super::peer_script;
use super::{BackendResult, BenchOptions, ForwardTiming};
use crate::model::ChannelPlan;
use crate::timing::Timing;

/// The script, embedded so `bench` works from any folder.
const SCRIPT: &str = include_str!("../../tools/torch_bench.py");
/// The network in PyTorch, which the script imports.
const MODEL: peer_script::Script = (
    "tools/raagr2_torch.py",
    include_str!("../../tools/raagr2_torch.py"),
);

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
    onnxruntime: Option<super::onnxruntime::OrtReport>,
}

/// PyTorch's timings as result rows (ONNX Runtime's too on the CPU), or a skipped row saying
/// why they could not be measured.
pub fn run(options: &BenchOptions, device: PytorchDevice) -> Vec<BackendResult> {
    run_checkpoint(options, device, None)
}

/// [`run`] on the network of a checkpoint file (a pruned one: the twin infers its channel
/// plan from the weights' shapes) instead of a fresh one of the options' width.
pub fn run_checkpoint(
    options: &BenchOptions,
    device: PytorchDevice,
    checkpoint: Option<&std::path::Path>,
) -> Vec<BackendResult> {
    let name = format!("pytorch ({})", device.as_str());
    let peer = match try_run(options, device, checkpoint) {
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
        rows.push(ort.into_row("PyTorch's export"));
    }
    rows
}

fn try_run(
    options: &BenchOptions,
    device: PytorchDevice,
    checkpoint: Option<&std::path::Path>,
) -> Result<PeerReport, String> {
    let config = &options.config;
    let widths = config.encoder_widths();
    let doubling = (1..5).all(|i| widths[i] == widths[0] << i);
    let width_multiplier = config.plan == ChannelPlan::from_encoder_widths(widths) && doubling;
    if checkpoint.is_none() && !width_multiplier {
        return Err("the PyTorch twin builds unpruned width-multiplier plans only".into());
    }
    if options.height != options.width {
        return Err("the PyTorch twin times square inputs only".into());
    }
    let batches: Vec<String> = options
        .forward_batches
        .iter()
        .map(usize::to_string)
        .collect();
    let mut args: Vec<String> = [
        ("--device", device.as_str().to_string()),
        ("--variant", config.variant.name().to_string()),
        ("--width", (widths[0] as f64 / 32.0).to_string()),
        ("--outputs", config.head.classes().to_string()),
        ("--size", options.height.to_string()),
        ("--forward-batches", batches.join(",")),
        ("--train-batch", options.train_batch.to_string()),
        ("--runs", options.runs.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect();
    if let Some(file) = checkpoint {
        args.extend(["--checkpoint".to_string(), file.display().to_string()]);
    }
    // Both sides read the output back to the host, as a viewer must.
    args.push("--to-host".into());
    if device == PytorchDevice::Cpu {
        args.push("--onnx".into());
    }
    if let Some(threads) = options.pytorch_threads {
        args.extend(["--threads".to_string(), threads.to_string()]);
    }
    peer_script::run(
        ("tools/torch_bench.py", SCRIPT),
        &[MODEL, super::onnxruntime::SCRIPT],
        &args,
    )
}

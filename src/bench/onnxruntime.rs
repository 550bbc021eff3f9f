//! ONNX Runtime as a peer of `bench`: the graph this project exports of the benched network
//! (`export --onnx`, in fp32, fp16 and int8), or an ONNX file given, timed on the CPU by
//! tools/onnxruntime_bench.py (embedded in the binary) with the same sizes in the same run.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::peer_script::{self, Script};
use super::{BackendResult, BenchOptions, ForwardTiming};
use crate::backend;
use crate::export::{ModelFormat, Precision, model_bytes};
use crate::model::Checkpoint;

/// The project's one ONNX Runtime runner (torch_bench.py imports it too).
pub(super) const SCRIPT: Script = (
    "tools/onnxruntime_bench.py",
    include_str!("../../tools/onnxruntime_bench.py"),
);

/// Which ONNX graphs `bench` times in ONNX Runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnnxPeer {
    /// The benched network as `export --onnx` writes it, in fp32, fp16 and int8.
    OwnExport,
    /// A graph from elsewhere (or an earlier export), input N x 4 x H x W.
    File(PathBuf),
}

/// What the runner prints: timings, or why there are none.
#[derive(Deserialize)]
pub(super) struct OrtReport {
    version: Option<String>,
    threads: Option<usize>,
    #[serde(default)]
    forward: Vec<ForwardTiming>,
    skipped: Option<String>,
}

impl OrtReport {
    /// The report as a CPU peer row; `what` says which graph it ran.
    pub(super) fn into_row(self, what: &str) -> BackendResult {
        BackendResult {
            backend: format!(
                "onnxruntime {} (cpu, {what}, {} threads)",
                self.version.as_deref().unwrap_or("?"),
                self.threads.unwrap_or(0)
            ),
            peer: true,
            kind: "cpu".into(),
            forward: self.forward,
            train_step: None,
            skipped: self.skipped,
        }
    }
}

/// ONNX Runtime's rows for `peer`: one per graph timed (a skipped row saying why where one
/// could not be).
pub fn run(options: &BenchOptions, peer: &OnnxPeer) -> Vec<BackendResult> {
    match peer {
        OnnxPeer::File(path) => {
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            vec![time_file(options, path, &name)]
        }
        OnnxPeer::OwnExport => Precision::ALL
            .into_iter()
            .map(|precision| time_own_export(options, precision))
            .collect(),
    }
}

/// The benched network (fresh weights, as every backend times) exported in `precision`,
/// written to a temporary file and timed.
fn time_own_export(options: &BenchOptions, precision: Precision) -> BackendResult {
    let what = format!("own export {}", precision.name());
    let model = options.config.init(&backend::cpu_device());
    let checkpoint = Checkpoint::from_model(&options.config, &model);
    let path = std::env::temp_dir().join(format!(
        "raagr2-bench-{}-{}.onnx",
        std::process::id(),
        precision.name()
    ));
    let row = model_bytes(&checkpoint, ModelFormat::Onnx, precision)
        .map_err(|e| format!("exporting to ONNX: {e:#}"))
        .and_then(|bytes| {
            std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
        })
        .map(|()| time_file(options, &path, &what));
    let _ = std::fs::remove_file(&path);
    row.unwrap_or_else(|reason| skipped(&what, reason))
}

/// ONNX Runtime's forward of the graph at `path`.
fn time_file(options: &BenchOptions, path: &Path, what: &str) -> BackendResult {
    let batches: Vec<String> = options
        .forward_batches
        .iter()
        .map(usize::to_string)
        .collect();
    let mut args = vec![
        path.display().to_string(),
        "--batches".into(),
        batches.join(","),
        "--size".into(),
        options.height.to_string(),
        "--runs".into(),
        options.runs.to_string(),
    ];
    // As many threads as this project's CPU backends use, unless told otherwise.
    let threads = options.pytorch_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    args.extend(["--threads".to_string(), threads.to_string()]);
    match peer_script::run::<OrtReport>(SCRIPT, &[], &args) {
        Ok(report) => report.into_row(what),
        Err(reason) => skipped(what, reason),
    }
}

fn skipped(what: &str, reason: String) -> BackendResult {
    let mut row = BackendResult::skipped(format!("onnxruntime (cpu, {what})"), "cpu", reason);
    row.peer = true;
    row
}

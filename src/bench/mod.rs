//! Benchmarks: eval forward latency per batch size and one Adam training step per backend,
//! the first (compile/autotune) call reported apart from the steady-state median, optionally
//! side by side with PyTorch measured in the same run.

pub mod classifier;
mod load;
mod memory;
mod onnxruntime;
mod peer_script;
mod pruned;
mod pytorch;
pub mod views;

use std::time::Instant;

use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

use crate::backend::{self, DeviceChoice};
use crate::model::ModelConfig;
use crate::report;
use crate::timing::{Timing, compare_forward};
use crate::train::train_step;

pub use load::LoadResult;
pub use onnxruntime::OnnxPeer;
pub use pruned::{PruneSpeedup, PrunedComparison};
pub use pytorch::PytorchDevice;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub config: ModelConfig,
    pub height: usize,
    pub width: usize,
    pub runs: usize,
    /// Batch sizes of the timed eval forwards.
    pub forward_batches: Vec<usize>,
    /// Batch size of the training step; 0 skips it.
    pub train_batch: usize,
    /// Time the forward as inference runs it, each batch norm folded into its convolution
    /// (false: the norms as separate layers, as training runs them, to see what folding gives).
    pub fold_norms: bool,
    /// Time the folded forward with each convolution's epilogue (bias, activations, residual
    /// adds, input concatenation) in the fused Flex kernel (false: as separate operations, to
    /// see what the fusion gives).
    pub fused: bool,
    /// Also time the network with this share of every channel group removed, beside PyTorch
    /// and ONNX Runtime on the same pruned network when they run (`None`: not).
    pub pruned: Option<f64>,
    pub backends: Vec<DeviceChoice>,
    /// PyTorch devices to time the same network on in the same run (empty: none).
    pub pytorch: Vec<PytorchDevice>,
    /// CPU threads PyTorch and ONNX Runtime may use (the machine's cores when `None`).
    pub pytorch_threads: Option<usize>,
    /// ONNX graphs to time in ONNX Runtime in the same run (`None`: none).
    pub onnx: Option<OnnxPeer>,
    /// A BraTS case folder whose loading is timed.
    pub load_case: Option<std::path::PathBuf>,
    /// Time nibabel loading it too, in the same run.
    pub load_against_nibabel: bool,
}

/// Eval-forward timing at one batch size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardTiming {
    pub batch: usize,
    #[serde(flatten)]
    pub timing: Timing,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendResult {
    /// "cpu (flex)", "gpu (wgpu: NVIDIA H200)", "pytorch 2.11.0 (cuda: NVIDIA H200)".
    pub backend: String,
    /// Whether this row is a peer (PyTorch, ONNX Runtime) the project is compared against.
    #[serde(default)]
    pub peer: bool,
    /// "cpu" or "gpu": rows are compared within a kind.
    pub kind: String,
    pub forward: Vec<ForwardTiming>,
    pub train_step: Option<Timing>,
    /// Why this backend was not measured (e.g. no wgpu adapter).
    pub skipped: Option<String>,
}

impl BackendResult {
    fn skipped(backend: String, kind: &str, reason: String) -> BackendResult {
        BackendResult {
            backend,
            peer: false,
            kind: kind.into(),
            forward: Vec::new(),
            train_step: None,
            skipped: Some(reason),
        }
    }

    fn forward_at(&self, batch: usize) -> Option<&Timing> {
        self.forward
            .iter()
            .find(|f| f.batch == batch)
            .map(|f| &f.timing)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub params: usize,
    /// Channels, height, width of one input slice.
    pub input: [usize; 3],
    pub forward_batches: Vec<usize>,
    pub train_batch: usize,
    pub runs: usize,
    pub results: Vec<BackendResult>,
    /// Loading `--load-case`: this project's reader, then nibabel's.
    pub case_load: Vec<LoadResult>,
    /// This project's time over each peer's of the same kind (CPU or GPU), per measurement.
    pub ratios: Vec<PeerRatio>,
    /// `--pruned`: the pruned network's rows and speedups, or why it was not measured.
    pub pruned: Option<PrunedRows>,
}

/// What `--pruned` gave: the comparison, or (as `{"skipped": reason}`) why there is none.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum PrunedRows {
    Measured(PrunedComparison),
    Skipped { skipped: String },
}

/// This project's median time over a peer's for one pair of rows: below 1, this project is
/// faster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerRatio {
    pub ours: String,
    pub peer: String,
    /// (batch, ratio) of the eval forward per batch size both rows measured.
    pub forward: Vec<(usize, f64)>,
    pub train_step: Option<f64>,
}

/// Every (this project, peer) pair of rows of one kind, with their time ratios.
fn peer_ratios(results: &[BackendResult], forward_batches: &[usize]) -> Vec<PeerRatio> {
    let ratio = |a: Option<&Timing>, b: Option<&Timing>| match (a, b) {
        (Some(a), Some(b)) if b.median_secs > 0.0 => Some(a.median_secs / b.median_secs),
        _ => None,
    };
    let measured = |r: &&BackendResult| r.skipped.is_none();
    let mut out = Vec::new();
    for ours in results.iter().filter(|r| !r.peer).filter(measured) {
        let peers = results
            .iter()
            .filter(|p| p.peer && p.kind == ours.kind)
            .filter(measured);
        for peer in peers {
            out.push(PeerRatio {
                ours: ours.backend.clone(),
                peer: peer.backend.clone(),
                forward: forward_batches
                    .iter()
                    .filter_map(|&b| Some((b, ratio(ours.forward_at(b), peer.forward_at(b))?)))
                    .collect(),
                train_step: ratio(ours.train_step.as_ref(), peer.train_step.as_ref()),
            });
        }
    }
    out
}

fn kind_of(choice: DeviceChoice) -> &'static str {
    match choice {
        DeviceChoice::Gpu => "gpu",
        DeviceChoice::Auto => "auto",
        _ => "cpu",
    }
}

/// Times every requested backend, then PyTorch where asked; a backend that cannot start is
/// reported as skipped.
pub fn run_bench(options: &BenchOptions, mut progress: impl FnMut(&str)) -> BenchReport {
    crate::model::fused::set_fused_inference(options.fused);
    // PyTorch runs first, in its own process, before this one opens any device: a wgpu runtime
    // left alive here would share the GPU and the cores with it.
    let mut peers = Vec::new();
    for &device in &options.pytorch {
        progress(&format!(
            "pytorch ({}): forward and train step",
            device.as_str()
        ));
        for row in pytorch::run(options, device) {
            progress(&summary_line(&row));
            peers.push(row);
        }
    }
    if let Some(onnx) = &options.onnx {
        progress("onnxruntime (cpu): forward");
        for row in onnxruntime::run(options, onnx) {
            progress(&summary_line(&row));
            peers.push(row);
        }
    }
    let mut results = Vec::new();
    for &choice in &options.backends {
        let (device, label) = match backend::resolve(choice) {
            Ok(found) => found,
            Err(reason) => {
                let name = format!("{choice:?}").to_lowercase();
                results.push(BackendResult::skipped(name, kind_of(choice), reason));
                continue;
            }
        };
        let kind = if label.starts_with("gpu") {
            "gpu"
        } else {
            "cpu"
        };
        let model = options.config.init(&device);
        let model = if options.fold_norms {
            model.folded()
        } else {
            model
        };
        let forward = time_forwards(options, &model, &device, kind, &label, &mut progress);
        let train_step = (options.train_batch > 0).then(|| {
            progress(&format!(
                "{label}: train step (batch {}) x{}",
                options.train_batch, options.runs
            ));
            let (timing, peak) = with_peak_memory(kind, || time_train_step(options, &device));
            Timing {
                peak_mem_bytes: peak,
                ..timing
            }
        });
        let row = BackendResult {
            backend: label,
            peer: false,
            kind: kind.into(),
            forward,
            train_step,
            skipped: None,
        };
        progress(&summary_line(&row));
        results.push(row);
    }
    results.extend(peers);
    let pruned = options.pruned.map(|ratio| {
        progress(&format!(
            "the network with {ratio} of every channel group removed"
        ));
        pruned::run(options, ratio, &results, &mut progress)
    });
    let case_load = match &options.load_case {
        Some(case) => {
            progress(&format!("loading {} x{}", case.display(), options.runs));
            load::time_loads(case, options.runs, options.load_against_nibabel)
        }
        None => Vec::new(),
    };
    BenchReport {
        model: options.config.describe(),
        params: crate::model::summary::count_params(&options.config.init(&backend::cpu_device())),
        input: [4, options.height, options.width],
        forward_batches: options.forward_batches.clone(),
        train_batch: options.train_batch,
        runs: options.runs,
        ratios: peer_ratios(&results, &options.forward_batches),
        results,
        case_load,
        pruned: pruned.map(|p| match p {
            Ok(comparison) => PrunedRows::Measured(comparison),
            Err(skipped) => PrunedRows::Skipped { skipped },
        }),
    }
}

/// The eval forward of `model` at each of the options' batch sizes, with its peak memory.
fn time_forwards(
    options: &BenchOptions,
    model: &crate::model::Raagr2Net,
    device: &Device,
    kind: &str,
    label: &str,
    progress: &mut dyn FnMut(&str),
) -> Vec<ForwardTiming> {
    let mut forward = Vec::new();
    for &batch in &options.forward_batches {
        progress(&format!("{label}: forward batch {batch} x{}", options.runs));
        let (timing, peak) = with_peak_memory(kind, || {
            let [timing] = compare_forward(
                &[model],
                [batch, options.height, options.width],
                options.runs,
                device,
            );
            timing
        });
        let timing = Timing {
            peak_mem_bytes: peak,
            ..timing
        };
        progress(&format!(
            "{label}: forward b{batch} {} (first {})",
            format_secs(timing.median_secs),
            format_secs(timing.first_secs)
        ));
        forward.push(ForwardTiming { batch, timing });
    }
    forward
}

/// Runs `measure` and, on the CPU, the process's peak resident memory during it (a GPU's
/// memory is not in the process's resident size).
fn with_peak_memory<T>(kind: &str, measure: impl FnOnce() -> T) -> (T, Option<u64>) {
    memory::reset_peak();
    let result = measure();
    let peak = if kind == "cpu" {
        memory::peak_bytes()
    } else {
        None
    };
    (result, peak)
}

/// One backend's medians on a line, logged as soon as they are measured.
fn summary_line(row: &BackendResult) -> String {
    if let Some(reason) = &row.skipped {
        return format!("{}: skipped ({reason})", row.backend);
    }
    let mut parts: Vec<String> = row
        .forward
        .iter()
        .map(|f| {
            format!(
                "forward b{} {} (first {})",
                f.batch,
                format_secs(f.timing.median_secs),
                format_secs(f.timing.first_secs)
            )
        })
        .collect();
    if let Some(t) = &row.train_step {
        parts.push(format!(
            "train step {} (first {})",
            format_secs(t.median_secs),
            format_secs(t.first_secs)
        ));
    }
    format!("{}: {}", row.backend, parts.join(", "))
}

/// Forward, loss, backward and Adam update on a random batch; the first step timed apart. The
/// device is synchronised after each step so queued GPU work is counted.
fn time_train_step(options: &BenchOptions, device: &Device) -> Timing {
    let device = device.clone().autodiff();
    let mut model = options.config.init(&device);
    let mut optimizer = AdamConfig::new().init();
    let b = options.train_batch;
    let (h, w) = (options.height, options.width);
    let x = Tensor::<4>::random([b, 4, h, w], Distribution::Normal(0.0, 1.0), &device);
    // Targets are the three regions (WT, TC, ET) whatever the head's layout.
    let y = Tensor::<4>::random([b, 3, h, w], Distribution::Bernoulli(0.2), &device);
    let mut first = 0.0;
    let mut samples = Vec::with_capacity(options.runs);
    for run in 0..=options.runs {
        let start = Instant::now();
        let (next, _loss) = train_step(
            options.config.head,
            model,
            &mut optimizer,
            1e-4,
            x.clone(),
            y.clone(),
        );
        model = next;
        let _ = device.sync();
        let secs = start.elapsed().as_secs_f64();
        if run == 0 {
            first = secs;
        } else {
            samples.push(secs);
        }
    }
    Timing::from_samples(first, samples)
}

/// The report as the table `bench` prints: one row per backend, then this project's time over
/// PyTorch's for each measurement (below 1: this project is faster).
pub fn render(report: &BenchReport) -> String {
    let mut headers: Vec<String> = vec!["backend".into()];
    for b in &report.forward_batches {
        headers.push(format!("forward b{b}"));
    }
    if report.train_batch > 0 {
        headers.push(format!("train step b{}", report.train_batch));
    }
    headers.push("first call (fwd / train)".into());
    headers.push("note".into());
    let secs = |t: Option<&Timing>| t.map_or_else(|| "-".into(), |t| format_secs(t.median_secs));
    let mut rows = Vec::new();
    for r in &report.results {
        let mut row = vec![r.backend.clone()];
        for &b in &report.forward_batches {
            row.push(secs(r.forward_at(b)));
        }
        if report.train_batch > 0 {
            row.push(secs(r.train_step.as_ref()));
        }
        let first_fwd = r.forward.first().map(|f| format_secs(f.timing.first_secs));
        let first_train = r.train_step.as_ref().map(|t| format_secs(t.first_secs));
        row.push(match (first_fwd, first_train) {
            (Some(f), Some(t)) => format!("{f} / {t}"),
            (Some(f), None) => f,
            _ => "-".into(),
        });
        row.push(r.skipped.clone().unwrap_or_default());
        rows.push(row);
    }
    for ratio in &report.ratios {
        rows.push(ratio_row(report, ratio));
    }
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut out = format!(
        "model: {} ({} params)\ninput: batch x {}x{}x{}; median of {} runs after a first call timed apart\n\n",
        report.model,
        report::thousands(report.params as u64),
        report.input[0],
        report.input[1],
        report.input[2],
        report.runs,
    );
    if !rows.is_empty() {
        out.push_str(&report::table(&headers, &rows));
    }
    match &report.pruned {
        Some(PrunedRows::Measured(comparison)) => {
            out.push_str(&pruned::render(comparison, &report.forward_batches))
        }
        Some(PrunedRows::Skipped { skipped }) => {
            out.push_str(&format!("\npruned network: not measured ({skipped})\n"))
        }
        None => {}
    }
    if let Some(memory) = render_peak_memory(report) {
        out.push_str(&memory);
    }
    if !report.case_load.is_empty() {
        out.push_str(&render_case_load(&report.case_load));
    }
    out
}

/// Peak memory per measurement, for the rows that report it.
fn render_peak_memory(report: &BenchReport) -> Option<String> {
    let mib = |t: Option<&Timing>| {
        t.and_then(|t| t.peak_mem_bytes).map_or_else(
            || "-".into(),
            |b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64),
        )
    };
    let rows: Vec<Vec<String>> = report
        .results
        .iter()
        .filter(|r| r.forward.iter().any(|f| f.timing.peak_mem_bytes.is_some()))
        .map(|r| {
            let mut row = vec![r.backend.clone()];
            row.extend(report.forward_batches.iter().map(|&b| mib(r.forward_at(b))));
            if report.train_batch > 0 {
                row.push(mib(r.train_step.as_ref()));
            }
            row
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let mut headers = vec!["backend".to_string()];
    headers.extend(
        report
            .forward_batches
            .iter()
            .map(|b| format!("forward b{b}")),
    );
    if report.train_batch > 0 {
        headers.push(format!("train step b{}", report.train_batch));
    }
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    Some(format!(
        "\npeak memory while measuring (CPU: the process's resident size, reset before each \
         measurement; CUDA: PyTorch's allocator)\n\n{}",
        report::table(&headers, &rows)
    ))
}

/// The case-load table: each reader's median and first load, then the ratio to nibabel.
fn render_case_load(loads: &[LoadResult]) -> String {
    let mut rows: Vec<Vec<String>> = loads
        .iter()
        .map(|l| {
            let median = l.timing.as_ref().map(|t| format_secs(t.median_secs));
            let first = l.timing.as_ref().map(|t| format_secs(t.first_secs));
            vec![
                l.reader.clone(),
                median.unwrap_or_else(|| "-".into()),
                first.unwrap_or_else(|| "-".into()),
                l.skipped.clone().unwrap_or_default(),
            ]
        })
        .collect();
    if let [ours, peer] = loads
        && let (Some(a), Some(b)) = (&ours.timing, &peer.timing)
    {
        rows.push(vec![
            "raagr2-lab / nibabel".into(),
            format!("{:.2}x", a.median_secs / b.median_secs),
            String::new(),
            "time ratio; below 1.00x is faster".into(),
        ]);
    }
    format!(
        "\ncase load (four modalities and the segmentation, decoded to float32)\n\n{}",
        report::table(&["reader", "median", "first", "note"], &rows)
    )
}

/// This project's time over a peer's for each measurement both made.
fn ratio_row(report: &BenchReport, ratio: &PeerRatio) -> Vec<String> {
    let shown = |r: Option<f64>| r.map_or_else(|| "-".into(), |r| format!("{r:.2}x"));
    let peer_name = ratio.peer.split(" (").next().unwrap_or(&ratio.peer);
    let mut row = vec![format!("{} / {peer_name}", ratio.ours)];
    for &b in &report.forward_batches {
        let at = ratio.forward.iter().find(|(batch, _)| *batch == b);
        row.push(shown(at.map(|(_, r)| *r)));
    }
    if report.train_batch > 0 {
        row.push(shown(ratio.train_step));
    }
    row.push(String::new());
    row.push("time ratio; below 1.00x is faster".into());
    row
}

/// Seconds under 1 as milliseconds, so GPU and CPU rows read alike.
fn format_secs(secs: f64) -> String {
    if secs < 1.0 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{secs:.2} s")
    }
}

//! Benchmarks: eval forward latency and one Adam training step per backend, median of runs.

use std::time::Instant;

use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::Serialize;

use crate::backend::{self, DeviceChoice};
use crate::model::{ModelConfig, Raagr2Net};
use crate::report;
use crate::train::train_step;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub config: ModelConfig,
    pub height: usize,
    pub width: usize,
    pub runs: usize,
    /// Batch size of the training step; 0 skips it.
    pub train_batch: usize,
    pub backends: Vec<DeviceChoice>,
}

/// Median, min and max of the timed runs, in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub median_secs: f64,
    pub min_secs: f64,
    pub max_secs: f64,
    pub runs: usize,
}

impl Timing {
    fn from_samples(mut samples: Vec<f64>) -> Timing {
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2.0
        };
        Timing {
            median_secs: median,
            min_secs: samples[0],
            max_secs: samples[n - 1],
            runs: n,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendResult {
    pub backend: String,
    pub forward: Option<Timing>,
    pub train_step: Option<Timing>,
    /// Why this backend was not measured (e.g. no wgpu adapter).
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub params: usize,
    pub input: [usize; 4],
    pub train_batch: usize,
    pub results: Vec<BackendResult>,
}

/// Times every requested backend; a backend that cannot start is reported as skipped.
pub fn run_bench(options: &BenchOptions, mut progress: impl FnMut(&str)) -> BenchReport {
    let mut results = Vec::new();
    for &choice in &options.backends {
        let (device, label) = match backend::resolve(choice) {
            Ok(found) => found,
            Err(reason) => {
                results.push(BackendResult {
                    backend: format!("{choice:?}").to_lowercase(),
                    forward: None,
                    train_step: None,
                    skipped: Some(reason),
                });
                continue;
            }
        };
        progress(&format!("{label}: forward x{}", options.runs));
        let forward = time_forward(options, &device);
        let train_step = (options.train_batch > 0).then(|| {
            progress(&format!(
                "{label}: train step (batch {}) x{}",
                options.train_batch, options.runs
            ));
            time_train_step(options, &device)
        });
        results.push(BackendResult {
            backend: label.to_string(),
            forward: Some(forward),
            train_step,
            skipped: None,
        });
    }
    BenchReport {
        model: options.config.describe(),
        params: crate::model::summary::count_params(&options.config.init(&backend::cpu_device())),
        input: [1, 4, options.height, options.width],
        train_batch: options.train_batch,
        results,
    }
}

/// One warm-up forward (kernel selection, allocation), then `runs` timed ones; reading the
/// output back to the host makes each timing include the device's work.
fn time_forward(options: &BenchOptions, device: &Device) -> Timing {
    let model = options.config.init(device);
    let [timing] = compare_forward(&[&model], [1, options.height], options.runs, device);
    timing
}

/// Eval-forward latency of several models on one `batch x 4 x size x size` input, measured in one
/// run with the models interleaved (so machine load affects them alike): a warm-up each, then
/// `runs` timed rounds.
pub fn compare_forward<const N: usize>(
    models: &[&Raagr2Net; N],
    [batch, size]: [usize; 2],
    runs: usize,
    device: &Device,
) -> [Timing; N] {
    let shape = [batch.max(1), 4, size, size];
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(runs));
    for run in 0..=runs {
        for (model, s) in models.iter().zip(samples.iter_mut()) {
            let start = Instant::now();
            let _ = model.forward(x.clone()).into_data();
            if run > 0 {
                s.push(start.elapsed().as_secs_f64());
            }
        }
    }
    samples.map(Timing::from_samples)
}

/// Forward, loss, backward and Adam update on a random batch, warm-up first.
fn time_train_step(options: &BenchOptions, device: &Device) -> Timing {
    let device = device.clone().autodiff();
    let mut model = options.config.init(&device);
    let mut optimizer = AdamConfig::new().init();
    let b = options.train_batch;
    let (h, w) = (options.height, options.width);
    let x = Tensor::<4>::random([b, 4, h, w], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<4>::random([b, 3, h, w], Distribution::Bernoulli(0.2), &device);
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
        if run > 0 {
            samples.push(start.elapsed().as_secs_f64());
        }
    }
    Timing::from_samples(samples)
}

/// The report as the table `bench` prints.
pub fn render(report: &BenchReport) -> String {
    let mut rows = Vec::new();
    for r in &report.results {
        let fmt = |t: &Option<Timing>| {
            t.as_ref()
                .map(|t| format!("{:.3} s", t.median_secs))
                .unwrap_or_else(|| "-".into())
        };
        let range = |t: &Option<Timing>| {
            t.as_ref()
                .map(|t| format!("{:.3}-{:.3}", t.min_secs, t.max_secs))
                .unwrap_or_default()
        };
        rows.push(vec![
            r.backend.clone(),
            fmt(&r.forward),
            range(&r.forward),
            fmt(&r.train_step),
            range(&r.train_step),
            r.skipped.clone().unwrap_or_default(),
        ]);
    }
    let mut out = format!(
        "model: {} ({} params)\ninput: {}x{}x{}x{}; training step at batch {}; median of {} runs after one warm-up\n\n",
        report.model,
        report::thousands(report.params as u64),
        report.input[0],
        report.input[1],
        report.input[2],
        report.input[3],
        report.train_batch,
        report
            .results
            .iter()
            .find_map(|r| r.forward.as_ref())
            .map_or(0, |t| t.runs),
    );
    out.push_str(&report::table(
        &["backend", "forward", "range", "train step", "range", "note"],
        &rows,
    ));
    out
}

//! `classify bench`: a classifier's eval forward per batch size and one SGD training step on this
//! project's CPU backend, beside the same torchvision network in PyTorch
//! (tools/torch_classifier_bench.py, embedded) measured in the same run.

use burn::prelude::*;
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

use super::{ForwardTiming, peer_script};
use crate::classify::train::{TrainSettings, sgd, step};
use crate::classify::{Classifier, ClassifierCheckpoint, ClassifierConfig};
use crate::timing::{Timing, timed};

const SCRIPT: &str = include_str!("../../tools/torch_classifier_bench.py");

/// What to time.
#[derive(Debug, Clone)]
pub struct ClassifierBenchOptions {
    pub config: ClassifierConfig,
    /// Input side (32 for CIFAR).
    pub side: usize,
    pub forward_batches: Vec<usize>,
    /// Batch of the training step (0: none).
    pub train_batch: usize,
    pub runs: usize,
    pub against_pytorch: bool,
}

/// One implementation's timings (or why it has none).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierTimings {
    pub name: String,
    pub forward: Vec<ForwardTiming>,
    pub train_step: Option<Timing>,
    pub skipped: Option<String>,
}

/// What tools/torch_classifier_bench.py prints.
#[derive(Deserialize)]
struct ClassifierPeerReport {
    version: String,
    device_name: String,
    threads: usize,
    forward: Vec<ForwardTiming>,
    train_step: Option<Timing>,
}

/// This project on `device` (named `label`), then PyTorch on the CPU when asked for.
pub fn run(
    options: &ClassifierBenchOptions,
    device: &Device,
    label: &str,
) -> Vec<ClassifierTimings> {
    let ours = ClassifierTimings {
        name: format!("raagr2-lab {} ({label})", env!("CARGO_PKG_VERSION")),
        forward: options
            .forward_batches
            .iter()
            .map(|&batch| ForwardTiming {
                batch,
                timing: time_forward(options, batch, device),
            })
            .collect(),
        train_step: (options.train_batch > 0).then(|| time_train_step(options, device)),
        skipped: None,
    };
    let mut rows = vec![ours];
    if options.against_pytorch {
        rows.push(pytorch(options));
    }
    rows
}

/// A model of the config with its weights materialised (burn initialises parameters lazily, on
/// first use, which would otherwise land in the first timed call).
fn materialised(config: &ClassifierConfig, device: &Device) -> Classifier {
    ClassifierCheckpoint::from_model(config, &config.init(device))
        .build(device)
        .expect("a model's own weights load back")
}

fn time_forward(options: &ClassifierBenchOptions, batch: usize, device: &Device) -> Timing {
    let model = materialised(&options.config, device).valid();
    let side = options.side;
    let x = Tensor::<4>::random(
        [batch, 3, side, side],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    // Reading the logits back makes each timing include all of the device's work.
    timed(options.runs, || {
        let _ = model.forward(x.clone()).into_data();
    })
}

fn time_train_step(options: &ClassifierBenchOptions, device: &Device) -> Timing {
    let device = device.clone().autodiff();
    let mut model = Some(materialised(&options.config, &device));
    let mut optimizer = sgd(&TrainSettings::default());
    let (b, side) = (options.train_batch, options.side);
    let x = Tensor::<4>::random([b, 3, side, side], Distribution::Normal(0.0, 1.0), &device);
    let labels: Vec<i64> = (0..b as i64)
        .map(|i| i % options.config.classes() as i64)
        .collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), &device);
    timed(options.runs, || {
        let current = model.take().expect("the model is put back after each step");
        let (next, _, _) = step(current, &mut optimizer, 0.01, (x.clone(), y.clone()), None);
        model = Some(next);
    })
}

fn pytorch(options: &ClassifierBenchOptions) -> ClassifierTimings {
    let batches: Vec<String> = options
        .forward_batches
        .iter()
        .map(usize::to_string)
        .collect();
    let args = vec![
        "--config".to_string(),
        options.config.to_json(),
        "--side".to_string(),
        options.side.to_string(),
        "--forward-batches".to_string(),
        batches.join(","),
        "--train-batch".to_string(),
        options.train_batch.to_string(),
        "--runs".to_string(),
        options.runs.to_string(),
    ];
    match peer_script::run::<ClassifierPeerReport>(
        ("tools/torch_classifier_bench.py", SCRIPT),
        &[],
        &args,
    ) {
        Ok(peer) => ClassifierTimings {
            name: format!(
                "pytorch {} (cpu: {}, {} threads)",
                peer.version, peer.device_name, peer.threads
            ),
            forward: peer.forward,
            train_step: peer.train_step,
            skipped: None,
        },
        Err(reason) => ClassifierTimings {
            name: "pytorch".into(),
            forward: Vec::new(),
            train_step: None,
            skipped: Some(reason),
        },
    }
}

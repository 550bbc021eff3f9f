//! The worker's long jobs, each on its own thread so previews stay live: a Dice-vs-sparsity
//! sweep and a per-group sensitivity run on the open case, CKA between two models, and
//! fine-tuning of a pruned model (wgpu or CPU); all cancellable.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{CkaView, FineTuneRequest, Response, region_dice};
use crate::analysis::cka::Kernel;
use crate::analysis::sensitivity::sensitivity_grid;
use crate::analysis::similarity::{SliceBatches, similarity};
use crate::backend;
use crate::data::dataset::{PreparedCase, SliceDataset, SliceSelection, synthetic_case};
use crate::inference::{InferenceOptions, predict_regions};
use crate::model::Checkpoint;
use crate::prune::schedule::parameter_counts;
use crate::prune::{ChannelGraph, PruneMethod, Ratios, prune_checkpoint};
use crate::train::{CheckpointPaths, TrainEvent, TrainOptions, TrainState, fit};

/// Prunes the dense model by every method at every ratio and scores the whole open case;
/// returns whether it was cancelled.
pub(super) fn sweep(
    dense: &Checkpoint,
    case: &PreparedCase,
    methods: &[PruneMethod],
    ratios: &[f64],
    cancel: &AtomicBool,
    reply: &impl Fn(Response),
) -> bool {
    let (dense_params, _) = parameter_counts(dense);
    let total = methods.len() * ratios.len();
    let mut done = 0;
    for &method in methods {
        for &ratio in ratios {
            if cancel.load(Ordering::SeqCst) {
                return true;
            }
            let label = format!("sweep: {} at {ratio}", method.key());
            reply(Response::JobProgress { done, total, label });
            let point = prune_checkpoint(dense, method, &Ratios::Uniform(ratio), None)
                .map_err(anyhow::Error::from)
                .and_then(|pruned| {
                    let (_, nonzero) = parameter_counts(&pruned);
                    let sparsity = 1.0 - nonzero as f64 / dense_params as f64;
                    Ok((sparsity, case_dice(&pruned, case)?))
                })
                .map_err(|e| e.to_string());
            match point {
                Ok((sparsity, dice)) => reply(Response::SweepPoint {
                    method,
                    ratio,
                    sparsity,
                    dice,
                }),
                Err(e) => reply(Response::Error(format!("{} at {ratio}: {e}", method.key()))),
            }
            done += 1;
        }
    }
    reply(Response::JobProgress {
        done,
        total,
        label: "sweep done".into(),
    });
    false
}

/// Dice WT/TC/ET of `checkpoint` over the whole of `case` (which has a ground truth).
fn case_dice(checkpoint: &Checkpoint, case: &PreparedCase) -> anyhow::Result<[f64; 3]> {
    let truth = case.regions.as_ref().expect("checked by the caller");
    let device = backend::cpu_device();
    let model = checkpoint.build(&device)?;
    let options = InferenceOptions::default();
    let head = checkpoint.config.head;
    let codes = predict_regions(&model, head, case, options, &device, |_, _| {});
    Ok(region_dice(&codes, truth))
}

/// Prunes each channel group alone at each ratio and scores the open case, cell by cell;
/// returns whether it was cancelled.
pub(super) fn sensitivity(
    dense: &Checkpoint,
    case: &PreparedCase,
    method: PruneMethod,
    ratios: &[f64],
    cancel: &AtomicBool,
    reply: &impl Fn(Response),
) -> Result<bool, String> {
    let graph = ChannelGraph::of(&dense.config);
    let groups: Vec<usize> = (0..graph.groups.len()).collect();
    let total = groups.len() * ratios.len();
    let mut done = 0;
    reply(Response::JobProgress {
        done,
        total,
        label: "sensitivity: starting".into(),
    });
    let outcome = sensitivity_grid(
        dense,
        method,
        groups.len(),
        &groups,
        ratios,
        |pruned| case_dice(pruned, case),
        |cell| {
            done += 1;
            let label = format!(
                "sensitivity: {} at {}",
                graph.groups[cell.group].0, cell.ratio
            );
            reply(Response::SensitivityCell(cell.clone()));
            reply(Response::JobProgress { done, total, label });
            !cancel.load(Ordering::SeqCst)
        },
    );
    outcome.map_err(|e| format!("sensitivity: {e}"))?;
    Ok(cancel.load(Ordering::SeqCst))
}

/// Tumour slices of the open case the app's CKA compares on, and their minibatch size.
const CKA_SLICES: usize = 32;
const CKA_BATCH: usize = 8;

/// Linear CKA between every level of `a` and every level of `b` on the open case's tumour
/// slices; replies with the matrix.
pub(super) fn cka(
    a: &(Checkpoint, String),
    b: &(Checkpoint, String),
    case: &PreparedCase,
    cancel: &AtomicBool,
    reply: &impl Fn(Response),
) -> Result<(), String> {
    let batches =
        SliceBatches::tumour_slices(std::slice::from_ref(case), 128, CKA_SLICES, CKA_BATCH)
            .map_err(|e| format!("{}: {e}", case.id))?;
    let device = backend::cpu_device();
    let model_a = a.0.build(&device).map_err(|e| e.to_string())?;
    let model_b = b.0.build(&device).map_err(|e| e.to_string())?;
    let total = batches.order.len();
    let progress = batches.inputs(&device).enumerate().map(|(i, inputs)| {
        reply(Response::JobProgress {
            done: i,
            total,
            label: format!("CKA: {} vs {}, minibatch {}/{total}", a.1, b.1, i + 1),
        });
        inputs
    });
    // Stops taking minibatches once cancelled; the matrix then covers those already seen.
    let inputs = progress.take_while(|_| !cancel.load(Ordering::SeqCst));
    let matrix = similarity(&model_a, &model_b, inputs, Kernel::Linear);
    if cancel.load(Ordering::SeqCst) {
        return Ok(());
    }
    reply(Response::Cka(CkaView {
        title: format!("{} (rows) vs {}", a.1, b.1),
        rows: matrix.rows,
        columns: matrix.columns,
        values: matrix.values,
        slices: matrix.slices,
    }));
    Ok(())
}

/// Synthetic training cases the app fine-tunes on (the default model's own seeds).
const FINE_TUNE_CASES: u64 = 4;

/// Fine-tunes `start` on synthetic cases (masks kept); returns the best model, the device's
/// name and the epochs completed.
pub(super) fn fine_tune(
    start: Checkpoint,
    request: &FineTuneRequest,
    cancel: &AtomicBool,
    reply: &impl Fn(Response),
) -> Result<(Checkpoint, String, usize), String> {
    let (device, device_name) = backend::resolve(request.device)?;
    reply(Response::JobProgress {
        done: 0,
        total: request.epochs,
        label: format!("fine-tune: preparing data on {device_name}"),
    });
    let selection = SliceSelection {
        tumour_free_share: 0.05,
        slice_step: 1,
        seed: 0,
    };
    let cases: Vec<PreparedCase> = (0..FINE_TUNE_CASES).map(synthetic_case).collect();
    let (train_cases, val_cases) = cases.split_at(cases.len() - 1);
    let train = SliceDataset::from_cases(train_cases, 128, selection).map_err(|e| e.to_string())?;
    let val = SliceDataset::from_cases(val_cases, 128, selection).map_err(|e| e.to_string())?;
    let folder = std::env::temp_dir().join(format!("raagr2-app-fine-tune-{}", std::process::id()));
    std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    let paths = CheckpointPaths::beside(&folder.join("tuned.safetensors"));
    let device = device.autodiff();
    let model = start.build(&device).map_err(|e| e.to_string())?;
    let options = TrainOptions {
        epochs: request.epochs,
        learning_rate: request.learning_rate,
        max_batches_per_epoch: Some(request.batches_per_epoch),
        masks: start.masks.clone(),
        ..TrainOptions::default()
    };
    let epochs = request.epochs;
    let outcome = fit(
        &start.config,
        model,
        &train,
        &val,
        &options,
        TrainState::default(),
        &paths,
        cancel,
        |event| match event {
            TrainEvent::Batch {
                epoch,
                batch,
                batches,
                loss,
            } => reply(Response::JobProgress {
                done: epoch - 1,
                total: epochs,
                label: format!("fine-tune on {device_name}: epoch {epoch}, batch {batch}/{batches}, loss {loss:.3}"),
            }),
            TrainEvent::Epoch(record) => reply(Response::TrainEpoch {
                epoch: record.epoch,
                train_loss: record.train_loss,
                val_loss: record.val_loss,
                val_dice: record.val_dice,
            }),
            _ => {}
        },
    )
    .map_err(|e| e.to_string())?;
    let epochs_done = outcome.state.epochs_done;
    let best = if epochs_done > 0 {
        crate::model::load_checkpoint(&paths.best).map_err(|e| e.to_string())?
    } else {
        start
    };
    let _ = std::fs::remove_dir_all(&folder);
    Ok((best, device_name.to_string(), epochs_done))
}

//! Training and evaluating a classifier: ImageNet-normalised batches with random crops from a
//! zero-padded image and horizontal flips, SGD with momentum and weight decay, pruning masks kept
//! at zero, an atomic checkpoint after every epoch with resumable state, cancel after any batch.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use super::images::ImageSet;
use super::metrics::{Evaluation, Tally};
use super::model::{Classifier, ClassifierCheckpoint};
use crate::model::ModelMasks;
use crate::model::weights::export_weights;
use crate::train::epoch::{
    EpochFigures, EpochPass, EpochRecord, TrainEvent, TrainState, run_epoch,
};
use crate::train::{StopReason, TrainError};
use crate::util::batches::epoch_batches;
use crate::util::rng::SplitMix64;

/// torchvision's ImageNet normalisation (also right for imported ImageNet weights).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Metadata key of the training state in a classifier checkpoint.
pub const STATE_METADATA_KEY: &str = "raagr2.classify.state";

/// How a classifier is trained (the second document: SGD, lr 0.01, momentum 0.9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Epochs in all (a resumed run continues up to this count).
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Zero padding around each image before the random crop back to its side (0: no crop).
    pub crop_padding: usize,
    /// Random horizontal flips.
    pub flip: bool,
    /// Seeds the epoch order, the crops and flips, and dropout.
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> TrainSettings {
        TrainSettings {
            epochs: 30,
            batch_size: 64,
            learning_rate: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            crop_padding: 4,
            flip: true,
            seed: 0,
        }
    }
}

/// A classifier epoch's own figures, beside its training loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyFigures {
    pub train_top1: f64,
    /// On the test split, when one was given.
    pub test_top1: Option<f64>,
    pub test_loss: Option<f64>,
    pub seconds: f64,
}

impl EpochFigures for AccuracyFigures {
    fn log_line(r: &EpochRecord<AccuracyFigures>) -> String {
        let m = &r.metrics;
        let test = match m.test_top1 {
            Some(top1) => format!(", test top-1 {top1:.3}"),
            None => String::new(),
        };
        format!(
            "epoch {:>3}: loss {:.4}, train top-1 {:.3}{test}, {:.1} s",
            r.epoch, r.train_loss, m.train_top1, m.seconds
        )
    }
}

impl TrainState<AccuracyFigures> {
    /// The state stored in `checkpoint` (none: a fresh start).
    pub fn of(checkpoint: &ClassifierCheckpoint) -> Result<Self, TrainError> {
        Ok(Self::read(&checkpoint.metadata, STATE_METADATA_KEY)?.unwrap_or_default())
    }
}

/// `indices` of `images` as a normalised `[B, 3, S, S]` batch and their labels; augmented (crop
/// and flip drawn from `rng`) when `augment` is given.
pub fn batch(
    images: &ImageSet,
    indices: &[usize],
    augment: Option<(&TrainSettings, &mut SplitMix64)>,
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let side = images.side;
    let plane = side * side;
    let mut values = vec![0f32; indices.len() * 3 * plane];
    let mut augment = augment;
    for (b, &index) in indices.iter().enumerate() {
        let (dx, dy, flip) = match augment.as_mut() {
            Some((settings, rng)) => {
                let pad = settings.crop_padding as i64;
                let mut offset = || (rng.next_u64() % (2 * pad as u64 + 1)) as i64 - pad;
                let (dx, dy) = (offset(), offset());
                (dx, dy, settings.flip && rng.next_u64() % 2 == 1)
            }
            None => (0, 0, false),
        };
        let source = images.image(index);
        for c in 0..3 {
            let out = &mut values[(b * 3 + c) * plane..(b * 3 + c + 1) * plane];
            for y in 0..side {
                for x in 0..side {
                    let from_x = if flip { side - 1 - x } else { x } as i64 + dx;
                    let from_y = y as i64 + dy;
                    let inside =
                        (0..side as i64).contains(&from_x) && (0..side as i64).contains(&from_y);
                    // Padding is black in pixel space, as torchvision pads before normalising.
                    let pixel = if inside {
                        f32::from(source[c * plane + from_y as usize * side + from_x as usize])
                    } else {
                        0.0
                    };
                    out[y * side + x] = (pixel / 255.0 - MEAN[c]) / STD[c];
                }
            }
        }
    }
    let labels: Vec<i64> = indices
        .iter()
        .map(|&i| i64::from(images.labels[i]))
        .collect();
    let x = Tensor::from_data(
        TensorData::new(values, [indices.len(), 3, side, side]),
        device,
    );
    let y = Tensor::from_data(TensorData::new(labels, [indices.len()]), device);
    (x, y)
}

/// Mean cross-entropy of `[B, C]` logits against `[B]` labels, `[1]`.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([batch, 1]));
    picked.mean().neg()
}

/// Top-1, top-5, balanced accuracy, recalls and confusion of `model` (eval mode) on `images`.
pub fn evaluate(
    model: &Classifier,
    images: &ImageSet,
    classes: usize,
    batch_size: usize,
    device: &Device,
) -> Evaluation {
    let logits = logits(model, images, batch_size, device);
    let mut tally = Tally::new(classes);
    tally.add(&logits, &images.labels);
    tally.finish()
}

/// The logits of every image, row-major `[images, classes]`, in eval mode.
pub fn logits(
    model: &Classifier,
    images: &ImageSet,
    batch_size: usize,
    device: &Device,
) -> Vec<f32> {
    let model = model.valid();
    let device = device.clone().inner();
    let mut all = Vec::new();
    for indices in epoch_batches(images.len(), batch_size.max(1), false, 0) {
        let (x, _) = batch(images, &indices, None, &device);
        let out = model
            .forward(x)
            .into_data()
            .try_to_vec_as::<f32>()
            .expect("float logits");
        all.extend(out);
    }
    all
}

/// Knowledge distillation (Hinton et al. 2015) from a teacher classifier (on a device without
/// autodiff: it is never trained): the loss becomes
/// `(1 - alpha) * CE(student, labels) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))`.
#[derive(Debug, Clone)]
pub struct Teacher {
    pub model: Classifier,
    /// Weight of the teacher term, in [0, 1].
    pub alpha: f64,
    /// Softening temperature, > 0.
    pub temperature: f64,
}

impl Teacher {
    /// The distillation term for a batch: `T^2 * KL(teacher || student)` at temperature T,
    /// mean over the batch, `[1]`.
    fn loss(&self, x: &Tensor<4>, student_logits: Tensor<2>) -> Tensor<1> {
        let t = self.temperature;
        let teacher_logits = self.model.forward(x.clone().inner());
        let teacher_logits = if x.is_autodiff() {
            teacher_logits.autodiff()
        } else {
            teacher_logits
        };
        let target_log = log_softmax(teacher_logits.div_scalar(t), 1);
        let student_log = log_softmax(student_logits.div_scalar(t), 1);
        let [batch, _] = student_log.dims();
        let kl = target_log.clone().exp() * (target_log - student_log);
        kl.sum().div_scalar(batch as f64).mul_scalar(t * t)
    }
}

/// SGD with the settings' momentum and weight decay.
pub fn sgd(settings: &TrainSettings) -> ModuleOptimizer {
    SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: settings.momentum,
            dampening: 0.0,
            nesterov: false,
        }))
        .with_weight_decay(
            (settings.weight_decay > 0.0)
                .then(|| WeightDecayConfig::new(settings.weight_decay as f32)),
        )
        .init()
}

/// One optimiser step on a batch (autodiff device), with a teacher's term when one is given:
/// the updated model, the batch's mean cross-entropy against the labels (comparable with and
/// without a teacher) and how many images it classified right.
pub fn step(
    model: Classifier,
    optimizer: &mut ModuleOptimizer,
    learning_rate: f64,
    (x, y): (Tensor<4>, Tensor<1, Int>),
    teacher: Option<&Teacher>,
) -> (Classifier, f32, usize) {
    let [batch, ..] = x.dims();
    let logits = model.forward(x.clone());
    let correct = logits
        .clone()
        .argmax(1)
        .reshape([batch])
        .equal(y.clone())
        .int()
        .sum()
        .into_scalar::<i64>() as usize;
    let distilled = teacher.map(|t| (t.alpha, t.loss(&x, logits.clone())));
    let loss = cross_entropy(logits, y);
    let value = loss.clone().into_scalar::<f32>();
    let total = match distilled {
        Some((alpha, term)) => loss.mul_scalar(1.0 - alpha) + term.mul_scalar(alpha),
        None => loss,
    };
    let grads = GradientsParams::from_grads(total.backward(), &model);
    (optimizer.step(learning_rate, model, grads), value, correct)
}

/// What a run learns from (the training split and optionally a teacher), and what it reports
/// test accuracy on after each epoch.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub train: &'a ImageSet,
    pub test: Option<&'a ImageSet>,
    pub teacher: Option<&'a Teacher>,
}

/// Trains `checkpoint` in place from its stored state up to `settings.epochs`, its masks kept
/// at zero; after every epoch the weights and state go back into it and, with `save_to`, to disk
/// atomically. Cancelling keeps the last completed epoch.
pub fn train(
    checkpoint: &mut ClassifierCheckpoint,
    sources: Sources,
    settings: &TrainSettings,
    device: &Device,
    save_to: Option<&Path>,
    cancel: &AtomicBool,
    mut on_event: impl FnMut(TrainEvent<AccuracyFigures>),
) -> Result<StopReason, TrainError> {
    let Sources {
        train,
        test,
        teacher,
    } = sources;
    check(checkpoint, train, test, settings)?;
    let mut state = TrainState::of(checkpoint)?;
    let device = device.clone().autodiff();
    let classes = checkpoint.config.classes();
    let masks = ModelMasks::new(&checkpoint.masks, &device);
    let mut model = masks.apply(checkpoint.build(&device)?);
    // Momentum buffers are not checkpointed: a resumed run restarts them.
    let mut optimizer = sgd(settings);
    while state.epochs_done < settings.epochs {
        let epoch = state.epochs_done + 1;
        let start = Instant::now();
        let Some((next, train_top1)) = train_epoch(
            model,
            &mut optimizer,
            &masks,
            (train, teacher),
            settings,
            (epoch, &device),
            cancel,
            &mut on_event,
        )?
        else {
            return Ok(StopReason::Cancelled);
        };
        model = next.model;
        let evaluation = test.map(|t| {
            on_event(TrainEvent::Validating { epoch });
            evaluate(&model, t, classes, settings.batch_size, &device)
        });
        let record = EpochRecord {
            epoch,
            train_loss: next.train_loss,
            metrics: AccuracyFigures {
                train_top1,
                test_top1: evaluation.as_ref().map(|e| e.top1),
                test_loss: evaluation.as_ref().map(|e| e.loss),
                seconds: start.elapsed().as_secs_f64(),
            },
        };
        state.epochs_done = epoch;
        state.history.push(record.clone());
        checkpoint.weights = export_weights(&model.valid());
        state.write(&mut checkpoint.metadata, STATE_METADATA_KEY);
        if let Some(path) = save_to {
            checkpoint.save(path)?;
            on_event(TrainEvent::Saved(path.to_path_buf()));
        }
        on_event(TrainEvent::Epoch(record));
    }
    Ok(StopReason::Finished)
}

/// One pass over the shuffled, augmented training split, the masks kept at zero: the pass and
/// the share of images it classified right; `None` when cancelled mid-epoch.
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    model: Classifier,
    optimizer: &mut ModuleOptimizer,
    masks: &ModelMasks,
    (train, teacher): (&ImageSet, Option<&Teacher>),
    settings: &TrainSettings,
    (epoch, device): (usize, &Device),
    cancel: &AtomicBool,
    on_event: &mut impl FnMut(TrainEvent<AccuracyFigures>),
) -> Result<Option<(EpochPass<Classifier>, f64)>, TrainError> {
    let seed = settings
        .seed
        .wrapping_mul(1_000_003)
        .wrapping_add(epoch as u64);
    let mut rng = SplitMix64::new(seed);
    let batches = epoch_batches(train.len(), settings.batch_size, true, seed);
    let mut correct = 0usize;
    let make_batch =
        |indices: &[usize], _| batch(train, indices, Some((settings, &mut rng)), device);
    let train_step = |model, xy| {
        let (next, loss, hits) = step(model, optimizer, settings.learning_rate, xy, teacher);
        correct += hits;
        (masks.apply(next), f64::from(loss))
    };
    let pass = run_epoch(
        model, epoch, &batches, cancel, on_event, make_batch, train_step,
    )?;
    Ok(pass.map(|pass| (pass, correct as f64 / train.len() as f64)))
}

/// Refuses settings and data that cannot train (before any work).
fn check(
    checkpoint: &ClassifierCheckpoint,
    train: &ImageSet,
    test: Option<&ImageSet>,
    settings: &TrainSettings,
) -> Result<(), TrainError> {
    let classes = checkpoint.config.classes();
    let min_side = checkpoint.config.min_side();
    for (name, set) in [("training", Some(train)), ("test", test)] {
        let Some(set) = set else { continue };
        if set.is_empty() {
            return Err(TrainError::Data(format!("the {name} split has no images")));
        }
        if set.side < min_side {
            return Err(TrainError::Data(format!(
                "{name} images are {0}x{0}; the classifier needs at least {min_side}x{min_side}",
                set.side
            )));
        }
        if let Some(label) = set.labels.iter().find(|&&l| usize::from(l) >= classes) {
            return Err(TrainError::Data(format!(
                "the {name} split has label {label}, but the model has {classes} classes"
            )));
        }
    }
    if settings.batch_size == 0 || settings.learning_rate.is_nan() || settings.learning_rate <= 0.0
    {
        return Err(TrainError::Options(
            "batch size and learning rate must be positive".into(),
        ));
    }
    if !(0.0..1.0).contains(&settings.momentum) || settings.weight_decay < 0.0 {
        return Err(TrainError::Options(format!(
            "momentum {} must be in [0, 1) and weight decay {} not negative",
            settings.momentum, settings.weight_decay
        )));
    }
    Ok(())
}

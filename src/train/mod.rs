//! Training: the reference loss, one optimisation step, the epoch loop every task shares, and
//! the segmentation loop with schedules, checkpoints, resume and cancel.

pub mod distill;
pub mod epoch;
pub mod fine_tune;
pub mod fit;
pub mod loss;
pub mod recalibrate;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;

use crate::model::layers::{LayerSite, LayerVisitor, VisitLayers};
use crate::model::{Head, ModelError, Raagr2Net};

pub use distill::Distillation;
pub use epoch::{EpochFigures, EpochRecord, TrainEvent, TrainState};
pub use fit::{
    CheckpointPaths, DiceFigures, PlateauOptions, SegmentationRun, SegmentationState,
    SliceSettings, StopReason, TrainOptions, TrainOutcome, fit,
};
pub use loss::bce_dice_loss;

/// Everything that can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training data: {0}")]
    Data(String),
    #[error("training options: {0}")]
    Options(String),
    #[error("cannot resume: {0}")]
    Resume(String),
    #[error(
        "training diverged in epoch {epoch} (loss {loss}); the last good checkpoints are kept \
         (try a lower learning rate)"
    )]
    Diverged { epoch: usize, loss: f64 },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// `[B, 4, H, W]` -> WT, TC, ET logits `[B, 3, H, W]`, whatever the head's channel layout.
pub fn region_logits(model: &Raagr2Net, head: Head, x: Tensor<4>) -> Tensor<4> {
    let logits = model.forward_logits(x);
    match head {
        Head::Regions3 => logits,
        Head::Reference5 => {
            let device = logits.device();
            let channels = head.region_channels().map(|c| c as i64);
            logits.select(1, Tensor::<1, Int>::from_data(channels, &device))
        }
    }
}

/// One Adam step on a batch: `inputs` `[B, 4, H, W]`, WT/TC/ET `targets` `[B, 3, H, W]`, both on
/// an autodiff device. Returns the updated model and the batch loss.
pub fn train_step(
    head: Head,
    model: Raagr2Net,
    optimizer: &mut ModuleOptimizer,
    learning_rate: f64,
    inputs: Tensor<4>,
    targets: Tensor<4>,
) -> (Raagr2Net, f32) {
    let extras = StepExtras::default();
    train_step_with(
        head,
        model,
        optimizer,
        learning_rate,
        inputs,
        targets,
        &extras,
    )
}

/// Optional terms of a training step's loss (none by default).
#[derive(Default)]
pub struct StepExtras<'a> {
    /// Network slimming's L1 weight on BN gammas (0: off).
    pub slimming_l1: f64,
    /// Knowledge distillation from a teacher.
    pub distillation: Option<&'a Distillation>,
}

/// One Adam step with the reference loss and any [`StepExtras`]. The returned loss is the
/// reference loss on the ground truth alone (comparable with and without the extras).
pub fn train_step_with(
    head: Head,
    model: Raagr2Net,
    optimizer: &mut ModuleOptimizer,
    learning_rate: f64,
    inputs: Tensor<4>,
    targets: Tensor<4>,
    extras: &StepExtras,
) -> (Raagr2Net, f32) {
    let soft = extras.distillation.map(|d| d.soft_targets(&inputs));
    let logits = region_logits(&model, head, inputs);
    let loss = bce_dice_loss(logits.clone(), targets);
    let loss_value = loss.clone().into_scalar::<f32>();
    let mut total = match (extras.distillation, soft) {
        (Some(d), Some(soft)) => {
            loss.mul_scalar(1.0 - d.alpha) + d.loss(logits, soft).mul_scalar(d.alpha)
        }
        _ => loss,
    };
    if extras.slimming_l1 > 0.0 {
        total = total + gamma_l1(&model).mul_scalar(extras.slimming_l1);
    }
    let grads = GradientsParams::from_grads(total.backward(), &model);
    (optimizer.step(learning_rate, model, grads), loss_value)
}

/// `sum |gamma|` over every batch norm of the model, `[1]`, differentiable.
pub fn gamma_l1(model: &Raagr2Net) -> Tensor<1> {
    let mut collector = GammaL1(None);
    // The clone shares the parameters (same ids), so gradients reach the model's own gammas.
    model
        .clone()
        .visit_layers("", LayerSite::at(1), &mut collector);
    collector.0.expect("the model has batch norms")
}

struct GammaL1(Option<Tensor<1>>);

impl LayerVisitor for GammaL1 {
    fn conv(&mut self, _name: &str, _conv: &mut Conv2d, _site: LayerSite) {}

    fn norm(&mut self, _name: &str, norm: &mut BatchNorm, _site: LayerSite) {
        let term = norm.gamma.val().abs().sum();
        self.0 = Some(match self.0.take() {
            Some(sum) => sum + term,
            None => term,
        });
    }
}

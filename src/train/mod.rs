//! Training: the reference loss and one optimisation step (the full loop comes with the data
//! pipeline).

pub mod loss;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use crate::model::Raagr2Net;

pub use loss::bce_dice_loss;

/// One Adam step on a batch: `inputs` `[B, 4, H, W]`, `targets` `[B, classes, H, W]`, both on
/// an autodiff device. Returns the updated model and the batch loss.
pub fn train_step(
    model: Raagr2Net,
    optimizer: &mut ModuleOptimizer,
    learning_rate: f64,
    inputs: Tensor<4>,
    targets: Tensor<4>,
) -> (Raagr2Net, f32) {
    let loss = bce_dice_loss(model.forward_logits(inputs), targets);
    let loss_value = loss.clone().into_scalar::<f32>();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (optimizer.step(learning_rate, model, grads), loss_value)
}

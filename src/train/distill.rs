//! Knowledge distillation (Hinton et al. 2015) for per-region sigmoid outputs: the student also
//! matches the teacher's probabilities softened by a temperature T, with the loss
//! `(1 - alpha) * (BCE + Dice vs ground truth) + alpha * T^2 * BCE(student / T, sigmoid(teacher / T))`.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use super::region_logits;
use crate::model::{Head, Raagr2Net};

/// A teacher (on a device without autodiff: it is never trained) and the mixing settings.
#[derive(Debug, Clone)]
pub struct Distillation {
    pub teacher: Raagr2Net,
    pub teacher_head: Head,
    /// Weight of the teacher term, in [0, 1].
    pub alpha: f64,
    /// Softening temperature, > 0.
    pub temperature: f64,
}

impl Distillation {
    /// The teacher's softened WT/TC/ET probabilities for `inputs` (an autodiff batch), as a
    /// constant on the inputs' device.
    pub fn soft_targets(&self, inputs: &Tensor<4>) -> Tensor<4> {
        let autodiff = inputs.is_autodiff();
        let logits = region_logits(&self.teacher, self.teacher_head, inputs.clone().inner());
        let soft = sigmoid(logits.div_scalar(self.temperature));
        if autodiff { soft.autodiff() } else { soft }
    }

    /// `T^2 * BCE(student_logits / T, soft_targets)`, mean over every output, `[1]`.
    pub fn loss(&self, student_logits: Tensor<4>, soft_targets: Tensor<4>) -> Tensor<1> {
        let z = student_logits.div_scalar(self.temperature);
        // Numerically stable BCE with logits: max(z, 0) - z t + log(1 + exp(-|z|)).
        let bce = z.clone().clamp_min(0.0) - z.clone() * soft_targets
            + z.abs().neg().exp().add_scalar(1.0).log();
        bce.mean().mul_scalar(self.temperature * self.temperature)
    }
}

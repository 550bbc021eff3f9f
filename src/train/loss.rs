//! The reference loss: weighted BCE + (1 - weighted soft Dice), with border-emphasis weights.
//!
//! Weight map (per sample and channel): `w = 1 + 2 * border`, where `border` marks pixels whose
//! 11x11 average-pooled mask lies in (0.005, 0.995), rescaled so the weights keep their total.

use burn::prelude::*;
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;

/// Side of the averaging window that finds tumour borders.
const BORDER_WINDOW: usize = 11;
/// Dice smoothing term (the reference's `smooth = 1`).
const DICE_SMOOTH: f64 = 1.0;

/// Border-emphasis weights for binary targets `[B, C, H, W]`, same shape, mean 1 per map.
pub fn border_weights(targets: Tensor<4>) -> Tensor<4> {
    let pad = BORDER_WINDOW / 2;
    let options = AvgPoolOptions::new([BORDER_WINDOW, BORDER_WINDOW])
        .with_stride([1, 1])
        .with_padding([pad, pad])
        // Keras "same" pooling averages only the pixels inside the image.
        .with_count_include_pad(false);
    let averaged = avg_pool2d(targets, options);
    let border = averaged
        .clone()
        .greater_elem(0.005)
        .float()
        .mul(averaged.lower_elem(0.995).float());
    let weights = border.mul_scalar(2.0).add_scalar(1.0);
    let [b, c, h, w] = weights.dims();
    let total_before = (h * w) as f64;
    let total_after = weights.clone().sum_dim(3).sum_dim(2); // [B, C, 1, 1]
    weights.div(total_after.div_scalar(total_before).reshape([b, c, 1, 1]))
}

/// Weighted BCE on logits + (1 - weighted soft Dice) on probabilities; returns a scalar `[1]`.
/// `logits`, `targets`: `[B, C, H, W]`, targets in {0, 1}.
pub fn bce_dice_loss(logits: Tensor<4>, targets: Tensor<4>) -> Tensor<1> {
    let weights = border_weights(targets.clone());
    let bce = weighted_bce_with_logits(logits.clone(), targets.clone(), weights.clone());
    let dice = weighted_soft_dice(burn::tensor::activation::sigmoid(logits), targets, weights);
    bce + dice.neg().add_scalar(1.0)
}

/// The reference's weighted BCE: `sum((1 - y) z + (1 + (w - 1) y) softplus(-z)) / sum(w)`,
/// written stably with `softplus(-z) = log(1 + exp(-|z|)) + max(-z, 0)`.
fn weighted_bce_with_logits(
    logits: Tensor<4>,
    targets: Tensor<4>,
    weights: Tensor<4>,
) -> Tensor<1> {
    let softplus_neg =
        logits.clone().abs().neg().exp().log1p() + logits.clone().neg().clamp_min(0.0);
    let pos_weight = weights
        .clone()
        .sub_scalar(1.0)
        .mul(targets.clone())
        .add_scalar(1.0);
    let per_pixel = targets.neg().add_scalar(1.0).mul(logits) + pos_weight.mul(softplus_neg);
    per_pixel.sum().div(weights.sum())
}

/// Weighted soft Dice with squared weights, as the reference computes it.
fn weighted_soft_dice(probs: Tensor<4>, targets: Tensor<4>, weights: Tensor<4>) -> Tensor<1> {
    let w2 = weights.clone().mul(weights);
    let intersection = w2.clone().mul(probs.clone()).mul(targets.clone()).sum();
    let denominator = w2.clone().mul(targets).sum() + w2.mul(probs).sum();
    intersection
        .mul_scalar(2.0)
        .add_scalar(DICE_SMOOTH)
        .div(denominator.add_scalar(DICE_SMOOTH))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        crate::backend::cpu_device()
    }

    #[test]
    fn weights_emphasise_borders_and_keep_their_mean() {
        let mut mask = vec![0.0f32; 32 * 32];
        for y in 8..24 {
            for x in 8..24 {
                mask[y * 32 + x] = 1.0;
            }
        }
        let t = Tensor::<4>::from_data(TensorData::new(mask, [1, 1, 32, 32]), &device());
        let w = border_weights(t);
        let values = w.clone().into_data().try_to_vec_as::<f32>().unwrap();
        let mean: f32 = values.iter().sum::<f32>() / values.len() as f32;
        assert!((mean - 1.0).abs() < 1e-4, "mean weight {mean}");
        // A pixel on the square's edge outweighs one far away in the background.
        assert!(values[8 * 32 + 16] > values[0] * 2.0);
    }

    #[test]
    fn perfect_prediction_scores_lower_than_a_wrong_one() {
        let dev = device();
        let target = Tensor::<4>::from_data(
            TensorData::new(
                (0..64)
                    .map(|i| (i % 3 == 0) as u8 as f32)
                    .collect::<Vec<_>>(),
                [1, 1, 8, 8],
            ),
            &dev,
        );
        let good = target.clone().mul_scalar(20.0).sub_scalar(10.0);
        let bad = good.clone().neg();
        let good_loss = bce_dice_loss(good, target.clone()).into_scalar::<f32>();
        let bad_loss = bce_dice_loss(bad, target).into_scalar::<f32>();
        assert!(good_loss < 0.01, "good {good_loss}");
        assert!(bad_loss > 1.0, "bad {bad_loss}");
    }
}

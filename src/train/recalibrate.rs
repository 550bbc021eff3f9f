//! BatchNorm recalibration after a structured cut: the channels that remain see other inputs
//! than their running statistics describe, so training-mode forward passes over a few hundred
//! training slices (no gradient, no weight update) recompute the running mean and variance as
//! the plain average over those batches. Every other tensor of the checkpoint is unchanged.
//! Dropout is off during the passes: the statistics then describe the activations inference
//! sees (with dropout on, the dropped branches' variance differs from inference's), and the
//! result depends on the slices alone.

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::TrainError;
use crate::data::dataset::SliceDataset;
use crate::model::layers::{LayerSite, LayerVisitor, VisitLayers};
use crate::model::{Checkpoint, ModelConfig};
use crate::util::batches::epoch_batches;

/// How many slices recalibration reads, and in which order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecalibrationSettings {
    /// Training slices passed forward (fewer when the set is smaller).
    pub slices: usize,
    pub batch_size: usize,
    /// Seeds which slices are drawn.
    pub seed: u64,
}

impl Default for RecalibrationSettings {
    /// 256 slices in batches of 8: the statistics settle within a few dozen batches.
    fn default() -> Self {
        RecalibrationSettings {
            slices: 256,
            batch_size: 8,
            seed: 0,
        }
    }
}

/// `start` with every batch norm's running statistics recomputed on `slices`; weights, masks
/// and metadata are kept as they are.
pub fn recalibrate_batch_norms(
    start: &Checkpoint,
    slices: &SliceDataset,
    settings: RecalibrationSettings,
    device: &Device,
) -> Result<Checkpoint, TrainError> {
    if slices.is_empty() || settings.slices == 0 || settings.batch_size == 0 {
        return Err(TrainError::Data(format!(
            "BN recalibration needs slices and a batch size (got {} slices available, {} asked, \
             batch {})",
            slices.len(),
            settings.slices,
            settings.batch_size
        )));
    }
    // Batch norms use batch statistics (and update their running ones) only on a device that
    // records gradients; nothing is ever differentiated here.
    let training = device.clone().autodiff();
    let without_dropout = Checkpoint {
        config: ModelConfig {
            dropout: 0.0,
            ..start.config.clone()
        },
        ..start.clone()
    };
    // No parameter requires a gradient, so no op records an autodiff graph: without this each
    // batch's graph was kept until a backward that never comes (gigabytes after 32 batches).
    let mut model = without_dropout.build(&training)?.no_grad();
    let batches = epoch_batches(slices.len(), settings.batch_size, true, settings.seed);
    let wanted = settings.slices.div_ceil(settings.batch_size);
    let original_momentum = momentum_of(&mut model);
    for (k, batch) in batches.iter().take(wanted).enumerate() {
        // Momentum 1/(k+1): after batch k the running value is the mean of batches 0..=k
        // (PyTorch's `momentum=None`), so no earlier statistic survives.
        set_momentum(&mut model, 1.0 / (k as f64 + 1.0));
        let (inputs, _) = slices.batch(batch, &training);
        drop(model.forward_logits(inputs));
    }
    set_momentum(&mut model, original_momentum);
    let mut recalibrated = Checkpoint::from_model(&start.config, &model);
    recalibrated.masks = start.masks.clone();
    recalibrated.metadata = start.metadata.clone();
    Ok(recalibrated)
}

fn set_momentum(model: &mut impl VisitLayers, momentum: f64) {
    model.visit_layers("", LayerSite::at(1), &mut Momentum::Set(momentum));
}

/// The momentum the batch norms were built with (they all share one).
fn momentum_of(model: &mut impl VisitLayers) -> f64 {
    let mut reader = Momentum::Read(None);
    model.visit_layers("", LayerSite::at(1), &mut reader);
    match reader {
        Momentum::Read(Some(m)) => m,
        _ => 0.1,
    }
}

enum Momentum {
    Set(f64),
    Read(Option<f64>),
}

impl LayerVisitor for Momentum {
    fn conv(&mut self, _name: &str, _conv: &mut Conv2d, _site: LayerSite) {}

    fn norm(&mut self, _name: &str, norm: &mut BatchNorm, _site: LayerSite) {
        match self {
            Momentum::Set(m) => norm.momentum = *m,
            Momentum::Read(seen) => {
                seen.get_or_insert(norm.momentum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::{SliceSelection, synthetic_case_with};
    use crate::data::synth::{SynthKind, SynthOptions};
    use crate::model::weights::WeightMap;
    use burn::tensor::activation::sigmoid;

    /// Tumour slices of two realistic cases at 2 mm (96 x 96 crops): seconds to make.
    fn slices() -> SliceDataset {
        let options = SynthOptions::over_brats_view(SynthKind::Realistic, Some(2.0)).unwrap();
        let cases: Vec<_> = (0..2).map(|s| synthetic_case_with(s, &options)).collect();
        let selection = SliceSelection {
            tumour_free_share: 0.1,
            slice_step: 1,
            seed: 0,
        };
        SliceDataset::from_cases(&cases, 96, selection).unwrap()
    }

    fn is_running_statistic(key: &str) -> bool {
        key.ends_with("running_mean") || key.ends_with("running_var")
    }

    /// The largest absolute difference between the tensors of `a` and `b` whose keys `pick`.
    fn max_difference(a: &WeightMap, b: &WeightMap, pick: impl Fn(&str) -> bool) -> f32 {
        a.iter()
            .filter(|(k, _)| pick(k))
            .flat_map(|(k, t)| t.values.iter().zip(&b[k].values))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn with_reset_statistics(start: &Checkpoint) -> Checkpoint {
        let mut reset = start.clone();
        for (key, tensor) in reset.weights.iter_mut() {
            let fill = if key.ends_with("running_mean") {
                0.0
            } else if key.ends_with("running_var") {
                1.0
            } else {
                continue;
            };
            tensor.values.iter_mut().for_each(|v| *v = fill);
        }
        reset
    }

    /// Mean absolute difference of the WT/TC/ET probabilities of two models on `slices`.
    fn output_gap(a: &Checkpoint, b: &Checkpoint, slices: &SliceDataset) -> f32 {
        let device = crate::backend::cpu_device();
        let indices: Vec<usize> = (0..slices.len().min(16)).collect();
        let (x, _) = slices.batch(&indices, &device);
        let pa = sigmoid(a.build(&device).unwrap().forward_logits(x.clone()));
        let pb = sigmoid(b.build(&device).unwrap().forward_logits(x));
        (pa - pb).abs().mean().into_scalar::<f32>()
    }

    #[test]
    fn recalibration_changes_the_running_statistics_and_nothing_else() {
        let dense = crate::defaults::default_checkpoint();
        let slices = slices();
        let settings = RecalibrationSettings {
            slices: 32,
            ..RecalibrationSettings::default()
        };
        let device = crate::backend::cpu_device();
        let recalibrated = recalibrate_batch_norms(&dense, &slices, settings, &device).unwrap();
        assert_eq!(
            recalibrated.weights.keys().collect::<Vec<_>>(),
            dense.weights.keys().collect::<Vec<_>>()
        );
        let others = max_difference(&dense.weights, &recalibrated.weights, |k| {
            !is_running_statistic(k)
        });
        assert_eq!(others, 0.0, "weights, biases, gammas and betas untouched");
        let statistics =
            max_difference(&dense.weights, &recalibrated.weights, is_running_statistic);
        assert!(
            statistics > 1e-3,
            "running statistics recomputed ({statistics})"
        );
        assert_eq!(recalibrated.config, dense.config);
        // The same settings give the same statistics (seeded batches, no dropout).
        let again = recalibrate_batch_norms(&dense, &slices, settings, &device).unwrap();
        assert_eq!(
            max_difference(&again.weights, &recalibrated.weights, |_| true),
            0.0
        );
    }

    #[test]
    fn recalibration_recovers_statistics_that_no_longer_describe_the_activations() {
        // Statistics reset to the initial 0 / 1 describe nothing the network computes (as after
        // a cut that changes what each batch norm sees); recalibration must bring the model's
        // outputs back close to the trained model's.
        let dense = crate::defaults::default_checkpoint();
        let slices = slices();
        let reset = with_reset_statistics(&dense);
        let device = crate::backend::cpu_device();
        let recalibrated =
            recalibrate_batch_norms(&reset, &slices, RecalibrationSettings::default(), &device)
                .unwrap();
        let broken = output_gap(&dense, &reset, &slices);
        let repaired = output_gap(&dense, &recalibrated, &slices);
        assert!(
            repaired < 0.25 * broken,
            "output gap to the trained model: reset statistics {broken}, recalibrated {repaired}"
        );
    }

    #[test]
    fn recalibration_without_slices_is_refused() {
        let dense = crate::defaults::default_checkpoint();
        let device = crate::backend::cpu_device();
        let empty = SliceDataset::empty(96);
        let error =
            recalibrate_batch_norms(&dense, &empty, RecalibrationSettings::default(), &device)
                .err()
                .unwrap();
        assert!(error.to_string().contains("BN recalibration"), "{error}");
    }
}

//! Training on the CPU: a few Adam steps on one batch lower the loss (so the step really learns).

use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::tensor::Distribution;
use raagr2_lab::backend::cpu_device;
use raagr2_lab::model::{Head, ModelConfig, Variant};
use raagr2_lab::train::train_step;

#[test]
fn adam_steps_lower_the_loss_on_a_fixed_batch() {
    for variant in [Variant::Base, Variant::DepthwiseShared] {
        let device = cpu_device().autodiff();
        device.seed(11);
        let mut config = ModelConfig::with_width_multiplier(variant, Head::Regions3, 0.125);
        config.dropout = 0.0;
        let mut model = config.init(&device);
        let mut optimizer = AdamConfig::new().init();
        let x = Tensor::<4>::random([2, 4, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<4>::random([2, 3, 32, 32], Distribution::Bernoulli(0.3), &device);
        let mut losses = Vec::new();
        for _ in 0..5 {
            let (next, loss) = train_step(
                Head::Regions3,
                model,
                &mut optimizer,
                1e-2,
                x.clone(),
                y.clone(),
            );
            model = next;
            losses.push(loss);
        }
        assert!(
            losses[4] < losses[0],
            "{variant:?}: loss did not fall: {losses:?}"
        );
    }
}

/// Mean |gamma| over every batch norm of a model.
fn mean_abs_gamma(model: &raagr2_lab::model::Raagr2Net) -> f32 {
    let weights = raagr2_lab::model::weights::export_weights(model);
    let gammas: Vec<f32> = weights
        .iter()
        .filter(|(k, _)| {
            weights.contains_key(&k.replace(".weight", ".running_var")) && k.ends_with(".weight")
        })
        .flat_map(|(_, t)| t.values.iter().map(|g| g.abs()))
        .collect();
    gammas.iter().sum::<f32>() / gammas.len() as f32
}

#[test]
fn slimming_l1_drives_bn_gammas_towards_zero() {
    let run = |slimming_l1: f64| -> f32 {
        let device = cpu_device().autodiff();
        device.seed(5);
        let config = ModelConfig::with_width_multiplier(Variant::Base, Head::Regions3, 0.125);
        let mut model = config.init(&device);
        let mut optimizer = AdamConfig::new().init();
        let x = Tensor::<4>::random([2, 4, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<4>::random([2, 3, 32, 32], Distribution::Bernoulli(0.3), &device);
        for _ in 0..10 {
            let (next, _) = raagr2_lab::train::train_step_with_slimming(
                Head::Regions3,
                model,
                &mut optimizer,
                1e-2,
                x.clone(),
                y.clone(),
                slimming_l1,
            );
            model = next;
        }
        mean_abs_gamma(&model)
    };
    let (plain, slimmed) = (run(0.0), run(0.1));
    assert!(
        slimmed < plain - 0.03,
        "mean |gamma| with the L1 term {slimmed} vs without {plain}"
    );
}

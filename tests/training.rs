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
            let (next, loss) = train_step(model, &mut optimizer, 1e-2, x.clone(), y.clone());
            model = next;
            losses.push(loss);
        }
        assert!(
            losses[4] < losses[0],
            "{variant:?}: loss did not fall: {losses:?}"
        );
    }
}

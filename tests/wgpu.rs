//! The GPU path: a forward and a training step on wgpu when an adapter exists (Mesa lavapipe
//! counts), compared against the CPU. Skips, saying so, when there is no adapter.

mod common;

use burn::optim::AdamConfig;
use burn::prelude::*;
use raagr2_lab::backend::{cpu_device, gpu_device};
use raagr2_lab::model::{Checkpoint, Head, ModelConfig, Variant};
use raagr2_lab::train::train_step;

#[test]
fn forward_and_training_step_on_wgpu() {
    // Minimal autotuning: on a CPU Vulkan driver (lavapipe) the default spends minutes tuning.
    // SAFETY: set before any wgpu work, and this test binary holds only this one test.
    unsafe { std::env::set_var("CUBECL_AUTOTUNE_LEVEL", "minimal") };
    let gpu = match gpu_device() {
        Ok(device) => device,
        Err(reason) => {
            eprintln!("SKIPPED wgpu test: {reason} (install mesa-vulkan-drivers for lavapipe)");
            return;
        }
    };
    eprintln!("wgpu adapter found; running forward and training step on it");
    // Tiny model and input: wgpu autotunes every new kernel shape on its first step.
    let config = ModelConfig::with_width_multiplier(Variant::Base, Head::Regions3, 0.0625);
    let cpu = cpu_device();
    let cpu_model = config.init(&cpu);
    let checkpoint = Checkpoint::from_model(&config, &cpu_model);
    let gpu_model = checkpoint.build(&gpu).unwrap();

    let values: Vec<f32> = (0..4 * 32 * 32)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let x_cpu = Tensor::<4>::from_data(TensorData::new(values.clone(), [1, 4, 32, 32]), &cpu);
    let x_gpu = Tensor::<4>::from_data(TensorData::new(values, [1, 4, 32, 32]), &gpu);
    let y_cpu = cpu_model
        .forward(x_cpu)
        .into_data()
        .try_to_vec_as::<f32>()
        .unwrap();
    let y_gpu = gpu_model
        .forward(x_gpu.clone())
        .into_data()
        .try_to_vec_as::<f32>()
        .unwrap();
    let diff = common::max_abs_diff(&y_cpu, &y_gpu);
    assert!(diff < 1e-3, "wgpu forward differs from CPU by {diff}");

    let train_device = gpu.autodiff();
    let model = checkpoint.build(&train_device).unwrap();
    let mut optimizer = AdamConfig::new().init();
    let x = x_gpu.to_device(&train_device);
    let target = Tensor::<4>::from_data(
        TensorData::new(
            (0..3 * 32 * 32)
                .map(|i| ((i / 7) % 2) as f32)
                .collect::<Vec<_>>(),
            [1, 3, 32, 32],
        ),
        &train_device,
    );
    let (model, first) = train_step(model, &mut optimizer, 1e-3, x.clone(), target.clone());
    let (_, second) = train_step(model, &mut optimizer, 1e-3, x, target);
    assert!(first.is_finite() && second.is_finite());
    assert!(
        second < first,
        "loss did not fall on wgpu: {first} -> {second}"
    );
}

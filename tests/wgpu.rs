//! The GPU path: a forward and training steps on wgpu when an adapter exists (Mesa lavapipe
//! counts), compared against the CPU. Skips, saying so, when there is no adapter, except under
//! CI=true, where a missing adapter fails.
//!
//! Runs without the libtest harness (`harness = false` in Cargo.toml): Mesa's lavapipe crashes
//! when wgpu resources are torn down from a libtest worker thread at exit, so the check runs on
//! the main thread, as the `bench` command does, and reports through its exit code.

mod common;

use std::process::ExitCode;

use burn::optim::AdamConfig;
use burn::prelude::*;
use raagr2_lab::backend::{cpu_device, gpu_device, gpu_device_unchecked};
use raagr2_lab::model::{Checkpoint, Head, ModelConfig, Variant};
use raagr2_lab::train::train_step;

fn main() -> ExitCode {
    // Minimal autotuning: on a CPU Vulkan driver (lavapipe) the default spends minutes tuning.
    // SAFETY: set on the main thread before any wgpu work starts any other thread.
    unsafe { std::env::set_var("CUBECL_AUTOTUNE_LEVEL", "minimal") };
    let gpu = match gpu_device_unchecked() {
        Ok(device) => device,
        // On CI (CI=true) the lavapipe adapter is part of the setup: its absence is a failure.
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            println!(
                "test forward_and_training_step_on_wgpu ... FAILED: CI=true but no wgpu adapter: {reason}"
            );
            return ExitCode::FAILURE;
        }
        Err(reason) => {
            println!(
                "test forward_and_training_step_on_wgpu ... SKIPPED: {reason} (install mesa-vulkan-drivers for lavapipe)"
            );
            return ExitCode::SUCCESS;
        }
    };
    // The adapter's own reduction check decides whether the app and the commands use it; it is
    // asked twice, as the app does (its probe, then the fine-tune), and must answer alike. On
    // Mesa's lavapipe it refuses (large sums come back wrong); the small shapes below are right.
    let (first, second) = (gpu_device(), gpu_device());
    if first.is_ok() != second.is_ok() {
        println!(
            "test forward_and_training_step_on_wgpu ... FAILED: gpu_device() answered {first:?}, then {second:?}"
        );
        return ExitCode::FAILURE;
    }
    match &first {
        Ok(_) => println!("wgpu adapter passed the reduction check"),
        // The unchecked device above already registered wgpu's runtime: a refusal for any
        // other reason (e.g. "Service already initialized") is the double registration again.
        Err(reason) if !reason.contains("reductions are wrong") => {
            println!("test forward_and_training_step_on_wgpu ... FAILED: gpu_device(): {reason}");
            return ExitCode::FAILURE;
        }
        Err(reason) => println!("wgpu adapter refused for real work: {reason}"),
    }
    match forward_and_training_step_on_wgpu(gpu) {
        Ok(summary) => {
            println!("test forward_and_training_step_on_wgpu ... ok ({summary})");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("test forward_and_training_step_on_wgpu ... FAILED: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// Adam steps on one fixed batch; the loss after them must be below the first.
const STEPS: usize = 5;

fn forward_and_training_step_on_wgpu(gpu: Device) -> Result<String, String> {
    // Tiny model and input: wgpu compiles (and tunes) every new kernel shape on first use.
    // 32x32 keeps the deepest level at 2x2, so training-mode batch norm has statistics to use.
    let mut config = ModelConfig::with_width_multiplier(Variant::Base, Head::Regions3, 0.0625);
    config.dropout = 0.0; // deterministic steps, so the loss on one batch must fall
    let cpu = cpu_device();
    cpu.seed(7); // the same initial weights every run
    let checkpoint = Checkpoint::from_model(&config, &config.init(&cpu));
    let [b, h, w] = [2, 32, 32];
    let x: Vec<f32> = (0..b * 4 * h * w)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let y: Vec<f32> = (0..b * 3 * h * w).map(|i| ((i / 7) % 2) as f32).collect();

    let forward = |device: &Device| -> Result<Vec<f32>, String> {
        let model = checkpoint.build(device).map_err(|e| e.to_string())?;
        let input = Tensor::<4>::from_data(TensorData::new(x.clone(), [b, 4, h, w]), device);
        Ok(model
            .forward(input)
            .into_data()
            .try_to_vec_as::<f32>()
            .unwrap())
    };
    let diff = common::max_abs_diff(&forward(&cpu)?, &forward(&gpu)?);
    // Written so that a NaN difference fails too.
    if diff.is_nan() || diff >= 1e-3 {
        return Err(format!("wgpu forward differs from CPU by {diff}"));
    }

    let train = |device: Device| -> Result<Vec<f32>, String> {
        let device = device.autodiff();
        let mut model = checkpoint.build(&device).map_err(|e| e.to_string())?;
        let mut optimizer = AdamConfig::new().init();
        let input = Tensor::<4>::from_data(TensorData::new(x.clone(), [b, 4, h, w]), &device);
        let target = Tensor::<4>::from_data(TensorData::new(y.clone(), [b, 3, h, w]), &device);
        let mut losses = Vec::new();
        for _ in 0..STEPS {
            let (next, loss) = train_step(
                checkpoint.config.head,
                model,
                &mut optimizer,
                1e-2,
                input.clone(),
                target.clone(),
            );
            model = next;
            losses.push(loss);
        }
        Ok(losses)
    };
    let cpu_losses = train(cpu)?;
    let gpu_losses = train(gpu)?;
    // The first loss (training-mode forward) must match the CPU's. Later steps legitimately
    // drift apart: max-pool over ReLU zeros has ties, and backends route their gradient to
    // different (equally valid) positions.
    let first_gap = (cpu_losses[0] - gpu_losses[0]).abs();
    if first_gap.is_nan() || first_gap > 1e-4 {
        return Err(format!(
            "first training loss differs: cpu {cpu_losses:?}, gpu {gpu_losses:?}"
        ));
    }
    if gpu_losses[STEPS - 1].is_nan() || gpu_losses[STEPS - 1] >= gpu_losses[0] {
        return Err(format!("loss did not fall on wgpu: {gpu_losses:?}"));
    }
    Ok(format!(
        "forward max diff to CPU {diff:.2e}; losses cpu {cpu_losses:?}, gpu {gpu_losses:?}"
    ))
}

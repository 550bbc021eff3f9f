//! Helpers shared by the integration tests: fixture paths and reading the reference I/O.

#![allow(dead_code)]

pub mod app;
pub mod cli;

use std::path::PathBuf;

use safetensors::SafeTensors;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A float32 tensor from a safetensors file: (shape, values).
pub fn read_tensor(path: &PathBuf, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).expect("fixture readable");
    let tensors = SafeTensors::deserialize(&bytes).expect("fixture is safetensors");
    let view = tensors.tensor(name).expect("tensor present");
    let values = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (view.shape().to_vec(), values)
}

pub use raagr2_lab::analysis::max_abs_diff;

#[test]
fn a_nan_fails_the_parity_comparison() {
    assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
    let d = max_abs_diff(&[1.0, f32::NAN, 2.0], &[1.0, 1.0, 2.0]);
    // NaN comes through, so `diff < tolerance` is false and the comparison fails.
    assert!(d.is_nan(), "a NaN must come through, got {d}");
}

/// A fresh scratch directory under the target dir, unique per call (tests run in parallel).
pub fn scratch_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Mean Dice of WT, TC and ET of `checkpoint` over `cases` (whole volumes, as `eval` scores them).
pub fn region_dice(
    checkpoint: &raagr2_lab::model::Checkpoint,
    cases: &[raagr2_lab::data::dataset::PreparedCase],
) -> [f64; 3] {
    use raagr2_lab::inference::{InferenceOptions, evaluate_cases};
    let device = raagr2_lab::backend::cpu_device();
    let model = checkpoint.build(&device).unwrap();
    let scored = evaluate_cases(
        &model,
        checkpoint.config.head,
        cases,
        InferenceOptions::default(),
        &device,
        |_| {},
    )
    .unwrap();
    let per_case: Vec<_> = scored.iter().map(|c| c.dice.regions3()).collect();
    raagr2_lab::metrics::RegionStats::over(&per_case)
        .mean
        .as_array()
}

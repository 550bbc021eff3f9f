//! What the program ships with: the embedded default model (trained on synthetic cases by the
//! command in [`DEFAULT_MODEL_COMMAND`]), the default case, and the held-out synthetic cases
//! `eval` scores when given no data. Nothing here touches the network or the disk.

use std::path::Path;

use crate::data::dataset::{PreparedCase, synthetic_case};
use crate::model::checkpoint::{Checkpoint, checkpoint_from_bytes};

/// The default model's checkpoint, compiled into the binary.
const DEFAULT_MODEL_BYTES: &[u8] = include_bytes!("../assets/default_model.safetensors");

/// How `assets/default_model.safetensors` was made (README repeats it).
pub const DEFAULT_MODEL_COMMAND: &str = "raagr2-lab train --synthetic 24 --width 0.25 --crop 128 \
     --epochs 12 --batch 8 --lr 1e-3 --tumour-free-share 0.05 -o assets/default_model.safetensors";

/// Training used synthetic seeds 0..24; evaluation defaults to seeds from here on, never seen.
pub const HELD_OUT_FIRST_SEED: u64 = 10_000;
/// How many held-out synthetic cases `eval` scores by default.
pub const HELD_OUT_CASES: usize = 8;
/// The case the app opens on: held out from training.
pub const DEFAULT_CASE_SEED: u64 = HELD_OUT_FIRST_SEED;

/// The name the default model goes by in reports.
pub const DEFAULT_MODEL_NAME: &str = "embedded default model";

/// The embedded default model.
pub fn default_checkpoint() -> Checkpoint {
    checkpoint_from_bytes(Path::new(DEFAULT_MODEL_NAME), DEFAULT_MODEL_BYTES)
        .expect("the embedded default model is a valid checkpoint (tested)")
}

/// The default case: a synthetic case generated in memory (deterministic).
pub fn default_case() -> PreparedCase {
    synthetic_case(DEFAULT_CASE_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_loads_and_builds() {
        let checkpoint = default_checkpoint();
        checkpoint
            .build(&crate::backend::cpu_device())
            .expect("builds");
        assert!(
            DEFAULT_MODEL_BYTES.len() < 4 * 1024 * 1024,
            "a few MB at most"
        );
    }
}

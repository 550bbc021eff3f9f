//! What the program ships with: the embedded default model (trained on realistic synthetic cases
//! by the command in [`DEFAULT_MODEL_COMMAND`]), the default case (generated once, then read from
//! the user's cache), and the held-out synthetic cases `eval` scores when given no data. Nothing
//! here touches the network.

use std::path::{Path, PathBuf};

use crate::data::LabelConvention;
use crate::data::dataset::{PreparedCase, synthetic_case_id};
use crate::data::synth::{GENERATOR_VERSION, SynthOptions, generate_case, write_case};
use crate::model::checkpoint::{Checkpoint, checkpoint_from_bytes};

/// The default model's checkpoint, compiled into the binary.
const DEFAULT_MODEL_BYTES: &[u8] = include_bytes!("../assets/default_model.safetensors");

/// How `assets/default_model.safetensors` was made (README repeats it).
pub const DEFAULT_MODEL_COMMAND: &str = "raagr2-lab train --synthetic 24 --width 0.25 --crop 128 \
     --epochs 12 --batch 8 --lr 1e-3 --tumour-free-share 0.05 -o assets/default_model.safetensors";

/// Training used synthetic seeds 0..24; evaluation defaults to seeds from here on, never seen.
pub const HELD_OUT_FIRST_SEED: u64 = 10_000;
/// How many held-out synthetic cases `eval` scores by default.
pub const HELD_OUT_CASES: usize = 10;
/// The case the app opens on: held out from training.
pub const DEFAULT_CASE_SEED: u64 = HELD_OUT_FIRST_SEED;

/// The name the default model goes by in reports.
pub const DEFAULT_MODEL_NAME: &str = "embedded default model";

/// The embedded default model.
pub fn default_checkpoint() -> Checkpoint {
    checkpoint_from_bytes(Path::new(DEFAULT_MODEL_NAME), DEFAULT_MODEL_BYTES)
        .expect("the embedded default model is a valid checkpoint (tested)")
}

/// The default case: realistic synthetic case [`DEFAULT_CASE_SEED`] on BraTS's grid. The first
/// start generates it (a few seconds) and writes it as a BraTS folder to the user's cache;
/// later starts read it back (the generator writes the same int16 values it keeps in memory,
/// so both give the same case). Caching is best effort: without a cache, it is generated.
pub fn default_case() -> PreparedCase {
    let id = synthetic_case_id(DEFAULT_CASE_SEED);
    let cache = cache_dir();
    if let Some(dir) = &cache {
        if let Ok(case) = PreparedCase::load(&dir.join(&id), None) {
            return case;
        }
    }
    let case = generate_case(DEFAULT_CASE_SEED, &SynthOptions::default());
    if let Some(dir) = &cache {
        // Each file is written atomically; a half-written folder fails to load and is redone.
        let _ = write_case(dir, &id, &case, LabelConvention::Brats2021);
    }
    PreparedCase::from_synth(&id, &case)
}

/// Where the default case is cached: `$XDG_CACHE_HOME` or `~/.cache`, under a folder named for
/// the generator's version (a new generator never reads an old case).
fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(
        base.join("raagr2-lab")
            .join(format!("default-case-{GENERATOR_VERSION}")),
    )
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

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

/// How `assets/default_model.safetensors` was made (docs/model.md repeats it).
pub const DEFAULT_MODEL_COMMAND: &str = "raagr2-lab train --synthetic 60 --width 0.25 --crop 192 \
     --epochs 4 --batch 8 --lr 1e-3 --slice-step 3 --tumour-free-share 0.15 --augment \
     --val-fraction 0.1 --lr-patience 1 --early-stop 4 --seed 0 -o assets/default_model.safetensors";

/// Training used synthetic seeds 0..60; evaluation defaults to seeds from here on, never seen.
pub const HELD_OUT_FIRST_SEED: u64 = 10_000;
/// How many held-out synthetic cases `eval` scores by default.
pub const HELD_OUT_CASES: usize = 10;
/// The case the app opens on: held out from training, and a glioblastoma-like tumour with all
/// three sub-regions (necrosis, enhancing rim, oedema) to look at.
pub const DEFAULT_CASE_SEED: u64 = HELD_OUT_FIRST_SEED + 4;

/// The embedded model's own sweeps on the held-out cases (channel and mask methods, no
/// fine-tuning), written by the `sweep` commands in docs/results/sweeps.md: what the app's Plots tab
/// shows until the user runs a sweep.
const DEFAULT_MODEL_SWEEPS: [&str; 2] = [
    include_str!("../docs/sweeps/default_structured.csv"),
    include_str!("../docs/sweeps/default_masks.csv"),
];

/// The points of [`DEFAULT_MODEL_SWEEPS`].
pub fn default_model_sweep() -> Vec<crate::prune::sweep::SweepPoint> {
    DEFAULT_MODEL_SWEEPS
        .iter()
        .flat_map(|csv| {
            crate::prune::sweep::parse_csv(csv).expect("the shipped sweeps are valid (tested)")
        })
        .collect()
}

/// The name the default model goes by in reports.
pub const DEFAULT_MODEL_NAME: &str = "embedded default model";

/// A model compiled into the binary besides the default one: the compression study's trained
/// family. Each is named by its file in `assets/`, the path every command opens it by, so the
/// app's model menu, the plan tree and the command line all name it the same way.
pub struct ShippedModel {
    /// The file in the repository, e.g. `assets/study_base.safetensors`.
    pub path: &'static str,
    /// What the app's model menu says.
    pub label: &'static str,
    bytes: &'static [u8],
}

/// The study family, half width (encoder 16/32/64/128/256), trained by `tools/study_train.sh`
/// and stored in half precision by `export --precision fp16`.
pub const SHIPPED_MODELS: &[ShippedModel] = &[
    ShippedModel {
        path: "assets/study_base.safetensors",
        label: "Study: base (half width)",
        bytes: include_bytes!("../assets/study_base.safetensors"),
    },
    ShippedModel {
        path: "assets/study_slimming.safetensors",
        label: "Study: slimming (half width)",
        bytes: include_bytes!("../assets/study_slimming.safetensors"),
    },
    ShippedModel {
        path: "assets/study_depthwise-shared.safetensors",
        label: "Study: depthwise-shared (half width)",
        bytes: include_bytes!("../assets/study_depthwise-shared.safetensors"),
    },
    ShippedModel {
        path: "assets/study_paired-shared.safetensors",
        label: "Study: paired-shared (half width)",
        bytes: include_bytes!("../assets/study_paired-shared.safetensors"),
    },
];

/// The compression study of the shipped family (`study ... -o docs/study/study`, the command in
/// the book's study chapter): what the app's Plots tab shows until the user opens another.
pub const SHIPPED_STUDY: (&str, &str) = (
    "docs/study/study.json",
    include_str!("../docs/study/study.json"),
);

impl ShippedModel {
    /// The shipped model a path names, if any: exactly its `assets/...` path.
    pub fn at(path: &Path) -> Option<&'static ShippedModel> {
        SHIPPED_MODELS.iter().find(|m| Path::new(m.path) == path)
    }

    pub fn checkpoint(&self) -> Checkpoint {
        checkpoint_from_bytes(Path::new(self.path), self.bytes)
            .expect("the shipped models are valid checkpoints (tested)")
    }
}

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
    default_case_cached_in(cache_dir().as_deref())
}

/// [`default_case`] with the cache in `cache` (none: always generated).
pub fn default_case_cached_in(cache: Option<&Path>) -> PreparedCase {
    let id = synthetic_case_id(DEFAULT_CASE_SEED);
    if let Some(Ok(case)) = cache.map(|dir| PreparedCase::load(&dir.join(&id), None)) {
        return case;
    }
    let case = generate_case(DEFAULT_CASE_SEED, &SynthOptions::default());
    if let Some(dir) = cache {
        // Each file is written atomically; a half-written folder fails to load and is redone.
        // Without a writable cache the case is simply generated again next time.
        if let Err(e) = write_case(dir, &id, &case, LabelConvention::Brats2021) {
            eprintln!("note: the default case is not cached ({e})");
        }
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
    fn the_shipped_sweeps_of_the_embedded_model_read_back() {
        let points = default_model_sweep();
        assert!(points.len() > 10);
        let methods: std::collections::BTreeSet<&str> =
            points.iter().map(|p| p.method.key()).collect();
        assert!(
            methods.contains("l2") && methods.contains("l1-global"),
            "{methods:?}"
        );
    }

    #[test]
    fn every_shipped_model_loads_builds_and_is_its_asset_file() {
        for shipped in SHIPPED_MODELS {
            let checkpoint = shipped.checkpoint();
            checkpoint
                .build(&crate::backend::cpu_device())
                .expect("builds");
            assert!(ShippedModel::at(Path::new(shipped.path)).is_some());
            let on_disk = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(shipped.path))
                .expect("the asset is in the repository");
            assert_eq!(on_disk, shipped.bytes, "{}", shipped.path);
        }
    }

    #[test]
    fn the_shipped_study_is_a_study_file_of_the_shipped_family() {
        let (path, text) = SHIPPED_STUDY;
        let study: crate::prune::study::StudyFile =
            serde_json::from_str(text).expect("a study file");
        assert_eq!(study.format, crate::prune::study::STUDY_FORMAT);
        assert!(!study.results.is_empty(), "{path} has points");
        let dense = study
            .results
            .iter()
            .find(|r| r.point.target.is_none() && r.point.row.key() == "dense")
            .expect("the dense row");
        let base = SHIPPED_MODELS[0].checkpoint();
        assert_eq!(
            dense.structure.params,
            crate::prune::study::nonzero_params(&base),
            "its dense row is the shipped base model"
        );
    }

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

    #[test]
    fn the_cached_default_case_is_the_generated_one() {
        let cache =
            std::env::temp_dir().join(format!("raagr2-default-case-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        let generated = default_case_cached_in(Some(&cache));
        let folder = cache.join(&generated.id);
        assert!(
            folder
                .join(format!("{}_flair.nii.gz", generated.id))
                .exists(),
            "cached"
        );
        let read_back = default_case_cached_in(Some(&cache));
        assert_eq!(read_back.dims, [240, 240, 155]);
        assert_eq!(read_back.modalities, generated.modalities);
        assert_eq!(read_back.regions, generated.regions);
        let regions = generated.regions.as_ref().unwrap();
        assert!(
            (1..=3).all(|code| regions.contains(&code)),
            "NCR, ED and ET all present"
        );
        let _ = std::fs::remove_dir_all(&cache);
    }
}

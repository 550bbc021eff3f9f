//! The integration tests, one module per area, all compiled into the single `tests/main.rs`
//! binary.

mod app;
mod checkpoint_roundtrip;
mod classifiers;
mod cli;
mod cpu_kernels;
mod docs;
mod explore;
mod lesson;
mod masks;
mod nifti_inputs;
mod parity;
mod pipeline;
mod pruning;
mod score;
mod training;

/// A test file added to this folder but not listed above would silently never run.
#[test]
fn every_file_in_the_suite_folder_is_listed_here() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/suite");
    let listing = std::fs::read_to_string(folder.join("mod.rs")).unwrap();
    let listed: std::collections::BTreeSet<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    let mut unlisted = Vec::new();
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let rust = path.extension().is_some_and(|e| e == "rs");
        if (rust || path.is_dir()) && stem != "mod" && !listed.contains(stem) {
            unlisted.push(stem.to_string());
        }
    }
    assert!(
        unlisted.is_empty(),
        "tests/suite/ holds modules that tests/suite/mod.rs does not list: {unlisted:?}"
    );
}

//! Case loading timed beside nibabel (`bench --load-case`): the four modalities and the
//! segmentation decoded to float32 voxels, nibabel run in the same invocation by the embedded
//! `tools/nibabel_load.py`.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::peer_script;
use crate::data::brats::load_case;
use crate::timing::Timing;

/// The script, embedded so `bench` works from any folder.
const SCRIPT: &str = include_str!("../../tools/nibabel_load.py");

/// One reader's time to load the case, or why it was not measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    pub reader: String,
    pub timing: Option<Timing>,
    pub skipped: Option<String>,
}

/// Times this project's reader, then nibabel's when `against_nibabel`.
pub fn time_loads(case: &Path, runs: usize, against_nibabel: bool) -> Vec<LoadResult> {
    let mut results = vec![time_own(case, runs)];
    if against_nibabel {
        results.push(time_nibabel(case, runs));
    }
    results
}

fn time_own(case: &Path, runs: usize) -> LoadResult {
    let reader = "raagr2-lab (data::brats::load_case)".to_string();
    let mut samples = Vec::with_capacity(runs);
    let mut first = 0.0;
    for run in 0..=runs {
        let start = Instant::now();
        if let Err(e) = load_case(case, None) {
            return LoadResult {
                reader,
                timing: None,
                skipped: Some(e.to_string()),
            };
        }
        let secs = start.elapsed().as_secs_f64();
        if run == 0 {
            first = secs;
        } else {
            samples.push(secs);
        }
    }
    LoadResult {
        reader,
        timing: Some(Timing::from_samples(first, samples)),
        skipped: None,
    }
}

/// What tools/nibabel_load.py prints with `--json` (other fields ignored).
#[derive(Deserialize)]
struct NibabelReport {
    version: String,
    #[serde(flatten)]
    timing: Timing,
}

fn time_nibabel(case: &Path, runs: usize) -> LoadResult {
    match run_nibabel(case, runs) {
        Ok(report) => LoadResult {
            reader: format!("nibabel {}", report.version),
            timing: Some(report.timing),
            skipped: None,
        },
        Err(reason) => LoadResult {
            reader: "nibabel".into(),
            timing: None,
            skipped: Some(reason),
        },
    }
}

fn run_nibabel(case: &Path, runs: usize) -> Result<NibabelReport, String> {
    let args = [
        case.display().to_string(),
        "--runs".into(),
        runs.to_string(),
    ];
    peer_script::run(("tools/nibabel_load.py", SCRIPT), &[], &args)
}

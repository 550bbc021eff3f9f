//! A sweep or a study spread over machines: `--write-points` lists the command's independent
//! points with the options they run under, `--run-point FILE --index I` runs one (on any
//! machine, in any order: each point is seeded from what it is), `--merge DIR` assembles what a
//! single-machine run writes. The points file is the same for `sweep` and `study`; its
//! `command` says which one reads it. This module is the mechanism both commands share (the
//! options, the file, its entries and row folder); each command reads its own points.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

/// A sweep spread over machines: its independent points listed, run one at a time anywhere
/// (a SLURM array task, a GNU parallel job), and merged.
#[derive(Args, Debug)]
pub struct SpreadArgs {
    /// List the sweep's points (with these options) in this file instead of running them.
    #[arg(long, conflicts_with_all = ["run_point", "merge"])]
    pub write_points: Option<PathBuf>,
    /// Run one point of a points file (with `--index`); its row goes to the points' folder.
    #[arg(long, requires = "index", conflicts_with = "merge")]
    pub run_point: Option<PathBuf>,
    /// The point `--run-point` runs (0-based, as in the points file).
    #[arg(long)]
    pub index: Option<usize>,
    /// Assemble the rows in this folder (written by `--run-point`) into the CSV and plot a
    /// single-machine sweep writes (`-o`).
    #[arg(long)]
    pub merge: Option<PathBuf>,
}

/// Version of the points file format (checked on read).
const POINTS_FORMAT: u32 = 1;

/// The points file.
#[derive(Serialize, Deserialize)]
pub(super) struct PointsFile {
    format: u32,
    /// The command whose points these are (`sweep`, `study`).
    #[serde(default = "sweep_command")]
    pub command: String,
    /// The options every point runs under (the command line without `--write-points`).
    pub options: Vec<String>,
    /// Where `--run-point` writes each point's row, relative to this file.
    results: PathBuf,
    pub points: Vec<PointEntry>,
}

fn sweep_command() -> String {
    "sweep".into()
}

/// One independent point.
#[derive(Serialize, Deserialize)]
pub(super) struct PointEntry {
    pub index: usize,
    /// The sweep's method, or the study's row.
    pub method: String,
    /// The sweep's ratio, or the study's target share (none: the row's model as trained).
    pub ratio: Option<f64>,
    /// Its fine-tuning seed (a sweep's: from its seed, the method and the ratio; a study's:
    /// the first of its seeds).
    pub seed: u64,
}

/// Writes a points file of `command` for `points` at `path` (atomically); its row folder is
/// `<stem>.rows` beside it.
pub(super) fn write_points_file(
    path: &Path,
    command: &str,
    options: Vec<String>,
    points: Vec<PointEntry>,
) -> Result<PointsFile> {
    let stem = path
        .file_stem()
        .map_or("points".into(), |s| s.to_string_lossy().into_owned());
    let file = PointsFile {
        format: POINTS_FORMAT,
        command: command.into(),
        options,
        results: PathBuf::from(format!("{stem}.rows")),
        points,
    };
    let text = serde_json::to_string_pretty(&file)?;
    crate::atomic::write_bytes(path, text.as_bytes())
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(file)
}

/// The command line after `command`, without `--write-points FILE` (what every point runs).
pub(super) fn command_options(argv: Vec<String>, command: &str) -> Vec<String> {
    let mut options = Vec::new();
    let mut args = argv.into_iter().skip_while(|a| a != command).skip(1);
    while let Some(arg) = args.next() {
        if arg == "--write-points" {
            args.next();
        } else if !arg.starts_with("--write-points=") {
            options.push(arg);
        }
    }
    options
}

/// Reads a points file written for `command`; the error names the file and the problem.
pub(super) fn read_points(path: &Path, command: &str) -> Result<PointsFile> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let file: PointsFile = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not a points file: {e}", path.display()))?;
    if file.format != POINTS_FORMAT {
        bail!(
            "{}: points format {} (this version reads {POINTS_FORMAT})",
            path.display(),
            file.format
        );
    }
    if file.command != command {
        bail!(
            "{}: these are points of `{}`; run them with `raagr2-lab {} --run-point`",
            path.display(),
            file.command,
            file.command
        );
    }
    Ok(file)
}

impl PointsFile {
    /// Point `index`, or an error naming the file and the indices it has.
    pub(super) fn entry(&self, path: &Path, index: usize) -> Result<&PointEntry> {
        self.points
            .iter()
            .find(|p| p.index == index)
            .ok_or_else(|| {
                anyhow!(
                    "{}: no point {index} (the file lists 0..={})",
                    path.display(),
                    self.points.len().saturating_sub(1)
                )
            })
    }
}

/// The folder a points file's rows go to.
pub(super) fn results_folder(path: &Path, file: &PointsFile) -> PathBuf {
    path.parent().unwrap_or(Path::new(".")).join(&file.results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_points_options_are_the_command_line_without_write_points() {
        let argv = [
            "raagr2-lab",
            "sweep",
            "--ratios",
            "0,0.5",
            "--write-points",
            "p.json",
            "-o",
            "s.csv",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            command_options(argv, "sweep"),
            ["--ratios", "0,0.5", "-o", "s.csv"]
        );
    }
}

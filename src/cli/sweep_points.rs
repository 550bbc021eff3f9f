//! A sweep or a study spread over machines: `--write-points` lists the command's independent
//! points with the options they run under, `--run-point FILE --index I` runs one (on any
//! machine, in any order: each point is seeded from what it is), `--merge DIR` assembles what a
//! single-machine run writes. The points file is the same for `sweep` and `study`; its
//! `command` says which one reads it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use serde::{Deserialize, Serialize};

use super::sweep_cmd::{SweepArgs, grid, point_seed, run_points};
use super::{Cli, Command};
use crate::prune::sweep::{parse_csv, to_csv, write_sweep_plot};

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

/// Writes the points of the sweep `args` describes to `path`, with the command line that
/// describes it.
pub fn write_points(args: &SweepArgs, path: &Path) -> Result<()> {
    let options = command_options(std::env::args().skip(1).collect(), "sweep");
    // Fails here, not on a cluster node, when the options cannot be read back.
    parse_options(&options).context("the sweep's options")?;
    let points = grid(args)?
        .into_iter()
        .enumerate()
        .map(|(index, (method, ratio))| PointEntry {
            index,
            method: method.key().to_string(),
            ratio: Some(ratio),
            seed: point_seed(args.measure.fine_tune.fine_tune_seed, method, ratio),
        })
        .collect();
    let file = write_points_file(path, "sweep", options, points)?;
    let last = file.points.len().saturating_sub(1);
    println!(
        "{} point(s) -> {}\nrun each: raagr2-lab sweep --run-point {} --index I   (I = 0..={last})\n\
         then:     raagr2-lab sweep --merge {} -o SWEEP.csv",
        file.points.len(),
        path.display(),
        path.display(),
        results_folder(path, &file).display()
    );
    Ok(())
}

/// Runs point `index` of the points file at `path` and writes its row (a one-row sweep CSV).
pub fn run_point(path: &Path, index: usize) -> Result<()> {
    let file = read_points(path, "sweep")?;
    let entry = file.entry(path, index)?;
    let args = parse_options(&file.options)
        .with_context(|| format!("{}: the sweep's options", path.display()))?;
    let (points, _, _) = run_points(&args, Some(index))?;
    let [point] = points.as_slice() else {
        bail!("point {index} gave {} rows", points.len());
    };
    if point.method.key() != entry.method || Some(point.ratio) != entry.ratio {
        bail!(
            "{}: point {index} is {} at {}, the options give {} at {}",
            path.display(),
            entry.method,
            entry.ratio.unwrap_or_default(),
            point.method.key(),
            point.ratio
        );
    }
    let row = results_folder(path, &file).join(format!("point-{index:05}.csv"));
    crate::atomic::write_bytes(&row, to_csv(&points).as_bytes())
        .map_err(|e| anyhow!("{}: {e}", row.display()))?;
    println!(
        "point {index} ({} at {}) -> {}",
        entry.method,
        entry.ratio.unwrap_or_default(),
        row.display()
    );
    Ok(())
}

/// Assembles the rows in `folder` (file name order = the sweep's order) into `-o` and its plot.
pub fn merge(args: &SweepArgs, folder: &Path) -> Result<()> {
    let output = args
        .output
        .clone()
        .ok_or_else(|| anyhow!("--merge needs -o SWEEP.csv"))?;
    let mut rows: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| anyhow!("{}: {e}", folder.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("point-") && n.ends_with(".csv"))
        })
        .collect();
    if rows.is_empty() {
        bail!(
            "{}: no point-*.csv rows (run the points first)",
            folder.display()
        );
    }
    rows.sort();
    let mut points = Vec::new();
    for row in &rows {
        let text = std::fs::read_to_string(row).map_err(|e| anyhow!("{}: {e}", row.display()))?;
        points.extend(parse_csv(&text).map_err(|e| anyhow!("{}: {e}", row.display()))?);
    }
    crate::atomic::write_bytes(&output, to_csv(&points).as_bytes())
        .map_err(|e| anyhow!("{}: {e}", output.display()))?;
    let plot = args
        .plot
        .clone()
        .unwrap_or_else(|| output.with_extension("png"));
    write_sweep_plot(&plot, &points, "merged sweep")?;
    println!(
        "{} row(s) from {} -> {}, {}",
        points.len(),
        folder.display(),
        output.display(),
        plot.display()
    );
    Ok(())
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

fn parse_options(options: &[String]) -> Result<SweepArgs> {
    let argv = ["raagr2-lab", "sweep"]
        .into_iter()
        .map(String::from)
        .chain(options.iter().cloned());
    match Cli::try_parse_from(argv)
        .map_err(|e| anyhow!("{e}"))?
        .command
    {
        Command::Sweep(args) => Ok(args),
        _ => unreachable!("parsed as a sweep"),
    }
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
        let parsed = parse_options(&command_options(
            ["x", "sweep", "--write-points=p.json", "--methods", "l2"]
                .map(String::from)
                .to_vec(),
            "sweep",
        ))
        .unwrap();
        assert_eq!(parsed.methods, "l2");
    }
}

//! A sweep spread over machines: `sweep --write-points` lists its independent points with the
//! options they run under, `sweep --run-point FILE --index I` runs one (on any machine, in any
//! order: each point is seeded from its method and ratio), `sweep --merge DIR` assembles the
//! CSV and plot a single-machine sweep writes.

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
struct PointsFile {
    format: u32,
    /// The `sweep` options every point runs under (the command line without `--write-points`).
    options: Vec<String>,
    /// Where `--run-point` writes each point's row, relative to this file.
    results: PathBuf,
    points: Vec<PointEntry>,
}

/// One independent point.
#[derive(Serialize, Deserialize)]
struct PointEntry {
    index: usize,
    method: String,
    ratio: f64,
    /// Its fine-tuning seed (from the sweep's seed, its method and ratio).
    seed: u64,
}

/// Writes the points of the sweep `args` describes to `path`, with the command line that
/// describes it.
pub fn write_points(args: &SweepArgs, path: &Path) -> Result<()> {
    let options = sweep_options(std::env::args().skip(1).collect());
    // Fails here, not on a cluster node, when the options cannot be read back.
    parse_options(&options).context("the sweep's options")?;
    let stem = path
        .file_stem()
        .map_or("points".into(), |s| s.to_string_lossy().into_owned());
    let file = PointsFile {
        format: POINTS_FORMAT,
        options,
        results: PathBuf::from(format!("{stem}.rows")),
        points: grid(args)?
            .into_iter()
            .enumerate()
            .map(|(index, (method, ratio))| PointEntry {
                index,
                method: method.key().to_string(),
                ratio,
                seed: point_seed(args.measure.fine_tune.fine_tune_seed, method, ratio),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&file)?;
    crate::atomic::write_bytes(path, text.as_bytes())
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
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
    let file = read_points(path)?;
    let Some(entry) = file.points.iter().find(|p| p.index == index) else {
        bail!(
            "{}: no point {index} (the file lists 0..={})",
            path.display(),
            file.points.len().saturating_sub(1)
        );
    };
    let args = parse_options(&file.options)
        .with_context(|| format!("{}: the sweep's options", path.display()))?;
    let (points, _, _) = run_points(&args, Some(index))?;
    let [point] = points.as_slice() else {
        bail!("point {index} gave {} rows", points.len());
    };
    if point.method.key() != entry.method || point.ratio != entry.ratio {
        bail!(
            "{}: point {index} is {} at {}, the options give {} at {}",
            path.display(),
            entry.method,
            entry.ratio,
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
        entry.ratio,
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

/// The command line after `sweep`, without `--write-points FILE` (what every point runs).
fn sweep_options(argv: Vec<String>) -> Vec<String> {
    let mut options = Vec::new();
    let mut args = argv.into_iter().skip_while(|a| a != "sweep").skip(1);
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

fn read_points(path: &Path) -> Result<PointsFile> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let file: PointsFile = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not a sweep points file: {e}", path.display()))?;
    if file.format != POINTS_FORMAT {
        bail!(
            "{}: points format {} (this version reads {POINTS_FORMAT})",
            path.display(),
            file.format
        );
    }
    Ok(file)
}

fn results_folder(path: &Path, file: &PointsFile) -> PathBuf {
    path.parent().unwrap_or(Path::new(".")).join(&file.results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_points_options_are_the_sweep_command_line_without_write_points() {
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
        assert_eq!(sweep_options(argv), ["--ratios", "0,0.5", "-o", "s.csv"]);
        let parsed = parse_options(&sweep_options(
            ["x", "sweep", "--write-points=p.json", "--methods", "l2"]
                .map(String::from)
                .to_vec(),
        ))
        .unwrap();
        assert_eq!(parsed.methods, "l2");
    }
}

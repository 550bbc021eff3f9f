//! `synth`: write synthetic BraTS cases (and optional montages) to a folder.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use super::print_json;
use crate::data::LabelConvention;
use crate::data::synth::SynthKind;

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Folder to write the case folders into.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number of cases.
    #[arg(short = 'n', long, default_value_t = 4)]
    pub count: usize,
    /// Seed of the first case; case i uses seed + i.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Generator: realistic (real anatomy, grown tumours) or cartoon (ellipsoids).
    #[arg(long, value_enum, default_value_t = SynthKind::Realistic)]
    pub kind: SynthKind,
    /// Grid x,y,z (default: BraTS's field of view at --spacing; 240,240,155 at 1 mm).
    #[arg(long, value_delimiter = ',')]
    pub dims: Option<Vec<usize>>,
    /// Voxel size in mm (default 1 for realistic cases, 1.875 for cartoons).
    #[arg(long)]
    pub spacing: Option<f32>,
    /// File naming and labels: brats2021 (`_t1ce`, ET = 4) or brats2023 (`-t1c`, ET = 3).
    #[arg(long, value_enum, default_value_t = LabelConvention::Brats2021)]
    pub naming: LabelConvention,
    /// Also write `<id>.png` per case here: T1, T1ce, T2, FLAIR and the labels over FLAIR on
    /// the axial slice with the most tumour.
    #[arg(long)]
    pub preview_dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct SynthReport {
    cases: Vec<PathBuf>,
    kind: SynthKind,
    dims: [usize; 3],
    spacing_mm: f32,
    elapsed_secs: f64,
    secs_per_case: f64,
}

pub fn synth(args: SynthArgs) -> Result<()> {
    use crate::data::synth::{SynthOptions, case_id, generate_case, write_case};
    let mut options = SynthOptions::over_brats_view(args.kind, args.spacing)
        .map_err(|e| anyhow::anyhow!("--spacing: {e}"))?;
    match &args.dims {
        Some(d) if d.len() == 3 && d.iter().all(|&n| (8..=1024).contains(&n)) => {
            options.dims = [d[0], d[1], d[2]]
        }
        Some(d) => bail!("--dims needs three sizes x,y,z, each in 8..=1024, got {d:?}"),
        None => {}
    }
    let start = std::time::Instant::now();
    let mut cases = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let seed = args.seed + i as u64;
        let id = case_id(seed, args.naming);
        let case = generate_case(seed, &options);
        cases.push(write_case(&args.output, &id, &case, args.naming)?);
        if let Some(dir) = &args.preview_dir {
            let prepared = crate::data::dataset::PreparedCase::from_synth(&id, &case);
            let z = crate::montage::tumour_slice(&prepared);
            crate::montage::write_montage(&prepared, z, &dir.join(format!("{id}.png")))?;
        }
        if !args.json {
            eprintln!("synth: wrote {}", cases[i].display());
        }
    }
    let elapsed_secs = start.elapsed().as_secs_f64();
    let report = SynthReport {
        secs_per_case: elapsed_secs / args.count.max(1) as f64,
        cases,
        kind: args.kind,
        dims: options.dims,
        spacing_mm: options.spacing_mm,
        elapsed_secs,
    };
    if args.json {
        return print_json(&report);
    }
    let [x, y, z] = options.dims;
    println!(
        "wrote {} {:?} case(s) of {x}x{y}x{z} at {} mm to {} in {:.2} s ({:.2} s per case)",
        report.cases.len(),
        args.kind,
        options.spacing_mm,
        args.output.display(),
        report.elapsed_secs,
        report.secs_per_case,
    );
    Ok(())
}

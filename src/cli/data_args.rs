//! Where a command's cases come from: a BraTS folder or synthetic cases generated in memory.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::data::LabelConvention;
use crate::data::dataset::{CaseSource, PreparedCase, list_cases};
use crate::data::synth::{SynthKind, SynthOptions};

/// Where cases come from: a BraTS folder or synthetic cases made in memory.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// A BraTS case folder, or a folder of case folders.
    #[arg(long, conflicts_with = "synthetic")]
    pub data: Option<PathBuf>,
    /// Use N synthetic cases generated in memory (seeds --synthetic-seed .. + N - 1).
    #[arg(long)]
    pub synthetic: Option<usize>,
    /// Seed of the first synthetic case.
    #[arg(long, default_value_t = 0)]
    pub synthetic_seed: u64,
    /// Generator of the synthetic cases.
    #[arg(long, value_enum, default_value_t = SynthKind::Realistic)]
    pub synthetic_kind: SynthKind,
    /// Voxel size of the synthetic cases in mm, over BraTS's field of view (default: 1 mm,
    /// BraTS's own 240x240x155 grid, for realistic cases; 1.875 mm for cartoons).
    #[arg(long)]
    pub synthetic_spacing: Option<f32>,
    /// Label convention; by default inferred from the file naming.
    #[arg(long, value_enum)]
    pub labels: Option<LabelConvention>,
}

impl DataArgs {
    /// The cases this names, not yet loaded.
    pub fn sources(&self) -> Result<Vec<CaseSource>> {
        match (&self.data, self.synthetic) {
            (Some(root), _) => Ok(list_cases(root)?),
            (None, Some(0)) => bail!("--synthetic needs at least one case"),
            (None, Some(n)) => {
                let options =
                    SynthOptions::over_brats_view(self.synthetic_kind, self.synthetic_spacing)
                        .map_err(|e| anyhow::anyhow!("--synthetic-spacing: {e}"))?;
                Ok((0..n as u64)
                    .map(|i| CaseSource::Synthetic {
                        seed: self.synthetic_seed.wrapping_add(i),
                        options,
                    })
                    .collect())
            }
            (None, None) => bail!("give --data <folder> or --synthetic <count>"),
        }
    }

    /// Loads every case into memory (small evaluation sets), reporting each id to `on_case`.
    pub fn load(&self, mut on_case: impl FnMut(&str)) -> Result<Vec<PreparedCase>> {
        self.sources()?
            .iter()
            .map(|source| {
                on_case(&source.id());
                Ok(source.load(self.labels)?)
            })
            .collect()
    }
}

//! BraTS case folders in both namings, and their label conventions.
//!
//! 2019-2021: `<id>_{t1,t1ce,t2,flair,seg}.nii.gz`, labels 1 NCR/NET, 2 ED, 4 ET.
//! 2023+:     `<id>-{t1n,t1c,t2w,t2f,seg}.nii.gz`, labels 1 NCR, 2 ED, 3 ET (the 2024
//! post-treatment set adds 4 = resection cavity, which is not tumour).
//! The convention follows from the file naming and can be overridden; it is never guessed from
//! the label values.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::DataError;
use super::nifti_io::{Volume, check_same_grid, read_grid, read_volume_with};

/// The four input modalities, in the network's channel order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    T1,
    T1ce,
    T2,
    Flair,
}

impl Modality {
    pub const ALL: [Modality; 4] = [Modality::T1, Modality::T1ce, Modality::T2, Modality::Flair];

    pub fn name(self) -> &'static str {
        match self {
            Modality::T1 => "T1",
            Modality::T1ce => "T1ce",
            Modality::T2 => "T2",
            Modality::Flair => "FLAIR",
        }
    }
}

/// How label values map to tumour sub-regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelConvention {
    /// BraTS 2019-2021: 1 NCR/NET, 2 ED, 4 ET.
    Brats2021,
    /// BraTS 2023+: 1 NCR, 2 ED, 3 ET; 4 (2024 post-treatment: resection cavity) is background.
    Brats2023,
}

impl LabelConvention {
    /// File suffixes of T1, T1ce, T2, FLAIR and seg, and the separator before them.
    pub fn naming(self) -> ([&'static str; 5], char) {
        match self {
            LabelConvention::Brats2021 => (["t1", "t1ce", "t2", "flair", "seg"], '_'),
            LabelConvention::Brats2023 => (["t1n", "t1c", "t2w", "t2f", "seg"], '-'),
        }
    }

    /// The `.nii.gz` file name of modality `index` (0..4: T1, T1ce, T2, FLAIR) or of the seg
    /// (index 4) for case `id`, as BraTS names it.
    pub fn file_name(self, id: &str, index: usize) -> String {
        let (suffixes, sep) = self.naming();
        format!("{id}{sep}{}.nii.gz", suffixes[index])
    }

    /// The label value of enhancing tumour.
    pub fn et_label(self) -> u8 {
        match self {
            LabelConvention::Brats2021 => 4,
            LabelConvention::Brats2023 => 3,
        }
    }

    /// Maps a label value to our sub-region code: 0 background, 1 NCR/NET, 2 ED, 3 ET.
    pub fn region_of(self, label: u8) -> u8 {
        match (self, label) {
            (_, 1) => 1,
            (_, 2) => 2,
            (LabelConvention::Brats2021, 4) | (LabelConvention::Brats2023, 3) => 3,
            _ => 0,
        }
    }

    /// The label value written for sub-region code 1..=3 (the inverse of [`Self::region_of`]).
    pub fn label_of(self, region: u8) -> u8 {
        match region {
            3 => self.et_label(),
            r => r,
        }
    }
}

/// One patient: the four modalities (network order) and, when present, the segmentation.
#[derive(Debug, Clone)]
pub struct BratsCase {
    pub id: String,
    pub folder: PathBuf,
    pub convention: LabelConvention,
    pub modalities: [Volume; 4],
    pub seg: Option<Volume>,
}

/// Finds the case id and naming convention from the files in `folder`.
pub fn detect_case(folder: &Path) -> Result<(String, LabelConvention), DataError> {
    let bad = |problem: String| DataError::BadCase {
        folder: folder.to_path_buf(),
        problem,
    };
    let entries = std::fs::read_dir(folder).map_err(|e| DataError::Io {
        path: folder.to_path_buf(),
        error: e,
    })?;
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for convention in [LabelConvention::Brats2023, LabelConvention::Brats2021] {
        let (suffixes, sep) = convention.naming();
        // The FLAIR (or T2-FLAIR) file names the case unambiguously in both conventions.
        let flair = format!("{sep}{}", suffixes[3]);
        for name in &names {
            let stem = name.trim_end_matches(".gz").trim_end_matches(".nii");
            if stem.len() < name.len() && stem.ends_with(&flair) {
                return Ok((stem[..stem.len() - flair.len()].to_string(), convention));
            }
        }
    }
    Err(bad(
        "no BraTS FLAIR file found (expected <id>_flair.nii[.gz] or <id>-t2f.nii[.gz])".into(),
    ))
}

/// The file of one modality (index 0..4) or the seg (index 4), .nii.gz preferred over .nii.
fn case_file(
    folder: &Path,
    id: &str,
    convention: LabelConvention,
    index: usize,
) -> Option<PathBuf> {
    let (suffixes, sep) = convention.naming();
    ["nii.gz", "nii"]
        .iter()
        .map(|ext| folder.join(format!("{id}{sep}{}.{ext}", suffixes[index])))
        .find(|p| p.exists())
}

/// Loads a BraTS case folder. The convention comes from the file naming unless `convention`
/// overrides it. Every file's header is read and checked first; all modalities (and the seg,
/// if any) must share one grid (sizes and affine) before any voxel data is read.
pub fn load_case(
    folder: &Path,
    convention: Option<LabelConvention>,
) -> Result<BratsCase, DataError> {
    if !folder.is_dir() {
        return Err(DataError::Missing(folder.to_path_buf()));
    }
    // The naming found on disk decides which files to open; `convention` only relabels.
    let (id, file_convention) = detect_case(folder)?;
    let mut paths = Vec::with_capacity(5);
    for (i, modality) in Modality::ALL.iter().enumerate() {
        let Some(path) = case_file(folder, &id, file_convention, i) else {
            let (suffixes, sep) = file_convention.naming();
            return Err(DataError::BadCase {
                folder: folder.to_path_buf(),
                problem: format!(
                    "missing the {} modality ({id}{sep}{}.nii.gz)",
                    modality.name(),
                    suffixes[i]
                ),
            });
        };
        paths.push(path);
    }
    paths.extend(case_file(folder, &id, file_convention, 4));
    let grids = paths
        .iter()
        .map(|p| read_grid(p))
        .collect::<Result<Vec<_>, _>>()?;
    let grid_of = |k: usize| (paths[k].as_path(), &grids[k].0, grids[k].1);
    for k in 1..paths.len() {
        check_same_grid(grid_of(0), grid_of(k)).map_err(|problem| DataError::BadCase {
            folder: folder.to_path_buf(),
            problem,
        })?;
    }
    // Each file's gzip stream decodes on one core: decode the five side by side.
    let mut volumes = paths
        .par_iter()
        .zip(&grids)
        .map(|(path, (header, _, _))| read_volume_with(path, header))
        .collect::<Result<Vec<_>, _>>()?;
    let seg = (volumes.len() == 5).then(|| volumes.pop()).flatten();
    let modalities: [Volume; 4] = volumes.try_into().expect("four modalities read above");
    Ok(BratsCase {
        id,
        folder: folder.to_path_buf(),
        convention: convention.unwrap_or(file_convention),
        modalities,
        seg,
    })
}

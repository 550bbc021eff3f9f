//! MRI data: NIfTI volumes, BraTS case folders and label conventions (no UI, no model here).

pub mod brats;
pub mod dataset;
pub mod nifti_header;
pub mod nifti_io;
pub mod preprocess;
pub mod resample;
pub mod synth;

use std::path::PathBuf;

pub use brats::{BratsCase, LabelConvention, Modality, load_case};
pub use nifti_io::{Volume, read_volume, write_label_map, write_volume};

/// Everything that can go wrong reading or writing data files (MRI volumes and case folders,
/// and the classifiers' image sets too); always names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: file not found", .0.display())]
    Missing(PathBuf),
    #[error("{}: {problem}", path.display())]
    BadFile { path: PathBuf, problem: String },
    // Not `source`: the message carries the I/O error already (see `ModelError::Io`).
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {problem}", folder.display())]
    BadCase { folder: PathBuf, problem: String },
    #[error("{0}")]
    Invalid(String),
}

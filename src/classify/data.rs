//! A classification data set folder opened whatever its format (CIFAR-100 binary or HAM10000),
//! as train and test image sets with class names.

use std::path::Path;

use serde::Serialize;

use super::images::ImageSet;
use super::{cifar, ham10000};
use crate::data::DataError;

/// Share of HAM10000's lesions held out for testing.
pub const HAM10000_TEST_FRACTION: f64 = 0.2;

/// Which format a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    Cifar100,
    Ham10000,
}

/// Both splits and the class names of a folder.
#[derive(Debug, Clone)]
pub struct ClassData {
    pub format: DataFormat,
    pub train: ImageSet,
    pub test: ImageSet,
    pub class_names: Vec<String>,
}

impl ClassData {
    /// Classes with at least one training image (chance accuracy is one over this).
    pub fn classes_present(&self) -> usize {
        let counts = self.train.class_counts(self.class_names.len());
        counts.iter().filter(|c| **c > 0).count()
    }
}

/// Opens `dir`: CIFAR-100 when it has `train.bin`, HAM10000 when it has its metadata CSV (images
/// resized to `side`, split by lesion with `split_seed`).
pub fn open(dir: &Path, side: usize, split_seed: u64) -> Result<ClassData, DataError> {
    if dir.join(cifar::TRAIN_FILE).exists() {
        let data = cifar::load(dir)?;
        return Ok(ClassData {
            format: DataFormat::Cifar100,
            train: data.train.images,
            test: data.test.images,
            class_names: data.fine_names,
        });
    }
    if dir.join(ham10000::METADATA_FILE).exists() {
        let data = ham10000::load(dir, side)?;
        let (train, test) =
            ham10000::split_by_lesion(&data.records, HAM10000_TEST_FRACTION, split_seed);
        return Ok(ClassData {
            format: DataFormat::Ham10000,
            train: data.images.subset(&train),
            test: data.images.subset(&test),
            class_names: ham10000::CLASSES.iter().map(|c| c.to_string()).collect(),
        });
    }
    if !dir.is_dir() {
        return Err(DataError::Missing(dir.to_path_buf()));
    }
    Err(DataError::BadCase {
        folder: dir.to_path_buf(),
        problem: format!(
            "neither CIFAR-100 binary ({}) nor HAM10000 ({}) is in this folder",
            cifar::TRAIN_FILE,
            ham10000::METADATA_FILE
        ),
    })
}

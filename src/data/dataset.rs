//! Cases ready for the network (z-scored modalities, sub-region codes) and the slice dataset and
//! batcher that feed burn during training and validation.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use half::f16;

use super::DataError;
use super::brats::{BratsCase, LabelConvention, detect_case, load_case};
use super::preprocess::{axial_slice, select_slices, zscore_brain};
use super::synth::{SynthCase, SynthOptions, generate_case};
use crate::util::rng::SplitMix64;

/// One case after preprocessing: four z-scored modalities (network order, x fastest) and, when
/// a segmentation exists, sub-region codes (0 background, 1 NCR/NET, 2 ED, 3 ET).
#[derive(Debug, Clone)]
pub struct PreparedCase {
    pub id: String,
    pub dims: [usize; 3],
    pub spacing_mm: [f32; 3],
    /// The voxel-to-world affine (row-major 3x4, mm) of the source's header.
    pub affine: [[f64; 4]; 3],
    pub modalities: [Vec<f32>; 4],
    pub regions: Option<Vec<u8>>,
    /// Label convention of the source, used when predictions are written back as labels.
    pub convention: LabelConvention,
}

impl PreparedCase {
    /// Z-scores a loaded BraTS case and maps its labels to sub-region codes.
    pub fn from_brats(case: &BratsCase) -> PreparedCase {
        let first = &case.modalities[0];
        PreparedCase {
            id: case.id.clone(),
            dims: first.dims,
            spacing_mm: first.spacing_mm,
            affine: first.affine,
            modalities: std::array::from_fn(|m| zscore_brain(&case.modalities[m].data)),
            regions: case.seg.as_ref().map(|seg| {
                seg.data
                    .iter()
                    .map(|l| case.convention.region_of(*l as u8))
                    .collect()
            }),
            convention: case.convention,
        }
    }

    /// Z-scores a generated synthetic case (labels in the BraTS 2019-2021 convention).
    pub fn from_synth(id: &str, case: &SynthCase) -> PreparedCase {
        let convention = LabelConvention::Brats2021;
        PreparedCase {
            id: id.to_string(),
            dims: case.dims,
            spacing_mm: [case.spacing_mm; 3],
            affine: super::synth::synthetic_affine(case.dims, case.spacing_mm),
            modalities: std::array::from_fn(|m| zscore_brain(&case.modalities[m])),
            regions: Some(
                case.labels
                    .iter()
                    .map(|l| convention.region_of(*l))
                    .collect(),
            ),
            convention,
        }
    }

    /// Loads and prepares the BraTS case folder `folder`.
    pub fn load(
        folder: &Path,
        convention: Option<LabelConvention>,
    ) -> Result<PreparedCase, DataError> {
        Ok(PreparedCase::from_brats(&load_case(folder, convention)?))
    }

    /// The grid and affine its voxels lie on.
    pub fn grid(&self) -> crate::metrics::findings::CaseGrid {
        crate::metrics::findings::CaseGrid {
            dims: self.dims,
            spacing_mm: self.spacing_mm,
            affine: self.affine,
        }
    }

    /// The brain mask proxy: voxels where any modality is non-zero.
    fn brain(&self) -> Vec<f32> {
        (0..self.modalities[0].len())
            .map(|i| self.modalities.iter().any(|m| m[i] != 0.0) as u8 as f32)
            .collect()
    }
}

/// The synthetic case `Synth_<seed>` (realistic, BraTS grid) prepared in memory (no files
/// written).
pub fn synthetic_case(seed: u64) -> PreparedCase {
    synthetic_case_with(seed, &SynthOptions::default())
}

/// The synthetic case `Synth_<seed>` of `options` prepared in memory.
pub fn synthetic_case_with(seed: u64, options: &SynthOptions) -> PreparedCase {
    let case = generate_case(seed, options);
    PreparedCase::from_synth(&synthetic_case_id(seed), &case)
}

/// The id a synthetic case of `seed` gets, in memory and in `synth`'s folders alike.
pub fn synthetic_case_id(seed: u64) -> String {
    format!("Synth_{seed:04}")
}

/// Where one case comes from, known before it is loaded (so large sets can be split by id and
/// then loaded one case at a time).
#[derive(Debug, Clone, PartialEq)]
pub enum CaseSource {
    Folder { id: String, folder: PathBuf },
    Synthetic { seed: u64, options: SynthOptions },
}

impl CaseSource {
    pub fn id(&self) -> String {
        match self {
            CaseSource::Folder { id, .. } => id.clone(),
            CaseSource::Synthetic { seed, .. } => synthetic_case_id(*seed),
        }
    }

    /// Loads (or generates) and prepares the case.
    pub fn load(&self, convention: Option<LabelConvention>) -> Result<PreparedCase, DataError> {
        match self {
            CaseSource::Folder { folder, .. } => PreparedCase::load(folder, convention),
            CaseSource::Synthetic { seed, options } => Ok(synthetic_case_with(*seed, options)),
        }
    }
}

/// Every BraTS case under `root`: `root` itself when it is a case folder, else its immediate
/// sub-folders that are case folders, sorted by name. Nothing is loaded yet.
pub fn list_cases(root: &Path) -> Result<Vec<CaseSource>, DataError> {
    if !root.is_dir() {
        return Err(DataError::Missing(root.to_path_buf()));
    }
    let source = |folder: PathBuf| {
        detect_case(&folder)
            .ok()
            .map(|(id, _)| CaseSource::Folder { id, folder })
    };
    if let Some(case) = source(root.to_path_buf()) {
        return Ok(vec![case]);
    }
    let mut folders: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|source| DataError::Io {
            path: root.to_path_buf(),
            error: source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let cases: Vec<CaseSource> = folders.into_iter().filter_map(source).collect();
    if cases.is_empty() {
        return Err(DataError::BadCase {
            folder: root.to_path_buf(),
            problem: "no BraTS case folders found here or in its sub-folders".into(),
        });
    }
    Ok(cases)
}

/// Axial slices of many cases, cropped to `size` x `size`: inputs `[4, size, size]` stored as
/// f16 (half the memory; z-scores need no more precision) and sub-region codes `[size, size]`.
#[derive(Debug, Clone)]
pub struct SliceDataset {
    pub size: usize,
    inputs: Vec<Vec<f16>>,
    regions: Vec<Vec<u8>>,
}

/// Which slices a dataset takes from each case.
#[derive(Debug, Clone, Copy)]
pub struct SliceSelection {
    /// Share of tumour-free brain slices kept besides every tumour slice.
    pub tumour_free_share: f32,
    /// Keep every `slice_step`-th of those slices (neighbours 1 mm apart are near copies; a
    /// step spends the same training time on more patients). 1 keeps all.
    pub slice_step: usize,
    pub seed: u64,
}

impl SliceDataset {
    /// Slices of `cases` (which must have segmentations) chosen by `selection`.
    pub fn from_cases(
        cases: &[PreparedCase],
        size: usize,
        selection: SliceSelection,
    ) -> Result<SliceDataset, DataError> {
        let mut dataset = SliceDataset::empty(size);
        for (i, case) in cases.iter().enumerate() {
            dataset.add_case(case, selection, i)?;
        }
        Ok(dataset)
    }

    /// A dataset with no slices yet, for [`Self::add_case`].
    pub fn empty(size: usize) -> SliceDataset {
        SliceDataset {
            size,
            inputs: Vec::new(),
            regions: Vec::new(),
        }
    }

    /// Adds the selected slices of `case`, the `index`-th case added (it varies the seed).
    pub fn add_case(
        &mut self,
        case: &PreparedCase,
        selection: SliceSelection,
        index: usize,
    ) -> Result<(), DataError> {
        let Some(regions) = &case.regions else {
            return Err(DataError::Invalid(format!(
                "case {} has no segmentation; training and validation need one",
                case.id
            )));
        };
        let labels: Vec<f32> = regions.iter().map(|r| *r as f32).collect();
        let seed = selection.seed.wrapping_add(index as u64);
        let step = selection.slice_step.max(1);
        let selected = select_slices(
            &labels,
            &case.brain(),
            case.dims,
            selection.tumour_free_share,
            seed,
        );
        let offset = (seed as usize) % step;
        for z in selected.into_iter().skip(offset).step_by(step) {
            self.push_slice(case, &labels, z);
        }
        Ok(())
    }

    fn push_slice(&mut self, case: &PreparedCase, labels: &[f32], z: usize) {
        let input = case
            .modalities
            .iter()
            .flat_map(|m| axial_slice(m, case.dims, z, self.size))
            .map(f16::from_f32)
            .collect();
        let regions = axial_slice(labels, case.dims, z, self.size)
            .into_iter()
            .map(|v| v as u8)
            .collect();
        self.inputs.push(input);
        self.regions.push(regions);
    }

    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// The samples at `indices` as tensors on `device`: inputs `[B, 4, S, S]` and WT/TC/ET
    /// targets `[B, 3, S, S]` in {0, 1}.
    pub fn batch(&self, indices: &[usize], device: &Device) -> (Tensor<4>, Tensor<4>) {
        self.batch_with(indices, device, None)
    }

    /// As [`Self::batch`], with every sample randomly changed when `augment_seed` is given:
    /// a left-right flip (half the time) and, per modality, a gain of 0.85-1.15 and an offset of
    /// -0.15-0.15 on the brain's z-scores (scanners and protocols differ; the labels do not).
    pub fn batch_with(
        &self,
        indices: &[usize],
        device: &Device,
        augment_seed: Option<u64>,
    ) -> (Tensor<4>, Tensor<4>) {
        let s = self.size;
        let b = indices.len();
        let mut inputs = Vec::with_capacity(b * 4 * s * s);
        let mut targets = Vec::with_capacity(b * 3 * s * s);
        for (k, &i) in indices.iter().enumerate() {
            let mut input: Vec<f32> = self.inputs[i].iter().map(|v| v.to_f32()).collect();
            let mut regions = self.regions[i].clone();
            if let Some(seed) = augment_seed {
                let mut rng = SplitMix64::stream(seed, k as u64);
                augment(&mut input, &mut regions, s, &mut rng);
            }
            inputs.extend(input);
            for region in [
                crate::metrics::Region::Wt,
                crate::metrics::Region::Tc,
                crate::metrics::Region::Et,
            ] {
                targets.extend(regions.iter().map(|c| region.contains(*c) as u8 as f32));
            }
        }
        (
            Tensor::from_data(TensorData::new(inputs, [b, 4, s, s]), device),
            Tensor::from_data(TensorData::new(targets, [b, 3, s, s]), device),
        )
    }
}

/// One sample's augmentation in place: `input` is `[4, s, s]`, `regions` is `[s, s]`.
fn augment(input: &mut [f32], regions: &mut [u8], s: usize, rng: &mut SplitMix64) {
    if rng.chance(0.5) {
        for row in input.chunks_mut(s) {
            row.reverse();
        }
        for row in regions.chunks_mut(s) {
            row.reverse();
        }
    }
    for channel in input.chunks_mut(s * s) {
        let gain = rng.range(0.85, 1.15);
        let offset = rng.range(-0.15, 0.15);
        for v in channel.iter_mut().filter(|v| **v != 0.0) {
            *v = *v * gain + offset;
        }
    }
}

/// A BraTS case folder, or the folder of a file inside one: the prepared case and its folder.
pub fn open_case(path: &Path) -> Result<(PreparedCase, PathBuf), String> {
    let folder = if path.is_file() {
        path.parent().unwrap_or(path)
    } else {
        path
    };
    let sources = list_cases(folder).map_err(|e| e.to_string())?;
    let source: &CaseSource = sources.first().ok_or_else(|| {
        format!(
            "{}: not a BraTS case folder (expected the four modalities and optionally a \
             segmentation, e.g. <case>_t1.nii.gz ... <case>_seg.nii.gz)",
            folder.display()
        )
    })?;
    let case = source.load(None).map_err(|e| e.to_string())?;
    let case_folder = match source {
        CaseSource::Folder { folder, .. } => folder.clone(),
        CaseSource::Synthetic { .. } => folder.to_path_buf(),
    };
    Ok((case, case_folder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_slices_have_tumour_targets_and_normalised_inputs() {
        let case = PreparedCase::from_synth(
            "s",
            &generate_case(
                5,
                &SynthOptions {
                    dims: [32, 32, 16],
                    spacing_mm: 7.5,
                    ..SynthOptions::cartoon()
                },
            ),
        );
        let selection = SliceSelection {
            tumour_free_share: 0.0,
            slice_step: 1,
            seed: 0,
        };
        let data = SliceDataset::from_cases(&[case], 32, selection).unwrap();
        assert!(!data.is_empty());
        let device = crate::backend::cpu_device();
        let (x, y) = data.batch(&[0], &device);
        assert_eq!(x.dims(), [1, 4, 32, 32]);
        assert_eq!(y.dims(), [1, 3, 32, 32]);
        let wt: f32 = y.clone().narrow(1, 0, 1).sum().into_scalar::<f32>();
        let et: f32 = y.narrow(1, 2, 1).sum().into_scalar::<f32>();
        assert!(
            wt > 0.0 && wt >= et,
            "every selected slice has tumour: {wt} {et}"
        );
    }
}

//! Synthetic BraTS-like cases, seeded and deterministic (the same seed gives the same files on
//! every machine): the realistic generator (real brain anatomy, grown tumours, four modalities
//! with scanner artefacts) by default, the quick cartoon phantom on request; both written as
//! real BraTS folders.

pub mod cartoon;
pub mod noise;
pub mod realistic;
pub mod template;
pub mod tumour;
pub mod warp;

use std::path::{Path, PathBuf};

use super::DataError;
use super::LabelConvention;
use super::nifti_io::write_volume;

/// Which generator makes a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SynthKind {
    /// Real brain anatomy (ICBM 2009a template, warped per case), grown tumours, artefacts.
    #[default]
    Realistic,
    /// Lumpy ellipsoids: easy to segment, quick to make (tests, demos of the plumbing).
    Cartoon,
}

/// Generator and grid of a synthetic case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthOptions {
    pub kind: SynthKind,
    /// Voxels along x, y, z.
    pub dims: [usize; 3],
    pub spacing_mm: f32,
}

/// Changes whenever a seed would give a different case (cached cases carry it in their path).
pub const GENERATOR_VERSION: &str = "v4";

/// BraTS's own grid: 240 x 240 x 155 voxels of 1 mm.
pub const BRATS_DIMS: [usize; 3] = [240, 240, 155];

impl Default for SynthOptions {
    /// The realistic generator on the BraTS grid.
    fn default() -> Self {
        SynthOptions {
            kind: SynthKind::Realistic,
            dims: BRATS_DIMS,
            spacing_mm: 1.0,
        }
    }
}

impl SynthOptions {
    /// The cartoon phantom on BraTS's field of view at 1.875 mm (128 x 128 x 80).
    pub fn cartoon() -> SynthOptions {
        SynthOptions {
            kind: SynthKind::Cartoon,
            dims: [128, 128, 80],
            spacing_mm: 1.875,
        }
    }

    /// `kind` over BraTS's field of view (240 x 240 x 155 mm) at `spacing_mm`, by default 1 mm
    /// for realistic cases (BraTS's grid) and 1.875 mm for cartoons. Coarser grids make quick
    /// tests and experiments.
    pub fn over_brats_view(
        kind: SynthKind,
        spacing_mm: Option<f32>,
    ) -> Result<SynthOptions, String> {
        let spacing_mm = spacing_mm.unwrap_or(match kind {
            SynthKind::Realistic => 1.0,
            SynthKind::Cartoon => 1.875,
        });
        if !(spacing_mm.is_finite() && (0.25..=8.0).contains(&spacing_mm)) {
            return Err(format!(
                "the voxel size must be 0.25 to 8 mm, got {spacing_mm}"
            ));
        }
        let dims = match (kind, spacing_mm == 1.875) {
            (SynthKind::Cartoon, true) => SynthOptions::cartoon().dims,
            _ => BRATS_DIMS.map(|n| ((n as f32 / spacing_mm).round() as usize).max(8)),
        };
        Ok(SynthOptions {
            kind,
            dims,
            spacing_mm,
        })
    }
}

/// One generated case: four modalities (T1, T1ce, T2, FLAIR) and BraTS 2021 labels, x fastest.
/// Intensities are whole numbers in int16's range, exactly what [`write_case`] stores.
#[derive(Debug, Clone)]
pub struct SynthCase {
    pub dims: [usize; 3],
    pub spacing_mm: f32,
    pub modalities: [Vec<f32>; 4],
    pub labels: Vec<u8>,
}

/// Generates case number `seed` (deterministic for a given seed and options).
pub fn generate_case(seed: u64, options: &SynthOptions) -> SynthCase {
    let mut case = match options.kind {
        SynthKind::Realistic => realistic::generate(seed, options.dims, options.spacing_mm).case,
        SynthKind::Cartoon => cartoon::generate(seed, options.dims, options.spacing_mm),
    };
    for volume in &mut case.modalities {
        for v in volume.iter_mut() {
            *v = v.round().clamp(0.0, i16::MAX as f32);
        }
    }
    case
}

/// The case id BraTS would give synthetic case `seed` in `convention`'s naming.
pub fn case_id(seed: u64, convention: LabelConvention) -> String {
    match convention {
        LabelConvention::Brats2021 => format!("Synth_{seed:04}"),
        LabelConvention::Brats2023 => format!("BraTS-SYN-{seed:05}-000"),
    }
}

/// Writes a case as a BraTS folder `<dir>/<id>/` in `convention`'s naming and labels
/// (2019-2021: `<id>_{t1,t1ce,t2,flair,seg}.nii.gz`, ET = 4; 2023+: `<id>-{t1n,t1c,t2w,t2f,seg}`,
/// ET = 3): modalities as int16, the seg as uint8, BraTS's orientation in the header.
pub fn write_case(
    dir: &Path,
    id: &str,
    case: &SynthCase,
    convention: LabelConvention,
) -> Result<PathBuf, DataError> {
    let folder = dir.join(id);
    let header = synthetic_header(case.dims, case.spacing_mm);
    for (m, volume) in case.modalities.iter().enumerate() {
        let values: Vec<i16> = volume
            .iter()
            .map(|v| v.round().clamp(0.0, i16::MAX as f32) as i16)
            .collect();
        let path = folder.join(convention.file_name(id, m));
        write_volume(&path, case.dims, &values, &header)?;
    }
    // Generated labels are in the 2019-2021 convention; rewrite ET for 2023+.
    let labels: Vec<u8> = case
        .labels
        .iter()
        .map(|&l| convention.label_of(LabelConvention::Brats2021.region_of(l)))
        .collect();
    write_volume(
        &folder.join(convention.file_name(id, 4)),
        case.dims,
        &labels,
        &header,
    )?;
    Ok(folder)
}

/// The voxel-to-world affine of [`synthetic_header`] (row-major 3x4, mm).
pub fn synthetic_affine(dims: [usize; 3], spacing_mm: f32) -> [[f64; 4]; 3] {
    let s = spacing_mm as f64;
    let y_origin = (dims[1].max(1) - 1) as f64 * s;
    [
        [-s, 0.0, 0.0, 0.0],
        [0.0, -s, 0.0, y_origin],
        [0.0, 0.0, s, 0.0],
    ]
}

/// A NIfTI-1 header with the grid, spacing in mm and BraTS's orientation: voxel x runs towards
/// the patient's left, y towards posterior, z towards superior (sform and qform both set; at
/// 1 mm the affine is BraTS's own, diag(-1, -1, 1) with the origin at (0, 239, 0)).
pub fn synthetic_header(dims: [usize; 3], spacing_mm: f32) -> nifti::NiftiHeader {
    let s = spacing_mm;
    let y_origin = (dims[1].max(1) - 1) as f32 * s;
    let mut header = nifti::NiftiHeader {
        dim: [
            3,
            dims[0] as u16,
            dims[1] as u16,
            dims[2] as u16,
            1,
            1,
            1,
            1,
        ],
        // qfac = 1 with a 180-degree rotation about z: (x, y) -> (-x, -y), as the sform.
        pixdim: [1.0, s, s, s, 1.0, 1.0, 1.0, 1.0],
        xyzt_units: 2, // millimetres
        sform_code: 1,
        qform_code: 1,
        quatern_b: 0.0,
        quatern_c: 0.0,
        quatern_d: 1.0,
        quatern_x: 0.0,
        quatern_y: y_origin,
        quatern_z: 0.0,
        ..Default::default()
    };
    header.srow_x = [-s, 0.0, 0.0, 0.0];
    header.srow_y = [0.0, -s, 0.0, y_origin];
    header.srow_z = [0.0, 0.0, s, 0.0];
    header.descrip = b"raagr2-lab synthetic BraTS-like case".to_vec();
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cartoon_same_seed_same_case_other_seed_other_case() {
        let small = |seed| cartoon::generate(seed, [64, 64, 32], 3.75);
        let (a, b, c) = (small(3), small(3), small(4));
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.modalities[1], b.modalities[1]);
        assert_ne!(a.labels, c.labels);
    }

    #[test]
    fn cartoon_tumour_regions_have_their_contrasts() {
        let case = cartoon::generate(1, [64, 64, 32], 3.75);
        let mean = |m: usize, label: u8| {
            let v: Vec<f32> = case
                .labels
                .iter()
                .zip(&case.modalities[m])
                .filter(|(l, _)| **l == label)
                .map(|(_, v)| *v)
                .collect();
            assert!(!v.is_empty(), "label {label} present");
            v.iter().sum::<f32>() / v.len() as f32
        };
        // ET brightest on T1ce; oedema brighter than ET on FLAIR.
        assert!(mean(1, 4) > mean(1, 2) * 1.5);
        assert!(mean(3, 2) > mean(3, 4));
        assert!(case.labels.contains(&2));
    }

    #[test]
    fn the_header_has_bratss_orientation() {
        let h = synthetic_header(BRATS_DIMS, 1.0);
        assert_eq!(h.srow_x, [-1.0, 0.0, 0.0, 0.0]);
        assert_eq!(h.srow_y, [0.0, -1.0, 0.0, 239.0]);
        assert_eq!(h.srow_z, [0.0, 0.0, 1.0, 0.0]);
    }
}

//! NIfTI volumes (.nii and .nii.gz, NIfTI-1 and NIfTI-2) in and out: 3-D only, scaling
//! applied, geometry kept, the header checked before any voxel data is read, bad files refused
//! with the file and the problem named. Written volumes are NIfTI-1.

use std::path::{Path, PathBuf};

use nifti::NiftiHeader;

use super::DataError;
use super::nifti_header::{Header, affine_difference, describe_affine, read_header, read_voxels};

/// A 3-D scalar volume, values in x-fastest order (NIfTI's own order).
#[derive(Debug, Clone)]
pub struct Volume {
    /// Voxels along x, y, z.
    pub dims: [usize; 3],
    /// Voxel size in millimetres along x, y, z (pixdim[1..4]).
    pub spacing_mm: [f32; 3],
    /// Values after the header's scaling (scl_slope / scl_inter).
    pub data: Vec<f32>,
    /// The source geometry as a NIfTI-1 header, reused when writing derived volumes so they
    /// share it.
    pub header: NiftiHeader,
    /// The voxel-to-world affine (3x4, row-major) of the source header.
    pub affine: [[f64; 4]; 3],
    pub path: PathBuf,
}

impl Volume {
    pub fn voxel_count(&self) -> usize {
        self.dims.iter().product()
    }

    /// Index of voxel (x, y, z) in `data`.
    pub fn index(&self, x: usize, y: usize, z: usize) -> usize {
        x + self.dims[0] * (y + self.dims[1] * z)
    }

    /// The voxel-to-world affine, row-major 4x4: the sform when its code is set, else the
    /// qform, else plain pixdim scaling.
    pub fn affine(&self) -> [[f64; 4]; 4] {
        let [x, y, z] = self.affine;
        [x, y, z, [0.0, 0.0, 0.0, 1.0]]
    }
}

/// Reads a 3-D NIfTI volume. Errors name the file and say what is wrong: missing, not NIfTI,
/// an invalid or oversized header, truncated, not 3-D, or holding NaN/inf voxels.
pub fn read_volume(path: &Path) -> Result<Volume, DataError> {
    let header = read_header(path)?;
    read_volume_with(path, &header)
}

/// The grid of a NIfTI file from its header alone: 3-D sizes, spacing and affine (checks as
/// [`read_volume`] does, without reading voxels).
pub fn read_grid(path: &Path) -> Result<(Header, [usize; 3], [f32; 3]), DataError> {
    let header = read_header(path)?;
    let bad = |problem: String| DataError::BadFile {
        path: path.to_path_buf(),
        problem,
    };
    let dims = spatial_dims(&header).map_err(bad)?;
    let spacing_mm = spacing_of(&header).map_err(bad)?;
    Ok((header, dims, spacing_mm))
}

/// Reads the voxels of a file whose header [`read_header`] already returned.
pub fn read_volume_with(path: &Path, header: &Header) -> Result<Volume, DataError> {
    let bad = |problem: String| DataError::BadFile {
        path: path.to_path_buf(),
        problem,
    };
    let dims = spatial_dims(header).map_err(bad)?;
    let spacing_mm = spacing_of(header).map_err(bad)?;
    let data = read_voxels(path, header)?;
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        let count = data.iter().filter(|v| !v.is_finite()).count();
        let (x, y, z) = (
            i % dims[0],
            (i / dims[0]) % dims[1],
            i / (dims[0] * dims[1]),
        );
        return Err(bad(format!(
            "{count} voxel(s) are NaN or infinite, the first at (x={x}, y={y}, z={z})"
        )));
    }
    Ok(Volume {
        dims,
        spacing_mm,
        data,
        header: header.to_nifti1(),
        affine: header.affine(),
        path: path.to_path_buf(),
    })
}

/// Largest difference between two files' affines (mm, or mm per voxel) still counted as the
/// same grid: float32 headers written by different tools differ in the last digits.
pub const AFFINE_TOLERANCE_MM: f64 = 1e-3;

/// Refuses `other` unless it has `reference`'s sizes and affine (within
/// [`AFFINE_TOLERANCE_MM`]), naming both files and the difference.
pub fn check_same_grid(
    (reference_path, reference, reference_dims): (&Path, &Header, [usize; 3]),
    (other_path, other, other_dims): (&Path, &Header, [usize; 3]),
) -> Result<(), String> {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let (a, b) = (name(reference_path), name(other_path));
    if other_dims != reference_dims {
        return Err(format!(
            "{b} is {other_dims:?} but {a} is {reference_dims:?}; the files must share one grid"
        ));
    }
    let (affine_a, affine_b) = (reference.affine(), other.affine());
    let difference = affine_difference(&affine_a, &affine_b);
    if difference > AFFINE_TOLERANCE_MM {
        return Err(format!(
            "{b} and {a} have the same size but not the same voxel grid (spacing, origin or \
             orientation differ by up to {difference:.3} mm): {b} {} vs {a} {}; resample them \
             onto one grid first",
            describe_affine(&affine_b),
            describe_affine(&affine_a)
        ));
    }
    Ok(())
}

fn spacing_of(header: &Header) -> Result<[f32; 3], String> {
    let spacing_mm = [1, 2, 3].map(|i| header.pixdim[i].abs() as f32);
    if spacing_mm.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(format!(
            "voxel spacing (pixdim) {spacing_mm:?} mm is not positive and finite"
        ));
    }
    Ok(spacing_mm)
}

/// The three spatial sizes, refusing 2-D volumes and 4-D ones with more than one frame.
fn spatial_dims(header: &Header) -> Result<[usize; 3], String> {
    let sizes = &header.sizes;
    let rank = sizes.len();
    if rank < 3 || sizes[..3].iter().any(|&d| d <= 1) {
        return Err(format!(
            "is {rank}-D with sizes {sizes:?}; a 3-D volume is needed"
        ));
    }
    if sizes[3..].iter().any(|&d| d > 1) {
        return Err(format!(
            "is {rank}-D with sizes {sizes:?}; only 3-D volumes are supported (one modality per file)"
        ));
    }
    Ok([sizes[0], sizes[1], sizes[2]].map(|d| d as usize))
}

/// Writes a label map with the geometry (affine, spacing, orientation) of `reference`,
/// atomically: a temporary file in the same folder, then a rename.
pub fn write_label_map(path: &Path, labels: &[u8], reference: &Volume) -> Result<(), DataError> {
    write_volume(path, reference.dims, labels, &reference.header)
}

/// Writes a 3-D volume (values x fastest) with the given header's geometry, atomically.
/// The datatype follows `A` (u8, i16, f32, ...); scaling is reset to identity.
pub fn write_volume<A>(
    path: &Path,
    dims: [usize; 3],
    data: &[A],
    header: &NiftiHeader,
) -> Result<(), DataError>
where
    A: nifti::DataElement + bytemuck::Pod + Clone,
{
    let array = ndarray::Array3::from_shape_vec((dims[2], dims[1], dims[0]), data.to_vec())
        .map_err(|e| {
            DataError::Invalid(format!(
                "{}: data does not match {dims:?}: {e}",
                path.display()
            ))
        })?
        .reversed_axes();
    let io = |e: std::io::Error| DataError::Io {
        path: path.to_path_buf(),
        error: e,
    };
    crate::atomic::ensure_parent(path).map_err(io)?;
    let tmp = crate::atomic::temp_sibling(path);
    let written = nifti::writer::WriterOptions::new(&tmp)
        .reference_header(header)
        .write_nifti(&array);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::BadFile {
            path: path.to_path_buf(),
            problem: format!("cannot write NIfTI: {}", describe_write_error(&e)),
        });
    }
    crate::atomic::commit(&tmp, path).map_err(io)
}

/// The nifti crate's error in words (its I/O variant only has a debug form, which would show
/// `Io(Os { code: 28, ... })` for a full disk).
fn describe_write_error(error: &nifti::NiftiError) -> String {
    match error {
        nifti::NiftiError::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_said_in_words() {
        let full = nifti::NiftiError::Io(std::io::Error::from_raw_os_error(28));
        let text = describe_write_error(&full);
        assert!(text.contains("No space left on device"), "{text}");
        assert!(!text.contains("Os {"), "{text}");
    }
}

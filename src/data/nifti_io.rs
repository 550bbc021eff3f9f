//! NIfTI-1 volumes (.nii and .nii.gz) in and out: 3-D only, scaling applied, geometry kept,
//! bad files refused with the file and the problem named.

use std::path::{Path, PathBuf};

use nifti::{IntoNdArray, NiftiHeader, NiftiObject, ReaderOptions};

use super::DataError;

/// A 3-D scalar volume, values in x-fastest order (NIfTI's own order).
#[derive(Debug, Clone)]
pub struct Volume {
    /// Voxels along x, y, z.
    pub dims: [usize; 3],
    /// Voxel size in millimetres along x, y, z (pixdim[1..4]).
    pub spacing_mm: [f32; 3],
    /// Values after the header's scaling (scl_slope / scl_inter).
    pub data: Vec<f32>,
    /// The source header, reused when writing derived volumes so they share its geometry.
    pub header: NiftiHeader,
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

    /// The voxel-to-world affine, row-major 4x4: the sform when its code is set, else plain pixdim
    /// scaling (a qform-only file's rotation is not applied yet; writing reuses the whole header,
    /// so predictions still carry the source qform).
    pub fn affine(&self) -> [[f64; 4]; 4] {
        let h = &self.header;
        if h.sform_code > 0 {
            let row = |r: [f32; 4]| r.map(f64::from);
            [
                row(h.srow_x),
                row(h.srow_y),
                row(h.srow_z),
                [0.0, 0.0, 0.0, 1.0],
            ]
        } else {
            let s = self.spacing_mm.map(f64::from);
            [
                [s[0], 0.0, 0.0, 0.0],
                [0.0, s[1], 0.0, 0.0],
                [0.0, 0.0, s[2], 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ]
        }
    }
}

/// Reads a 3-D NIfTI volume. Errors name the file and say what is wrong: unreadable or not
/// NIfTI, truncated, not 3-D, or holding NaN/inf voxels.
pub fn read_volume(path: &Path) -> Result<Volume, DataError> {
    let bad = |problem: String| DataError::BadFile {
        path: path.to_path_buf(),
        problem,
    };
    if !path.exists() {
        return Err(DataError::Missing(path.to_path_buf()));
    }
    let object = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| bad(describe_nifti_error(&e)))?;
    let header = object.header().clone();
    let dims = spatial_dims(&header).map_err(bad)?;
    let spacing_mm = [header.pixdim[1], header.pixdim[2], header.pixdim[3]].map(|s| s.abs());
    if spacing_mm.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(bad(format!(
            "voxel spacing (pixdim) {spacing_mm:?} mm is not positive and finite"
        )));
    }
    let array = object
        .into_volume()
        .into_ndarray::<f32>()
        .map_err(|e| bad(describe_nifti_error(&e)))?;
    if array.len() != dims.iter().product::<usize>() {
        return Err(bad(format!(
            "holds {} voxels, its header says {:?}",
            array.len(),
            dims
        )));
    }
    // Reverse the axes ([x, y, z(, 1..)] -> [(1.., )z, y, x]) so logical row-major iteration runs
    // x fastest, whatever the array's memory order.
    let data: Vec<f32> = array.reversed_axes().iter().copied().collect();
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
        header,
        path: path.to_path_buf(),
    })
}

/// The three spatial sizes, refusing 2-D volumes and 4-D ones with more than one frame.
fn spatial_dims(header: &NiftiHeader) -> Result<[usize; 3], String> {
    let rank = header.dim[0] as usize;
    if !(1..=7).contains(&rank) {
        return Err(format!("invalid dimension count {rank} in the header"));
    }
    let sizes: Vec<usize> = header.dim[1..=rank].iter().map(|&d| d as usize).collect();
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
    Ok([sizes[0], sizes[1], sizes[2]])
}

fn describe_nifti_error(error: &nifti::NiftiError) -> String {
    use nifti::NiftiError as E;
    match error {
        E::InvalidFormat => "not a NIfTI file (bad header magic)".into(),
        E::BadVolumeSize | E::NoVolumeData | E::IncompatibleLength(..) | E::Io(_) => {
            format!("truncated or unreadable NIfTI data ({error})")
        }
        other => format!("cannot read as NIfTI ({other})"),
    }
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
        source: e,
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
            problem: format!("cannot write NIfTI: {e}"),
        });
    }
    crate::atomic::commit(&tmp, path).map_err(io)
}

//! NIfTI-1 and NIfTI-2 headers read and checked by this project before any voxel data is touched
//! (magic, endianness, dims, datatype against bitpix, vox_offset, the size the data implies, a
//! voxel-count limit), then the voxels read by datatype with the header's scaling.

use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::DataError;

/// Largest volume read unless `RAAGR2_MAX_VOXELS` says otherwise: 64 Mi voxels (a 400^3 grid;
/// BraTS's 240x240x155 is 8.9 M). A header claiming more is refused before any data is read.
pub const DEFAULT_MAX_VOXELS: u64 = 64 << 20;

/// The environment variable that overrides [`DEFAULT_MAX_VOXELS`].
pub const MAX_VOXELS_VAR: &str = "RAAGR2_MAX_VOXELS";

/// What this project needs of a NIfTI header, whichever version it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// 1 or 2.
    pub version: u8,
    pub little_endian: bool,
    /// dim[1..=dim[0]]: sizes along each axis, all checked positive.
    pub sizes: Vec<u64>,
    pub datatype: Datatype,
    /// Byte offset of the voxel data.
    pub vox_offset: u64,
    /// pixdim[0..8] (pixdim[0] is the qform's handedness factor).
    pub pixdim: [f64; 8],
    /// Scaling applied to stored values (identity when the file sets slope 0 or NaN).
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub qform_code: i32,
    pub sform_code: i32,
    /// quatern_b, c, d and qoffset x, y, z.
    pub quatern: [f64; 6],
    pub srow: [[f64; 4]; 3],
    pub xyzt_units: u8,
}

/// Voxel types this project reads (the scalar ones; complex and RGB are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl Datatype {
    fn from_code(code: i64) -> Option<Datatype> {
        Some(match code {
            2 => Datatype::U8,
            256 => Datatype::I8,
            4 => Datatype::I16,
            512 => Datatype::U16,
            8 => Datatype::I32,
            768 => Datatype::U32,
            1024 => Datatype::I64,
            1280 => Datatype::U64,
            16 => Datatype::F32,
            64 => Datatype::F64,
            _ => return None,
        })
    }

    /// The NIfTI datatype code.
    pub fn code(self) -> i16 {
        match self {
            Datatype::U8 => 2,
            Datatype::I8 => 256,
            Datatype::I16 => 4,
            Datatype::U16 => 512,
            Datatype::I32 => 8,
            Datatype::U32 => 768,
            Datatype::I64 => 1024,
            Datatype::U64 => 1280,
            Datatype::F32 => 16,
            Datatype::F64 => 64,
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Datatype::U8 | Datatype::I8 => 1,
            Datatype::I16 | Datatype::U16 => 2,
            Datatype::I32 | Datatype::U32 | Datatype::F32 => 4,
            Datatype::I64 | Datatype::U64 | Datatype::F64 => 8,
        }
    }

    /// One stored value as f64 from its bytes.
    fn decode(self, b: &[u8], little: bool) -> f64 {
        macro_rules! num {
            ($t:ty) => {{
                let raw = b.try_into().expect("a slice of the datatype's size");
                (if little {
                    <$t>::from_le_bytes(raw)
                } else {
                    <$t>::from_be_bytes(raw)
                }) as f64
            }};
        }
        match self {
            Datatype::U8 => b[0] as f64,
            Datatype::I8 => b[0] as i8 as f64,
            Datatype::I16 => num!(i16),
            Datatype::U16 => num!(u16),
            Datatype::I32 => num!(i32),
            Datatype::U32 => num!(u32),
            Datatype::I64 => num!(i64),
            Datatype::U64 => num!(u64),
            Datatype::F32 => num!(f32),
            Datatype::F64 => num!(f64),
        }
    }
}

impl Header {
    pub fn voxel_count(&self) -> u64 {
        self.sizes.iter().product()
    }

    /// Bytes of voxel data the header implies.
    pub fn data_bytes(&self) -> u64 {
        self.voxel_count() * self.datatype.bytes() as u64
    }

    /// The voxel-to-world affine (row-major 3x4): the sform when its code is set, else the
    /// qform, else plain pixdim scaling, as the NIfTI standard orders them.
    pub fn affine(&self) -> [[f64; 4]; 3] {
        let spacing = [1, 2, 3].map(|i| self.pixdim[i].abs());
        if self.sform_code > 0 {
            return self.srow;
        }
        if self.qform_code <= 0 {
            return [
                [spacing[0], 0.0, 0.0, 0.0],
                [0.0, spacing[1], 0.0, 0.0],
                [0.0, 0.0, spacing[2], 0.0],
            ];
        }
        let [b, c, d, x, y, z] = self.quatern;
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - b * b - c * c,
            ],
        ];
        let qfac = if self.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let scale = [spacing[0], spacing[1], qfac * spacing[2]];
        let offset = [x, y, z];
        std::array::from_fn(|row| {
            [
                r[row][0] * scale[0],
                r[row][1] * scale[1],
                r[row][2] * scale[2],
                offset[row],
            ]
        })
    }

    /// The same geometry as a NIfTI-1 header (what derived volumes are written with).
    pub fn to_nifti1(&self) -> nifti::NiftiHeader {
        let mut dim = [1u16; 8];
        dim[0] = self.sizes.len() as u16;
        for (d, &size) in dim[1..].iter_mut().zip(&self.sizes) {
            *d = size.min(u16::MAX as u64) as u16;
        }
        let [b, c, d, x, y, z] = self.quatern.map(|v| v as f32);
        nifti::NiftiHeader {
            dim,
            datatype: self.datatype.code(),
            bitpix: (self.datatype.bytes() * 8) as i16,
            pixdim: self.pixdim.map(|v| v as f32),
            scl_slope: 1.0,
            scl_inter: 0.0,
            qform_code: self.qform_code as i16,
            sform_code: self.sform_code as i16,
            quatern_b: b,
            quatern_c: c,
            quatern_d: d,
            quatern_x: x,
            quatern_y: y,
            quatern_z: z,
            srow_x: self.srow[0].map(|v| v as f32),
            srow_y: self.srow[1].map(|v| v as f32),
            srow_z: self.srow[2].map(|v| v as f32),
            xyzt_units: self.xyzt_units,
            ..nifti::NiftiHeader::default()
        }
    }
}

/// The voxel limit in force: `RAAGR2_MAX_VOXELS` when set to a number, else the default.
pub fn max_voxels() -> u64 {
    std::env::var(MAX_VOXELS_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_VOXELS)
}

fn bad(path: &Path, problem: impl Into<String>) -> DataError {
    DataError::BadFile {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Whether `path` is gzip-compressed (by its first two bytes, whatever its name says).
fn is_gzip(path: &Path) -> Result<bool, DataError> {
    let mut magic = [0u8; 2];
    let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let n = file.read(&mut magic).map_err(|e| io_error(path, e))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

fn io_error(path: &Path, e: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        error: e,
    }
}

/// The file's bytes from the start, decompressed when gzipped.
fn open_stream(path: &Path) -> Result<Box<dyn Read>, DataError> {
    let gz = is_gzip(path)?;
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let reader = BufReader::new(file);
    Ok(if gz {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

/// Reads up to `n` bytes (fewer only at the end of the stream); a corrupt gzip stream is named.
/// The buffer grows with what arrives, so a header claiming more than the file holds (a
/// gzipped file's size is unknown until decompressed) costs no huge allocation up front.
fn read_up_to(path: &Path, stream: &mut dyn Read, n: u64) -> Result<Vec<u8>, DataError> {
    let mut bytes = Vec::with_capacity(n.min(16 << 20) as usize);
    stream
        .take(n)
        .read_to_end(&mut bytes)
        .map_err(|e| stream_error(path, e))?;
    Ok(bytes)
}

/// Skips up to `n` bytes without keeping them; returns how many there were.
fn skip_up_to(path: &Path, stream: &mut dyn Read, n: u64) -> Result<u64, DataError> {
    std::io::copy(&mut stream.take(n), &mut std::io::sink()).map_err(|e| stream_error(path, e))
}

fn stream_error(path: &Path, e: std::io::Error) -> DataError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => bad(
            path,
            format!("truncated: the compressed data ends early ({e})"),
        ),
        _ => bad(path, format!("unreadable or corrupt compressed data ({e})")),
    }
}

/// Reads and checks the header of a NIfTI-1 or NIfTI-2 file (gzipped or not) without reading
/// its voxel data. The limit on voxels is [`max_voxels`].
pub fn read_header(path: &Path) -> Result<Header, DataError> {
    if !path.exists() {
        return Err(DataError::Missing(path.to_path_buf()));
    }
    let mut stream = open_stream(path)?;
    let bytes = read_up_to(path, &mut stream, 540)?;
    let header = parse_header(&bytes).map_err(|problem| bad(path, problem))?;
    check_header(&header, max_voxels()).map_err(|problem| bad(path, problem))?;
    if !is_gzip(path)? {
        // An uncompressed file must hold all the data its header implies.
        let len = std::fs::metadata(path)
            .map_err(|e| io_error(path, e))?
            .len();
        let needed = header.vox_offset + header.data_bytes();
        if len < needed {
            return Err(bad(
                path,
                format!(
                    "truncated: the header implies {needed} bytes ({} voxels of {} bytes from \
                     offset {}), the file has {len}",
                    header.voxel_count(),
                    header.datatype.bytes(),
                    header.vox_offset
                ),
            ));
        }
    }
    Ok(header)
}

/// Reads the voxel data `header` (from [`read_header`] on the same file) describes, scaled,
/// in the file's order (first axis fastest).
pub fn read_voxels(path: &Path, header: &Header) -> Result<Vec<f32>, DataError> {
    let mut stream = open_stream(path)?;
    let skipped = skip_up_to(path, &mut stream, header.vox_offset)?;
    let size = header.datatype.bytes();
    let expected = header.data_bytes() as usize;
    let raw = read_up_to(path, &mut stream, expected as u64)?;
    if skipped < header.vox_offset || raw.len() < expected {
        return Err(bad(
            path,
            format!(
                "truncated: the header implies {expected} bytes of voxel data from offset {}, \
                 the file holds {}",
                header.vox_offset,
                raw.len()
            ),
        ));
    }
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    Ok(raw
        .chunks_exact(size)
        .map(|b| (header.datatype.decode(b, header.little_endian) * slope + inter) as f32)
        .collect())
}

/// Fields at fixed offsets, in the file's byte order.
struct Fields<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl Fields<'_> {
    fn take<const N: usize>(&self, at: usize) -> [u8; N] {
        self.bytes[at..at + N]
            .try_into()
            .expect("offset inside the header")
    }
    fn i16(&self, at: usize) -> i64 {
        let b = self.take::<2>(at);
        (if self.little {
            i16::from_le_bytes(b)
        } else {
            i16::from_be_bytes(b)
        }) as i64
    }
    fn i32(&self, at: usize) -> i64 {
        let b = self.take::<4>(at);
        (if self.little {
            i32::from_le_bytes(b)
        } else {
            i32::from_be_bytes(b)
        }) as i64
    }
    fn i64(&self, at: usize) -> i64 {
        let b = self.take::<8>(at);
        if self.little {
            i64::from_le_bytes(b)
        } else {
            i64::from_be_bytes(b)
        }
    }
    fn f32(&self, at: usize) -> f64 {
        let b = self.take::<4>(at);
        (if self.little {
            f32::from_le_bytes(b)
        } else {
            f32::from_be_bytes(b)
        }) as f64
    }
    fn f64(&self, at: usize) -> f64 {
        let b = self.take::<8>(at);
        if self.little {
            f64::from_le_bytes(b)
        } else {
            f64::from_be_bytes(b)
        }
    }
}

/// Parses the first bytes of a file as a NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header.
fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "not a NIfTI file: {} bytes, shorter than any header",
            bytes.len()
        ));
    }
    let size_le = i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let size_be = i32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
    let (size, little) = match (size_le, size_be) {
        (348 | 540, _) => (size_le, true),
        (_, 348 | 540) => (size_be, false),
        _ => {
            return Err(
                "not a NIfTI file (the first 4 bytes give no NIfTI-1 or NIfTI-2 header size)"
                    .into(),
            );
        }
    };
    if bytes.len() < size as usize {
        return Err(format!(
            "truncated: {} bytes, shorter than the {size}-byte NIfTI header",
            bytes.len()
        ));
    }
    let f = Fields { bytes, little };
    let header = if size == 348 {
        parse_nifti1(&f)?
    } else {
        parse_nifti2(&f)?
    };
    Ok(header)
}

fn parse_nifti1(f: &Fields) -> Result<Header, String> {
    match &f.bytes[344..348] {
        b"n+1\0" => {}
        b"ni1\0" => {
            return Err("a NIfTI-1 .hdr/.img pair; convert it to a single .nii file".into());
        }
        _ => return Err("not a NIfTI file (bad NIfTI-1 magic)".into()),
    }
    let dim: Vec<i64> = (0..8).map(|i| f.i16(40 + 2 * i)).collect();
    let vox_offset = f.f32(108);
    Ok(Header {
        version: 1,
        little_endian: f.little,
        sizes: sizes_of(&dim)?,
        datatype: datatype_of(f.i16(70), f.i16(72))?,
        vox_offset: offset_of(vox_offset, 352)?,
        pixdim: std::array::from_fn(|i| f.f32(76 + 4 * i)),
        scl_slope: f.f32(112),
        scl_inter: f.f32(116),
        qform_code: f.i16(252) as i32,
        sform_code: f.i16(254) as i32,
        quatern: std::array::from_fn(|i| f.f32(256 + 4 * i)),
        srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f32(280 + 16 * r + 4 * c))),
        xyzt_units: f.bytes[123],
    }
    .with_identity_scaling_if_unset())
}

fn parse_nifti2(f: &Fields) -> Result<Header, String> {
    if &f.bytes[4..12] != b"n+2\0\r\n\x1a\n" {
        if &f.bytes[4..8] == b"ni2\0" {
            return Err("a NIfTI-2 .hdr/.img pair; convert it to a single .nii file".into());
        }
        return Err("not a NIfTI file (bad NIfTI-2 magic)".into());
    }
    let dim: Vec<i64> = (0..8).map(|i| f.i64(16 + 8 * i)).collect();
    let vox_offset = f.i64(168);
    Ok(Header {
        version: 2,
        little_endian: f.little,
        sizes: sizes_of(&dim)?,
        datatype: datatype_of(f.i16(12), f.i16(14))?,
        vox_offset: offset_of(vox_offset as f64, 544)?,
        pixdim: std::array::from_fn(|i| f.f64(104 + 8 * i)),
        scl_slope: f.f64(176),
        scl_inter: f.f64(184),
        qform_code: f.i32(344) as i32,
        sform_code: f.i32(348) as i32,
        quatern: std::array::from_fn(|i| f.f64(352 + 8 * i)),
        srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f64(400 + 32 * r + 8 * c))),
        xyzt_units: f.i32(500).clamp(0, 255) as u8,
    }
    .with_identity_scaling_if_unset())
}

impl Header {
    /// NIfTI says a slope of 0 means "no scaling"; NaN is treated the same (as nibabel does).
    fn with_identity_scaling_if_unset(mut self) -> Header {
        if self.scl_slope == 0.0 || !self.scl_slope.is_finite() {
            self.scl_slope = 1.0;
            self.scl_inter = 0.0;
        }
        if !self.scl_inter.is_finite() {
            self.scl_inter = 0.0;
        }
        self
    }
}

/// dim[1..=dim[0]], each positive.
fn sizes_of(dim: &[i64]) -> Result<Vec<u64>, String> {
    let rank = dim[0];
    if !(1..=7).contains(&rank) {
        return Err(format!(
            "invalid header: dim[0] (the number of dimensions) is {rank}, not 1 to 7"
        ));
    }
    dim[1..=rank as usize]
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            d if d < 0 => Err(format!("invalid header: dim[{}] is negative ({d})", i + 1)),
            0 => Err(format!("invalid header: dim[{}] is 0", i + 1)),
            d => Ok(d as u64),
        })
        .collect()
}

fn datatype_of(code: i64, bitpix: i64) -> Result<Datatype, String> {
    let datatype = Datatype::from_code(code).ok_or_else(|| {
        format!("unsupported datatype code {code} (scalar integer and float voxels are supported)")
    })?;
    if bitpix != datatype.bytes() as i64 * 8 {
        return Err(format!(
            "invalid header: datatype {code} has {} bits per voxel, bitpix says {bitpix}",
            datatype.bytes() * 8
        ));
    }
    Ok(datatype)
}

fn offset_of(vox_offset: f64, minimum: u64) -> Result<u64, String> {
    if !(vox_offset.is_finite() && vox_offset.fract() == 0.0 && vox_offset >= minimum as f64) {
        return Err(format!(
            "invalid header: vox_offset {vox_offset} (the voxel data must start at a whole byte \
             at or after {minimum}, past the header)"
        ));
    }
    if vox_offset > (1u64 << 40) as f64 {
        return Err(format!(
            "invalid header: vox_offset {vox_offset} is absurdly large"
        ));
    }
    Ok(vox_offset as u64)
}

/// Checks what parsing cannot: the voxel count against `max_voxels`.
fn check_header(header: &Header, max_voxels: u64) -> Result<(), String> {
    let count = header
        .sizes
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .unwrap_or(u64::MAX);
    if count > max_voxels {
        return Err(format!(
            "{:?} is {count} voxels, above the limit of {max_voxels} (set {MAX_VOXELS_VAR} to \
             read larger volumes)",
            header.sizes
        ));
    }
    Ok(())
}

/// Largest absolute difference between two affines' entries (mm per voxel for the axes, mm
/// for the origin).
pub fn affine_difference(a: &[[f64; 4]; 3], b: &[[f64; 4]; 3]) -> f64 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// An affine as text, one row per axis.
pub fn describe_affine(a: &[[f64; 4]; 3]) -> String {
    a.iter()
        .map(|r| format!("[{:.3} {:.3} {:.3} {:.3}]", r[0], r[1], r[2], r[3]))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal little-endian NIfTI-1 header for dims `d` of int16.
    fn nifti1(d: [i16; 3]) -> Vec<u8> {
        let mut h = vec![0u8; 352];
        h[0..4].copy_from_slice(&348i32.to_le_bytes());
        h[40..42].copy_from_slice(&3i16.to_le_bytes());
        for (i, v) in d.iter().enumerate() {
            h[42 + 2 * i..44 + 2 * i].copy_from_slice(&v.to_le_bytes());
        }
        h[70..72].copy_from_slice(&4i16.to_le_bytes());
        h[72..74].copy_from_slice(&16i16.to_le_bytes());
        for i in 0..4 {
            h[76 + 4 * i..80 + 4 * i].copy_from_slice(&1f32.to_le_bytes());
        }
        h[108..112].copy_from_slice(&352f32.to_le_bytes());
        h[344..348].copy_from_slice(b"n+1\0");
        h
    }

    #[test]
    fn a_valid_header_parses_and_bad_fields_are_named() {
        let h = parse_header(&nifti1([4, 5, 6])).unwrap();
        assert_eq!(h.sizes, vec![4, 5, 6]);
        assert_eq!(h.datatype, Datatype::I16);
        assert_eq!(h.data_bytes(), 240);

        let mut negative = nifti1([4, -5, 6]);
        negative[44..46].copy_from_slice(&(-5i16).to_le_bytes());
        let e = parse_header(&negative).unwrap_err();
        assert!(e.contains("dim[2] is negative (-5)"), "{e}");

        let mut bitpix = nifti1([4, 5, 6]);
        bitpix[72..74].copy_from_slice(&8i16.to_le_bytes());
        assert!(parse_header(&bitpix).unwrap_err().contains("bitpix says 8"));

        let mut offset = nifti1([4, 5, 6]);
        offset[108..112].copy_from_slice(&100f32.to_le_bytes());
        assert!(
            parse_header(&offset)
                .unwrap_err()
                .contains("vox_offset 100")
        );

        let huge = parse_header(&nifti1([1500, 1500, 1000])).unwrap();
        let e = check_header(&huge, DEFAULT_MAX_VOXELS).unwrap_err();
        assert!(
            e.contains("2250000000 voxels") && e.contains(MAX_VOXELS_VAR),
            "{e}"
        );

        assert!(parse_header(b"hello").unwrap_err().contains("not a NIfTI"));
    }

    #[test]
    fn random_header_mutations_never_panic() {
        let good = nifti1([8, 8, 8]);
        let mut rng = crate::util::rng::SplitMix64::new(7);
        for _ in 0..20_000 {
            let mut h = good.clone();
            for _ in 0..1 + rng.next_u64() % 4 {
                let at = (rng.next_u64() % h.len() as u64) as usize;
                h[at] = rng.next_u64() as u8;
            }
            let cut = if rng.chance(0.2) {
                (rng.next_u64() % h.len() as u64) as usize
            } else {
                h.len()
            };
            if let Ok(header) = parse_header(&h[..cut]) {
                let _ = check_header(&header, DEFAULT_MAX_VOXELS);
                let _ = header.affine();
                let _ = header.to_nifti1();
            }
        }
    }
}

//! The brain the realistic generator warps: the ICBM 2009a nonlinear symmetric template (1 mm,
//! 197 x 233 x 189; T1 brain mask, grey- and white-matter probabilities; see assets/anatomy/NOTICE)
//! compiled into the binary, decoded once, with the derived maps the generator samples.

use std::io::Read;
use std::sync::OnceLock;

const T1: &[u8] =
    include_bytes!("../../../assets/anatomy/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz");
const GM: &[u8] =
    include_bytes!("../../../assets/anatomy/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz");
const WM: &[u8] =
    include_bytes!("../../../assets/anatomy/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz");

/// One template voxel's maps, each 0..=255 for 0..=1.
#[derive(Debug, Clone, Copy, Default)]
pub struct TemplateVoxel {
    /// Inside the skull-stripped brain (the T1 template's non-zero voxels).
    pub brain: u8,
    pub gm: u8,
    pub wm: u8,
    /// Depth: the brain mask blurred over about 2 cm (1 deep inside, ~0.5 at the surface).
    pub deep: u8,
    /// The brain mask blurred over a few mm: > 0 in a thin shell outside the brain (dura).
    pub near: u8,
    /// Closeness to the lateral ventricles (deep CSF) blurred over a few mm.
    pub periventricular: u8,
}

/// Tissue fractions at a point, interpolated from the template.
#[derive(Debug, Clone, Copy, Default)]
pub struct TissueFractions {
    pub brain: f32,
    pub gm: f32,
    pub wm: f32,
    /// Cerebrospinal fluid: the brain minus grey and white matter.
    pub csf: f32,
    pub deep: f32,
    pub near: f32,
    pub periventricular: f32,
}

/// The decoded template and its derived maps (x fastest, 1 mm, RAS voxel axes).
#[derive(Debug)]
pub struct Template {
    pub dims: [usize; 3],
    voxels: Vec<TemplateVoxel>,
    /// Centre of the brain's bounding box, in voxels.
    pub brain_centre: [f32; 3],
}

/// The template, decoded on first use (a few hundred ms) and kept for the process.
pub fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| Template::decode().expect("the embedded template is valid (tested)"))
}

impl Template {
    fn decode() -> Result<Template, String> {
        let (dims, t1) = decode_u8_nifti(T1)?;
        let (gm_dims, gm) = decode_u8_nifti(GM)?;
        let (wm_dims, wm) = decode_u8_nifti(WM)?;
        if gm_dims != dims || wm_dims != dims {
            return Err(format!(
                "template grids differ: {dims:?} {gm_dims:?} {wm_dims:?}"
            ));
        }
        let brain: Vec<f32> = t1.iter().map(|&v| (v > 0) as u8 as f32).collect();
        let mut deep = brain.clone();
        box_blur(&mut deep, dims, 12);
        box_blur(&mut deep, dims, 12);
        let mut near = brain.clone();
        box_blur(&mut near, dims, 3);
        let mut periventricular: Vec<f32> = (0..brain.len())
            .map(|i| {
                let csf = brain[i] * (1.0 - (gm[i] as f32 + wm[i] as f32) / 255.0).max(0.0);
                (csf > 0.6 && deep[i] > 0.93) as u8 as f32
            })
            .collect();
        box_blur(&mut periventricular, dims, 4);
        let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        let voxels = (0..brain.len())
            .map(|i| TemplateVoxel {
                brain: byte(brain[i]),
                gm: if t1[i] > 0 { gm[i] } else { 0 },
                wm: if t1[i] > 0 { wm[i] } else { 0 },
                deep: byte(deep[i]),
                near: byte(near[i]),
                periventricular: byte(periventricular[i] * 2.0),
            })
            .collect();
        Ok(Template {
            dims,
            voxels,
            brain_centre: bounding_box_centre(&brain, dims),
        })
    }

    /// The voxel at integer position (x, y, z), or an empty voxel outside the grid.
    pub fn voxel(&self, x: i64, y: i64, z: i64) -> TemplateVoxel {
        let [nx, ny, nz] = self.dims.map(|n| n as i64);
        if x < 0 || y < 0 || z < 0 || x >= nx || y >= ny || z >= nz {
            return TemplateVoxel::default();
        }
        self.voxels[(x + nx * (y + ny * z)) as usize]
    }

    /// Trilinear tissue fractions at `q` (template voxel coordinates).
    pub fn sample(&self, q: [f32; 3]) -> TissueFractions {
        let base = q.map(|v| v.floor());
        let f = [0, 1, 2].map(|a| q[a] - base[a]);
        let b = base.map(|v| v as i64);
        let mut acc = [0f32; 6];
        for corner in 0..8 {
            let d = [corner & 1, (corner >> 1) & 1, (corner >> 2) & 1];
            let w: f32 = (0..3)
                .map(|a| if d[a] == 1 { f[a] } else { 1.0 - f[a] })
                .product();
            if w == 0.0 {
                continue;
            }
            let v = self.voxel(b[0] + d[0] as i64, b[1] + d[1] as i64, b[2] + d[2] as i64);
            for (slot, value) in
                acc.iter_mut()
                    .zip([v.brain, v.gm, v.wm, v.deep, v.near, v.periventricular])
            {
                *slot += w * value as f32;
            }
        }
        let [brain, gm, wm, deep, near, periventricular] = acc.map(|v| v / 255.0);
        TissueFractions {
            brain,
            gm,
            wm,
            csf: (brain - gm - wm).max(0.0),
            deep,
            near,
            periventricular,
        }
    }
}

/// Decodes a gzipped NIfTI-1 uint8 volume: its dims and voxels.
fn decode_u8_nifti(gz: &[u8]) -> Result<([usize; 3], Vec<u8>), String> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    let header = nifti::NiftiHeader::from_reader(&bytes[..]).map_err(|e| e.to_string())?;
    if header.datatype != 2 || header.dim[0] != 3 {
        return Err("template is not a 3-D uint8 volume".into());
    }
    let dims = [1, 2, 3].map(|a| header.dim[a] as usize);
    let offset = header.vox_offset as usize;
    let n: usize = dims.iter().product();
    let data = bytes
        .get(offset..offset + n)
        .ok_or("template is truncated")?
        .to_vec();
    Ok((dims, data))
}

/// Centre of the bounding box of the non-zero voxels.
fn bounding_box_centre(mask: &[f32], dims: [usize; 3]) -> [f32; 3] {
    let mut lo = dims;
    let mut hi = [0usize; 3];
    for (i, _) in mask.iter().enumerate().filter(|(_, v)| **v > 0.0) {
        let p = [
            i % dims[0],
            (i / dims[0]) % dims[1],
            i / (dims[0] * dims[1]),
        ];
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    [0, 1, 2].map(|a| (lo[a] + hi[a]) as f32 / 2.0)
}

/// In-place separable box blur of radius `r` voxels (a running mean along each axis; the
/// volume's edge counts as zero).
pub fn box_blur(data: &mut [f32], dims: [usize; 3], r: usize) {
    let strides = [1, dims[0], dims[0] * dims[1]];
    let width = (2 * r + 1) as f32;
    let mut line = Vec::new();
    for axis in 0..3 {
        let n = dims[axis];
        let stride = strides[axis];
        let others: Vec<usize> = (0..data.len())
            .filter(|i| (i / stride).is_multiple_of(n))
            .collect();
        for start in others {
            line.clear();
            line.extend((0..n).map(|k| data[start + k * stride]));
            let mut sum: f32 = line[..r.min(n)].iter().sum();
            for k in 0..n {
                if k + r < n {
                    sum += line[k + r];
                }
                if k > r {
                    sum -= line[k - r - 1];
                }
                data[start + k * stride] = sum / width;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_decodes_with_plausible_tissue_volumes() {
        let t = template();
        assert_eq!(t.dims, [197, 233, 189]);
        let (mut brain, mut gm, mut wm, mut csf) = (0.0, 0.0, 0.0, 0.0);
        for z in 0..189 {
            for y in 0..233 {
                for x in 0..197 {
                    let s = t.sample([x as f32, y as f32, z as f32]);
                    brain += s.brain;
                    gm += s.gm;
                    wm += s.wm;
                    csf += s.csf;
                }
            }
        }
        // Litres: a brain of about 1.9 l in the mask, grey > white > CSF.
        let l = |v: f32| v / 1e6;
        assert!((1.5..2.2).contains(&l(brain)), "brain {}", l(brain));
        assert!(
            l(gm) > l(wm) && l(wm) > l(csf) && l(csf) > 0.1,
            "{gm} {wm} {csf}"
        );
    }

    #[test]
    fn box_blur_keeps_the_mean_inside() {
        let dims = [9, 9, 9];
        let mut v = vec![0.0; 729];
        v[4 + 9 * (4 + 9 * 4)] = 27.0;
        box_blur(&mut v, dims, 1);
        assert!((v[4 + 9 * (4 + 9 * 4)] - 1.0).abs() < 1e-6);
        assert!((v.iter().sum::<f32>() - 27.0).abs() < 1e-4);
    }
}

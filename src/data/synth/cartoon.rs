//! The cartoon phantom (`synth --kind cartoon`): a lumpy ellipsoid brain (white and grey matter,
//! ventricles) with a nested-ellipsoid tumour, each tissue with its contrast per modality.
//! Quick to make and easy to segment; the realistic generator is [`super::realistic`].

use super::SynthCase;
use crate::util::rng::SplitMix64;

/// Tissue classes of the phantom, in the order of [`CONTRAST`]'s rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tissue {
    Background,
    WhiteMatter,
    GreyMatter,
    Csf,
    Necrosis,
    Enhancing,
    Oedema,
}

/// Mean intensity per tissue for T1, T1ce, T2, FLAIR (arbitrary scanner units).
const CONTRAST: [[f32; 4]; 7] = [
    [0.0, 0.0, 0.0, 0.0],           // background (skull-stripped)
    [850.0, 830.0, 420.0, 480.0],   // white matter
    [620.0, 600.0, 640.0, 620.0],   // grey matter
    [200.0, 210.0, 1400.0, 120.0],  // CSF: bright on T2, dark on FLAIR
    [380.0, 300.0, 1150.0, 650.0],  // necrotic core
    [600.0, 1350.0, 850.0, 820.0],  // enhancing rim: bright on T1ce
    [650.0, 640.0, 1050.0, 1100.0], // oedema: bright on T2 and FLAIR
];

/// BraTS 2019-2021 label of each tissue (1 NCR/NET, 2 ED, 4 ET).
fn label_of(tissue: Tissue) -> u8 {
    match tissue {
        Tissue::Necrosis => 1,
        Tissue::Oedema => 2,
        Tissue::Enhancing => 4,
        _ => 0,
    }
}

/// A lumpy ellipsoid: unit "radius" along each axis scaled by `radii`, its surface modulated by
/// low-frequency harmonics of direction so no two tumours or brains look alike.
#[derive(Debug, Clone)]
struct Blob {
    centre: [f32; 3],
    radii: [f32; 3],
    harmonics: [(f32, f32, f32, f32); 3], // amplitude, theta freq, phi freq, phase
}

impl Blob {
    fn random(rng: &mut SplitMix64, centre: [f32; 3], radii: [f32; 3], lumpiness: f32) -> Blob {
        let mut h = || {
            (
                rng.range(0.0, lumpiness),
                rng.range(1.0, 4.0).floor(),
                rng.range(1.0, 4.0).floor(),
                rng.range(0.0, std::f32::consts::TAU),
            )
        };
        Blob {
            centre,
            radii,
            harmonics: [h(), h(), h()],
        }
    }

    /// < 1 inside, 1 on the surface: the normalised radius divided by the surface's local scale.
    fn level(&self, p: [f32; 3]) -> f32 {
        let d = [0, 1, 2].map(|i| (p[i] - self.centre[i]) / self.radii[i]);
        let rho = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        if rho < 1e-6 {
            return 0.0;
        }
        let theta = (d[2] / rho).clamp(-1.0, 1.0).acos();
        let phi = d[1].atan2(d[0]);
        let bump: f32 = self
            .harmonics
            .iter()
            .map(|&(a, kt, kp, ph)| a * (kt * theta + ph).sin() * (kp * phi + 0.7 * ph).cos())
            .sum();
        rho / (1.0 + bump)
    }
}

/// The phantom's anatomy for one seed, in millimetres from the volume centre.
struct Anatomy {
    brain: Blob,
    ventricles: [Blob; 2],
    oedema: Blob,
    enhancing: Blob,
    necrosis: Option<Blob>,
    cortex_depth: f32,
}

impl Anatomy {
    fn random(rng: &mut SplitMix64, extent_mm: [f32; 3]) -> Anatomy {
        let half = extent_mm.map(|e| e / 2.0);
        let brain_radii = [0.80, 0.90, 0.82].map(|f| f * rng.range(0.93, 1.03));
        let brain_radii = [0, 1, 2].map(|i| brain_radii[i] * half[i]);
        let brain = Blob::random(rng, [0.0; 3], brain_radii, 0.04);
        let ventricle = |rng: &mut SplitMix64, side: f32| {
            let r = [0.07, 0.20, 0.13].map(|f| f * rng.range(0.8, 1.2));
            let centre = [
                side * 0.09 * brain_radii[0],
                0.05 * brain_radii[1],
                0.1 * brain_radii[2],
            ];
            Blob::random(rng, centre, [0, 1, 2].map(|i| r[i] * brain_radii[i]), 0.1)
        };
        let ventricles = [ventricle(rng, -1.0), ventricle(rng, 1.0)];
        // Tumour centre: inside one hemisphere, away from the midline and the surface.
        let side = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
        let centre = [
            side * rng.range(0.25, 0.5) * brain_radii[0],
            rng.range(-0.45, 0.45) * brain_radii[1],
            rng.range(-0.3, 0.4) * brain_radii[2],
        ];
        let oedema_r = rng.range(0.22, 0.34) * brain_radii[0];
        let et_r = oedema_r * rng.range(0.5, 0.7);
        let ncr_r = et_r * rng.range(0.45, 0.7);
        let stretch = |rng: &mut SplitMix64, r: f32| {
            [
                r * rng.range(0.85, 1.15),
                r * rng.range(0.85, 1.15),
                r * rng.range(0.8, 1.1),
            ]
        };
        let oedema_radii = stretch(rng, oedema_r);
        let oedema = Blob::random(rng, centre, oedema_radii, 0.25);
        let et_radii = stretch(rng, et_r);
        let enhancing = Blob::random(rng, centre, et_radii, 0.15);
        let ncr_radii = stretch(rng, ncr_r);
        let necrosis = (rng.uniform() < 0.8).then(|| Blob::random(rng, centre, ncr_radii, 0.15));
        Anatomy {
            brain,
            ventricles,
            oedema,
            enhancing,
            necrosis,
            cortex_depth: rng.range(0.12, 0.18),
        }
    }

    fn tissue_at(&self, p: [f32; 3]) -> Tissue {
        let brain = self.brain.level(p);
        if brain >= 1.0 {
            return Tissue::Background;
        }
        if self.necrosis.as_ref().is_some_and(|n| n.level(p) < 1.0) {
            return Tissue::Necrosis;
        }
        if self.enhancing.level(p) < 1.0 {
            return Tissue::Enhancing;
        }
        if self.ventricles.iter().any(|v| v.level(p) < 1.0) {
            return Tissue::Csf;
        }
        if self.oedema.level(p) < 1.0 {
            return Tissue::Oedema;
        }
        // Cortex: an outer rim of varying depth with gyri-like folds.
        let fold = 0.04 * (p[0] * 0.35).sin() * (p[1] * 0.3).cos() + 0.03 * (p[2] * 0.4).sin();
        if brain > 1.0 - self.cortex_depth + fold {
            Tissue::GreyMatter
        } else {
            Tissue::WhiteMatter
        }
    }
}

/// Generates cartoon case number `seed` on a grid of `dims` voxels of `s` mm.
pub fn generate(seed: u64, dims: [usize; 3], s: f32) -> SynthCase {
    let mut rng = SplitMix64::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED);
    let [nx, ny, nz] = dims;
    let extent_mm = [nx as f32 * s, ny as f32 * s, nz as f32 * s];
    let anatomy = Anatomy::random(&mut rng, extent_mm);
    // Per modality: a linear bias field (up to +-12%) and a noise level.
    let bias: Vec<[f32; 4]> = (0..4)
        .map(|_| {
            [
                rng.range(-0.12, 0.12),
                rng.range(-0.12, 0.12),
                rng.range(-0.08, 0.08),
                rng.range(15.0, 35.0),
            ]
        })
        .collect();
    let n = nx * ny * nz;
    let mut labels = vec![0u8; n];
    let mut modalities: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0; n]);
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let p = [
                    (x as f32 + 0.5) * s - extent_mm[0] / 2.0,
                    (y as f32 + 0.5) * s - extent_mm[1] / 2.0,
                    (z as f32 + 0.5) * s - extent_mm[2] / 2.0,
                ];
                let tissue = anatomy.tissue_at(p);
                if tissue == Tissue::Background {
                    continue;
                }
                let i = x + nx * (y + ny * z);
                labels[i] = label_of(tissue);
                let unit = [
                    p[0] / extent_mm[0],
                    p[1] / extent_mm[1],
                    p[2] / extent_mm[2],
                ];
                for (m, volume) in modalities.iter_mut().enumerate() {
                    let b = &bias[m];
                    let field =
                        1.0 + b[0] * unit[0] * 2.0 + b[1] * unit[1] * 2.0 + b[2] * unit[2] * 2.0;
                    let value = CONTRAST[tissue as usize][m] * field + b[3] * rng.normal();
                    volume[i] = value.max(1.0);
                }
            }
        }
    }
    SynthCase {
        dims,
        spacing_mm: s,
        modalities,
        labels,
    }
}

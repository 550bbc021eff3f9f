//! The realistic generator: the ICBM template warped per case, a tumour grown in it with mass
//! effect, four modalities from tissue fractions (partial volume) with per-case contrasts, a
//! multiplicative bias field, through-plane blur, Rician noise, and structures that look like
//! tumour but are not (vessels, dura and choroid plexus on T1ce; periventricular and small
//! white-matter hyperintensities on FLAIR/T2).

use rayon::prelude::*;

use super::SynthCase;
use super::noise::SmoothField;
use super::template::{Template, TissueFractions, template};
use super::tumour::{Tumour, TumourAt, TumourPart, TumourStyle};
use super::warp::{MassEffect, Warp};
use crate::util::rng::SplitMix64;

/// Modalities in network order (T1 0, T1ce 1).
const T2: usize = 2;
const FLAIR: usize = 3;

/// Mean intensity per tissue for T1, T1ce, T2, FLAIR, relative to white matter on T1.
#[derive(Debug, Clone)]
struct Contrasts {
    wm: [f32; 4],
    gm: [f32; 4],
    csf: [f32; 4],
    oedema: [f32; 4],
    non_enhancing: [f32; 4],
    necrosis: [f32; 4],
    enhancing: [f32; 4],
    vessel: [f32; 4],
    choroid: [f32; 4],
    dura: [f32; 4],
    /// Added to a white-matter hyperintensity (and periventricular caps) at full strength.
    hyperintensity: [f32; 4],
}

impl Contrasts {
    /// Textbook relative contrasts (CSF dark on T1 and FLAIR, bright on T2; oedema bright on T2
    /// and FLAIR; the enhancing rim bright on T1ce), each jittered per case.
    fn random(rng: &mut SplitMix64) -> Contrasts {
        let enhancement = rng.range(1.3, 2.2);
        let mut jitter =
            |v: [f32; 4], amount: f32| v.map(|x| x * rng.range(1.0 - amount, 1.0 + amount));
        Contrasts {
            wm: jitter([1.0, 1.0, 0.55, 0.68], 0.04),
            gm: jitter([0.74, 0.76, 0.82, 0.88], 0.06),
            csf: jitter([0.28, 0.3, 1.7, 0.24], 0.15),
            oedema: jitter([0.66, 0.68, 1.22, 1.38], 0.15),
            non_enhancing: jitter([0.52, 0.56, 1.45, 1.12], 0.12),
            necrosis: jitter([0.38, 0.36, 1.55, 0.85], 0.3),
            enhancing: jitter([0.72, enhancement, 1.05, 1.08], 0.1),
            vessel: jitter([0.7, 1.65, 0.5, 0.8], 0.15),
            choroid: jitter([0.72, 1.5, 0.95, 0.75], 0.15),
            dura: jitter([0.55, 1.35, 0.7, 0.6], 0.2),
            hyperintensity: jitter([-0.12, -0.1, 0.55, 0.6], 0.25),
        }
    }
}

/// The scanner: gain, bias field, noise and slice thickness per modality.
#[derive(Debug, Clone)]
struct Scanner {
    gain: [f32; 4],
    bias: [SmoothField; 4],
    bias_strength: [f32; 4],
    /// Signal-to-noise ratio of white matter.
    snr: [f32; 4],
    /// Weight of each neighbouring slice in the through-plane blur.
    z_blur: [f32; 4],
    /// Weight of each in-plane neighbour in the point-spread blur at 1 mm voxels (reconstruction
    /// from a coarser acquisition matrix softens every edge, enhancing rims included).
    xy_blur: [f32; 4],
}

impl Scanner {
    fn random(rng: &mut SplitMix64, half: [f32; 3]) -> Scanner {
        let lo = half.map(|h| -h);
        let gain = std::array::from_fn(|_| rng.range(5.0f32.ln(), 8.0f32.ln()).exp());
        let cell = rng.range(60.0, 110.0);
        Scanner {
            gain,
            bias: std::array::from_fn(|_| SmoothField::new(rng, lo, half, cell)),
            bias_strength: std::array::from_fn(|_| rng.range(0.03, 0.18)),
            snr: std::array::from_fn(|m| {
                if m == FLAIR {
                    rng.range(7.0, 25.0)
                } else {
                    rng.range(10.0, 40.0)
                }
            }),
            z_blur: std::array::from_fn(|m| {
                // FLAIR and T2 are often acquired with thicker slices.
                if m >= T2 {
                    rng.range(0.0, 0.3)
                } else {
                    rng.range(0.0, 0.15)
                }
            }),
            xy_blur: std::array::from_fn(|_| rng.range(0.03, 0.22)),
        }
    }
}

/// Structures that mimic tumour on one modality.
#[derive(Debug, Clone)]
struct LookAlikes {
    /// Vessels lie where both fields are near zero (two level sets cross in a curve).
    vessel_fields: [SmoothField; 2],
    vessel_width: f32,
    choroid: SmoothField,
    choroid_level: f32,
    dura: SmoothField,
    dura_level: f32,
    periventricular_strength: f32,
    /// Small white-matter hyperintensities: centre (mm) and radius (mm).
    spots: Vec<([f32; 3], f32)>,
}

impl LookAlikes {
    fn random(rng: &mut SplitMix64, half: [f32; 3], anatomy: &WarpedAnatomy) -> LookAlikes {
        let lo = half.map(|h| -h);
        let cell = rng.range(6.0, 10.0);
        let vessel_fields = [
            SmoothField::new(rng, lo, half, cell),
            SmoothField::new(rng, lo, half, cell),
        ];
        let spot_count = if rng.chance(0.4) {
            0
        } else {
            (rng.range(1.0, 14.0)) as usize
        };
        let spots = (0..spot_count)
            .filter_map(|_| {
                anatomy
                    .white_matter_point(rng, 0.7)
                    .map(|p| (p, rng.range(1.2, 4.0)))
            })
            .collect();
        LookAlikes {
            vessel_fields,
            vessel_width: rng.range(0.03, 0.09),
            choroid: SmoothField::new(rng, lo, half, 5.0),
            choroid_level: rng.range(0.9, 2.0),
            dura: SmoothField::new(rng, lo, half, 12.0),
            dura_level: rng.range(-0.2, 1.5),
            periventricular_strength: if rng.chance(0.5) {
                rng.range(0.2, 0.9)
            } else {
                0.0
            },
            spots,
        }
    }
}

/// The warped template of one case.
struct WarpedAnatomy<'a> {
    template: &'a Template,
    warp: Warp,
    half: [f32; 3],
}

impl WarpedAnatomy<'_> {
    fn tissue(&self, p: [f32; 3]) -> TissueFractions {
        self.template.sample(self.warp.to_template(p))
    }

    /// A random case point (mm) in deep white matter at least 12 mm inside the grid.
    fn white_matter_point(&self, rng: &mut SplitMix64, min_wm: f32) -> Option<[f32; 3]> {
        let c = self.template.brain_centre;
        for _ in 0..2000 {
            let q = [
                c[0] + rng.range(-62.0, 62.0),
                c[1] + rng.range(-80.0, 75.0),
                c[2] + rng.range(-30.0, 60.0),
            ];
            let t = self.template.sample(q);
            if t.wm < min_wm || t.deep < 0.75 {
                continue;
            }
            let p = self.warp.from_template(q);
            if (0..3).all(|a| p[a].abs() < self.half[a] - 12.0) {
                return Some(p);
            }
        }
        None
    }
}

/// A generated case with the tissue truth the tests check labels against.
#[derive(Debug, Clone)]
pub struct RealisticCase {
    pub case: SynthCase,
    /// Per voxel: 0 outside the brain, 1 mostly CSF, 2 other brain tissue.
    pub tissue: Vec<u8>,
    pub multifocal: bool,
}

/// Generates realistic case `seed` on a grid of `dims` voxels of `spacing_mm` (BraTS: 240 x 240
/// x 155 at 1 mm). Deterministic for a seed and grid, whatever the number of threads.
pub fn generate(seed: u64, dims: [usize; 3], spacing_mm: f32) -> RealisticCase {
    let mut rng = SplitMix64::stream(seed, 0x5EED_0001);
    let s = spacing_mm;
    let half = dims.map(|n| n as f32 * s / 2.0);
    let template = template();
    let c = template.brain_centre;
    let warp = Warp::random(&mut rng, half, [c[0], c[1], c[2] + 5.0]);
    let mut anatomy = WarpedAnatomy {
        template,
        warp,
        half,
    };

    // Tumour seeds in white matter; a second one nearby for a multifocal tumour.
    let first = anatomy
        .white_matter_point(&mut rng, 0.85)
        .unwrap_or([0.0, 0.0, 10.0]);
    let mut seeds = vec![first];
    let multifocal = rng.chance(0.15);
    if multifocal {
        for _ in 0..50 {
            let dir = [rng.normal(), rng.normal(), rng.normal()];
            let norm = dir.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-3);
            let dist = rng.range(15.0, 35.0);
            let p = [0, 1, 2].map(|a| first[a] + dir[a] / norm * dist);
            if (0..3).all(|a| p[a].abs() < half[a] - 12.0) && anatomy.tissue(p).wm > 0.6 {
                seeds.push(p);
                break;
            }
        }
    }
    let style = TumourStyle::random(&mut rng, seeds.clone());
    let push = rng.range(0.1, 0.5);
    for seed_point in &seeds {
        anatomy.warp.push(MassEffect {
            centre: *seed_point,
            radius_mm: style.core_radius_mm() * 1.4 + 4.0,
            strength: push / seeds.len() as f32,
        });
    }
    let tumour = Tumour::grow(&mut rng, style, half, s, |p| anatomy.tissue(p));
    let contrasts = Contrasts::random(&mut rng);
    let scanner = Scanner::random(&mut rng, half);
    let look_alikes = LookAlikes::random(&mut rng, half, &anatomy);
    let recipe = Recipe {
        anatomy,
        tumour,
        contrasts,
        scanner,
        look_alikes,
    };

    // Every voxel, slab by slab in parallel: labels, tissue truth and clean intensities.
    let [nx, ny, nz] = dims;
    let plane = nx * ny;
    let slabs: Vec<Slab> = (0..nz)
        .into_par_iter()
        .map(|z| {
            let mut slab = Slab::new(plane);
            for y in 0..ny {
                for x in 0..nx {
                    // Case mm in RAS axes: voxel x runs to the patient's left, y to posterior.
                    let p = [
                        half[0] - (x as f32 + 0.5) * s,
                        half[1] - (y as f32 + 0.5) * s,
                        (z as f32 + 0.5) * s - half[2],
                    ];
                    slab.set(x + nx * y, &recipe, p);
                }
            }
            slab
        })
        .collect();
    let n = plane * nz;
    let mut labels = Vec::with_capacity(n);
    let mut tissue = Vec::with_capacity(n);
    let mut visible = Vec::with_capacity(n);
    let mut modalities: [Vec<f32>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
    for slab in slabs {
        labels.extend(slab.labels);
        tissue.extend(slab.tissue);
        visible.extend(slab.visible);
        for (volume, values) in modalities.iter_mut().zip(&slab.values) {
            volume.extend(values);
        }
    }
    for (m, volume) in modalities.iter_mut().enumerate() {
        blur_through_plane(volume, dims, recipe.scanner.z_blur[m]);
        // The point spread is a property of the scanner (in mm): coarser voxels see less of it.
        blur_in_plane(volume, dims, recipe.scanner.xy_blur[m] / (s * s));
        add_rician_noise(
            volume,
            &visible,
            dims,
            recipe.scanner.gain[m] / recipe.scanner.snr[m],
            seed,
            m,
        );
    }
    RealisticCase {
        case: SynthCase {
            dims,
            spacing_mm: s,
            modalities,
            labels,
        },
        tissue,
        multifocal: seeds.len() > 1,
    }
}

/// Everything drawn for one case before its voxels are made.
struct Recipe<'a> {
    anatomy: WarpedAnatomy<'a>,
    tumour: Tumour,
    contrasts: Contrasts,
    scanner: Scanner,
    look_alikes: LookAlikes,
}

/// One axial slice's outputs.
struct Slab {
    labels: Vec<u8>,
    tissue: Vec<u8>,
    visible: Vec<bool>,
    values: [Vec<f32>; 4],
}

impl Slab {
    fn new(plane: usize) -> Slab {
        Slab {
            labels: vec![0; plane],
            tissue: vec![0; plane],
            visible: vec![false; plane],
            values: std::array::from_fn(|_| vec![0.0; plane]),
        }
    }

    /// Voxel `i` of the slab, at case point `p` (mm).
    fn set(&mut self, i: usize, recipe: &Recipe, p: [f32; 3]) {
        let Recipe {
            anatomy,
            tumour,
            contrasts,
            scanner,
            look_alikes,
        } = recipe;
        let t = anatomy.tissue(p);
        let intensity = if t.brain >= 0.5 {
            self.tissue[i] = if t.csf >= 0.5 { 1 } else { 2 };
            let at = tumour.at(p, &t);
            self.labels[i] = at.part.label();
            brain_intensity(&t, at, tumour, contrasts, look_alikes, p)
        } else if t.near > 0.12 && look_alikes.dura.at(p) > look_alikes.dura_level {
            // Dura left by skull stripping: a patchy shell just outside the brain.
            contrasts.dura
        } else {
            return;
        };
        self.visible[i] = true;
        for (m, values) in self.values.iter_mut().enumerate() {
            let bias = (scanner.bias_strength[m] * scanner.bias[m].at(p)).exp();
            values[i] = intensity[m] * scanner.gain[m] * bias;
        }
    }
}

/// Clean relative intensities of a brain voxel for T1, T1ce, T2, FLAIR.
fn brain_intensity(
    t: &TissueFractions,
    at: TumourAt,
    tumour: &Tumour,
    c: &Contrasts,
    look: &LookAlikes,
    p: [f32; 3],
) -> [f32; 4] {
    let texture = 1.0 + tumour.texture_amount * tumour.texture.at(p);
    let core = match at.part {
        TumourPart::Necrosis => Some(c.necrosis),
        TumourPart::Enhancing => Some(c.enhancing),
        TumourPart::NonEnhancing => Some(c.non_enhancing),
        TumourPart::None | TumourPart::Oedema => None,
    };
    if let Some(core) = core {
        return core.map(|v| v * texture);
    }
    // Partial volume of grey matter, white matter and CSF.
    let total = (t.gm + t.wm + t.csf).max(1e-3);
    let csf_like = if t.csf > 0.6 && t.deep > 0.93 && look.choroid.at(p) > look.choroid_level {
        c.choroid
    } else {
        c.csf
    };
    let mut v: [f32; 4] =
        std::array::from_fn(|m| (t.gm * c.gm[m] + t.wm * c.wm[m] + t.csf * csf_like[m]) / total);
    // Hyperintensities of white matter that are not tumour.
    let mut hyper = look.periventricular_strength * t.periventricular * t.wm / total;
    for (centre, radius) in &look.spots {
        let d2: f32 = (0..3).map(|a| (p[a] - centre[a]).powi(2)).sum();
        hyper += (-(d2 / (radius * radius)).powi(2)).exp();
    }
    if hyper > 0.01 {
        let h = hyper.min(1.2);
        for (value, extra) in v.iter_mut().zip(c.hyperintensity) {
            *value += h * extra;
        }
    }
    // Vessels in sulci and on the surface enhance on T1ce.
    if (t.csf > 0.15 || t.deep < 0.8)
        && look.vessel_fields[0].at(p).abs() < look.vessel_width
        && look.vessel_fields[1].at(p).abs() < look.vessel_width
    {
        v = c.vessel;
    }
    if at.oedema_weight > 0.0 {
        let w = at.oedema_weight;
        for (value, oedema) in v.iter_mut().zip(c.oedema) {
            *value = (1.0 - w) * *value + w * oedema * texture;
        }
    }
    v
}

/// Mixes each slice with its neighbours by `weight` each (thick-slice acquisitions).
fn blur_through_plane(values: &mut [f32], dims: [usize; 3], weight: f32) {
    if weight <= 0.0 {
        return;
    }
    let plane = dims[0] * dims[1];
    let source = values.to_vec();
    values
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(z, slab)| {
            let below = &source[z.saturating_sub(1) * plane..][..plane];
            let here = &source[z * plane..][..plane];
            let above = &source[(z + 1).min(dims[2] - 1) * plane..][..plane];
            for i in 0..plane {
                if here[i] > 0.0 {
                    slab[i] = (1.0 - 2.0 * weight) * here[i] + weight * (below[i] + above[i]);
                }
            }
        });
}

/// Mixes each voxel with its in-plane neighbours by `weight` each, along x then y (a separable
/// point-spread function); background stays zero so the brain's outline is not smeared outwards.
fn blur_in_plane(values: &mut [f32], dims: [usize; 3], weight: f32) {
    if weight <= 0.0 {
        return;
    }
    let [nx, ny, _] = dims;
    let plane = nx * ny;
    values.par_chunks_mut(plane).for_each(|slab| {
        for (step, len, count) in [(1, nx, ny), (nx, ny, nx)] {
            let source = slab.to_vec();
            let line_start = |k: usize| if step == 1 { k * nx } else { k };
            for k in 0..count {
                let start = line_start(k);
                for j in 0..len {
                    let i = start + j * step;
                    if source[i] <= 0.0 {
                        continue;
                    }
                    let before = if j > 0 { source[i - step] } else { 0.0 };
                    let after = if j + 1 < len { source[i + step] } else { 0.0 };
                    // Outside the brain a neighbour counts as the voxel itself.
                    let before = if before > 0.0 { before } else { source[i] };
                    let after = if after > 0.0 { after } else { source[i] };
                    slab[i] = (1.0 - 2.0 * weight) * source[i] + weight * (before + after);
                }
            }
        }
    });
}

/// Magnitude images have Rician noise: |signal + complex Gaussian noise of `sigma`|, inside
/// the visible (skull-stripped) voxels only.
fn add_rician_noise(
    values: &mut [f32],
    visible: &[bool],
    dims: [usize; 3],
    sigma: f32,
    seed: u64,
    m: usize,
) {
    let plane = dims[0] * dims[1];
    values
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(z, slab)| {
            let mut rng = SplitMix64::stream(seed, ((m as u64) << 32) | z as u64);
            for (i, v) in slab.iter_mut().enumerate() {
                if visible[z * plane + i] {
                    let re = *v + sigma * rng.normal();
                    let im = sigma * rng.normal();
                    *v = (re * re + im * im).sqrt().max(1.0);
                } else {
                    *v = 0.0;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: usize = 0;

    /// A coarse grid over BraTS's field of view (3 mm) keeps the tests quick.
    fn coarse(seed: u64) -> RealisticCase {
        generate(seed, [80, 80, 52], 3.0)
    }

    #[test]
    fn labels_nest_and_stay_in_brain_tissue() {
        for seed in [1, 2, 3, 4] {
            let case = coarse(seed);
            let labels = &case.case.labels;
            let tumour = labels.iter().filter(|&&l| l != 0).count();
            assert!(tumour > 20, "seed {seed}: a tumour ({tumour} voxels)");
            for (i, &l) in labels.iter().enumerate() {
                assert!(matches!(l, 0 | 1 | 2 | 4), "BraTS labels only");
                if l != 0 {
                    assert_eq!(
                        case.tissue[i], 2,
                        "seed {seed}: tumour only in non-CSF brain"
                    );
                }
            }
        }
    }

    #[test]
    fn same_seed_same_case_other_seed_other_case() {
        let (a, b, c) = (coarse(7), coarse(7), coarse(8));
        assert_eq!(a.case.labels, b.case.labels);
        assert_eq!(a.case.modalities[3], b.case.modalities[3]);
        assert_ne!(a.case.labels, c.case.labels);
        assert_ne!(a.case.modalities[0], c.case.modalities[0]);
    }

    #[test]
    fn tissues_have_their_textbook_contrasts() {
        let case = coarse(5);
        let mean = |m: usize, pick: &dyn Fn(usize) -> bool| {
            let v: Vec<f32> = (0..case.tissue.len())
                .filter(|&i| pick(i))
                .map(|i| case.case.modalities[m][i])
                .collect();
            v.iter().sum::<f32>() / v.len().max(1) as f32
        };
        let csf = |i: usize| case.tissue[i] == 1;
        let tissue = |i: usize| case.tissue[i] == 2 && case.case.labels[i] == 0;
        let oedema = |i: usize| case.case.labels[i] == 2;
        // CSF dark on T1 and FLAIR, bright on T2; oedema bright on FLAIR.
        assert!(mean(T1, &csf) < 0.7 * mean(T1, &tissue));
        assert!(mean(FLAIR, &csf) < 0.7 * mean(FLAIR, &tissue));
        assert!(mean(T2, &csf) > 1.4 * mean(T2, &tissue));
        assert!(mean(FLAIR, &oedema) > 1.2 * mean(FLAIR, &tissue));
        // Skull-stripped: nothing outside the brain but the odd dura patch.
        let outside = (0..case.tissue.len())
            .filter(|&i| case.tissue[i] == 0)
            .count();
        let lit = (0..case.tissue.len())
            .filter(|&i| case.tissue[i] == 0 && case.case.modalities[0][i] > 0.0)
            .count();
        assert!((lit as f32) < 0.02 * outside as f32);
    }
}

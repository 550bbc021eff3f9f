//! Tumours grown, not drawn: Fisher-Kolmogorov reaction-diffusion of tumour cell density from one
//! or two seeds in white matter (diffusing several times faster in white than grey matter, never
//! into CSF or out of the brain), then vasogenic oedema diffusing out of the core along white
//! matter. The sub-regions come from the fields: necrotic centre, enhancing rim with gaps,
//! non-enhancing core, oedema fading at its edge.

use rayon::prelude::*;

use super::noise::SmoothField;
use super::template::TissueFractions;
use crate::util::rng::SplitMix64;

/// How a case's tumour looks and grows; drawn once per case.
#[derive(Debug, Clone)]
pub struct TumourStyle {
    /// Seeds (case mm); two for a multifocal tumour.
    pub seeds: Vec<[f32; 3]>,
    /// Tumour core (necrosis + enhancing + non-enhancing) volume to grow to, in ml.
    pub core_ml: f32,
    /// Diffusivity in white matter over that in grey matter.
    pub white_over_grey: f32,
    /// Proliferation rate per step (relative to diffusion: low rates give diffuse tumours).
    pub proliferation: f32,
    /// Oedema's decay length in white matter (mm).
    pub oedema_reach_mm: f32,
    pub core_threshold: f32,
    /// Where necrosis starts, as a fraction of the way from the core threshold to the tumour's
    /// peak density (small: thick necrotic centre and thin rim; the peak is known once grown).
    pub necrosis_fraction: f32,
    pub oedema_threshold: f32,
    /// Has a necrotic centre.
    pub necrotic: bool,
    /// Has an enhancing rim (high-grade-like); without one the core is non-enhancing.
    pub enhancing: bool,
    /// Gap field level below which the rim does not enhance (more negative: fewer gaps).
    pub rim_gap_level: f32,
}

impl TumourStyle {
    /// A random style for tumours seeded at `seeds`.
    pub fn random(rng: &mut SplitMix64, seeds: Vec<[f32; 3]>) -> TumourStyle {
        let low_grade = rng.chance(0.18);
        TumourStyle {
            seeds,
            // Log-uniform from small to large cores.
            core_ml: (rng.range(1.5f32.ln(), 80f32.ln())).exp(),
            white_over_grey: rng.range(3.0, 10.0),
            proliferation: rng.range(0.025, 0.14),
            oedema_reach_mm: if low_grade {
                rng.range(2.0, 10.0)
            } else {
                rng.range(5.0, 28.0)
            },
            core_threshold: rng.range(0.35, 0.6),
            necrosis_fraction: rng.range(0.45, 0.85),
            oedema_threshold: rng.range(0.12, 0.3),
            necrotic: !low_grade && rng.chance(0.85),
            enhancing: !low_grade,
            rim_gap_level: rng.range(-1.6, -0.2),
        }
    }

    /// Radius (mm) of a ball of the core's volume.
    pub fn core_radius_mm(&self) -> f32 {
        (3.0 * self.core_ml * 1000.0 / (4.0 * std::f32::consts::PI)).cbrt()
    }
}

/// A box of coarse cells (case mm) the tumour grows in.
#[derive(Debug, Clone)]
struct CoarseGrid {
    lo: [f32; 3],
    cell_mm: f32,
    dims: [usize; 3],
}

impl CoarseGrid {
    fn centre(&self, x: usize, y: usize, z: usize) -> [f32; 3] {
        [
            self.lo[0] + (x as f32 + 0.5) * self.cell_mm,
            self.lo[1] + (y as f32 + 0.5) * self.cell_mm,
            self.lo[2] + (z as f32 + 0.5) * self.cell_mm,
        ]
    }

    fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Trilinear interpolation of `field` (one value per cell) at `p`; 0 outside the box.
    fn sample(&self, field: &[f32], p: [f32; 3]) -> f32 {
        let t = [0, 1, 2].map(|a| (p[a] - self.lo[a]) / self.cell_mm - 0.5);
        if (0..3).any(|a| t[a] < -0.5 || t[a] > self.dims[a] as f32 - 0.5) {
            return 0.0;
        }
        let base = t.map(|v| v.floor());
        let f = [0, 1, 2].map(|a| t[a] - base[a]);
        let mut value = 0.0;
        for corner in 0..8 {
            let d = [corner & 1, (corner >> 1) & 1, (corner >> 2) & 1];
            let idx = [0, 1, 2]
                .map(|a| (base[a] as i64 + d[a] as i64).clamp(0, self.dims[a] as i64 - 1) as usize);
            let w: f32 = (0..3)
                .map(|a| if d[a] == 1 { f[a] } else { 1.0 - f[a] })
                .product();
            value += w * field[idx[0] + self.dims[0] * (idx[1] + self.dims[1] * idx[2])];
        }
        value
    }
}

/// Which part of the tumour a voxel is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TumourPart {
    None,
    Oedema,
    /// Non-enhancing tumour core (label 1 with necrosis).
    NonEnhancing,
    Necrosis,
    Enhancing,
}

impl TumourPart {
    /// BraTS 2019-2021 label.
    pub fn label(self) -> u8 {
        match self {
            TumourPart::None => 0,
            TumourPart::Oedema => 2,
            TumourPart::NonEnhancing | TumourPart::Necrosis => 1,
            TumourPart::Enhancing => 4,
        }
    }
}

/// A grown tumour: cell density and oedema on the coarse grid, and the fields that make its
/// borders irregular and its inside heterogeneous.
#[derive(Debug, Clone)]
pub struct Tumour {
    pub style: TumourStyle,
    grid: CoarseGrid,
    density: Vec<f32>,
    oedema: Vec<f32>,
    border: SmoothField,
    gaps: SmoothField,
    pub texture: SmoothField,
    /// Cell density above which the core is necrotic.
    necrosis_level: f32,
    /// How strongly the texture modulates intensities inside the tumour.
    pub texture_amount: f32,
}

/// What the tumour does at one voxel.
#[derive(Debug, Clone, Copy)]
pub struct TumourAt {
    pub part: TumourPart,
    /// How strongly oedema shows in the intensities (fades across the labelled edge).
    pub oedema_weight: f32,
}

impl Tumour {
    /// Grows a tumour of `style` in the tissue given by `tissue_at` (case mm), within the case's
    /// half extent; `rng` draws the irregularity fields.
    pub fn grow(
        rng: &mut SplitMix64,
        style: TumourStyle,
        half_extent_mm: [f32; 3],
        min_cell_mm: f32,
        tissue_at: impl Fn([f32; 3]) -> TissueFractions + Sync,
    ) -> Tumour {
        let cell_mm = min_cell_mm.max(2.0);
        let reach = style.core_radius_mm() * 1.9 + 3.0 * style.oedema_reach_mm + 12.0;
        let centre: [f32; 3] = [0, 1, 2]
            .map(|a| style.seeds.iter().map(|s| s[a]).sum::<f32>() / style.seeds.len() as f32);
        let spread = style
            .seeds
            .iter()
            .map(|s| {
                (0..3)
                    .map(|a| (s[a] - centre[a]).powi(2))
                    .sum::<f32>()
                    .sqrt()
            })
            .fold(0.0, f32::max);
        let lo = [0, 1, 2].map(|a| (centre[a] - reach - spread).max(-half_extent_mm[a]));
        let hi = [0, 1, 2].map(|a| (centre[a] + reach + spread).min(half_extent_mm[a]));
        let grid = CoarseGrid {
            lo,
            cell_mm,
            dims: [0, 1, 2].map(|a| (((hi[a] - lo[a]) / cell_mm).ceil() as usize).max(3)),
        };
        let noise = |rng: &mut SplitMix64, cell: f32| SmoothField::new(rng, lo, hi, cell);
        let proliferation_field = noise(rng, 9.0);
        let border_cell = rng.range(4.0, 8.0);
        let border = noise(rng, border_cell);
        let gap_cell = rng.range(7.0, 14.0);
        let gaps = noise(rng, gap_cell);
        let texture_cell = rng.range(2.5, 7.0);
        let texture = noise(rng, texture_cell);

        // Diffusivity per cell in cells^2 per step (explicit Euler is stable below 1/6).
        let d_white = 0.16;
        let cells: Vec<(f32, f32, f32)> = (0..grid.len())
            .into_par_iter()
            .map(|i| {
                let [nx, ny, _] = grid.dims;
                let p = grid.centre(i % nx, (i / nx) % ny, i / (nx * ny));
                let t = tissue_at(p);
                if t.brain < 0.5 || t.csf > 0.5 {
                    return (0.0, 0.0, 0.0);
                }
                let d = d_white * (t.wm + t.gm / style.white_over_grey);
                let d_oedema = d_white * (t.wm + t.gm / (2.0 * style.white_over_grey));
                let rho =
                    style.proliferation * (1.0 + 0.5 * proliferation_field.at(p)).clamp(0.2, 2.0);
                (d, d_oedema, rho)
            })
            .collect();
        let diffusivity: Vec<f32> = cells.iter().map(|c| c.0).collect();
        let rate: Vec<f32> = cells.iter().map(|c| c.2).collect();

        let mut density = vec![0f32; grid.len()];
        let [nx, ny, nz] = grid.dims;
        for seed in &style.seeds {
            let s = [0, 1, 2].map(|a| ((seed[a] - lo[a]) / cell_mm) as i64);
            for z in s[2] - 1..=s[2] + 1 {
                for y in s[1] - 1..=s[1] + 1 {
                    for x in s[0] - 1..=s[0] + 1 {
                        if x >= 0
                            && y >= 0
                            && z >= 0
                            && (x as usize) < nx
                            && (y as usize) < ny
                            && (z as usize) < nz
                        {
                            let i = x as usize + nx * (y as usize + ny * z as usize);
                            if diffusivity[i] > 0.0 {
                                density[i] = 0.9;
                            }
                        }
                    }
                }
            }
        }
        let target_cells = style.core_ml * 1000.0 / cell_mm.powi(3);
        let mut next = density.clone();
        for step in 0..3000 {
            diffuse(&grid, &density, &diffusivity, &mut next, |i, u| {
                rate[i] * u * (1.0 - u)
            });
            std::mem::swap(&mut density, &mut next);
            if step % 5 == 4 {
                let core = density
                    .iter()
                    .filter(|&&u| u > style.core_threshold)
                    .count();
                if core as f32 >= target_cells {
                    break;
                }
            }
        }

        // Oedema: the core is its source; it spreads (mostly along white matter) and decays.
        let d_oedema: Vec<f32> = cells.iter().map(|c| c.1).collect();
        let reach_cells = style.oedema_reach_mm / cell_mm;
        let decay = d_white / (reach_cells * reach_cells).max(0.25);
        let source: Vec<bool> = density.iter().map(|&u| u > style.core_threshold).collect();
        let mut oedema: Vec<f32> = source.iter().map(|&s| s as u8 as f32).collect();
        let mut next = oedema.clone();
        let steps = ((3.0 / decay) as usize).clamp(20, 600);
        for _ in 0..steps {
            diffuse(&grid, &oedema, &d_oedema, &mut next, |i, e| {
                if source[i] { 1.0 - e } else { -decay * e }
            });
            std::mem::swap(&mut oedema, &mut next);
        }
        let peak = density.iter().copied().fold(0.0, f32::max);
        let necrosis_level =
            style.core_threshold + style.necrosis_fraction * (peak - style.core_threshold);
        Tumour {
            style,
            grid,
            necrosis_level,
            density,
            oedema,
            border,
            gaps,
            texture,
            texture_amount: rng.range(0.04, 0.2),
        }
    }

    /// The tumour at case point `p` with tissue `t` (no tumour in CSF or outside the brain).
    pub fn at(&self, p: [f32; 3], t: &TissueFractions) -> TumourAt {
        let none = TumourAt {
            part: TumourPart::None,
            oedema_weight: 0.0,
        };
        if t.brain < 0.5 || t.csf >= 0.5 {
            return none;
        }
        let u = self.grid.sample(&self.density, p);
        let e = self.grid.sample(&self.oedema, p);
        if u < 0.01 && e < 0.01 {
            return none;
        }
        let s = &self.style;
        let border = self.border.at(p);
        let core = u + 0.07 * border;
        if core > s.core_threshold {
            let part = if s.necrotic && u + 0.025 * border > self.necrosis_level {
                TumourPart::Necrosis
            } else if s.enhancing && self.gaps.at(p) > s.rim_gap_level {
                TumourPart::Enhancing
            } else {
                TumourPart::NonEnhancing
            };
            return TumourAt {
                part,
                oedema_weight: 1.0,
            };
        }
        // Oedema follows white matter and fades out across its labelled edge.
        let score = (e + 0.25 * u) * (0.45 + 0.55 * t.wm / (t.wm + t.gm).max(1e-3)) + 0.03 * border;
        let weight = ((score - 0.5 * s.oedema_threshold) / s.oedema_threshold).clamp(0.0, 1.0);
        TumourAt {
            part: if score > s.oedema_threshold {
                TumourPart::Oedema
            } else {
                TumourPart::None
            },
            oedema_weight: weight,
        }
    }
}

/// One explicit step of d(field)/dt = div(D grad field) + source(i, field) on `grid`, with zero
/// flux through cells of diffusivity 0 (a face conducts at the lower of its two cells' values).
fn diffuse(
    grid: &CoarseGrid,
    field: &[f32],
    diffusivity: &[f32],
    out: &mut [f32],
    source: impl Fn(usize, f32) -> f32 + Sync,
) {
    let [nx, ny, nz] = grid.dims;
    let plane = nx * ny;
    out.par_chunks_mut(plane).enumerate().for_each(|(z, slab)| {
        for y in 0..ny {
            for x in 0..nx {
                let i = x + nx * y + plane * z;
                let d = diffusivity[i];
                if d == 0.0 {
                    slab[x + nx * y] = 0.0;
                    continue;
                }
                let u = field[i];
                let mut flux = 0.0;
                let mut face = |j: usize| {
                    flux += d.min(diffusivity[j]) * (field[j] - u);
                };
                if x > 0 {
                    face(i - 1);
                }
                if x + 1 < nx {
                    face(i + 1);
                }
                if y > 0 {
                    face(i - nx);
                }
                if y + 1 < ny {
                    face(i + nx);
                }
                if z > 0 {
                    face(i - plane);
                }
                if z + 1 < nz {
                    face(i + plane);
                }
                slab[x + nx * y] = (u + flux + source(i, u)).clamp(0.0, 1.0);
            }
        }
    });
}

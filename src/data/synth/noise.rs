//! Smooth random fields: seeded value noise on a coarse lattice with smoothstep interpolation.
//! They give tumours their irregular borders and texture, scanners their bias fields, and
//! brains their elastic deformation.

use crate::util::rng::SplitMix64;

/// A smooth random field over a box in millimetres, roughly unit variance, with features about
/// `cell_mm` apart; constant continuation outside the box.
#[derive(Debug, Clone)]
pub struct SmoothField {
    lattice: [usize; 3],
    origin: [f32; 3],
    cell_mm: f32,
    values: Vec<f32>,
}

impl SmoothField {
    /// A field covering `[lo, hi]` (mm, per axis).
    pub fn new(rng: &mut SplitMix64, lo: [f32; 3], hi: [f32; 3], cell_mm: f32) -> SmoothField {
        let lattice = [0, 1, 2].map(|a| ((hi[a] - lo[a]) / cell_mm).ceil().max(1.0) as usize + 2);
        // Smoothstep interpolation of unit normals has a standard deviation of about 0.6.
        let values = (0..lattice.iter().product())
            .map(|_| rng.normal() * 1.6)
            .collect();
        SmoothField {
            lattice,
            origin: lo,
            cell_mm,
            values,
        }
    }

    /// The field's value at `p` (mm).
    pub fn at(&self, p: [f32; 3]) -> f32 {
        let mut base = [0usize; 3];
        let mut weight = [0f32; 3];
        for a in 0..3 {
            let t =
                ((p[a] - self.origin[a]) / self.cell_mm).clamp(0.0, (self.lattice[a] - 1) as f32);
            let i = (t.floor() as usize).min(self.lattice[a] - 2);
            let f = t - i as f32;
            base[a] = i;
            weight[a] = f * f * (3.0 - 2.0 * f);
        }
        let [nx, ny, _] = self.lattice;
        let at = |x: usize, y: usize, z: usize| self.values[x + nx * (y + ny * z)];
        let [x, y, z] = base;
        let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
        let [wx, wy, wz] = weight;
        let plane = |z: usize| {
            lerp(
                lerp(at(x, y, z), at(x + 1, y, z), wx),
                lerp(at(x, y + 1, z), at(x + 1, y + 1, z), wx),
                wy,
            )
        };
        lerp(plane(z), plane(z + 1), wz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_seeded_and_about_unit_variance() {
        let field = |seed| SmoothField::new(&mut SplitMix64::new(seed), [0.0; 3], [100.0; 3], 10.0);
        let (a, b) = (field(1), field(1));
        let samples: Vec<f32> = (0..1000)
            .map(|i| a.at([(i % 97) as f32, (i % 89) as f32, (i / 10) as f32]))
            .collect();
        assert_eq!(samples[5], b.at([5.0, 5.0, 0.0]));
        let mean = samples.iter().sum::<f32>() / samples.len() as f32;
        let sd = (samples.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 1000.0).sqrt();
        assert!((0.5..1.6).contains(&sd), "sd {sd}");
        // Smooth: neighbours 0.5 mm apart differ far less than the spread.
        let step = (a.at([50.0, 50.0, 50.0]) - a.at([50.5, 50.0, 50.0])).abs();
        assert!(step < 0.3 * sd, "step {step}");
    }
}

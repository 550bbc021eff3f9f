//! Where each voxel of a generated case comes from in the template: a per-case random affine
//! (scale, small rotation, shift), a smooth elastic displacement, and the tumour's mass effect
//! (tissue pushed away from the tumour centre), composed as one backward map.

use super::noise::SmoothField;
use crate::util::rng::SplitMix64;

/// A tumour's push on the surrounding tissue: at distance r from `centre`, tissue comes from
/// distance r (1 - strength exp(-(r / radius)^2)), so the tissue near the centre is spread out
/// (monotonic for strength < 1: nothing folds).
#[derive(Debug, Clone, Copy)]
pub struct MassEffect {
    pub centre: [f32; 3],
    pub radius_mm: f32,
    pub strength: f32,
}

/// The backward map from a case's millimetres (RAS axes, origin at the grid centre) to template
/// voxel coordinates.
#[derive(Debug, Clone)]
pub struct Warp {
    /// Case mm -> template mm (rotation times per-axis scale).
    linear: [[f32; 3]; 3],
    inverse_linear: [[f32; 3]; 3],
    /// Template voxel the case's origin maps to.
    origin: [f32; 3],
    elastic: [SmoothField; 3],
    elastic_mm: f32,
    masses: Vec<MassEffect>,
}

fn mat_vec(m: &[[f32; 3]; 3], v: [f32; 3]) -> [f32; 3] {
    [0, 1, 2].map(|r| m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2])
}

fn mat_mul(a: &[[f32; 3]; 3], b: &[[f32; 3]; 3]) -> [[f32; 3]; 3] {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..3).map(|k| a[r][k] * b[k][c]).sum()))
}

fn transpose(m: &[[f32; 3]; 3]) -> [[f32; 3]; 3] {
    std::array::from_fn(|r| std::array::from_fn(|c| m[c][r]))
}

/// Rotation by Euler angles (radians) about x, then y, then z.
fn rotation(angles: [f32; 3]) -> [[f32; 3]; 3] {
    let [(sx, cx), (sy, cy), (sz, cz)] = angles.map(|a| a.sin_cos());
    let rx = [[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]];
    let ry = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]];
    let rz = [[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]];
    mat_mul(&rz, &mat_mul(&ry, &rx))
}

impl Warp {
    /// A random warp for a case whose grid spans `half_extent_mm` either side of its centre,
    /// centring the template's brain (`brain_centre`, template voxels) with a small shift.
    pub fn random(rng: &mut SplitMix64, half_extent_mm: [f32; 3], brain_centre: [f32; 3]) -> Warp {
        // Head size varies by about +-8 %, shape by a few more per axis.
        let size = rng.range(0.9, 1.06);
        let scale = [0, 1, 2].map(|_| size * rng.range(0.95, 1.05));
        let degrees = [8.0, 6.0, 8.0].map(|d: f32| rng.range(-d, d).to_radians());
        let r = rotation(degrees);
        // Case mm -> template mm: undo the case's scale, then its rotation.
        let inverse_scale = [
            [1.0 / scale[0], 0.0, 0.0],
            [0.0, 1.0 / scale[1], 0.0],
            [0.0, 0.0, 1.0 / scale[2]],
        ];
        let linear = mat_mul(&transpose(&r), &inverse_scale);
        let forward_scale = [
            [scale[0], 0.0, 0.0],
            [0.0, scale[1], 0.0],
            [0.0, 0.0, scale[2]],
        ];
        let inverse_linear = mat_mul(&forward_scale, &r);
        let shift = [
            rng.range(-4.0, 4.0),
            rng.range(-5.0, 5.0),
            rng.range(-2.0, 4.0),
        ];
        let origin = [0, 1, 2].map(|a| brain_centre[a] + shift[a]);
        let lo = half_extent_mm.map(|h| -h - 20.0);
        let hi = half_extent_mm.map(|h| h + 20.0);
        let cell = rng.range(28.0, 45.0);
        let elastic = std::array::from_fn(|_| SmoothField::new(rng, lo, hi, cell));
        Warp {
            linear,
            inverse_linear,
            origin,
            elastic,
            elastic_mm: rng.range(1.5, 4.5),
            masses: Vec::new(),
        }
    }

    /// Adds a tumour's mass effect (applied before the rest of the warp).
    pub fn push(&mut self, mass: MassEffect) {
        self.masses.push(mass);
    }

    /// Template voxel coordinates of case point `p` (mm) before any mass effect.
    fn unpushed(&self, p: [f32; 3]) -> [f32; 3] {
        let d = [0, 1, 2].map(|a| p[a] + self.elastic_mm * self.elastic[a].at(p));
        let t = mat_vec(&self.linear, d);
        [0, 1, 2].map(|a| self.origin[a] + t[a])
    }

    /// Template voxel coordinates of case point `p` (mm).
    pub fn to_template(&self, p: [f32; 3]) -> [f32; 3] {
        let mut p = p;
        for mass in &self.masses {
            let d = [0, 1, 2].map(|a| p[a] - mass.centre[a]);
            let r2 = d.iter().map(|v| v * v).sum::<f32>() / (mass.radius_mm * mass.radius_mm);
            let shrink = 1.0 - mass.strength * (-r2).exp();
            p = [0, 1, 2].map(|a| mass.centre[a] + d[a] * shrink);
        }
        self.unpushed(p)
    }

    /// The case point (mm) whose anatomy comes from template voxel `q`, ignoring mass effects
    /// (fixed-point iteration; the elastic part is small and smooth, so it converges quickly).
    pub fn from_template(&self, q: [f32; 3]) -> [f32; 3] {
        let mut p = mat_vec(
            &self.inverse_linear,
            [0, 1, 2].map(|a| q[a] - self.origin[a]),
        );
        for _ in 0..20 {
            let miss = self.unpushed(p);
            let step = mat_vec(&self.inverse_linear, [0, 1, 2].map(|a| q[a] - miss[a]));
            p = [0, 1, 2].map(|a| p[a] + step[a]);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_finds_the_point_and_mass_effect_keeps_the_centre() {
        let mut rng = SplitMix64::new(9);
        let mut warp = Warp::random(&mut rng, [120.0, 120.0, 77.0], [98.0, 116.0, 80.0]);
        let q = [70.0, 100.0, 90.0];
        let p = warp.from_template(q);
        let back = warp.to_template(p);
        assert!(
            (0..3).all(|a| (back[a] - q[a]).abs() < 0.05),
            "{back:?} vs {q:?}"
        );
        warp.push(MassEffect {
            centre: p,
            radius_mm: 20.0,
            strength: 0.5,
        });
        let still = warp.to_template(p);
        assert!((0..3).all(|a| (still[a] - q[a]).abs() < 0.05));
        // A point 10 mm away now draws tissue from closer to the centre.
        let beside = [p[0] + 10.0, p[1], p[2]];
        let source = warp.to_template(beside);
        let dist = (0..3)
            .map(|a| (source[a] - q[a]).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!(dist < 8.0, "pushed: {dist}");
    }
}

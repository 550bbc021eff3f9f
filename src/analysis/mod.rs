//! Understanding layers (issue 6): representation similarity between layers and models.

pub mod channel_scores;
pub mod cka;
pub mod maps;
pub mod sensitivity;
pub mod similarity;
pub mod stats;

/// The largest |a - b| between two outputs of the same shape; NaN when either side has a NaN
/// anywhere, so a tolerance check fails where `f32::max` would quietly skip it.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |m, d| {
            if m.is_nan() || d.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        })
}

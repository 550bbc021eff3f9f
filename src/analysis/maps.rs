//! What the network computes on one axial slice: a channel group's activation maps and each
//! attention gate's psi map (mean over its channels), upsampled to the case's plane.

use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use crate::data::dataset::PreparedCase;
use crate::data::preprocess::paste_window;
use crate::inference::{brain_window, slice_batch};
use crate::model::Raagr2Net;

/// The attention gates, deepest first (forward order of the decoder).
pub const GATES: [&str; 4] = ["att5", "att4", "att3", "att2"];

/// (gate, its mean psi on the case's plane) per attention gate, deepest first.
pub type GateMaps = Vec<(String, Vec<f32>)>;

/// Maps on the case's axial plane (`nx * ny`, x fastest). Outside the network's window the
/// activations are 0 (what the network sees there) and the gates NaN (no gate there).
#[derive(Debug, Clone, Default)]
pub struct SliceMaps {
    /// One map per channel of the requested group, in channel order.
    pub channels: Vec<Vec<f32>>,
    /// (gate, psi averaged over its channels), deepest gate first.
    pub attention: GateMaps,
}

/// Runs `model` (fold it first for speed) on axial slice `z` of `case` and returns the
/// activation maps of channel group `group` (none when `None`) and, when `attention`, every
/// gate's mean psi. An unknown group is an error naming the groups.
pub fn slice_maps(
    model: &Raagr2Net,
    case: &PreparedCase,
    z: usize,
    group: Option<&str>,
    attention: bool,
    device: &Device,
) -> Result<SliceMaps, String> {
    let z = z.min(case.dims[2].saturating_sub(1));
    let window = brain_window(case);
    let psi_names: Vec<String> = GATES.iter().map(|g| format!("{g}.psi")).collect();
    let mut wanted: Vec<&str> = Vec::new();
    if let Some(group) = group {
        wanted.push(group);
    }
    if attention {
        wanted.extend(psi_names.iter().map(String::as_str));
    }
    let inputs = slice_batch(case, &[z], window, device);
    let (outputs, _) = model.tapped_outputs(inputs, &wanted);
    let mut maps = SliceMaps::default();
    for (name, tensor) in outputs {
        if Some(name.as_str()) == group {
            maps.channels = to_plane(tensor, case.dims, window, 0.0);
        } else if let Some(gate) = name.strip_suffix(".psi") {
            let mean = tensor.mean_dim(1);
            let plane = to_plane(mean, case.dims, window, f32::NAN)
                .pop()
                .unwrap_or_default();
            maps.attention.push((gate.to_string(), plane));
        }
    }
    if let Some(group) = group
        && maps.channels.is_empty()
    {
        return Err(format!("no channel group {group:?} in this model"));
    }
    Ok(maps)
}

/// The range of the finite values of `maps` (`None` when there are none): a shared colour
/// scale for maps that are compared.
pub fn finite_range<'a>(maps: impl IntoIterator<Item = &'a [f32]>) -> Option<(f32, f32)> {
    maps.into_iter()
        .flat_map(|m| m.iter().copied().filter(|v| v.is_finite()))
        .fold(None, |range, v| match range {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// The colour range of one activation map: its minimum (at most 0, so that zero, also
/// outside the window, sits at the ramp's dark end unless values go below) to its maximum.
pub fn activation_range(map: &[f32]) -> (f32, f32) {
    let low = map.iter().fold(0.0f32, |m, v| m.min(*v));
    let high = map.iter().fold(low + 1e-6, |m, v| m.max(*v));
    (low, high)
}

/// A change of psi drawn at full colour in a difference map (pruned - dense).
pub const PSI_DIFFERENCE_LIMIT: f32 = 0.25;

/// `[1, C, h, w]` features at any scale -> C planes of the case (bilinear up to the window,
/// pasted into the plane at the window's place, `outside` elsewhere).
fn to_plane(
    features: Tensor<4>,
    dims: [usize; 3],
    window: crate::data::preprocess::PlaneWindow,
    outside: f32,
) -> Vec<Vec<f32>> {
    let [_, channels, h, w] = features.dims();
    let full = if (h, w) == (window.h, window.w) {
        features
    } else {
        let options = InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(true)
            .with_output_size([window.h, window.w]);
        interpolate(features, options)
    };
    let values: Vec<f32> = full
        .into_data()
        .try_to_vec_as::<f32>()
        .expect("features convert to f32");
    let plane_dims = [dims[0], dims[1], 1];
    values
        .chunks(window.h * window.w)
        .take(channels)
        .map(|channel| {
            let mut plane = vec![outside; dims[0] * dims[1]];
            paste_window(&mut plane, plane_dims, 0, window, channel);
            plane
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_come_per_channel_and_per_gate_on_the_case_plane() {
        let device = crate::backend::cpu_device();
        let dense = crate::defaults::default_checkpoint();
        let model = dense.build(&device).unwrap().folded();
        let case = crate::data::dataset::synthetic_case(10004);
        let z = case.dims[2] / 2;
        let maps = slice_maps(&model, &case, z, Some("enc1.out"), true, &device).unwrap();
        let width = dense
            .config
            .plan
            .groups()
            .into_iter()
            .find(|(n, _)| n == "enc1.out")
            .unwrap()
            .1;
        assert_eq!(maps.channels.len(), width);
        assert!(
            maps.channels
                .iter()
                .all(|m| m.len() == case.dims[0] * case.dims[1])
        );
        assert_eq!(maps.attention.len(), 4);
        for (gate, psi) in &maps.attention {
            // A sigmoid averaged over channels: inside (0, 1) in the window, NaN outside it.
            let inside: Vec<f32> = psi.iter().copied().filter(|v| v.is_finite()).collect();
            assert!(inside.iter().all(|v| *v > 0.0 && *v < 1.0), "{gate}");
            assert!(!inside.is_empty() && inside.len() < psi.len(), "{gate}");
        }
        let err = slice_maps(&model, &case, z, Some("enc9.out"), false, &device).unwrap_err();
        assert!(err.contains("enc9.out"), "{err}");
    }
}

//! Structured (channel) pruning of VGG: each convolution's output channels are one group,
//! ranked by filter L2 norm or by batch-norm |gamma|; removing a channel slices the conv's
//! filter, bias and batch norm, the next conv's input channels, or, after the last conv, the
//! first linear layer's inputs of that channel (one per pooled position). The result is an
//! ordinary, smaller VGG checkpoint.

use anyhow::{Result, bail};
use serde::Serialize;

use super::model::{ClassifierCheckpoint, ClassifierConfig};
use crate::model::{HostMask, HostTensor};
use crate::prune::channels::{slice_axis, top_channels};

/// How a VGG channel's importance is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelCriterion {
    /// L2 norm of the channel's filter.
    L2,
    /// |gamma| of its batch norm (network slimming); needs batch norms.
    BnGamma,
}

/// The kept channel indices of every conv, in order.
pub type KeptChannels = Vec<Vec<usize>>;

/// The channels each conv of `checkpoint` keeps when `ratio` of them goes (at least one stays).
pub fn kept_channels(
    checkpoint: &ClassifierCheckpoint,
    ratio: f64,
    criterion: ChannelCriterion,
) -> Result<KeptChannels> {
    let ClassifierConfig::Vgg(config) = &checkpoint.config else {
        bail!("channel pruning is implemented for VGG only (a DenseNet's concatenations are not)");
    };
    if !(0.0..1.0).contains(&ratio) {
        bail!("channel ratio {ratio} is outside [0, 1)");
    }
    if criterion == ChannelCriterion::BnGamma && !config.batch_norm {
        bail!("bn-gamma needs batch norms; this VGG has none (use l2)");
    }
    let keys = conv_keys(checkpoint);
    let mut kept = Vec::new();
    for (conv, bn) in &keys {
        let scores: Vec<f32> = match criterion {
            ChannelCriterion::L2 => {
                let w = &checkpoint.weights[&format!("{conv}.weight")];
                w.values
                    .chunks(w.values.len() / w.shape[0])
                    .map(|f| f.iter().map(|v| v * v).sum::<f32>().sqrt())
                    .collect()
            }
            ChannelCriterion::BnGamma => {
                let bn = bn.as_ref().expect("checked: batch norms present");
                let gamma = &checkpoint.weights[&format!("{bn}.weight")];
                gamma.values.iter().map(|g| g.abs()).collect()
            }
        };
        let keep = ((scores.len() as f64 * (1.0 - ratio)).round() as usize).clamp(1, scores.len());
        kept.push(top_channels(&scores, keep));
    }
    Ok(kept)
}

/// The `features.N` prefixes of every conv and its batch norm, in order.
fn conv_keys(checkpoint: &ClassifierCheckpoint) -> Vec<(String, Option<String>)> {
    let ClassifierConfig::Vgg(config) = &checkpoint.config else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    let mut index = 0;
    for stage in &config.stages {
        for _ in stage {
            let conv = format!("features.{index}");
            index += 1;
            let bn = config.batch_norm.then(|| {
                index += 1;
                format!("features.{}", index - 1)
            });
            keys.push((conv, bn));
            index += 1; // ReLU
        }
        index += 1; // pool
    }
    keys
}

/// Slices the weight under `key` (and its mask, if any) along `axis`.
fn slice_entry(checkpoint: &mut ClassifierCheckpoint, key: &str, axis: usize, indices: &[usize]) {
    if let Some(t) = checkpoint.weights.get_mut(key) {
        let (values, shape) = slice_axis(&t.values, &t.shape, axis, indices);
        *t = HostTensor::new(shape, values);
    }
    if let Some(m) = checkpoint.masks.get_mut(key) {
        let (keep, shape) = slice_axis(&m.keep, &m.shape, axis, indices);
        *m = HostMask { shape, keep };
    }
}

/// The smaller checkpoint that keeps only `kept` channels of every conv (masks sliced alike).
pub fn remove_channels(
    checkpoint: &ClassifierCheckpoint,
    kept: &KeptChannels,
) -> Result<ClassifierCheckpoint> {
    let ClassifierConfig::Vgg(config) = &checkpoint.config else {
        bail!("channel pruning is implemented for VGG only");
    };
    let keys = conv_keys(checkpoint);
    if kept.len() != keys.len() {
        bail!(
            "{} kept-channel lists for {} convolutions",
            kept.len(),
            keys.len()
        );
    }
    let mut pruned = checkpoint.clone();
    pruned.metadata.clear();
    for (i, ((conv, bn), channels)) in keys.iter().zip(kept).enumerate() {
        slice_entry(&mut pruned, &format!("{conv}.weight"), 0, channels);
        slice_entry(&mut pruned, &format!("{conv}.bias"), 0, channels);
        if let Some(bn) = bn {
            for child in ["weight", "bias", "running_mean", "running_var"] {
                slice_entry(&mut pruned, &format!("{bn}.{child}"), 0, channels);
            }
        }
        match keys.get(i + 1) {
            Some((next, _)) => slice_entry(&mut pruned, &format!("{next}.weight"), 1, channels),
            None => {
                // The classifier reads channel-major features: channel c owns the pooled
                // positions c * s^2 .. (c + 1) * s^2.
                let positions = config.pooled_side * config.pooled_side;
                let inputs: Vec<usize> = channels
                    .iter()
                    .flat_map(|&c| c * positions..(c + 1) * positions)
                    .collect();
                slice_entry(&mut pruned, "classifier.0.weight", 1, &inputs);
            }
        }
    }
    let mut widths = kept.iter().map(Vec::len);
    let mut new_config = config.clone();
    for stage in &mut new_config.stages {
        for width in stage.iter_mut() {
            *width = widths.next().expect("one kept list per conv");
        }
    }
    pruned.config = ClassifierConfig::Vgg(new_config);
    pruned.build(&crate::backend::cpu_device())?;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::model::{Architecture, HeadKind};
    use burn::prelude::*;

    fn tiny_vgg(head: HeadKind) -> ClassifierCheckpoint {
        let config = ClassifierConfig::new(Architecture::Vgg11Bn, head, 5, 16);
        let device = crate::backend::cpu_device();
        device.seed(4);
        ClassifierCheckpoint::from_model(&config, &config.init(&device))
    }

    /// The dense model with every removed channel's batch-norm output forced to zero (beta and
    /// mean zero, gamma zero): what the pruned model must reproduce exactly.
    fn zeroed(dense: &ClassifierCheckpoint, kept: &KeptChannels) -> ClassifierCheckpoint {
        let mut zeroed = dense.clone();
        for ((_, bn), channels) in conv_keys(dense).iter().zip(kept) {
            let bn = bn.as_ref().unwrap();
            for child in ["weight", "bias"] {
                let t = zeroed.weights.get_mut(&format!("{bn}.{child}")).unwrap();
                for (c, v) in t.values.iter_mut().enumerate() {
                    if !channels.contains(&c) {
                        *v = 0.0;
                    }
                }
            }
        }
        zeroed
    }

    #[test]
    fn removing_channels_equals_zeroing_them_in_the_dense_model() {
        for head in [HeadKind::Cifar, HeadKind::Imagenet] {
            let dense = tiny_vgg(head);
            let kept = kept_channels(&dense, 0.5, ChannelCriterion::L2).unwrap();
            let pruned = remove_channels(&dense, &kept).unwrap();
            assert!(pruned.config.parameter_count() < dense.config.parameter_count());
            let device = crate::backend::cpu_device();
            let x =
                Tensor::<4>::random([2, 3, 64, 64], burn::tensor::Distribution::Default, &device);
            let run = |c: &ClassifierCheckpoint| {
                c.build(&device)
                    .unwrap()
                    .forward(x.clone())
                    .into_data()
                    .try_to_vec_as::<f32>()
                    .unwrap()
            };
            let diff = crate::analysis::max_abs_diff(&run(&pruned), &run(&zeroed(&dense, &kept)));
            assert!(diff < 1e-5, "{head:?}: {diff}");
        }
    }

    #[test]
    fn each_conv_keeps_the_rounded_share_and_bn_gamma_needs_batch_norms() {
        let dense = tiny_vgg(HeadKind::Cifar);
        let kept = kept_channels(&dense, 0.75, ChannelCriterion::BnGamma).unwrap();
        // Widths 4, 8, 16, 16, 32, 32, 32, 32 at divisor 16: a quarter of each kept.
        let widths: Vec<usize> = kept.iter().map(Vec::len).collect();
        assert_eq!(widths, vec![1, 2, 4, 4, 8, 8, 8, 8]);
        let config = ClassifierConfig::new(Architecture::Vgg11, HeadKind::Cifar, 5, 16);
        let plain =
            ClassifierCheckpoint::from_model(&config, &config.init(&crate::backend::cpu_device()));
        let err = kept_channels(&plain, 0.5, ChannelCriterion::BnGamma).unwrap_err();
        assert!(err.to_string().contains("bn-gamma"), "{err}");
    }
}

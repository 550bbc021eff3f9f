//! Timings: the first call (compilation, autotune, allocation) apart from the median, min and
//! max of the timed runs after it, and the one interleaved forward-latency comparison of several
//! models that `bench`, the worker's node statistics, `prune`, `sweep`, `study` and the
//! classifier study all use. A leaf: it knows burn and nothing else of this crate; a model is
//! timed through [`TimedForward`].

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

/// The first call's time (kernel compilation, autotune, allocation) and the median, min and max
/// of the timed runs after it, in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    pub first_secs: f64,
    pub median_secs: f64,
    pub min_secs: f64,
    pub max_secs: f64,
    pub runs: usize,
    /// Peak memory while measuring: the process's resident size on the CPU, the allocator's
    /// peak on CUDA (PyTorch); absent where it was not measured (wgpu).
    #[serde(default)]
    pub peak_mem_bytes: Option<u64>,
}

impl Timing {
    /// The timing of a first call and the timed runs after it (at least one).
    pub fn from_samples(first_secs: f64, mut samples: Vec<f64>) -> Timing {
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2.0
        };
        Timing {
            first_secs,
            median_secs: median,
            min_secs: samples[0],
            max_secs: samples[n - 1],
            runs: n,
            peak_mem_bytes: None,
        }
    }
}

/// Runs `f` once (reported apart) and then `runs` times (at least once).
pub fn timed(runs: usize, mut f: impl FnMut()) -> Timing {
    let start = Instant::now();
    f();
    let first = start.elapsed().as_secs_f64();
    let samples = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    Timing::from_samples(first, samples)
}

/// A model whose eval forward [`compare_forward`] can time.
pub trait TimedForward {
    /// Channels of one input image (4 MRI modalities, 3 colours).
    const INPUT_CHANNELS: usize;
    /// One eval forward of `x`, its output read back to the host so that a timing includes all
    /// of the device's work.
    fn forward_read_back(&self, x: Tensor<4>);
}

/// Eval-forward latency of several models on one `batch x channels x height x width` input,
/// measured in one run with the models interleaved (so machine load affects them alike): a
/// first call each, timed apart, then `runs` timed rounds. Pass models as inference runs them
/// (the segmentation network folded).
pub fn compare_forward<M: TimedForward, const N: usize>(
    models: &[&M; N],
    [batch, height, width]: [usize; 3],
    runs: usize,
    device: &Device,
) -> [Timing; N] {
    let shape = [batch.max(1), M::INPUT_CHANNELS, height, width];
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let mut first = [0.0; N];
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(runs));
    for run in 0..=runs {
        for (i, model) in models.iter().enumerate() {
            let start = Instant::now();
            model.forward_read_back(x.clone());
            let secs = start.elapsed().as_secs_f64();
            if run == 0 {
                first[i] = secs;
            } else {
                samples[i].push(secs);
            }
        }
    }
    let mut samples = samples.into_iter();
    std::array::from_fn(|i| Timing::from_samples(first[i], samples.next().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timing_has_the_median_of_its_runs_and_the_first_call_apart() {
        let t = Timing::from_samples(9.0, vec![3.0, 1.0, 2.0, 4.0]);
        assert_eq!(
            (t.first_secs, t.median_secs, t.min_secs, t.max_secs, t.runs),
            (9.0, 2.5, 1.0, 4.0, 4)
        );
        let mut calls = 0;
        assert_eq!(timed(0, || calls += 1).runs, 1);
        assert_eq!(calls, 2);
    }
}

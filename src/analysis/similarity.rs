//! Layer x layer CKA between the layer outputs of one or two models on the same inputs:
//! each output average-pooled to at most 16 x 16 and flattened (channels x positions) per slice,
//! accumulated over minibatches with the unbiased HSIC.

use burn::prelude::*;
use burn::tensor::module::adaptive_avg_pool2d;

use super::cka::{Features, Kernel, MinibatchCka};
use crate::data::dataset::{PreparedCase, SliceDataset, SliceSelection};
use crate::model::Raagr2Net;
use crate::util::batches::epoch_batches;

/// Side of the pooled grid each level output is reduced to before flattening (keeps the
/// feature count per slice in the thousands at every level).
pub const POOLED_SIDE: usize = 16;

/// CKA of every level of model A (rows) against every level of model B (columns).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimilarityMatrix {
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    /// `values[r][c]`.
    pub values: Vec<Vec<f64>>,
    pub slices: usize,
}

/// Per-level features of a batch `[B, 4, H, W]`: (level name, B x p).
pub fn level_features(model: &Raagr2Net, inputs: Tensor<4>) -> Vec<(String, Features)> {
    pooled_features(model.layer_outputs(inputs))
}

/// Named layer outputs `[B, C, H, W]` as CKA features: each average-pooled to at most
/// [`POOLED_SIDE`] on a side and flattened per example (B x p).
pub fn pooled_features(outputs: Vec<(String, Tensor<4>)>) -> Vec<(String, Features)> {
    outputs
        .into_iter()
        .map(|(name, output)| {
            let [b, c, h, w] = output.dims();
            let pooled = adaptive_avg_pool2d(output, [h.min(POOLED_SIDE), w.min(POOLED_SIDE)]);
            let p = c * h.min(POOLED_SIDE) * w.min(POOLED_SIDE);
            let values: Vec<f64> = pooled
                .reshape([b, p])
                .into_data()
                .iter::<f32>()
                .map(f64::from)
                .collect();
            (name, Features::new(b, p, values))
        })
        .collect()
}

/// Layer x layer CKA of `a` against `b` over `batches` (each at least 4 slices).
pub fn similarity(
    a: &Raagr2Net,
    b: &Raagr2Net,
    batches: impl IntoIterator<Item = Tensor<4>>,
    kernel: Kernel,
) -> SimilarityMatrix {
    similarity_of(
        |x| level_features(a, x),
        |x| level_features(b, x),
        batches,
        kernel,
    )
}

/// Layer x layer CKA between the named features two functions extract from the same minibatches
/// (each at least 4 examples): any pair of models, whatever their kind.
pub fn similarity_of(
    features_a: impl Fn(Tensor<4>) -> Vec<(String, Features)>,
    features_b: impl Fn(Tensor<4>) -> Vec<(String, Features)>,
    batches: impl IntoIterator<Item = Tensor<4>>,
    kernel: Kernel,
) -> SimilarityMatrix {
    let mut accumulators: Vec<Vec<MinibatchCka>> = Vec::new();
    let (mut rows, mut columns, mut slices) = (Vec::new(), Vec::new(), 0);
    for inputs in batches {
        slices += inputs.dims()[0];
        let fa = features_a(inputs.clone());
        let fb = features_b(inputs);
        if accumulators.is_empty() {
            rows = fa.iter().map(|(n, _)| n.clone()).collect();
            columns = fb.iter().map(|(n, _)| n.clone()).collect();
            accumulators = vec![vec![MinibatchCka::default(); fb.len()]; fa.len()];
        }
        for (r, (_, x)) in fa.iter().enumerate() {
            for (c, (_, y)) in fb.iter().enumerate() {
                accumulators[r][c].add(x, y, kernel);
            }
        }
    }
    let values = accumulators
        .iter()
        .map(|row| row.iter().map(MinibatchCka::value).collect())
        .collect();
    SimilarityMatrix {
        rows,
        columns,
        values,
        slices,
    }
}

/// The tumour slices CKA compares models on: a seeded order cut into whole minibatches.
pub struct SliceBatches {
    pub set: SliceDataset,
    pub order: Vec<Vec<usize>>,
}

impl SliceBatches {
    /// Up to `slices` tumour slices of `cases` (cropped to `crop`) in minibatches of `batch`
    /// (at least 4: the unbiased HSIC needs 4 examples); an error when not one whole
    /// minibatch exists.
    pub fn tumour_slices(
        cases: &[PreparedCase],
        crop: usize,
        slices: usize,
        batch: usize,
    ) -> anyhow::Result<SliceBatches> {
        if batch < 4 {
            anyhow::bail!("a CKA minibatch needs at least 4 slices, got {batch}");
        }
        let selection = SliceSelection {
            tumour_free_share: 0.0,
            slice_step: 1,
            seed: 0,
        };
        if slices < batch {
            anyhow::bail!("{slices} slices asked for, fewer than one minibatch of {batch}");
        }
        let set = SliceDataset::from_cases(cases, crop, selection)?;
        let whole = slices.min(set.len()) / batch;
        if whole == 0 {
            anyhow::bail!(
                "only {} tumour slices here, fewer than one minibatch of {batch}",
                set.len()
            );
        }
        let mut order = epoch_batches(set.len(), batch, true, 0);
        order.truncate(whole);
        Ok(SliceBatches { set, order })
    }

    /// Slices in all.
    pub fn len(&self) -> usize {
        self.order.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The input tensors, one minibatch at a time.
    pub fn inputs<'a>(&'a self, device: &'a Device) -> impl Iterator<Item = Tensor<4>> + 'a {
        self.order.iter().map(|b| self.set.batch(b, device).0)
    }
}

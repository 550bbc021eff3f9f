//! The worker's answers for the exploration views: opening another dense model, the filter
//! and attention maps (with the models they reuse between requests), and two plan tree nodes'
//! segmentations of one slice.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use super::{MapsRequest, MapsView, PreviewRequest, Response, Worker, preview_plan};
use crate::analysis::maps::{GateMaps, slice_maps};
use crate::backend;
use crate::data::dataset::PreparedCase;
use crate::data::preprocess::paste_window;
use crate::inference::{brain_window, predict_slice};
use crate::model::{Checkpoint, Head, Raagr2Net, load_checkpoint, open_model};
use crate::prune::PrunePlan;

/// Models the views reuse between requests, so that a new slice or group costs forwards only.
#[derive(Default)]
pub struct ModelCache {
    /// The dense model, folded for inference (cleared when another model opens).
    dense: Option<Raagr2Net>,
    /// The dense model's gates on one slice: (slice, maps).
    dense_attention: Option<(usize, GateMaps)>,
    /// The last pruned model the views ran, by its plan and whether it was the fine-tuned one
    /// (which is never reused: a new fine-tune replaces it under the same request).
    pruned: Option<((PrunePlan, bool), Raagr2Net)>,
    /// The last node checkpoint read from disk.
    node: Mutex<Option<(PathBuf, Checkpoint)>>,
}

impl ModelCache {
    /// A plan tree node's saved checkpoint (read once, then kept while it is the one asked for).
    pub fn node_checkpoint(&self, path: &Path) -> Result<Checkpoint, String> {
        let mut slot = self
            .node
            .lock()
            .map_err(|_| "the checkpoint cache is unavailable".to_string())?;
        if let Some((cached, checkpoint)) = slot.as_ref()
            && cached == path
        {
            return Ok(checkpoint.clone());
        }
        let checkpoint = load_checkpoint(path).map_err(|e| e.to_string())?;
        *slot = Some((path.to_path_buf(), checkpoint.clone()));
        Ok(checkpoint)
    }

    /// Forgets every model (another dense model opened).
    pub(super) fn clear(&mut self) {
        self.dense = None;
        self.dense_attention = None;
        self.pruned = None;
    }

    /// Forgets what belongs to the open case (another case opened).
    pub(super) fn forget_case(&mut self) {
        self.dense_attention = None;
    }
}

impl<F: Fn(Response) + Clone + Send + 'static> Worker<F> {
    /// Makes the model at `path` (or the embedded one) the dense model: announced, and the open
    /// case segmented with it again.
    pub(super) fn open_model(&mut self, path: Option<PathBuf>) -> Result<(), String> {
        let checkpoint = match &path {
            // A shipped model's asset path opens the copy compiled in (no file needed).
            Some(p) => match crate::defaults::ShippedModel::at(p) {
                Some(shipped) => shipped.checkpoint(),
                None => {
                    (self.reply)(Response::Status(format!("opening {}", p.display())));
                    open_model(p).map_err(|e| e.to_string())?
                }
            },
            None => crate::defaults::default_checkpoint(),
        };
        if !checkpoint.masks.is_empty() {
            return Err(format!(
                "{}: this model carries unstructured masks (it was pruned by weight); open its \
                 dense original to explore channel pruning",
                path.as_deref()
                    .map_or("model".into(), |p| p.display().to_string())
            ));
        }
        self.dense = checkpoint;
        self.dense_source = path;
        self.cache.clear();
        // The last fine-tuned model was another model's.
        if let Ok(mut tuned) = self.tuned.lock() {
            *tuned = None;
        }
        self.announce_model();
        self.segment_with_dense();
        Ok(())
    }

    /// The filter view's activations and the attention view's gates on the preview's slice.
    pub(super) fn maps(&mut self, request: &MapsRequest) -> Result<(), String> {
        let Some(case) = self.case.clone() else {
            return Ok(());
        };
        let started = Instant::now();
        let device = backend::cpu_device();
        let z = request
            .preview
            .slice_idx
            .min(case.dims[2].saturating_sub(1));
        if self.cache.dense.is_none() {
            let model = self.dense.build(&device).map_err(|e| e.to_string())?;
            self.cache.dense = Some(model.folded());
        }
        let dense = self.cache.dense.as_ref().expect("built above");
        let attention_cached = self
            .cache
            .dense_attention
            .as_ref()
            .is_some_and(|(slice, _)| *slice == z);
        let dense_attention = request.attention && !attention_cached;
        let group = request.group.as_deref();
        let mut channels = Vec::new();
        if group.is_some() || dense_attention {
            let maps = slice_maps(dense, &case, z, group, dense_attention, &device)?;
            channels = maps.channels;
            if dense_attention {
                self.cache.dense_attention = Some((z, maps.attention));
            }
        }
        let (attention_dense, attention_pruned) = if request.attention {
            let pruned = self.pruned_model(&request.preview)?;
            let pruned_maps = slice_maps(pruned, &case, z, None, true, &device)?.attention;
            let dense_maps = self
                .cache
                .dense_attention
                .as_ref()
                .map(|(_, maps)| maps.clone())
                .unwrap_or_default();
            (dense_maps, pruned_maps)
        } else {
            (Vec::new(), Vec::new())
        };
        (self.reply)(Response::Maps(MapsView {
            id: request.id,
            slice_idx: z,
            group: request.group.clone(),
            channels,
            attention_dense,
            attention_pruned,
            millis: started.elapsed().as_secs_f64() * 1e3,
        }));
        Ok(())
    }

    /// The model of `request`, folded, from the cache when the plan is the last one asked for.
    fn pruned_model(&mut self, request: &PreviewRequest) -> Result<&Raagr2Net, String> {
        let key = (preview_plan(&request.plan), request.fine_tuned);
        let cached = !request.fine_tuned
            && self
                .cache
                .pruned
                .as_ref()
                .is_some_and(|(cached, _)| *cached == key);
        if !cached {
            let checkpoint = self.model_for(request)?;
            let model = checkpoint
                .build(&backend::cpu_device())
                .map_err(|e| e.to_string())?;
            self.cache.pruned = Some((key, model.folded()));
        }
        Ok(&self.cache.pruned.as_ref().expect("set above").1)
    }

    /// Two nodes' segmentations of the slice of `a`.
    pub(super) fn compare_slices(
        &self,
        id: u64,
        a: &PreviewRequest,
        b: &PreviewRequest,
    ) -> Result<(), String> {
        let Some(case) = &self.case else {
            return Err("open a case first".into());
        };
        let z = a.slice_idx.min(case.dims[2].saturating_sub(1));
        let segment = |request: &PreviewRequest| -> Result<Vec<u8>, String> {
            let checkpoint = self.model_for(request)?;
            let model = checkpoint
                .build(&backend::cpu_device())
                .map_err(|e| e.to_string())?;
            Ok(slice_codes(&model, checkpoint.config.head, case, z).0)
        };
        let (codes_a, codes_b) = (segment(a)?, segment(b)?);
        (self.reply)(Response::Comparison {
            id,
            slice_idx: z,
            a: codes_a,
            b: codes_b,
        });
        Ok(())
    }
}

/// Sub-region codes of axial slice `z` on the case's plane (x * y), and the forward's time in
/// milliseconds (the model folded before the clock starts).
pub(super) fn slice_codes(
    model: &Raagr2Net,
    head: Head,
    case: &PreparedCase,
    z: usize,
) -> (Vec<u8>, f64) {
    let device = backend::cpu_device();
    let folded = model.folded();
    let started = Instant::now();
    let window = brain_window(case);
    let slice = predict_slice(&folded, head, case, z, window, 0.5, &device);
    let forward_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut plane = vec![0u8; case.dims[0] * case.dims[1]];
    paste_window(
        &mut plane,
        [case.dims[0], case.dims[1], 1],
        0,
        window,
        &slice,
    );
    (plane, forward_ms)
}

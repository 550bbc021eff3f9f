//! The app's background worker: owns the models and the open case, answers the UI's requests
//! over crossbeam channels (latest preview request wins) and wakes the UI after every message.
//! Only plain data (numbers, strings, voxel arrays) crosses to the UI.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::backend;
use crate::data::dataset::{CaseSource, PreparedCase, list_cases};
use crate::data::preprocess::paste_axial_slice;
use crate::defaults;
use crate::inference::{InferenceOptions, padded_size, predict_regions, predict_slice};
use crate::metrics::{Region, overlap};
use crate::model::Checkpoint;
use crate::model::summary::summarize;
use crate::prune::{
    ChannelGraph, PruneMethod, Ratios, UnstructuredMethod, channel_importance, prune_checkpoint,
};

/// What the UI asks for.
#[derive(Debug, Clone)]
pub enum Request {
    /// The embedded default case (synthetic, generated in memory).
    OpenDefault,
    /// A BraTS case folder, or a file inside one.
    OpenPath(PathBuf),
    /// Prune the dense model and segment axial slice `slice_idx` with the result.
    Preview(PreviewRequest),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PreviewRequest {
    /// Increases with every request; results carry it so stale ones can be dropped.
    pub id: u64,
    pub method: PruneMethod,
    /// Per channel group (structured methods) in [`ModelView::groups`] order.
    pub group_ratios: Vec<f64>,
    /// When set, one ratio for the whole model instead of `group_ratios`.
    pub global_ratio: Option<f64>,
    pub slice_idx: usize,
}

/// A case as the viewer needs it.
#[derive(Debug, Clone)]
pub struct CaseView {
    pub id: String,
    /// x, y, z voxel counts (x fastest in the arrays).
    pub dims: [usize; 3],
    pub spacing_mm: [f32; 3],
    /// T1, T1ce, T2, FLAIR, z-scored inside the brain.
    pub modalities: [Vec<f32>; 4],
    /// Sub-region codes 0 background, 1 NCR/NET, 2 ED, 3 ET, when a segmentation exists.
    pub truth: Option<Vec<u8>>,
}

/// The dense model's prunable structure and size.
#[derive(Debug, Clone)]
pub struct ModelView {
    pub description: String,
    /// (name, channels, mean filter-L2 importance per channel).
    pub groups: Vec<GroupView>,
    pub params: usize,
    pub macs: u64,
}

#[derive(Debug, Clone)]
pub struct GroupView {
    pub name: String,
    pub channels: usize,
    pub importance: Vec<f32>,
}

/// The result of one preview.
#[derive(Debug, Clone)]
pub struct PreviewResult {
    pub id: u64,
    pub slice_idx: usize,
    /// Sub-region codes of the axial slice (dims x * y).
    pub codes: Vec<u8>,
    pub params: usize,
    pub nonzero_params: usize,
    pub macs: u64,
    /// Channels kept per group (same order as the model's groups).
    pub kept: Vec<usize>,
    pub prune_ms: f64,
    pub forward_ms: f64,
}

/// What the worker tells the UI.
#[derive(Debug, Clone)]
pub enum Response {
    Status(String),
    ModelReady(ModelView),
    CaseLoaded(CaseView),
    /// The dense model's segmentation of the whole open case (codes, case voxel order).
    DensePrediction {
        case_id: String,
        codes: Vec<u8>,
    },
    Preview(PreviewResult),
    /// A request failed; the message names what and why.
    Error(String),
}

/// The UI's end of the worker.
pub struct WorkerHandle {
    pub requests: Sender<Request>,
    pub responses: Receiver<Response>,
    _thread: JoinHandle<()>,
}

/// Starts the worker on the embedded default model; `wake` is called after every response.
pub fn spawn(wake: impl Fn() + Send + 'static) -> WorkerHandle {
    let (request_tx, request_rx) = unbounded();
    let (response_tx, response_rx) = unbounded();
    let thread = std::thread::Builder::new()
        .name("raagr2-worker".into())
        .spawn(move || {
            let reply = move |r: Response| {
                let _ = response_tx.send(r);
                wake();
            };
            Worker::new(reply).serve(request_rx);
        })
        .expect("spawning the worker thread");
    WorkerHandle {
        requests: request_tx,
        responses: response_rx,
        _thread: thread,
    }
}

struct Worker<F: Fn(Response)> {
    reply: F,
    dense: Checkpoint,
    case: Option<PreparedCase>,
}

impl<F: Fn(Response)> Worker<F> {
    fn new(reply: F) -> Worker<F> {
        let dense = defaults::default_checkpoint();
        Worker {
            reply,
            dense,
            case: None,
        }
    }

    fn serve(mut self, requests: Receiver<Request>) {
        self.announce_model();
        while let Ok(first) = requests.recv() {
            // Of the queued previews only the newest matters; other requests run in order.
            let mut queue = vec![first];
            queue.extend(requests.try_iter());
            let newest_preview = queue.iter().rposition(|r| matches!(r, Request::Preview(_)));
            for (i, request) in queue.into_iter().enumerate() {
                if matches!(request, Request::Preview(_)) && Some(i) != newest_preview {
                    continue;
                }
                self.handle_guarded(request);
            }
        }
    }

    /// Runs one request; a panic inside it is reported as an error instead of ending the worker.
    fn handle_guarded(&mut self, request: Request) {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.handle(request)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(message)) => (self.reply)(Response::Error(message)),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown cause".into());
                (self.reply)(Response::Error(format!("the worker hit a bug: {what}")));
            }
        }
    }

    fn handle(&mut self, request: Request) -> Result<(), String> {
        match request {
            Request::OpenDefault => {
                self.open(defaults::default_case());
                Ok(())
            }
            Request::OpenPath(path) => {
                (self.reply)(Response::Status(format!("opening {}", path.display())));
                let case = load_case_at(&path)?;
                self.open(case);
                Ok(())
            }
            Request::Preview(preview) => self.preview(&preview),
        }
    }

    fn announce_model(&self) {
        let device = backend::cpu_device();
        let graph = ChannelGraph::of(&self.dense.config);
        let importance = channel_importance(
            crate::prune::StructuredMethod::L2,
            &graph,
            &self.dense.weights,
        )
        .unwrap_or_default();
        let groups = graph
            .groups
            .iter()
            .enumerate()
            .map(|(g, (name, channels))| GroupView {
                name: name.clone(),
                channels: *channels,
                importance: importance.get(g).cloned().unwrap_or_default(),
            })
            .collect();
        let (params, macs) = match self.dense.build(&device) {
            Ok(model) => summarize(&self.dense.config, &model, 192, 192)
                .map(|s| (s.params, s.macs))
                .unwrap_or((0, 0)),
            Err(_) => (0, 0),
        };
        (self.reply)(Response::ModelReady(ModelView {
            description: self.dense.config.describe(),
            groups,
            params,
            macs,
        }));
    }

    fn open(&mut self, case: PreparedCase) {
        (self.reply)(Response::CaseLoaded(CaseView {
            id: case.id.clone(),
            dims: case.dims,
            spacing_mm: case.spacing_mm,
            modalities: case.modalities.clone(),
            truth: case.regions.clone(),
        }));
        (self.reply)(Response::Status(format!(
            "segmenting {} with the dense model",
            case.id
        )));
        let device = backend::cpu_device();
        if let Ok(model) = self.dense.build(&device) {
            let options = InferenceOptions::default();
            let codes = predict_regions(
                &model,
                self.dense.config.head,
                &case,
                options,
                &device,
                |_, _| {},
            );
            (self.reply)(Response::DensePrediction {
                case_id: case.id.clone(),
                codes,
            });
            (self.reply)(Response::Status(format!("{} ready", case.id)));
        }
        self.case = Some(case);
    }

    fn preview(&mut self, request: &PreviewRequest) -> Result<(), String> {
        let Some(case) = &self.case else {
            return Ok(());
        };
        let ratios = match (request.global_ratio, request.method) {
            (Some(r), PruneMethod::Structured(_)) => Ratios::Global(r),
            (Some(r), PruneMethod::Unstructured(_)) => Ratios::Uniform(r),
            (None, PruneMethod::Structured(_)) => Ratios::PerGroup(request.group_ratios.clone()),
            (None, PruneMethod::Unstructured(_)) => {
                let mean = request.group_ratios.iter().sum::<f64>()
                    / request.group_ratios.len().max(1) as f64;
                Ratios::Uniform(mean)
            }
        };
        // SNIP needs a batch of training data; the live preview ranks by magnitude instead.
        let method = match request.method {
            PruneMethod::Unstructured(UnstructuredMethod::Snip) => {
                PruneMethod::Unstructured(UnstructuredMethod::L1Global)
            }
            other => other,
        };
        let started = Instant::now();
        let pruned =
            prune_checkpoint(&self.dense, method, &ratios, None).map_err(|e| e.to_string())?;
        let prune_ms = started.elapsed().as_secs_f64() * 1e3;
        let device = backend::cpu_device();
        let model = pruned.build(&device).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let z = request.slice_idx.min(case.dims[2].saturating_sub(1));
        let size = padded_size(case.dims);
        let square = predict_slice(&model, pruned.config.head, case, z, 0.5, &device);
        let forward_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut plane = vec![0u8; case.dims[0] * case.dims[1]];
        let plane_dims = [case.dims[0], case.dims[1], 1];
        paste_axial_slice(&mut plane, plane_dims, 0, size, &square);
        let macs = summarize(&pruned.config, &model, 192, 192)
            .map_err(|e| e.to_string())?
            .macs;
        let (params, nonzero_params) = crate::prune::schedule::parameter_counts(&pruned);
        (self.reply)(Response::Preview(PreviewResult {
            id: request.id,
            slice_idx: z,
            codes: plane,
            params,
            nonzero_params,
            macs,
            kept: pruned
                .config
                .plan
                .groups()
                .into_iter()
                .map(|(_, w)| w)
                .collect(),
            prune_ms,
            forward_ms,
        }));
        Ok(())
    }
}

/// A BraTS case folder, or the folder of a file inside one.
fn load_case_at(path: &Path) -> Result<PreparedCase, String> {
    let folder = if path.is_file() {
        path.parent().unwrap_or(path)
    } else {
        path
    };
    let sources = list_cases(folder).map_err(|e| e.to_string())?;
    let source: &CaseSource = sources.first().ok_or_else(|| {
        format!(
            "{}: not a BraTS case folder (expected the four modalities and optionally a \
             segmentation, e.g. <case>_t1.nii.gz ... <case>_seg.nii.gz)",
            folder.display()
        )
    })?;
    source.load(None).map_err(|e| e.to_string())
}

/// Dice of `predicted` against `truth` for WT, TC and ET over one slice or volume of codes.
pub fn region_dice(predicted: &[u8], truth: &[u8]) -> [f64; 3] {
    [Region::Wt, Region::Tc, Region::Et].map(|region| overlap(predicted, truth, region).dice)
}

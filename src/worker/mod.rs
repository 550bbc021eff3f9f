//! The app's background worker: owns the models and the open case, answers the UI's requests
//! over crossbeam channels (latest preview request wins) and wakes the UI after every message.
//! Only plain data (numbers, strings, voxel arrays) crosses to the UI.

pub mod classify;
mod job_slot;
mod jobs;
pub mod maps;
mod protocol;

pub use protocol::*;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Instant;

use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::backend;
use crate::clinical_report::{CaseReport, ReportModel};
use crate::data::brats::load_case;
use crate::data::dataset::PreparedCase;
use crate::data::nifti_io::{write_label_map, write_volume};
use crate::data::synth::synthetic_header;
use crate::defaults;
use crate::export::write_model;
use crate::inference::{
    InferenceOptions, labels_from_regions, predict_regions, predict_regions_until, segment_on_cpu,
};
pub use crate::metrics::region_dice;
use crate::model::Checkpoint;
use crate::model::summary::summarize;
use crate::prune::schedule::parameter_counts;
use crate::prune::sweep::{SweepPoint, to_csv, write_sweep_plot};
use crate::prune::{
    ChannelGraph, PruneMethod, PrunePlan, StructuredMethod, UnstructuredMethod, channel_importance,
};

/// The UI's end of the worker.
pub struct WorkerHandle {
    pub requests: Sender<Request>,
    pub responses: Receiver<Response>,
    _thread: JoinHandle<()>,
}

/// Starts the worker on the embedded default model; `wake` is called after every response.
pub fn spawn(wake: impl Fn() + Send + Sync + 'static) -> WorkerHandle {
    let (request_tx, request_rx) = unbounded();
    let (response_tx, response_rx) = unbounded();
    let thread = std::thread::Builder::new()
        .name("raagr2-worker".into())
        .spawn(move || {
            // Shared (not copied) so background jobs can reply through clones of it.
            let wake = Arc::new(wake);
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

struct Worker<F: Fn(Response) + Clone + Send + 'static> {
    reply: F,
    dense: Checkpoint,
    /// Where the dense model came from (`None`: the embedded default).
    dense_source: Option<PathBuf>,
    /// Models the views reuse between requests (folded dense model, last pruned model, last
    /// loaded node checkpoint).
    cache: maps::ModelCache,
    case: Option<PreparedCase>,
    /// The folder the open case came from (`None` for the embedded default).
    case_folder: Option<PathBuf>,
    /// The background job, if one was started: its cancel token and whether it has ended.
    job: job_slot::JobSlot,
    /// The last fine-tuned model, written by the fine-tune job.
    tuned: Arc<Mutex<Option<Checkpoint>>>,
    /// The dense model's segmentation of the open case (sub-region codes).
    dense_codes: Option<Vec<u8>>,
    /// The preview whose model's whole-case segmentation was sent last.
    scored: Option<PreviewRequest>,
    /// Whole cases are segmented on the model's 1 mm grid.
    resample: bool,
}

impl<F: Fn(Response) + Clone + Send + 'static> Worker<F> {
    fn new(reply: F) -> Worker<F> {
        let dense = defaults::default_checkpoint();
        Worker {
            reply,
            dense,
            dense_source: None,
            cache: maps::ModelCache::default(),
            case: None,
            case_folder: None,
            job: job_slot::JobSlot::default(),
            tuned: Arc::new(Mutex::new(None)),
            dense_codes: None,
            scored: None,
            resample: false,
        }
    }

    fn serve(mut self, requests: Receiver<Request>) {
        self.announce_model();
        // The newest preview whose whole-case Dice is not yet sent.
        let mut unscored: Option<PreviewRequest> = None;
        while let Ok(first) = requests.recv() {
            // Of the queued previews only the newest matters; other requests run in order.
            let mut queue = vec![first];
            queue.extend(requests.try_iter());
            let newest_preview = queue.iter().rposition(|r| matches!(r, Request::Preview(_)));
            for (i, request) in queue.into_iter().enumerate() {
                if let Request::Preview(preview) = &request {
                    if Some(i) != newest_preview {
                        continue;
                    }
                    // Another slice of the model already scored needs no new whole case.
                    if !self.scored.as_ref().is_some_and(|s| s.same_model(preview)) {
                        unscored = Some(preview.clone());
                        self.scored = None;
                    }
                }
                self.handle_guarded(request);
            }
            // With nothing else waiting, score the previewed model on the whole case; any new
            // request interrupts it between slices, and it starts again once that is answered.
            if let Some(preview) = &unscored {
                match catch_unwind(AssertUnwindSafe(|| self.case_dice(preview, &requests))) {
                    Ok(Ok(false)) => {}
                    Ok(Ok(true)) => self.scored = unscored.take(),
                    Ok(Err(message)) => {
                        unscored = None;
                        (self.reply)(Response::Error(message));
                    }
                    Err(_) => unscored = None,
                }
            }
        }
    }

    /// Segments the whole open case with the previewed model (as `eval` does), giving up as
    /// soon as another request arrives; sends the segmentation, its Dice (with a ground truth)
    /// and the case's findings when it completes. Returns whether it is done (scored, or
    /// nothing to score).
    fn case_dice(
        &self,
        request: &PreviewRequest,
        requests: &Receiver<Request>,
    ) -> Result<bool, String> {
        let Some(case) = &self.case else {
            return Ok(true);
        };
        let checkpoint = self.model_for(request)?;
        let device = backend::cpu_device();
        let model = request
            .precision
            .simulate(&checkpoint.build(&device).map_err(|e| e.to_string())?);
        let head = checkpoint.config.head;
        // Small batches, so that a new request is noticed within a few slices.
        let options = InferenceOptions {
            batch: 2,
            ..self.inference_options()
        };
        let stop = || !requests.is_empty();
        if let Some(codes) =
            predict_regions_until(&model, head, case, options, &device, |_, _| {}, stop)
        {
            let findings = FindingsView::of(case, self.dense_codes.as_deref(), Some(&codes));
            (self.reply)(Response::PreviewWholeCase {
                request: Box::new(request.clone()),
                dice: case
                    .regions
                    .as_ref()
                    .map(|truth| region_dice(&codes, truth)),
                codes,
                findings: Box::new(findings),
            });
            return Ok(true);
        }
        Ok(false)
    }

    /// Runs one request; a panic inside it is reported as an error instead of ending the worker.
    fn handle_guarded(&mut self, request: Request) {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.handle(request)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(message)) => (self.reply)(Response::Error(message)),
            Err(panic) => (self.reply)(Response::Error(format!(
                "the worker hit a bug: {}",
                panic_text(panic.as_ref())
            ))),
        }
    }

    fn handle(&mut self, request: Request) -> Result<(), String> {
        match request {
            Request::OpenDefault => {
                (self.reply)(Response::Status(
                    "opening the default case (the first start generates it: a few seconds)".into(),
                ));
                self.open(defaults::default_case());
                self.case_folder = None;
                Ok(())
            }
            Request::OpenPath(path) => {
                (self.reply)(Response::Status(format!("opening {}", path.display())));
                let (case, folder) = crate::data::dataset::open_case(&path)?;
                self.open(case);
                self.case_folder = Some(folder);
                Ok(())
            }
            Request::OpenModel(path) => self.open_model(path),
            Request::SetResample(resample) => {
                if resample != self.resample {
                    self.resample = resample;
                    self.segment_with_dense();
                }
                Ok(())
            }
            Request::OpenStudy(path) => {
                let file =
                    crate::prune::study::StudyFile::read(&path).map_err(|e| format!("{e:#}"))?;
                (self.reply)(Response::StudyOpened {
                    path,
                    file: Box::new(file),
                });
                Ok(())
            }
            Request::Maps(request) => self.maps(&request),
            Request::CompareSlices { id, a, b } => self.compare_slices(id, &a, &b),
            Request::StartNodeStats(nodes) => self.refused_if_err(|w| w.start_node_stats(nodes)),
            Request::StartChannelScores { group, slice_idx } => {
                self.refused_if_err(|w| w.start_channel_scores(group, slice_idx))
            }
            Request::ExportPrediction { preview, path } => self.export_prediction(preview, &path),
            Request::ExportReport { preview, path } => self.export_report(&preview, &path),
            Request::ExportPlan { plan, path } => {
                plan.write(&path).map_err(|e| e.to_string())?;
                (self.reply)(Response::Saved(path));
                Ok(())
            }
            Request::ExportSweep { points, path } => {
                export_sweep(&points, &path)?;
                (self.reply)(Response::Saved(path));
                Ok(())
            }
            Request::Preview(preview) => self.preview(&preview),
            Request::StartSweep { methods, ratios } => {
                self.refused_if_err(|w| w.start_sweep(methods, ratios))
            }
            Request::StartFineTune(request) => self.refused_if_err(|w| w.start_fine_tune(request)),
            Request::StartAutoPrune(request) => {
                self.refused_if_err(|w| w.start_auto_prune(request))
            }
            Request::StartSensitivity { method, ratios } => {
                self.refused_if_err(|w| w.start_sensitivity(method, ratios))
            }
            Request::StartCka { a, b } => self.refused_if_err(|w| w.start_cka(a, b)),
            Request::ProbeGpu => {
                // Opening an adapter can take seconds; it must not hold up previews.
                let reply = self.reply.clone();
                std::thread::spawn(move || {
                    // A driver that panics while opening must still get the UI an answer.
                    let found = catch_unwind(backend::probe_gpu).unwrap_or_else(|panic| {
                        Err(format!(
                            "opening the GPU adapter failed: {}",
                            panic_text(panic.as_ref())
                        ))
                    });
                    reply(Response::GpuProbe(found));
                });
                Ok(())
            }
            Request::CancelJob => {
                self.job.cancel();
                Ok(())
            }
            Request::ExportModel {
                preview,
                fine_tuned,
                path,
                format,
                precision,
            } => {
                let request = PreviewRequest {
                    fine_tuned,
                    precision: crate::precision::Precision::Fp32,
                    ..preview
                };
                let model = self.model_for(&request)?;
                write_model(&path, &model, format, precision)
                    .map_err(|e| format!("{}: {e:#}", path.display()))?;
                (self.reply)(Response::Saved(path));
                Ok(())
            }
        }
    }

    /// The checkpoint a preview request describes: the fine-tuned one, or the dense model
    /// pruned by its method and ratios.
    fn model_for(&self, request: &PreviewRequest) -> Result<Checkpoint, String> {
        if request.fine_tuned {
            return self
                .tuned
                .lock()
                .map_err(|_| "the fine-tuned model is unavailable".to_string())?
                .clone()
                .ok_or_else(|| "no fine-tuned model yet: run a fine-tune first".to_string());
        }
        if let Some(path) = &request.plan.checkpoint {
            return self.cache.node_checkpoint(path);
        }
        preview_plan(&request.plan)
            .apply(&self.dense, None)
            .map_err(|e| e.to_string())
    }

    fn export_prediction(
        &self,
        preview: Option<PreviewRequest>,
        path: &Path,
    ) -> Result<(), String> {
        let case = self.case.as_ref().ok_or("open a case first")?;
        let checkpoint = match &preview {
            Some(request) => self.model_for(request)?,
            None => self.dense.clone(),
        };
        (self.reply)(Response::Status(format!(
            "segmenting {} for export",
            case.id
        )));
        let codes = segment_on_cpu(&checkpoint, case, self.inference_options())
            .map_err(|e| e.to_string())?;
        let labels = labels_from_regions(&codes, case.convention);
        let written = match &self.case_folder {
            // A case from disk: the first modality's header, so the labels overlay the input.
            Some(folder) => load_case(folder, Some(case.convention))
                .and_then(|source| write_label_map(path, &labels, &source.modalities[0])),
            None => {
                let header = synthetic_header(case.dims, case.spacing_mm[0]);
                write_volume(path, case.dims, &labels, &header)
            }
        };
        written.map_err(|e| e.to_string())?;
        (self.reply)(Response::Saved(path.to_path_buf()));
        Ok(())
    }

    /// How whole cases are segmented: on the case's voxels, or resampled to the model's grid.
    fn inference_options(&self) -> InferenceOptions {
        InferenceOptions {
            resample_mm: self
                .resample
                .then_some(crate::data::resample::MODEL_SPACING_MM),
            ..InferenceOptions::default()
        }
    }

    /// Writes the open case's one-page report (truth, dense and the previewed model) as a PNG.
    fn export_report(&self, preview: &PreviewRequest, path: &Path) -> Result<(), String> {
        let case = self.case.as_ref().ok_or("open a case first")?;
        let dense = self
            .dense_codes
            .as_deref()
            .ok_or("the dense model has not segmented the case yet")?;
        (self.reply)(Response::Status(format!(
            "segmenting {} with the pruned model for the report",
            case.id
        )));
        let checkpoint = self.model_for(preview)?;
        let pruned = segment_on_cpu(&checkpoint, case, self.inference_options())
            .map_err(|e| e.to_string())?;
        let name = self.dense_source.as_ref().map_or_else(
            || defaults::DEFAULT_MODEL_NAME.to_string(),
            |p| p.display().to_string(),
        );
        let report = CaseReport {
            case,
            dense,
            dense_model: ReportModel {
                name: name.clone(),
                params: parameter_counts(&self.dense).0,
                plan: "dense".into(),
            },
            pruned: Some((
                &pruned,
                ReportModel {
                    name,
                    params: parameter_counts(&checkpoint).0,
                    plan: model_label(preview),
                },
            )),
        };
        report
            .write_png(path)
            .map_err(|e| format!("{}: {e:#}", path.display()))?;
        (self.reply)(Response::Saved(path.to_path_buf()));
        Ok(())
    }

    fn announce_model(&self) {
        let device = backend::cpu_device();
        let graph = ChannelGraph::of(&self.dense.config);
        let score =
            |method| channel_importance(method, &graph, &self.dense.weights).unwrap_or_default();
        let importance = score(StructuredMethod::L2);
        let gammas = score(StructuredMethod::BnGamma);
        let groups = graph
            .groups
            .iter()
            .enumerate()
            .map(|(g, (name, channels))| GroupView {
                name: name.clone(),
                channels: *channels,
                importance: importance.get(g).cloned().unwrap_or_default(),
                bn_gamma: gammas.get(g).cloned().unwrap_or_default(),
            })
            .collect();
        let (params, macs) = match self.dense.build(&device) {
            Ok(model) => summarize(&self.dense.config, &model, 192, 192)
                .map(|s| (s.params, s.macs))
                .unwrap_or((0, 0)),
            Err(_) => (0, 0),
        };
        let training = crate::train::SegmentationState::from_checkpoint(&self.dense)
            .ok()
            .flatten()
            .map(|state| state.history)
            .unwrap_or_default();
        (self.reply)(Response::ModelReady(ModelView {
            source: self.dense_source.clone(),
            description: self.dense.config.describe(),
            groups,
            params,
            macs,
            training,
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
        self.cache.forget_case();
        self.case = Some(case);
        self.segment_with_dense();
    }

    /// The dense model's segmentation of the whole case, for the viewer, with the case's
    /// volumes and lesions; kept, as the pruned model's whole-case findings compare with it.
    fn segment_with_dense(&mut self) {
        let Some(case) = &self.case else { return };
        (self.reply)(Response::Status(format!(
            "segmenting {} with the dense model",
            case.id
        )));
        let device = backend::cpu_device();
        self.dense_codes = None;
        self.scored = None;
        if let Ok(model) = self.dense.build(&device) {
            let options = self.inference_options();
            let codes = predict_regions(
                &model,
                self.dense.config.head,
                case,
                options,
                &device,
                |_, _| {},
            );
            (self.reply)(Response::DensePrediction {
                case_id: case.id.clone(),
                codes: codes.clone(),
                findings: Box::new(FindingsView::of(case, Some(&codes), None)),
            });
            (self.reply)(Response::Status(format!("{} ready", case.id)));
            self.dense_codes = Some(codes);
        }
    }

    fn preview(&mut self, request: &PreviewRequest) -> Result<(), String> {
        let Some(case) = &self.case else {
            return Ok(());
        };
        let started = Instant::now();
        let pruned = self.model_for(request)?;
        let prune_ms = started.elapsed().as_secs_f64() * 1e3;
        let device = backend::cpu_device();
        let model = pruned.build(&device).map_err(|e| e.to_string())?;
        let z = request.slice_idx.min(case.dims[2].saturating_sub(1));
        let (plane, forward_ms) = maps::slice_codes(&model, pruned.config.head, case, z);
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

/// A short name of the model a preview request describes (`pruned l2`, `fine-tuned`).
fn model_label(request: &PreviewRequest) -> String {
    if request.fine_tuned {
        return "fine-tuned".into();
    }
    match request.plan.global_ratio {
        Some(r) => format!("pruned {} {:.0}%", request.plan.method.key(), r * 100.0),
        None => format!("pruned {}", request.plan.method.key()),
    }
}

/// The plan a preview prunes with: SNIP needs a batch of training data, so the live preview
/// ranks by global magnitude instead.
pub fn preview_plan(plan: &PrunePlan) -> PrunePlan {
    let mut plan = plan.clone();
    if plan.method == PruneMethod::Unstructured(UnstructuredMethod::Snip) {
        plan.method = PruneMethod::Unstructured(UnstructuredMethod::L1Global);
    }
    plan
}

/// Sweep points as CSV (the format `sweep` writes and `plot` reads), or as the PNG plot
/// `sweep` draws.
fn export_sweep(points: &[SweepPoint], path: &Path) -> Result<(), String> {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        return crate::atomic::write_bytes(path, to_csv(points).as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    write_sweep_plot(path, points, "open case").map_err(|e| e.to_string())
}

/// A rayon pool for background jobs with one thread fewer than the machine has (at least one),
/// so that compute-heavy jobs leave a core to the UI thread; `None` if it cannot be built.
fn background_pool() -> Option<rayon::ThreadPool> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    rayon::ThreadPoolBuilder::new()
        .num_threads((cores - 1).max(1))
        .thread_name(|i| format!("raagr2-job-{i}"))
        .build()
        .ok()
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown cause".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker whose replies land in a channel.
    fn worker() -> (
        Worker<impl Fn(Response) + Clone + Send + 'static>,
        Receiver<Response>,
    ) {
        let (tx, rx) = unbounded();
        let reply = move |r: Response| {
            let _ = tx.send(r);
        };
        (Worker::new(reply), rx)
    }

    fn next(rx: &Receiver<Response>) -> Response {
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("the worker answers")
    }

    #[test]
    fn a_job_that_cannot_start_is_refused_with_a_reason() {
        let (mut worker, rx) = worker();
        worker.handle_guarded(Request::StartSweep {
            methods: vec![],
            ratios: vec![0.5],
        });
        match next(&rx) {
            Response::JobRefused { reason } => assert!(reason.contains("open a case"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_panicking_job_reports_failed_and_frees_the_job_slot() {
        let (mut worker, rx) = worker();
        let (release, hold) = unbounded::<()>();
        worker
            .spawn_job("first", move |_, _| {
                let _ = hold.recv();
                panic!("index out of bounds in a test job")
            })
            .unwrap();
        assert!(matches!(next(&rx), Response::JobStarted { label } if label == "first"));
        // While the first job runs, a second one is refused.
        let refused = worker.spawn_job("second", |_, _| Ok(false)).unwrap_err();
        assert!(refused.contains("already running"), "{refused}");
        release.send(()).unwrap();
        match next(&rx) {
            Response::JobFailed { reason } => {
                assert!(reason.contains("index out of bounds"), "{reason}")
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        // The slot is free again once the panicked thread is gone.
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while worker.spawn_job("third", |_, _| Ok(false)).is_err() {
            assert!(Instant::now() < deadline, "the job slot stays claimed");
            std::thread::yield_now();
        }
        assert!(matches!(next(&rx), Response::JobStarted { .. }));
        assert!(matches!(
            next(&rx),
            Response::JobFinished { cancelled: false }
        ));
    }
}

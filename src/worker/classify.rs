//! The classifier workspace's background worker: owns the demo classifier and its held-out
//! images, answers live evaluations of a pruned copy (newest request wins), and runs one job at a
//! time on a thread of its own (accuracy-vs-sparsity curves, CKA dense vs pruned) with progress
//! and cancel. Every job request is answered: started, refused (with the reason), finished or
//! failed. Only plain data crosses to the UI.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::analysis::cka::Kernel;
use crate::analysis::similarity::{pooled_features, similarity_of};
use crate::backend;
use crate::classify::ClassifierCheckpoint;
use crate::classify::demo::{DEMO_MODEL_NAME, demo_checkpoint, demo_images};
use crate::classify::images::ImageSet;
use crate::classify::metrics::{Tally, argmax};
use crate::classify::prune::{Scope, magnitude_pruned, weight_layers, weight_sparsity};
use crate::classify::train::{self, logits};
use crate::util::batches::epoch_batches;

use super::job_slot::JobSlot;

/// Held-out images per class the workspace evaluates on.
pub const HELD_OUT_PER_CLASS: usize = 20;
/// The sparsities of the accuracy-vs-sparsity curves.
pub const CURVE_SPARSITIES: [f64; 9] = [0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98];

/// A pruned copy of the dense model: L1 magnitude, `sparsity` of the conv and linear weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrunedSpec {
    pub sparsity: f64,
    pub scope: Scope,
}

/// What the workspace asks of its worker.
#[derive(Debug, Clone)]
pub enum ClassifyRequest {
    /// The embedded demo model and its held-out images.
    OpenDemo,
    /// Evaluate a pruned copy on the held-out images (newest wins).
    Evaluate {
        id: u64,
        spec: PrunedSpec,
    },
    /// Accuracy vs sparsity for global and per-layer L1, no fine-tuning (a job).
    StartCurves,
    /// Layer x layer linear CKA of the dense model (rows) against a pruned copy (a job).
    StartCka(PrunedSpec),
    CancelJob,
}

/// The open model and images, as the UI draws them.
#[derive(Debug, Clone)]
pub struct DemoView {
    pub model_name: String,
    pub architecture: String,
    pub parameters: usize,
    pub images: ImageSet,
    pub class_names: Vec<String>,
    /// Classes that occur among the held-out images (chance is one over this).
    pub classes_present: usize,
    /// The dense model on the held-out images.
    pub dense: EvaluationView,
}

/// One evaluation of a pruned copy.
#[derive(Debug, Clone)]
pub struct EvaluationView {
    pub id: u64,
    pub spec: PrunedSpec,
    /// Measured on the weights.
    pub sparsity: f64,
    pub top1: f64,
    pub balanced_accuracy: f64,
    pub predictions: Vec<u8>,
    pub per_class_recall: Vec<Option<f64>>,
    pub confusion: Vec<Vec<u32>>,
    pub millis: f64,
}

/// One point of an accuracy-vs-sparsity curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    pub scope: Scope,
    pub sparsity: f64,
    pub top1: f64,
}

/// What the worker answers.
#[derive(Debug, Clone)]
pub enum ClassifyResponse {
    Opened(Arc<DemoView>),
    Evaluated(EvaluationView),
    JobStarted(String),
    JobProgress {
        done: usize,
        total: usize,
        what: String,
    },
    JobRefused(String),
    JobFinished(String),
    JobFailed(String),
    CurvePoint(CurvePoint),
    Cka {
        rows: Vec<String>,
        columns: Vec<String>,
        values: Vec<Vec<f64>>,
    },
    Failed(String),
}

/// The UI's end of the classifier worker.
pub struct ClassifyHandle {
    pub requests: Sender<ClassifyRequest>,
    pub responses: Receiver<ClassifyResponse>,
    _thread: JoinHandle<()>,
}

/// Starts the worker; `wake` is called after every response.
pub fn spawn(wake: impl Fn() + Send + Sync + 'static) -> ClassifyHandle {
    let (request_tx, request_rx) = unbounded();
    let (response_tx, response_rx) = unbounded();
    let wake = Arc::new(wake);
    let reply: Reply = Arc::new(move |r| {
        let _ = response_tx.send(r);
        wake();
    });
    let thread = std::thread::Builder::new()
        .name("raagr2-classify".into())
        .spawn(move || ClassifyWorker::new(reply).serve(request_rx))
        .expect("spawning the classifier worker");
    ClassifyHandle {
        requests: request_tx,
        responses: response_rx,
        _thread: thread,
    }
}

type Reply = Arc<dyn Fn(ClassifyResponse) + Send + Sync>;

/// What the open workspace holds.
#[derive(Clone)]
struct Open {
    dense: Arc<ClassifierCheckpoint>,
    images: Arc<ImageSet>,
}

struct ClassifyWorker {
    reply: Reply,
    open: Option<Open>,
    job: JobSlot,
}

impl ClassifyWorker {
    fn new(reply: Reply) -> ClassifyWorker {
        ClassifyWorker {
            reply,
            open: None,
            job: JobSlot::default(),
        }
    }

    fn serve(mut self, requests: Receiver<ClassifyRequest>) {
        while let Ok(first) = requests.recv() {
            // Of the evaluations waiting, only the newest is worth computing.
            let mut batch = vec![first];
            batch.extend(requests.try_iter());
            let newest = batch
                .iter()
                .rposition(|r| matches!(r, ClassifyRequest::Evaluate { .. }));
            for (i, request) in batch.into_iter().enumerate() {
                let stale =
                    matches!(request, ClassifyRequest::Evaluate { .. }) && Some(i) != newest;
                if !stale {
                    self.handle(request);
                }
            }
        }
    }

    fn handle(&mut self, request: ClassifyRequest) {
        let outcome = catch_unwind(AssertUnwindSafe(|| match request {
            ClassifyRequest::OpenDemo => self.open_demo(),
            ClassifyRequest::Evaluate { id, spec } => self.evaluate(id, spec),
            ClassifyRequest::StartCurves => self.start_job("curves", curves),
            ClassifyRequest::StartCka(spec) => self.start_job("CKA", move |open, cancel, reply| {
                cka(open, spec, cancel, reply)
            }),
            ClassifyRequest::CancelJob => {
                self.job.cancel();
                Ok(())
            }
        }));
        let error = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => format!("{e:#}"),
            Err(panic) => panic_message(panic),
        };
        (self.reply)(ClassifyResponse::Failed(error));
    }

    fn open_demo(&mut self) -> anyhow::Result<()> {
        let dense = demo_checkpoint();
        let (images, class_names) = demo_images(HELD_OUT_PER_CLASS);
        let counts = images.class_counts(class_names.len());
        let open = Open {
            dense: Arc::new(dense),
            images: Arc::new(images),
        };
        let dense_spec = PrunedSpec {
            sparsity: 0.0,
            scope: Scope::Global,
        };
        let view = DemoView {
            model_name: DEMO_MODEL_NAME.into(),
            architecture: describe(&open.dense),
            parameters: open.dense.config.parameter_count(),
            classes_present: counts.iter().filter(|c| **c > 0).count(),
            images: (*open.images).clone(),
            class_names,
            dense: evaluation(&open, 0, dense_spec)?,
        };
        self.open = Some(open);
        (self.reply)(ClassifyResponse::Opened(Arc::new(view)));
        Ok(())
    }

    fn opened(&self) -> anyhow::Result<&Open> {
        self.open
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no classifier is open yet"))
    }

    fn evaluate(&mut self, id: u64, spec: PrunedSpec) -> anyhow::Result<()> {
        let view = evaluation(self.opened()?, id, spec)?;
        (self.reply)(ClassifyResponse::Evaluated(view));
        Ok(())
    }

    /// Runs `job` on its own thread unless one is running (then refuses, saying so).
    fn start_job(
        &mut self,
        what: &str,
        job: impl FnOnce(Open, &AtomicBool, &Reply) -> anyhow::Result<()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Some(ticket) = self.job.claim() else {
            (self.reply)(ClassifyResponse::JobRefused(format!(
                "{what}: another job is running (cancel it first)"
            )));
            return Ok(());
        };
        let Some(open) = self.open.clone() else {
            (self.reply)(ClassifyResponse::JobRefused(format!(
                "{what}: no classifier is open"
            )));
            return Ok(());
        };
        let reply = self.reply.clone();
        let what = what.to_string();
        reply(ClassifyResponse::JobStarted(what.clone()));
        std::thread::spawn(move || {
            let cancel = ticket.cancel_token();
            let outcome = catch_unwind(AssertUnwindSafe(|| job(open, cancel.flag(), &reply)));
            let response = match outcome {
                Ok(Ok(())) if cancel.is_cancelled() => {
                    ClassifyResponse::JobFinished(format!("{what} cancelled"))
                }
                Ok(Ok(())) => ClassifyResponse::JobFinished(what),
                Ok(Err(e)) => ClassifyResponse::JobFailed(format!("{what}: {e:#}")),
                Err(panic) => {
                    ClassifyResponse::JobFailed(format!("{what}: {}", panic_message(panic)))
                }
            };
            // The slot is free before the last answer, so the next job can start on reading it.
            ticket.finish();
            reply(response);
        });
        Ok(())
    }
}

/// The pruned copy `spec` describes, evaluated on the open images.
fn evaluation(open: &Open, id: u64, spec: PrunedSpec) -> anyhow::Result<EvaluationView> {
    let start = Instant::now();
    let pruned = magnitude_pruned(&open.dense, spec.sparsity, spec.scope)?;
    let device = backend::cpu_device();
    let model = pruned.build(&device)?;
    let classes = pruned.config.classes();
    let all = logits(&model, &open.images, 100, &device);
    let mut tally = Tally::new(classes);
    tally.add(&all, &open.images.labels);
    let e = tally.finish();
    Ok(EvaluationView {
        id,
        spec,
        sparsity: weight_sparsity(&pruned.weights, &weight_layers(&pruned)),
        top1: e.top1,
        balanced_accuracy: e.balanced_accuracy,
        predictions: all.chunks(classes).map(|row| argmax(row) as u8).collect(),
        per_class_recall: e.per_class_recall,
        confusion: e.confusion,
        millis: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// "VGG11-BN-like, widths 8-64" style description of a classifier config.
fn describe(checkpoint: &ClassifierCheckpoint) -> String {
    match &checkpoint.config {
        crate::classify::ClassifierConfig::Vgg(c) => format!(
            "VGG ({} convs{}), widths {}-{}, {} outputs",
            c.stages.iter().map(Vec::len).sum::<usize>(),
            if c.batch_norm { ", batch norm" } else { "" },
            c.stages.iter().flatten().min().copied().unwrap_or(0),
            c.stages.iter().flatten().max().copied().unwrap_or(0),
            c.classes
        ),
        crate::classify::ClassifierConfig::Densenet(c) => format!(
            "DenseNet (blocks {:?}, growth {}), {} outputs",
            c.blocks, c.growth, c.classes
        ),
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the worker panicked".into())
}

/// Top-1 vs sparsity for global and per-layer L1 (no fine-tuning), one point at a time.
fn curves(open: Open, cancel: &AtomicBool, reply: &Reply) -> anyhow::Result<()> {
    let device = backend::cpu_device();
    let classes = open.dense.config.classes();
    let points: Vec<(Scope, f64)> = [Scope::Global, Scope::PerLayer]
        .into_iter()
        .flat_map(|scope| CURVE_SPARSITIES.map(|s| (scope, s)))
        .collect();
    for (done, &(scope, sparsity)) in points.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
        let pruned = magnitude_pruned(&open.dense, sparsity, scope)?;
        let model = pruned.build(&device)?;
        let top1 = train::evaluate(&model, &open.images, classes, 100, &device).top1;
        reply(ClassifyResponse::CurvePoint(CurvePoint {
            scope,
            sparsity,
            top1,
        }));
        reply(ClassifyResponse::JobProgress {
            done: done + 1,
            total: points.len(),
            what: format!("curves: {scope:?} {:.0} %", sparsity * 100.0),
        });
    }
    Ok(())
}

/// Linear CKA of the dense model's layers (rows) with a pruned copy's, on the held-out images.
fn cka(open: Open, spec: PrunedSpec, cancel: &AtomicBool, reply: &Reply) -> anyhow::Result<()> {
    let device = backend::cpu_device();
    let dense = open.dense.build(&device)?;
    let pruned = magnitude_pruned(&open.dense, spec.sparsity, spec.scope)?.build(&device)?;
    let batches = epoch_batches(open.images.len(), 50, true, 0);
    let total = batches.len();
    let inputs = batches.iter().enumerate().map_while(|(i, indices)| {
        if cancel.load(Ordering::Relaxed) {
            return None;
        }
        reply(ClassifyResponse::JobProgress {
            done: i,
            total,
            what: "CKA".into(),
        });
        Some(train::batch(&open.images, indices, None, &device).0)
    });
    let matrix = similarity_of(
        |x| pooled_features(dense.layer_outputs(x)),
        |x| pooled_features(pruned.layer_outputs(x)),
        inputs,
        Kernel::Linear,
    );
    if !cancel.load(Ordering::Relaxed) {
        reply(ClassifyResponse::Cka {
            rows: matrix.rows,
            columns: matrix.columns,
            values: matrix.values,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_worker_opens_the_demo_evaluates_and_refuses_a_second_job() {
        let worker = spawn(|| {});
        let next = || {
            worker
                .responses
                .recv_timeout(Duration::from_secs(120))
                .expect("an answer")
        };
        worker.requests.send(ClassifyRequest::OpenDemo).unwrap();
        let ClassifyResponse::Opened(demo) = next() else {
            panic!("opened first")
        };
        assert_eq!(demo.images.len(), 10 * HELD_OUT_PER_CLASS);
        let spec = PrunedSpec {
            sparsity: 0.5,
            scope: Scope::PerLayer,
        };
        // Two evaluations queued at once: at most the newest is answered... both may be when the
        // worker takes the first before the second arrives; the last answer is the newest.
        worker
            .requests
            .send(ClassifyRequest::Evaluate { id: 1, spec })
            .unwrap();
        worker
            .requests
            .send(ClassifyRequest::Evaluate { id: 2, spec })
            .unwrap();
        let mut last = 0;
        while last != 2 {
            match next() {
                ClassifyResponse::Evaluated(e) => {
                    assert!((e.sparsity - 0.5).abs() < 0.005);
                    last = e.id;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        worker.requests.send(ClassifyRequest::StartCurves).unwrap();
        worker
            .requests
            .send(ClassifyRequest::StartCka(spec))
            .unwrap();
        let mut refused = false;
        let mut finished = false;
        while !(refused && finished) {
            match next() {
                ClassifyResponse::JobRefused(reason) => {
                    assert!(reason.contains("another job"), "{reason}");
                    refused = true;
                }
                ClassifyResponse::JobFinished(_) => finished = true,
                ClassifyResponse::JobFailed(e) | ClassifyResponse::Failed(e) => panic!("{e}"),
                _ => {}
            }
        }
    }
}

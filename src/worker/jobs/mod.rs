//! The worker's long jobs, each on its own thread so previews stay live: a Dice-vs-sparsity
//! sweep and a per-group sensitivity run on the open case, CKA between two models, and
//! fine-tuning of a pruned model (wgpu or CPU); all cancellable.

mod auto_prune;
mod channel_scores;
mod cka;
mod fine_tune;
mod node_stats;
mod sensitivity;
mod sweep;

pub(super) use auto_prune::auto_prune_job;
pub(super) use channel_scores::channel_scores;
pub(super) use cka::cka;
pub(super) use fine_tune::fine_tune;
pub(super) use node_stats::node_stats;
pub(super) use sensitivity::sensitivity;
pub(super) use sweep::sweep;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{
    AutoPruneRequest, FineTuneRequest, PreviewRequest, Response, Worker, background_pool,
    model_label, panic_text, region_dice,
};
use crate::data::dataset::PreparedCase;
use crate::inference::{InferenceOptions, segment_on_cpu};
use crate::model::Checkpoint;
use crate::prune::PruneMethod;

/// Dice WT/TC/ET of `checkpoint` over the whole of `case` (which has a ground truth).
fn case_dice(checkpoint: &Checkpoint, case: &PreparedCase) -> anyhow::Result<[f64; 3]> {
    let truth = case.regions.as_ref().expect("checked by the caller");
    let codes = segment_on_cpu(checkpoint, case, InferenceOptions::default())?;
    Ok(region_dice(&codes, truth))
}

/// The one background-job slot: claiming it, refusing with a reason, running a job on its own
/// thread, and the request each kind of job starts from.
impl<F: Fn(Response) + Clone + Send + 'static> Worker<F> {
    /// Answers a job request that could not start with `JobRefused` (the UI is waiting for
    /// the job to start, so a plain error would leave it waiting).
    pub(super) fn refused_if_err(
        &mut self,
        start: impl FnOnce(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        if let Err(reason) = start(self) {
            (self.reply)(Response::JobRefused { reason });
        }
        Ok(())
    }

    /// Claims the job slot and runs `job` on its own thread after answering `JobStarted`; the
    /// job ends with `JobFinished` (`Ok(cancelled)`), or `JobFailed` on an error or a panic.
    pub(super) fn spawn_job(
        &mut self,
        label: &str,
        job: impl FnOnce(&AtomicBool, &F) -> Result<bool, String> + Send + 'static,
    ) -> Result<(), String> {
        let ticket = self
            .job
            .claim()
            .ok_or("a background job is already running; cancel it first")?;
        let reply = self.reply.clone();
        reply(Response::JobStarted {
            label: label.to_string(),
        });
        std::thread::spawn(move || {
            let job_reply = reply.clone();
            let cancel = ticket.cancel_token().clone();
            let run = move || job(cancel.flag(), &job_reply);
            // Jobs compute on a pool one thread short of the machine, leaving a core to the UI.
            let outcome = catch_unwind(AssertUnwindSafe(|| match background_pool() {
                Some(pool) => pool.install(run),
                None => run(),
            }));
            // The slot is free before the last answer, so the next job can start on reading it.
            ticket.finish();
            reply(match outcome {
                Ok(Ok(cancelled)) => Response::JobFinished { cancelled },
                Ok(Err(reason)) => Response::JobFailed { reason },
                Err(panic) => Response::JobFailed {
                    reason: format!("the job hit a bug: {}", panic_text(panic.as_ref())),
                },
            });
        });
        Ok(())
    }

    pub(super) fn start_sweep(
        &mut self,
        methods: Vec<PruneMethod>,
        ratios: Vec<f64>,
    ) -> Result<(), String> {
        let case = self.case_with_truth("computing Dice")?;
        let dense = self.dense.clone();
        self.spawn_job("sweep", move |cancel, reply| {
            Ok(sweep(&dense, &case, &methods, &ratios, cancel, reply))
        })
    }

    /// The open case, which must have a ground truth for `what`.
    pub(super) fn case_with_truth(&self, what: &str) -> Result<PreparedCase, String> {
        let case = self.case.clone().ok_or("open a case first")?;
        if case.regions.is_none() {
            return Err(format!("{}: no ground truth for {what}", case.id));
        }
        Ok(case)
    }

    pub(super) fn start_sensitivity(
        &mut self,
        method: PruneMethod,
        ratios: Vec<f64>,
    ) -> Result<(), String> {
        if let PruneMethod::Unstructured(_) = method {
            return Err("sensitivity prunes channel groups: pick L2, BN gamma or group L2".into());
        }
        let case = self.case_with_truth("a sensitivity run")?;
        let dense = self.dense.clone();
        self.spawn_job("sensitivity", move |cancel, reply| {
            sensitivity(&dense, &case, method, &ratios, cancel, reply)
        })
    }

    pub(super) fn start_cka(
        &mut self,
        a: Option<PreviewRequest>,
        b: Option<PreviewRequest>,
    ) -> Result<(), String> {
        let case = self.case_with_truth("choosing tumour slices")?;
        let pick = |request: &Option<PreviewRequest>| match request {
            Some(r) => Ok((self.model_for(r)?, model_label(r))),
            None => Ok::<_, String>((self.dense.clone(), "dense".to_string())),
        };
        let (model_a, model_b) = (pick(&a)?, pick(&b)?);
        self.spawn_job("CKA", move |cancel, reply| {
            cka(&model_a, &model_b, &case, cancel, reply)
                .map_err(|message| format!("CKA: {message}"))?;
            Ok(cancel.load(Ordering::SeqCst))
        })
    }

    pub(super) fn start_node_stats(
        &mut self,
        nodes: Vec<(u64, PreviewRequest)>,
    ) -> Result<(), String> {
        let models = nodes
            .iter()
            .map(|(node, request)| Ok((*node, self.model_for(request)?)))
            .collect::<Result<Vec<_>, String>>()?;
        let case = self.case.clone();
        self.spawn_job("node statistics", move |cancel, reply| {
            node_stats(&models, case.as_ref(), cancel, reply)
        })
    }

    pub(super) fn start_channel_scores(
        &mut self,
        group: String,
        slice_idx: usize,
    ) -> Result<(), String> {
        let case = self.case.clone().ok_or("open a case first")?;
        let dense = self.dense.clone();
        let z = slice_idx.min(case.dims[2].saturating_sub(1));
        self.spawn_job("channel scores", move |cancel, reply| {
            channel_scores(&dense, &case, z, &group, cancel, reply)
        })
    }

    pub(super) fn start_auto_prune(&mut self, request: AutoPruneRequest) -> Result<(), String> {
        let case = self.case_with_truth("a budget search")?;
        let dense = self.dense.clone();
        let tuned = self.tuned.clone();
        self.spawn_job("budget search", move |cancel, reply| {
            auto_prune_job(&dense, &case, &request, cancel, reply, |model| {
                if let Ok(mut slot) = tuned.lock() {
                    *slot = Some(model);
                }
            })
        })
    }

    pub(super) fn start_fine_tune(&mut self, request: FineTuneRequest) -> Result<(), String> {
        let start = self.model_for(&PreviewRequest {
            fine_tuned: false,
            precision: crate::precision::Precision::Fp32,
            ..request.preview.clone()
        })?;
        let tuned = self.tuned.clone();
        self.spawn_job("fine-tune", move |cancel, reply| {
            let (model, device, epochs_done) = fine_tune(start, &request, cancel, reply)
                .map_err(|message| format!("fine-tuning: {message}"))?;
            let cancelled = cancel.load(Ordering::SeqCst);
            if epochs_done > 0
                && let Ok(mut slot) = tuned.lock()
            {
                *slot = Some(model);
            }
            reply(Response::FineTuned {
                device,
                epochs_done,
                cancelled,
            });
            Ok(cancelled)
        })
    }
}

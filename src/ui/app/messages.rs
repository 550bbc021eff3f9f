//! The worker's answers applied to the app's state (the shell's other half): one arm per
//! message kind, and what they make of the plan tree (fine-tuned and searched models kept as
//! nodes, a node restored when its model is ready).

use std::path::PathBuf;
use std::sync::Arc;

use super::LabApp;
use crate::prune::{FineTuneRecord, PrunePlan};
use crate::ui::budget_panel::step_ratios;
use crate::ui::plans::plan_name;
use crate::ui::slices::best_slice;
use crate::ui::{GpuState, TrainPoint};
use crate::worker::{AutoOutcome, AutoStepView, Request, Response, region_dice};

impl LabApp {
    pub(super) fn handle(&mut self, response: Response) {
        self.messages_seen += 1;
        match response {
            Response::Status(text) => self.status = text,
            Response::Error(text) => {
                self.status = "error (see above)".into();
                self.errors.push(text);
            }
            Response::ModelReady(model) => {
                self.pruning = Default::default();
                self.pruning.group_ratios = vec![0.0; model.groups.len()];
                self.model = Some(model);
                self.preview = None;
                self.preview_case_dice = None;
                self.scored_request = None;
                self.maps = None;
                self.filters.reset();
                self.fine_tune.show_tuned = false;
                self.fine_tune.tuned_available = false;
                self.preview_wanted = true;
                self.plans_on_model_ready();
            }
            Response::CaseLoaded(case) => {
                self.slice_idx = best_slice(&case);
                self.case = Some(Arc::new(case));
                self.dense_codes = None;
                self.dense_case_dice = None;
                self.preview = None;
                self.pruned_codes = None;
                self.pruned_whole_case = false;
                self.findings = None;
                self.findings_preview = None;
                self.scored_request = None;
                self.cursor = None;
                self.codes_generation += 1;
                self.preview_wanted = true;
                // Maps and comparisons of the previous case are not this one's.
                self.maps = None;
                self.plans.comparison = None;
            }
            Response::DensePrediction {
                case_id,
                codes,
                findings,
            } => {
                if let Some(case) = self.case.as_ref().filter(|c| c.id == case_id) {
                    self.dense_case_dice = case.truth.as_ref().map(|t| region_dice(&codes, t));
                    self.dense_codes = Some(Arc::new(codes));
                    self.findings = Some(findings);
                    self.findings_preview = None;
                    self.codes_generation += 1;
                }
            }
            Response::Preview(result) => {
                // A newer request is on its way: this result is stale.
                if result.id == self.last_preview_id {
                    let same_model = match (&self.scored_request, &self.last_request) {
                        (Some(scored), Some(last)) => scored.same_model(last),
                        _ => false,
                    };
                    if same_model {
                        // Another slice of the model whose whole case is held: it stays.
                        self.findings_preview = Some(result.id);
                        self.scored_request = self.last_request.clone();
                    } else {
                        self.pruned_codes = self.case.as_ref().map(|case| {
                            let mut volume = vec![0u8; case.dims.iter().product()];
                            let plane = case.dims[0] * case.dims[1];
                            volume[result.slice_idx * plane..][..plane]
                                .copy_from_slice(&result.codes);
                            Arc::new(volume)
                        });
                        self.pruned_whole_case = false;
                        self.scored_request = None;
                        self.codes_generation += 1;
                        self.preview_case_dice = None;
                    }
                    self.preview = Some(result);
                }
            }
            Response::PreviewWholeCase {
                request,
                dice,
                codes,
                findings,
            } => {
                let same_case = self.case.as_ref().is_some_and(|c| {
                    c.id == findings.case_id && c.dims.iter().product::<usize>() == codes.len()
                });
                // An older preview of the model now previewed (another slice) counts too.
                let current = request.id == self.last_preview_id
                    || self
                        .last_request
                        .as_ref()
                        .is_some_and(|last| last.same_model(&request));
                if current && same_case {
                    self.preview_case_dice = dice;
                    self.pruned_codes = Some(Arc::new(codes));
                    self.pruned_whole_case = true;
                    self.codes_generation += 1;
                    self.findings = Some(findings);
                    self.findings_preview = self.last_request.as_ref().map(|r| r.id);
                    self.scored_request = Some(*request);
                }
            }
            Response::JobProgress { done, total, label } => {
                self.job = Some((done, total, label));
            }
            Response::SweepPoint(point) => self.sweep_points.push(point),
            Response::TrainEpoch {
                epoch,
                train_loss,
                val_loss,
                val_dice,
                secs,
            } => self.fine_tune.history.push(TrainPoint {
                epoch,
                train_loss,
                val_loss,
                val_dice,
                secs,
            }),
            Response::GpuProbe(found) => {
                self.fine_tune.gpu = match found {
                    Ok(name) => GpuState::Found(name),
                    Err(reason) => GpuState::Missing(reason),
                };
            }
            Response::FineTuned {
                device,
                epochs_done,
                cancelled,
            } => {
                let how = if cancelled {
                    "cancelled after"
                } else {
                    "finished:"
                };
                let per_epoch = self.fine_tune.history.iter().map(|p| p.secs).sum::<f64>()
                    / self.fine_tune.history.len().max(1) as f64;
                let timing = if self.fine_tune.history.is_empty() {
                    String::new()
                } else {
                    format!(", {per_epoch:.1} s per epoch")
                };
                self.notices.push(format!(
                    "fine-tuning on {device} {how} {epochs_done} epoch(s){timing}"
                ));
                if epochs_done > 0 {
                    self.fine_tune.tuned_available = true;
                    self.fine_tune.show_tuned = true;
                    self.preview_wanted = true;
                    self.keep_fine_tuned(device, epochs_done);
                }
            }
            Response::JobStarted { label } => {
                self.job = Some((0, 1, format!("{label}: started")));
            }
            Response::JobRefused { reason } => {
                self.job = None;
                self.budget.started_from = None;
                self.status = "job not started (see above)".into();
                self.errors.push(reason);
            }
            Response::JobFinished { cancelled } => {
                self.job = None;
                self.budget.started_from = None;
                if cancelled {
                    self.status = "background job cancelled".into();
                }
            }
            Response::JobFailed { reason } => {
                self.job = None;
                self.budget.started_from = None;
                if let Some(cause) = reason.split("no wgpu adapter: ").nth(1) {
                    self.fine_tune.gpu = GpuState::Missing(cause.to_string());
                }
                self.status = "background job failed (see above)".into();
                self.errors.push(reason);
            }
            Response::SensitivityCell(cell) => self.layers.sensitivity.push(cell),
            Response::Cka(view) => self.layers.cka = Some(view),
            Response::Saved(path) => self.notices.push(format!("saved {}", path.display())),
            Response::StudyOpened { path, file } => {
                self.plots.show_study(path.display().to_string(), *file);
            }
            Response::Maps(view) => {
                if view.id == self.last_maps_id {
                    self.maps = Some(Arc::new(view));
                }
            }
            Response::Comparison {
                id,
                slice_idx,
                a,
                b,
            } => self.plans.on_comparison(id, slice_idx, a, b),
            Response::NodeStats { node, stats } => self.plans.on_node_stats(node, stats),
            Response::ChannelScores(view) => self.filters.scores = Some(view),
            Response::AutoUniform(points) => self.budget.uniform = points,
            Response::AutoStep(step) => self.on_auto_step(step),
            Response::AutoPruned(outcome) => self.on_auto_pruned(outcome),
        }
    }
}

/// What the worker's answers make of the plan tree and the pruning settings.
impl LabApp {
    /// The model is ready: its root exists in the tree; a node waiting for this model is
    /// restored, else the selected node when it belongs to this model, else the root.
    fn plans_on_model_ready(&mut self) {
        let Some(model) = &self.model else { return };
        if let Some(id) = self.plans.node_for_model(&model.source) {
            self.restore_node(id);
        }
    }

    /// A fine-tune finished: its model becomes a child of the node it started from, with the
    /// plan it started from.
    fn keep_fine_tuned(&mut self, device: String, epochs: usize) {
        let Some((plan, source, parent)) = self.plans.fine_tune_start.take() else {
            return;
        };
        let name = format!("{} + {epochs} epoch(s) fine-tuned", plan_name(&plan));
        let record = FineTuneRecord {
            epochs,
            learning_rate: self.fine_tune.settings.learning_rate,
            batches_per_epoch: Some(self.fine_tune.settings.batches_per_epoch),
            device,
        };
        self.keep_worker_model(source, parent, name, plan, Some(record));
    }

    /// A kept step of the budget search: the sliders show the ratios found so far.
    fn on_auto_step(&mut self, step: AutoStepView) {
        if let Some(model) = &self.model {
            self.pruning.use_global = false;
            self.pruning.group_ratios = step_ratios(model, &step);
            self.pruning.fine_tune = None;
            self.pruning.checkpoint = None;
            self.preview_wanted = true;
        }
        self.budget.trail.push(step);
    }

    /// The search's result becomes a plan tree node with its weights.
    fn on_auto_pruned(&mut self, outcome: AutoOutcome) {
        if let Some(found) = self.budget.finish(outcome) {
            self.keep_worker_model(
                found.source,
                found.parent,
                found.name,
                found.plan,
                found.record,
            );
        }
    }

    /// The model the worker holds (fine-tuned or searched) becomes a child of `parent` (or of
    /// the root of `source`, the model it came from) with `plan`; its weights are saved beside
    /// the workspace (without a workspace file the node records the plan but not the weights).
    fn keep_worker_model(
        &mut self,
        source: Option<PathBuf>,
        parent: Option<u64>,
        name: String,
        plan: PrunePlan,
        record: Option<FineTuneRecord>,
    ) {
        if self.model.as_ref().map(|m| &m.source) != Some(&source) {
            self.notices.push(format!(
                "\"{name}\" belongs to a model that is no longer open: not kept as a plan"
            ));
            return;
        }
        let kept = self
            .plans
            .keep_worker_node(&source, parent, name, plan.clone(), record);
        let Some((id, checkpoint)) = kept else {
            return;
        };
        if let (Some(path), Some(mut preview)) = (checkpoint, self.current_request()) {
            preview.plan = plan;
            let _ = self.worker.requests.send(Request::ExportModel {
                preview,
                fine_tuned: true,
                path,
                format: crate::export::ModelFormat::Checkpoint,
                precision: crate::export::Precision::Fp32,
            });
        }
        self.restore_node(id);
        self.fine_tune.show_tuned = true;
    }
}

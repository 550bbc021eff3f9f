//! The classifier workspace: the embedded demo classifier and its held-out images with true and
//! predicted labels, a sparsity slider re-evaluated live by the classifier worker, per-class
//! recall and the confusion matrix, accuracy-vs-sparsity curves and dense-vs-pruned CKA.

use std::sync::Arc;

use eframe::egui;
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use super::WorkerFed;
use super::heatmap::Heatmap;
use crate::classify::prune::Scope;
use crate::worker::classify::{
    ClassifyHandle, ClassifyRequest, ClassifyResponse, CurvePoint, DemoView, EvaluationView,
    PrunedSpec,
};

/// The workspace's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassTab {
    Images,
    Classes,
    Curves,
    Layers,
}

/// A CKA matrix as it arrived.
#[derive(Debug, Clone)]
pub struct CkaMatrix {
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub values: Vec<Vec<f64>>,
}

/// The workspace's state; its worker starts with it.
pub struct ClassifierWorkspace {
    worker: ClassifyHandle,
    pub demo: Option<Arc<DemoView>>,
    pub sparsity: f64,
    pub scope: Scope,
    last_id: u64,
    wanted: bool,
    /// The dense model's evaluation (it comes with the demo), kept beside the pruned one.
    pub dense: Option<EvaluationView>,
    pub pruned: Option<EvaluationView>,
    pub curves: Vec<CurvePoint>,
    pub cka: Option<CkaMatrix>,
    pub job: Option<(usize, usize, String)>,
    pub errors: Vec<String>,
    pub notices: Vec<String>,
    pub tab: ClassTab,
    /// Thumbnails of the held-out images, uploaded once.
    thumbnails: Vec<egui::TextureHandle>,
    pub messages_seen: usize,
}

impl WorkerFed for ClassifierWorkspace {
    type Response = ClassifyResponse;

    fn responses(&self) -> &crossbeam_channel::Receiver<ClassifyResponse> {
        &self.worker.responses
    }

    fn receive(&mut self, response: ClassifyResponse) {
        self.handle(response);
    }
}

impl ClassifierWorkspace {
    /// Starts the classifier worker and opens the embedded demo; `wake` repaints the UI.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> ClassifierWorkspace {
        let worker = crate::worker::classify::spawn(wake);
        let _ = worker.requests.send(ClassifyRequest::OpenDemo);
        ClassifierWorkspace {
            worker,
            demo: None,
            sparsity: 0.5,
            scope: Scope::Global,
            last_id: 0,
            wanted: false,
            dense: None,
            pruned: None,
            curves: Vec::new(),
            cka: None,
            job: None,
            errors: Vec::new(),
            notices: Vec::new(),
            tab: ClassTab::Images,
            thumbnails: Vec::new(),
            messages_seen: 0,
        }
    }

    fn drain(&mut self) {
        while let Ok(response) = self.worker.responses.try_recv() {
            self.handle(response);
        }
    }

    fn send(&self, request: ClassifyRequest) {
        let _ = self.worker.requests.send(request);
    }

    fn evaluate(&mut self, id: u64, sparsity: f64) {
        let spec = PrunedSpec {
            sparsity,
            scope: self.scope,
        };
        self.send(ClassifyRequest::Evaluate { id, spec });
    }

    fn handle(&mut self, response: ClassifyResponse) {
        self.messages_seen += 1;
        match response {
            ClassifyResponse::Opened(demo) => {
                self.dense = Some(demo.dense.clone());
                self.demo = Some(demo);
                self.thumbnails.clear();
                self.wanted = true;
            }
            ClassifyResponse::Evaluated(e) => {
                if e.id == self.last_id {
                    self.pruned = Some(e);
                }
            }
            ClassifyResponse::JobStarted(what) => self.job = Some((0, 1, what)),
            ClassifyResponse::JobProgress { done, total, what } => {
                self.job = Some((done, total, what));
            }
            ClassifyResponse::JobRefused(reason) => self.notices.push(reason),
            ClassifyResponse::JobFinished(what) => {
                self.job = None;
                self.notices.push(format!("{what}: done"));
            }
            ClassifyResponse::JobFailed(error) | ClassifyResponse::Failed(error) => {
                self.job = None;
                self.errors.push(error);
            }
            ClassifyResponse::CurvePoint(point) => self.curves.push(point),
            ClassifyResponse::Cka {
                rows,
                columns,
                values,
            } => {
                self.cka = Some(CkaMatrix {
                    rows,
                    columns,
                    values,
                })
            }
        }
    }

    /// Draws the workspace into `ui` (the app's whole window below its top bar).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.drain();
        egui::Panel::left("classifier-controls")
            .default_size(300.0)
            .show(ui, |ui| self.controls_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.tab, ClassTab::Images, "Images");
                ui.selectable_value(&mut self.tab, ClassTab::Classes, "Classes");
                ui.selectable_value(&mut self.tab, ClassTab::Curves, "Curves");
                ui.selectable_value(&mut self.tab, ClassTab::Layers, "Layers");
            });
            ui.separator();
            match self.tab {
                ClassTab::Images => self.images_ui(ui),
                ClassTab::Classes => self.classes_ui(ui),
                ClassTab::Curves => self.curves_ui(ui),
                ClassTab::Layers => self.layers_ui(ui),
            }
        });
        if self.wanted && self.demo.is_some() {
            self.last_id += 1;
            self.evaluate(self.last_id, self.sparsity);
            self.wanted = false;
        }
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui) {
        let Some(demo) = self.demo.clone() else {
            ui.spinner();
            ui.label("Opening the classifier demo…");
            return;
        };
        ui.heading("Classifier");
        ui.label(&demo.model_name);
        ui.label(&demo.architecture);
        ui.label(format!(
            "{} parameters; {} held-out images, {} classes (chance {:.3})",
            demo.parameters,
            demo.images.len(),
            demo.classes_present,
            1.0 / demo.classes_present.max(1) as f64
        ));
        ui.separator();
        ui.strong("L1 unstructured pruning")
            .on_hover_text("Removes the smallest-magnitude weights of every conv and linear layer; no fine-tuning (use `classify prune` for schedules with fine-tuning).");
        let slider = egui::Slider::new(&mut self.sparsity, 0.0..=0.98)
            .text("sparsity")
            .fixed_decimals(2);
        let mut changed = ui.add(slider).changed();
        ui.horizontal(|ui| {
            changed |= ui
                .radio_value(&mut self.scope, Scope::Global, "global")
                .on_hover_text("One threshold over all layers")
                .changed();
            changed |= ui
                .radio_value(&mut self.scope, Scope::PerLayer, "per layer")
                .on_hover_text("Every layer loses the same share")
                .changed();
        });
        self.wanted |= changed;
        ui.separator();
        let row = |ui: &mut egui::Ui, name: &str, e: Option<&EvaluationView>| {
            ui.label(name);
            match e {
                Some(e) => {
                    ui.label(format!("{:.3}", e.top1));
                    ui.label(format!("{:.3}", e.balanced_accuracy));
                    ui.label(format!("{:.1} %", e.sparsity * 100.0));
                }
                None => {
                    ui.spinner();
                }
            }
            ui.end_row();
        };
        egui::Grid::new("classifier-accuracy")
            .striped(true)
            .show(ui, |ui| {
                ui.strong("model");
                ui.strong("top-1");
                ui.strong("balanced");
                ui.strong("sparsity");
                ui.end_row();
                row(ui, "dense", self.dense.as_ref());
                row(ui, "pruned", self.pruned.as_ref());
            });
        if let Some(p) = &self.pruned {
            ui.label(format!(
                "evaluated in {:.0} ms (background worker)",
                p.millis
            ));
        }
        ui.separator();
        self.jobs_ui(ui);
        self.messages_ui(ui);
    }

    fn jobs_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if ui
                .button("Accuracy curves")
                .on_hover_text("Top-1 vs sparsity for global and per-layer L1, no fine-tuning")
                .clicked()
            {
                self.curves.clear();
                self.send(ClassifyRequest::StartCurves);
            }
            if ui
                .button("CKA dense vs pruned")
                .on_hover_text("Layer x layer linear CKA on the held-out images")
                .clicked()
            {
                self.send(ClassifyRequest::StartCka(PrunedSpec {
                    sparsity: self.sparsity,
                    scope: self.scope,
                }));
            }
        });
        if let Some((done, total, what)) = &self.job {
            ui.add(
                egui::ProgressBar::new(*done as f32 / (*total).max(1) as f32).text(what.as_str()),
            );
            if ui.button("Cancel").clicked() {
                self.send(ClassifyRequest::CancelJob);
            }
        }
    }

    fn messages_ui(&mut self, ui: &mut egui::Ui) {
        for error in &self.errors {
            ui.colored_label(
                egui::Color32::from_rgb(220, 60, 60),
                format!("Error: {error}"),
            );
        }
        if let Some(notice) = self.notices.last() {
            ui.label(notice);
        }
    }

    fn upload_thumbnails(&mut self, ctx: &egui::Context, demo: &DemoView) {
        if !self.thumbnails.is_empty() {
            return;
        }
        let side = demo.images.side;
        for i in 0..demo.images.len() {
            let planes = demo.images.image(i);
            let plane = side * side;
            let rgb: Vec<u8> = (0..plane)
                .flat_map(|p| [planes[p], planes[plane + p], planes[2 * plane + p]])
                .collect();
            let image = egui::ColorImage::from_rgb([side, side], &rgb);
            self.thumbnails.push(ctx.load_texture(
                format!("classifier-image-{i}"),
                image,
                egui::TextureOptions::NEAREST,
            ));
        }
    }

    fn images_ui(&mut self, ui: &mut egui::Ui) {
        let Some(demo) = self.demo.clone() else {
            return;
        };
        self.upload_thumbnails(ui.ctx(), &demo);
        ui.label("Held-out images: true class, and the pruned model's prediction (green right, red wrong).");
        let predictions = self.pruned.as_ref().map(|e| e.predictions.clone());
        const CELL: f32 = 112.0;
        let columns = ((ui.available_width() / CELL) as usize).max(1);
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::Grid::new("classifier-images")
                .min_col_width(CELL - 8.0)
                .max_col_width(CELL - 8.0)
                .spacing(egui::vec2(8.0, 10.0))
                .show(ui, |ui| {
                    for (i, texture) in self.thumbnails.iter().enumerate() {
                        let truth = usize::from(demo.images.labels[i]);
                        ui.vertical(|ui| {
                            ui.image((texture.id(), egui::vec2(64.0, 64.0)));
                            ui.small(format!("true {}", demo.class_names[truth]));
                            if let Some(p) = predictions.as_ref().map(|p| usize::from(p[i])) {
                                let colour = if p == truth {
                                    egui::Color32::from_rgb(60, 170, 80)
                                } else {
                                    egui::Color32::from_rgb(220, 60, 60)
                                };
                                ui.small(
                                    egui::RichText::new(format!("pred {}", demo.class_names[p]))
                                        .color(colour),
                                );
                            }
                        });
                        if (i + 1) % columns == 0 {
                            ui.end_row();
                        }
                    }
                });
        });
    }

    fn classes_ui(&mut self, ui: &mut egui::Ui) {
        let (Some(demo), Some(pruned)) = (self.demo.clone(), self.pruned.clone()) else {
            ui.label("Waiting for the first evaluation…");
            return;
        };
        let present: Vec<usize> = (0..demo.class_names.len())
            .filter(|&c| pruned.per_class_recall[c].is_some())
            .collect();
        ui.strong("Recall per class: dense | pruned");
        egui::Grid::new("recall").striped(true).show(ui, |ui| {
            for &c in &present {
                ui.label(&demo.class_names[c]);
                let dense = self.dense.as_ref().and_then(|d| d.per_class_recall[c]);
                ui.label(dense.map_or("-".into(), |r| format!("{r:.2}")));
                ui.label(format!("{:.2}", pruned.per_class_recall[c].unwrap_or(0.0)));
                ui.end_row();
            }
        });
        ui.separator();
        ui.strong(
            "Confusion matrix of the pruned model (rows: true class, columns: predicted class \
             number; share of each row)",
        );
        let names: Vec<String> = present
            .iter()
            .map(|&c| demo.class_names[c].clone())
            .collect();
        let numbers: Vec<String> = present.iter().map(|c| c.to_string()).collect();
        let values: Vec<Vec<f64>> = present
            .iter()
            .map(|&t| {
                let total: u32 = pruned.confusion[t].iter().sum();
                present
                    .iter()
                    .map(|&p| f64::from(pruned.confusion[t][p]) / f64::from(total.max(1)))
                    .collect()
            })
            .collect();
        Heatmap {
            rows: &names,
            columns: &numbers,
            values: &values,
            cell: egui::vec2(44.0, 26.0),
        }
        .show(ui);
    }

    fn curves_ui(&mut self, ui: &mut egui::Ui) {
        ui.strong("Top-1 on the held-out images vs sparsity (no fine-tuning)");
        Plot::new("classifier-curves")
            .height(ui.available_height() - 30.0)
            .legend(Legend::default())
            .x_axis_label("share of conv and linear weights removed")
            .y_axis_label("top-1")
            .include_y(0.0)
            .include_y(1.0)
            .allow_scroll(false)
            .show(ui, |plot| {
                for (i, scope) in [Scope::Global, Scope::PerLayer].into_iter().enumerate() {
                    let points: PlotPoints = self
                        .curves
                        .iter()
                        .filter(|p| p.scope == scope)
                        .map(|p| [p.sparsity, p.top1])
                        .collect();
                    let name = if scope == Scope::Global {
                        "global L1"
                    } else {
                        "per-layer L1"
                    };
                    plot.line(
                        Line::new(name, points)
                            .color(super::palette::colour(i))
                            .width(2.0),
                    );
                }
                if let Some(p) = &self.pruned {
                    plot.points(
                        Points::new("current", vec![[p.sparsity, p.top1]])
                            .radius(5.0)
                            .color(egui::Color32::RED),
                    );
                }
            });
        if self.curves.is_empty() {
            ui.label("No curves yet: press Accuracy curves (left).");
        }
    }

    fn layers_ui(&mut self, ui: &mut egui::Ui) {
        match &self.cka {
            Some(m) => {
                ui.strong("Linear CKA: dense model (rows) vs pruned (columns), held-out images");
                egui::ScrollArea::both().show(ui, |ui| {
                    Heatmap {
                        rows: &m.rows,
                        columns: &m.columns,
                        values: &m.values,
                        cell: egui::vec2(48.0, 28.0),
                    }
                    .show(ui);
                });
            }
            None => {
                ui.label("No CKA yet: press CKA dense vs pruned (left).");
            }
        }
    }
}

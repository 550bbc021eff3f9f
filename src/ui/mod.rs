//! The desktop app (eframe/egui): slice viewer with ground truth | dense | pruned | disagreement,
//! and a pruning panel whose sliders drive live previews computed by the background worker.
//! Knows nothing of burn: it sends requests and draws the plain data that comes back.

mod heatmap;
pub mod layers;
mod plots;
pub mod viewer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;

use crate::prune::PruneMethod;
use crate::prune::sweep::SweepPoint;
use crate::worker::{
    self, CaseView, FineTuneRequest, ModelView, PreviewRequest, PreviewResult, Request, Response,
    WorkerHandle, region_dice,
};
use viewer::{
    Axis, OverlayStyle, REGION_NAMES, Window, plane_codes, render_disagreement, render_slice,
};

/// Settings kept between runs (eframe persistence).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    pub axis: Axis,
    pub modality: usize,
    pub window: Window,
    pub overlay: OverlayStyle,
    pub method: PruneMethod,
    /// The last case opened from disk; `None` opens the embedded default case.
    pub last_case: Option<std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            axis: Axis::Axial,
            modality: 3,
            window: Window::default(),
            overlay: OverlayStyle::default(),
            method: PruneMethod::Structured(crate::prune::StructuredMethod::L2),
            last_case: None,
        }
    }
}

const SETTINGS_KEY: &str = "raagr2-lab-settings";
/// Modality names in the network's channel order.
pub const MODALITIES: [&str; 4] = ["T1", "T1ce", "T2", "FLAIR"];
/// Longest time one frame spends handling worker messages (the rest waits for the next frame).
const MESSAGE_BUDGET: Duration = Duration::from_millis(8);

/// The application state.
pub struct LabApp {
    worker: WorkerHandle,
    pub settings: Settings,
    /// The open case, shared (frames clone the handle, never the volumes).
    pub case: Option<Arc<CaseView>>,
    pub dense_codes: Option<Vec<u8>>,
    /// The preview's axial slice placed in a volume of the case's size (built once per preview,
    /// so the viewer indexes it like the other segmentations).
    pruned_codes: Option<Vec<u8>>,
    /// Slice textures by panel, re-uploaded only when what they show changes.
    textures: viewer::TextureCache,
    /// Increases whenever a segmentation shown in the viewer changes (texture cache key).
    codes_generation: u64,
    /// Dense model vs ground truth over the whole case, WT/TC/ET.
    pub dense_case_dice: Option<[f64; 3]>,
    pub model: Option<ModelView>,
    pub group_ratios: Vec<f64>,
    pub global_ratio: f64,
    pub use_global: bool,
    pub slice_idx: usize,
    pub preview: Option<PreviewResult>,
    /// Dice of the previewed model over the whole case (arrives after the slice preview).
    pub preview_case_dice: Option<[f64; 3]>,
    last_preview_id: u64,
    preview_wanted: bool,
    pub status: String,
    pub errors: Vec<String>,
    /// Messages handled so far (tests wait on it).
    pub messages_seen: usize,
    /// The running background job: (done, total, what).
    pub job: Option<(usize, usize, String)>,
    pub sweep_points: Vec<SweepPoint>,
    pub train_history: Vec<TrainPoint>,
    /// A fine-tuned model exists in the worker; `show_tuned` previews it.
    pub tuned_available: bool,
    pub show_tuned: bool,
    pub fine_tune: FineTuneSettings,
    pub gpu: GpuState,
    pub tab: Tab,
    /// Group whose BN-gamma histogram is shown.
    pub histogram_group: usize,
    /// Region of the Dice-vs-sparsity plot (0 WT, 1 TC, 2 ET).
    pub plot_region: usize,
    pub notices: Vec<String>,
    pub layers: layers::LayersState,
}

/// The central area's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Slices,
    Plots,
    Layers,
}

/// One fine-tuning epoch received from the worker.
#[derive(Debug, Clone)]
pub struct TrainPoint {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_dice: [f64; 3],
    /// Wall time of the epoch, validation included.
    pub secs: f64,
}

/// What the app knows of the GPU the fine-tune may run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuState {
    /// Not looked for yet (looking opens an adapter, so it waits until GPU or auto is chosen).
    Unknown,
    Probing,
    /// The adapter's name.
    Found(String),
    /// Why no adapter can be used.
    Missing(String),
}

/// Fine-tuning settings of the panel.
#[derive(Debug, Clone)]
pub struct FineTuneSettings {
    pub epochs: usize,
    pub learning_rate: f64,
    pub batches_per_epoch: usize,
    pub device: crate::backend::DeviceChoice,
}

impl Default for FineTuneSettings {
    fn default() -> Self {
        FineTuneSettings {
            epochs: 2,
            learning_rate: 1e-3,
            batches_per_epoch: 10,
            device: crate::backend::DeviceChoice::Auto,
        }
    }
}

impl LabApp {
    /// Starts the worker and asks for the last case (or the embedded default).
    pub fn new(cc: &eframe::CreationContext<'_>) -> LabApp {
        let settings: Settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, SETTINGS_KEY))
            .unwrap_or_default();
        let ctx = cc.egui_ctx.clone();
        let worker = worker::spawn(move || ctx.request_repaint());
        let first = match &settings.last_case {
            Some(path) if path.exists() => Request::OpenPath(path.clone()),
            _ => Request::OpenDefault,
        };
        let _ = worker.requests.send(first);
        LabApp {
            worker,
            settings,
            case: None,
            dense_codes: None,
            pruned_codes: None,
            textures: viewer::TextureCache::default(),
            codes_generation: 0,
            dense_case_dice: None,
            model: None,
            group_ratios: Vec::new(),
            global_ratio: 0.0,
            use_global: false,
            slice_idx: 0,
            preview: None,
            preview_case_dice: None,
            last_preview_id: 0,
            preview_wanted: false,
            status: "starting".into(),
            errors: Vec::new(),
            messages_seen: 0,
            job: None,
            sweep_points: Vec::new(),
            train_history: Vec::new(),
            tuned_available: false,
            show_tuned: false,
            fine_tune: FineTuneSettings::default(),
            gpu: GpuState::Unknown,
            tab: Tab::Slices,
            histogram_group: 0,
            plot_region: 0,
            notices: Vec::new(),
            layers: layers::LayersState::default(),
        }
    }

    /// Slice textures rendered and uploaded since the start (they are cached per panel).
    pub fn texture_uploads(&self) -> u64 {
        self.textures.uploads
    }

    /// Asks the worker to open a case folder (or a file inside one).
    pub fn open_path(&mut self, path: std::path::PathBuf) {
        let _ = self.worker.requests.send(Request::OpenPath(path));
    }

    /// Blocks until the worker sends one message and handles it; for tests (no sleeping: it
    /// waits on the channel). Returns false on timeout.
    pub fn wait_for_message(&mut self, timeout: Duration) -> bool {
        match self.worker.responses.recv_timeout(timeout) {
            Ok(response) => {
                self.handle(response);
                true
            }
            Err(_) => false,
        }
    }

    fn drain_messages(&mut self) {
        let started = Instant::now();
        while started.elapsed() < MESSAGE_BUDGET {
            match self.worker.responses.try_recv() {
                Ok(response) => self.handle(response),
                Err(_) => break,
            }
        }
    }

    fn handle(&mut self, response: Response) {
        self.messages_seen += 1;
        match response {
            Response::Status(text) => self.status = text,
            Response::Error(text) => {
                self.status = "error (see above)".into();
                self.errors.push(text);
            }
            Response::ModelReady(model) => {
                self.group_ratios = vec![0.0; model.groups.len()];
                self.model = Some(model);
                self.preview_wanted = true;
            }
            Response::CaseLoaded(case) => {
                self.slice_idx = best_slice(&case);
                self.case = Some(Arc::new(case));
                self.dense_codes = None;
                self.dense_case_dice = None;
                self.preview = None;
                self.pruned_codes = None;
                self.codes_generation += 1;
                self.preview_wanted = true;
            }
            Response::DensePrediction { case_id, codes } => {
                if let Some(case) = self.case.as_ref().filter(|c| c.id == case_id) {
                    self.dense_case_dice = case.truth.as_ref().map(|t| region_dice(&codes, t));
                    self.dense_codes = Some(codes);
                    self.codes_generation += 1;
                }
            }
            Response::Preview(result) => {
                // A newer request is on its way: this result is stale.
                if result.id == self.last_preview_id {
                    self.pruned_codes = self.case.as_ref().map(|case| {
                        let mut volume = vec![0u8; case.dims.iter().product()];
                        let plane = case.dims[0] * case.dims[1];
                        volume[result.slice_idx * plane..][..plane].copy_from_slice(&result.codes);
                        volume
                    });
                    self.codes_generation += 1;
                    self.preview = Some(result);
                    self.preview_case_dice = None;
                }
            }
            Response::PreviewCaseDice { id, dice } => {
                if id == self.last_preview_id {
                    self.preview_case_dice = Some(dice);
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
            } => self.train_history.push(TrainPoint {
                epoch,
                train_loss,
                val_loss,
                val_dice,
                secs,
            }),
            Response::GpuProbe(found) => {
                self.gpu = match found {
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
                let per_epoch = self.train_history.iter().map(|p| p.secs).sum::<f64>()
                    / self.train_history.len().max(1) as f64;
                let timing = if self.train_history.is_empty() {
                    String::new()
                } else {
                    format!(", {per_epoch:.1} s per epoch")
                };
                self.notices.push(format!(
                    "fine-tuning on {device} {how} {epochs_done} epoch(s){timing}"
                ));
                if epochs_done > 0 {
                    self.tuned_available = true;
                    self.show_tuned = true;
                    self.preview_wanted = true;
                }
            }
            Response::JobStarted { label } => {
                self.job = Some((0, 1, format!("{label}: started")));
            }
            Response::JobRefused { reason } => {
                self.job = None;
                self.status = "job not started (see above)".into();
                self.errors.push(reason);
            }
            Response::JobFinished { cancelled } => {
                self.job = None;
                if cancelled {
                    self.status = "background job cancelled".into();
                }
            }
            Response::JobFailed { reason } => {
                self.job = None;
                if let Some(cause) = reason.split("no wgpu adapter: ").nth(1) {
                    self.gpu = GpuState::Missing(cause.to_string());
                }
                self.status = "background job failed (see above)".into();
                self.errors.push(reason);
            }
            Response::SensitivityCell(cell) => self.layers.sensitivity.push(cell),
            Response::Cka(view) => self.layers.cka = Some(view),
            Response::Saved(path) => self.notices.push(format!("saved {}", path.display())),
        }
    }

    /// What the panel currently describes (method, ratios, slice, fine-tuned or not).
    fn current_request(&self) -> Option<PreviewRequest> {
        let case = self.case.as_ref()?;
        self.model.as_ref()?;
        let slice_idx = match self.settings.axis {
            Axis::Axial => self.slice_idx,
            // Other planes preview the axial slice with the most tumour.
            _ => best_slice(case),
        };
        Some(PreviewRequest {
            id: self.last_preview_id,
            method: self.settings.method,
            group_ratios: self.group_ratios.clone(),
            global_ratio: self.use_global.then_some(self.global_ratio),
            slice_idx,
            fine_tuned: self.show_tuned,
        })
    }

    fn request_preview(&mut self) {
        let Some(mut request) = self.current_request() else {
            return;
        };
        self.last_preview_id += 1;
        request.id = self.last_preview_id;
        let _ = self.worker.requests.send(Request::Preview(request));
        self.preview_wanted = false;
    }

    /// Starts a Dice-vs-sparsity sweep of the open case in the background.
    pub fn start_sweep(&mut self) {
        self.sweep_points.clear();
        let methods = PruneMethod::ALL
            .into_iter()
            .filter(|m| *m != PruneMethod::Unstructured(crate::prune::UnstructuredMethod::Snip))
            .collect();
        let ratios = vec![0.0, 0.1, 0.25, 0.5, 0.75];
        let _ = self
            .worker
            .requests
            .send(Request::StartSweep { methods, ratios });
        self.job = Some((0, 1, "sweep: starting".into()));
    }

    /// Starts fine-tuning the model the panel describes.
    pub fn start_fine_tune(&mut self) {
        let Some(preview) = self.current_request() else {
            return;
        };
        self.train_history.clear();
        let request = FineTuneRequest {
            preview: PreviewRequest {
                fine_tuned: false,
                ..preview
            },
            epochs: self.fine_tune.epochs,
            learning_rate: self.fine_tune.learning_rate,
            batches_per_epoch: self.fine_tune.batches_per_epoch,
            device: self.fine_tune.device,
        };
        let _ = self.worker.requests.send(Request::StartFineTune(request));
        self.job = Some((0, self.fine_tune.epochs, "fine-tune: starting".into()));
    }

    pub fn cancel_job(&self) {
        let _ = self.worker.requests.send(Request::CancelJob);
    }

    /// Runs a save dialog on its own thread (it blocks) and sends the request it completes.
    fn save_dialog(
        &self,
        title: &str,
        file_name: &str,
        request: impl FnOnce(std::path::PathBuf) -> Request + Send + 'static,
    ) {
        let requests = self.worker.requests.clone();
        let (title, file_name) = (title.to_string(), file_name.to_string());
        std::thread::spawn(move || {
            if let Some(path) = rfd::FileDialog::new()
                .set_title(title)
                .set_file_name(file_name)
                .save_file()
            {
                let _ = requests.send(request(path));
            }
        });
    }

    fn export_prediction_dialog(&self) {
        let preview = self.current_request();
        let name = format!(
            "{}_pruned_seg.nii.gz",
            self.case.as_ref().map_or("case", |c| c.id.as_str())
        );
        self.save_dialog("Save the segmentation", &name, move |path| {
            Request::ExportPrediction { preview, path }
        });
    }

    /// Saves the previewed model's segmentation of the open case to `path` (what the dialog
    /// does once a file is chosen); a `Saved` notice or an error follows.
    pub fn export_prediction_to(&self, path: std::path::PathBuf) {
        let preview = self.current_request();
        let _ = self
            .worker
            .requests
            .send(Request::ExportPrediction { preview, path });
    }

    fn export_sweep_dialog(&self) {
        let points = self.sweep_points.clone();
        self.save_dialog("Save the sweep (CSV or PNG)", "sweep.csv", move |path| {
            Request::ExportSweep { points, path }
        });
    }

    fn export_model_dialog(&self) {
        let Some(preview) = self.current_request() else {
            return;
        };
        let requests = self.worker.requests.clone();
        let fine_tuned = self.show_tuned;
        std::thread::spawn(move || {
            if let Some(path) = rfd::FileDialog::new()
                .set_title("Save the pruned model")
                .set_file_name("pruned.safetensors")
                .save_file()
            {
                let _ = requests.send(Request::ExportModel {
                    preview,
                    fine_tuned,
                    path,
                });
            }
        });
    }

    fn open_dialog(&self) {
        let requests = self.worker.requests.clone();
        // The native dialog blocks its thread, so it gets its own.
        std::thread::spawn(move || {
            if let Some(folder) = rfd::FileDialog::new()
                .set_title("Open a BraTS case folder")
                .pick_folder()
            {
                let _ = requests.send(Request::OpenPath(folder));
            }
        });
    }

    fn handle_input(&mut self, ctx: &egui::Context) {
        let dropped: Vec<_> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        for path in dropped {
            self.settings.last_case = Some(path.clone());
            self.open_path(path);
        }
        let Some(case) = &self.case else { return };
        let slices = self.settings.axis.slices(case.dims);
        let step = ctx.input(|i| {
            i.key_pressed(egui::Key::ArrowUp) as i64 - i.key_pressed(egui::Key::ArrowDown) as i64
        });
        self.move_slice(step, slices);
    }

    fn move_slice(&mut self, step: i64, slices: usize) {
        if step == 0 || slices == 0 {
            return;
        }
        let next = (self.slice_idx as i64 + step).clamp(0, slices as i64 - 1) as usize;
        if next != self.slice_idx {
            self.slice_idx = next;
            self.preview_wanted |= self.settings.axis == Axis::Axial;
        }
    }
}

/// The axial slice with the most tumour (or the middle one): where a viewer should open.
fn best_slice(case: &CaseView) -> usize {
    let [nx, ny, nz] = case.dims;
    let Some(truth) = &case.truth else {
        return nz / 2;
    };
    (0..nz)
        .max_by_key(|z| {
            truth[z * nx * ny..(z + 1) * nx * ny]
                .iter()
                .filter(|c| **c > 0)
                .count()
        })
        .unwrap_or(nz / 2)
}

impl eframe::App for LabApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.drain_messages();
        let ctx = ui.ctx().clone();
        self.handle_input(&ctx);
        egui::Panel::top("menu").show(ui, |ui| self.top_bar_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::Panel::left("view")
            .default_size(230.0)
            .show(ui, |ui| self.view_panel_ui(ui));
        egui::Panel::right("pruning")
            .default_size(330.0)
            .show(ui, |ui| self.pruning_panel_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.tab, Tab::Slices, "Slices");
                ui.selectable_value(&mut self.tab, Tab::Plots, "Plots");
                ui.selectable_value(&mut self.tab, Tab::Layers, "Layers");
            });
            ui.separator();
            match self.tab {
                Tab::Slices => self.slices_ui(ui),
                Tab::Plots => self.plots_ui(ui),
                Tab::Layers => self.layers_ui(ui),
            }
        });
        if self.preview_wanted {
            self.request_preview();
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.settings);
    }
}

impl LabApp {
    fn top_bar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("RAAGR2-Net pruning lab");
            ui.separator();
            if ui
                .button("Open case…")
                .on_hover_text("A BraTS case folder (or drop one on the window)")
                .clicked()
            {
                self.open_dialog();
            }
            if ui
                .button("Default case")
                .on_hover_text("The embedded synthetic case")
                .clicked()
            {
                self.settings.last_case = None;
                let _ = self.worker.requests.send(Request::OpenDefault);
            }
            if let Some(case) = &self.case {
                ui.separator();
                ui.label(format!(
                    "{}  {}x{}x{} voxels, {:.2}x{:.2}x{:.2} mm",
                    case.id,
                    case.dims[0],
                    case.dims[1],
                    case.dims[2],
                    case.spacing_mm[0],
                    case.spacing_mm[1],
                    case.spacing_mm[2]
                ));
            }
        });
        let mut dismiss = None;
        for (i, error) in self.errors.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.colored_label(
                    egui::Color32::from_rgb(220, 60, 60),
                    format!("Error: {error}"),
                );
                if ui.small_button("Dismiss").clicked() {
                    dismiss = Some(i);
                }
            });
        }
        if let Some(i) = dismiss {
            self.errors.remove(i);
        }
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(&self.status);
            if let Some(p) = &self.preview {
                ui.separator();
                ui.label(format!(
                    "preview: prune {:.1} ms, slice forward {:.0} ms (CPU)",
                    p.prune_ms, p.forward_ms
                ));
            }
        });
    }

    fn view_panel_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("View");
        ui.horizontal(|ui| {
            for axis in Axis::ALL {
                if ui
                    .selectable_label(self.settings.axis == axis, axis.name())
                    .clicked()
                {
                    self.settings.axis = axis;
                    if let Some(case) = &self.case {
                        self.slice_idx = axis.slices(case.dims) / 2;
                    }
                }
            }
        });
        egui::ComboBox::from_label("Modality")
            .selected_text(MODALITIES[self.settings.modality])
            .show_ui(ui, |ui| {
                for (i, name) in MODALITIES.iter().enumerate() {
                    ui.selectable_value(&mut self.settings.modality, i, *name);
                }
            });
        if let Some(case) = &self.case {
            let slices = self.settings.axis.slices(case.dims);
            let before = self.slice_idx;
            ui.add(
                egui::Slider::new(&mut self.slice_idx, 0..=slices.saturating_sub(1)).text("Slice"),
            );
            if before != self.slice_idx && self.settings.axis == Axis::Axial {
                self.preview_wanted = true;
            }
        }
        ui.horizontal(|ui| {
            ui.label(format!(
                "Window {:.1}, level {:.1}",
                self.settings.window.width, self.settings.window.level
            ))
            .on_hover_text("Drag on an image: left/right = width, up/down = level");
            if ui.small_button("Reset").clicked() {
                self.settings.window = Window::default();
            }
        });
        ui.separator();
        ui.heading("Overlay");
        for (r, name) in REGION_NAMES.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.checkbox(&mut self.settings.overlay.visible[r], *name);
                ui.color_edit_button_srgb(&mut self.settings.overlay.colours[r]);
            });
        }
        ui.add(egui::Slider::new(&mut self.settings.overlay.opacity, 0.0..=1.0).text("Opacity"));
        ui.checkbox(&mut self.settings.overlay.outline, "Outline only");
        ui.separator();
        self.dice_ui(ui);
    }

    /// Dice WT/TC/ET of the dense and the pruned model on the previewed axial slice.
    pub fn slice_dice(&self) -> (Option<[f64; 3]>, Option<[f64; 3]>) {
        let (Some(case), Some(preview)) = (&self.case, &self.preview) else {
            return (None, None);
        };
        let Some(truth) = &case.truth else {
            return (None, None);
        };
        let slice_truth = plane_codes(truth, case.dims, Axis::Axial, preview.slice_idx);
        let dense = self.dense_codes.as_ref().map(|codes| {
            let dense_plane = plane_codes(codes, case.dims, Axis::Axial, preview.slice_idx);
            region_dice(&dense_plane, &slice_truth)
        });
        (dense, Some(region_dice(&preview.codes, &slice_truth)))
    }

    fn dice_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Dice");
        let Some(case) = &self.case else { return };
        if case.truth.is_none() {
            ui.label("no ground truth in this case");
            return;
        }
        let (dense_slice, pruned_slice) = self.slice_dice();
        egui::Grid::new("dice").striped(true).show(ui, |ui| {
            ui.label("");
            for region in ["WT", "TC", "ET"] {
                ui.label(region);
            }
            ui.end_row();
            let row = |ui: &mut egui::Ui, label: &str, values: Option<[f64; 3]>, hover: &str| {
                ui.label(label).on_hover_text(hover);
                for r in 0..3 {
                    ui.label(values.map_or("…".into(), |v| format!("{:.3}", v[r])));
                }
                ui.end_row();
            };
            row(
                ui,
                "dense, case",
                self.dense_case_dice,
                "Dense model vs ground truth over the whole volume",
            );
            row(
                ui,
                "pruned, case",
                self.preview_case_dice,
                "Pruned model vs ground truth over the whole volume (computed in the background after each change; … while it runs)",
            );
            row(
                ui,
                "dense, slice",
                dense_slice,
                "Dense model on the previewed axial slice",
            );
            row(
                ui,
                "pruned, slice",
                pruned_slice,
                "Pruned model on the previewed axial slice",
            );
        });
    }

    fn pruning_panel_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Pruning");
        let before = (
            self.settings.method,
            self.use_global,
            self.global_ratio,
            self.group_ratios.clone(),
        );
        egui::ComboBox::from_label("Method")
            .selected_text(self.settings.method.key())
            .show_ui(ui, |ui| {
                for method in PruneMethod::ALL {
                    ui.selectable_value(&mut self.settings.method, method, method.key())
                        .on_hover_text(method_help(method));
                }
            })
            .response
            .on_hover_text(method_help(self.settings.method));
        ui.horizontal(|ui| {
            ui.label("Presets:");
            for (name, ratio, help) in [
                ("none", 0.0, "The dense model"),
                ("gentle 10%", 0.1, "10% of every group's channels"),
                ("quarter", 0.25, "A quarter of every group's channels"),
                (
                    "half",
                    0.5,
                    "Half of every group's channels: about 2.4x fewer MACs",
                ),
                (
                    "aggressive 75%",
                    0.75,
                    "Three quarters of every group's channels: watch the regions fail",
                ),
            ] {
                let help = format!(
                    "{help}, except the first encoder level and the last decoder level, which \
                     stay whole (the sensitivity heatmap shows why)"
                );
                if ui.small_button(name).on_hover_text(help).clicked()
                    && let Some(model) = &self.model
                {
                    self.use_global = false;
                    self.group_ratios = preset_ratios(model, ratio);
                }
            }
        });
        ui.checkbox(&mut self.use_global, "One global ratio")
            .on_hover_text(
                "One importance threshold across all groups instead of a ratio per group",
            );
        ui.add_enabled(
            self.use_global,
            egui::Slider::new(&mut self.global_ratio, 0.0..=0.95).text("Global ratio"),
        );
        if let Some(model) = self.model.clone() {
            ui.separator();
            self.model_stats_ui(ui, &model);
            ui.separator();
            self.jobs_ui(ui);
            ui.separator();
            ui.label("Share of channels removed per group (kept / total):");
            egui::ScrollArea::vertical().show(ui, |ui| {
                for (g, group) in model.groups.iter().enumerate() {
                    let kept = self
                        .preview
                        .as_ref()
                        .and_then(|p| p.kept.get(g))
                        .copied()
                        .unwrap_or(group.channels);
                    let mean_importance =
                        group.importance.iter().sum::<f32>() / group.importance.len().max(1) as f32;
                    let label = format!("{} {kept}/{}", group.name, group.channels);
                    let hover = format!("mean filter L2 importance {mean_importance:.3}");
                    if self.use_global {
                        // The global threshold decides each group's share: show what it removed.
                        let mut effective = 1.0 - kept as f64 / group.channels.max(1) as f64;
                        ui.add_enabled(
                            false,
                            egui::Slider::new(&mut effective, 0.0..=1.0).text(label),
                        )
                        .on_hover_text(format!("{hover}; set by the global ratio"));
                    } else {
                        ui.add(
                            egui::Slider::new(&mut self.group_ratios[g], 0.0..=0.95).text(label),
                        )
                        .on_hover_text(hover);
                    }
                }
            });
        }
        let after = (
            self.settings.method,
            self.use_global,
            self.global_ratio,
            self.group_ratios.clone(),
        );
        if before != after {
            // New ratios describe a new pruned model, not the fine-tuned one.
            self.show_tuned = false;
            self.preview_wanted = true;
        }
    }

    /// The adapter a GPU fine-tune would use, or, when there is none, why, with the CPU offered.
    fn gpu_ui(&mut self, ui: &mut egui::Ui) {
        use crate::backend::DeviceChoice as D;
        if self.fine_tune.device == D::Cpu {
            return;
        }
        if self.gpu == GpuState::Unknown {
            self.gpu = GpuState::Probing;
            let _ = self.worker.requests.send(Request::ProbeGpu);
        }
        match &self.gpu {
            GpuState::Unknown | GpuState::Probing => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("looking for a GPU adapter…");
                });
            }
            GpuState::Found(name) => {
                ui.label(format!("GPU: {name}"));
            }
            GpuState::Missing(reason) => {
                let what = if self.fine_tune.device == D::Auto {
                    "no GPU adapter: auto fine-tunes on the CPU"
                } else {
                    "no GPU adapter"
                };
                ui.colored_label(ui.visuals().warn_fg_color, what)
                    .on_hover_text(reason.as_str());
                if self.fine_tune.device == D::Gpu && ui.button("Use the CPU").clicked() {
                    self.fine_tune.device = D::Cpu;
                }
            }
        }
    }

    fn jobs_ui(&mut self, ui: &mut egui::Ui) {
        egui::CollapsingHeader::new("Fine-tune and export")
            .default_open(true)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.add(egui::DragValue::new(&mut self.fine_tune.epochs).range(1..=50).prefix("epochs "));
                    ui.add(egui::DragValue::new(&mut self.fine_tune.batches_per_epoch).range(1..=500).prefix("batches/epoch "));
                });
                ui.horizontal(|ui| {
                    ui.label("Device");
                    use crate::backend::DeviceChoice as D;
                    for (choice, name, help) in [
                        (D::Auto, "auto", "wgpu when a GPU adapter exists, else the CPU"),
                        (D::Cpu, "CPU", "burn's Flex backend"),
                        (D::Gpu, "GPU", "wgpu; an error when no adapter exists"),
                    ] {
                        ui.selectable_value(&mut self.fine_tune.device, choice, name).on_hover_text(help);
                    }
                });
                self.gpu_ui(ui);
                let running = self.job.is_some();
                ui.horizontal(|ui| {
                    if ui.add_enabled(!running, egui::Button::new("Fine-tune"))
                        .on_hover_text("Train the pruned model on synthetic cases 0-3 (masks kept); the best epoch is previewed")
                        .clicked()
                    {
                        self.start_fine_tune();
                    }
                    if ui.add_enabled(!running, egui::Button::new("Run sweep"))
                        .on_hover_text("Dice of this case vs sparsity for every method (Plots tab)")
                        .clicked()
                    {
                        self.start_sweep();
                    }
                    if ui.add_enabled(running, egui::Button::new("Cancel")).clicked() {
                        self.cancel_job();
                    }
                });
                if let Some((done, total, label)) = &self.job {
                    ui.add(egui::ProgressBar::new(*done as f32 / (*total).max(1) as f32).text(label.as_str()));
                }
                let before = self.show_tuned;
                ui.add_enabled(self.tuned_available, egui::Checkbox::new(&mut self.show_tuned, "Show the fine-tuned model"));
                if before != self.show_tuned {
                    self.preview_wanted = true;
                }
                ui.horizontal(|ui| {
                    if ui.button("Save model…").on_hover_text("The previewed model as a checkpoint (safetensors + config)").clicked() {
                        self.export_model_dialog();
                    }
                    if ui.button("Save segmentation…").on_hover_text("The previewed model's segmentation of the whole case as a NIfTI label map (0/1/2/4) on the case's grid").clicked() {
                        self.export_prediction_dialog();
                    }
                    if ui.add_enabled(!self.sweep_points.is_empty(), egui::Button::new("Save sweep…")).on_hover_text("The Dice-vs-sparsity points as CSV, or the plot as PNG (by the file's extension)").clicked() {
                        self.export_sweep_dialog();
                    }
                });
                for notice in self.notices.iter().rev().take(3) {
                    ui.label(notice);
                }
            });
    }

    fn model_stats_ui(&self, ui: &mut egui::Ui, model: &ModelView) {
        ui.label(&model.description);
        egui::Grid::new("stats").show(ui, |ui| {
            ui.label("");
            ui.label("dense");
            ui.label("pruned");
            ui.end_row();
            let (params, nonzero, macs) = match &self.preview {
                Some(p) => (
                    p.params.to_string(),
                    p.nonzero_params.to_string(),
                    format!("{:.3} G", p.macs as f64 / 1e9),
                ),
                None => ("…".into(), "…".into(), "…".into()),
            };
            ui.label("params");
            ui.label(model.params.to_string());
            ui.label(params);
            ui.end_row();
            ui.label("non-zero params");
            ui.label(model.params.to_string());
            ui.label(nonzero);
            ui.end_row();
            ui.label("MACs (192x192)");
            ui.label(format!("{:.3} G", model.macs as f64 / 1e9));
            ui.label(macs);
            ui.end_row();
        });
    }

    fn slices_ui(&mut self, ui: &mut egui::Ui) {
        let Some(case) = self.case.clone() else {
            ui.centered_and_justified(|ui| ui.spinner());
            return;
        };
        let axis = self.settings.axis;
        // Taken out for the frame so the images can borrow them while `self` is mutated.
        let dense_codes = self.dense_codes.take();
        let pruned_codes = self.pruned_codes.take();
        let panels: [(&str, Option<&[u8]>); 3] = [
            ("Ground truth", case.truth.as_deref()),
            ("Dense", dense_codes.as_deref()),
            ("Pruned", pruned_codes.as_deref()),
        ];
        // A 2x2 grid that fits the panel: each image at most half the width and half the height.
        let [w, h] = axis.plane(case.dims);
        let aspect = h as f32 / w as f32;
        let by_height = (ui.available_height() - 90.0) / 2.0 / aspect;
        let width = (ui.available_width() / 2.0 - 12.0)
            .min(by_height)
            .max(120.0);
        let slice = self.slice_idx.min(axis.slices(case.dims).saturating_sub(1));
        let key = viewer::TextureKey {
            case_id: case.id.clone(),
            axis,
            slice,
            modality: self.settings.modality,
            window: self.settings.window,
            overlay: self.settings.overlay.clone(),
            codes_generation: self.codes_generation,
        };
        let mut scroll = 0.0;
        egui::Grid::new("slices").show(ui, |ui| {
            for (i, (title, codes)) in panels.iter().enumerate() {
                let texture = self.textures.get_or_render(ui.ctx(), title, &key, || {
                    render_slice(
                        &case.modalities[key.modality],
                        *codes,
                        case.dims,
                        axis,
                        slice,
                        key.window,
                        &key.overlay,
                    )
                });
                scroll += self.image_ui(ui, title, &texture, width, &case, *codes);
                if i % 2 == 1 {
                    ui.end_row();
                }
            }
            if let (Some(dense), Some(pruned)) = (&dense_codes, &pruned_codes) {
                let title =
                    "Dense vs pruned (red: dense only, blue: pruned only, orange: other region)";
                let texture = self.textures.get_or_render(ui.ctx(), title, &key, || {
                    let plane = axis.plane(case.dims);
                    let a = plane_codes(dense, case.dims, axis, slice);
                    let b = plane_codes(pruned, case.dims, axis, slice);
                    (plane, render_disagreement(&a, &b, plane))
                });
                self.image_ui(ui, title, &texture, width, &case, None);
            } else {
                ui.label("Disagreement map: waiting for both predictions");
            }
            ui.end_row();
        });
        self.dense_codes = dense_codes;
        self.pruned_codes = pruned_codes;
        if axis != Axis::Axial {
            ui.label(
                "The pruned preview is computed on axial slices; switch to Axial to scroll it.",
            );
        }
        let slices = axis.slices(case.dims);
        self.move_slice(scroll as i64, slices);
    }

    /// One slice image with hover read-out and window/level drag; returns wheel steps over it.
    fn image_ui(
        &mut self,
        ui: &mut egui::Ui,
        title: &str,
        texture: &egui::TextureHandle,
        width: f32,
        case: &CaseView,
        codes: Option<&[u8]>,
    ) -> f32 {
        let mut wheel = 0.0;
        ui.vertical(|ui| {
            ui.label(title);
            let plane = texture.size();
            let aspect = plane[1] as f32 / plane[0] as f32;
            let size = egui::vec2(width, width * aspect);
            let response = ui.add(
                egui::Image::new(texture)
                    .fit_to_exact_size(size)
                    .sense(egui::Sense::click_and_drag()),
            );
            if response.dragged() {
                let delta = response.drag_delta();
                let w = &mut self.settings.window;
                w.width = (w.width + delta.x * 0.02).clamp(0.1, 20.0);
                w.level += -delta.y * 0.02;
            }
            if response.double_clicked() {
                self.settings.window = Window::default();
            }
            if let Some(pos) = response.hover_pos() {
                let delta = ui.input(|i| i.smooth_scroll_delta.y);
                // (f32::signum(0.0) is 1.0, so no movement must stay no movement.)
                if delta != 0.0 {
                    wheel = delta.signum();
                }
                let rel = (pos - response.rect.min) / response.rect.size();
                let u = ((rel.x * plane[0] as f32) as usize).min(plane[0] - 1);
                let v = ((rel.y * plane[1] as f32) as usize).min(plane[1] - 1);
                let s = self.slice_idx.min(self.settings.axis.slices(case.dims) - 1);
                let voxel = self.settings.axis.voxel(case.dims, s, u, v);
                response.on_hover_text(viewer::voxel_readout(case, voxel, codes));
            }
        });
        wheel
    }
}

/// Per-group ratios of a preset: `ratio` everywhere but the first encoder level and the last
/// decoder level, the groups whose loss alone wrecks the segmentation (the usual practice of
/// leaving a network's first and last layers unpruned).
pub fn preset_ratios(model: &ModelView, ratio: f64) -> Vec<f64> {
    let protected =
        |name: &str| name.starts_with("enc1.") || ["up2", "att2", "dec2"].contains(&name);
    model
        .groups
        .iter()
        .map(|g| if protected(&g.name) { 0.0 } else { ratio })
        .collect()
}

/// A sentence per method for the hover text (teaching).
pub fn method_help(method: PruneMethod) -> &'static str {
    use crate::prune::{StructuredMethod as S, UnstructuredMethod as U};
    match method {
        PruneMethod::Structured(S::L2) => {
            "Removes the channels whose filters have the smallest L2 norm (Li et al. 2017). The model really gets smaller and faster."
        }
        PruneMethod::Structured(S::BnGamma) => {
            "Network slimming (Liu et al. 2017): removes channels whose batch-norm scale |gamma| is smallest; best after training with an L1 penalty on gammas."
        }
        PruneMethod::Structured(S::GroupL2) => {
            "DepGraph (Fang et al. 2023): scores a channel by the L2 norm of every parameter coupled to it across layers."
        }
        PruneMethod::Unstructured(U::L1) => {
            "Zeroes the smallest-magnitude weights in every layer (same share per layer). Sparse, not smaller: MACs stay the same on a CPU."
        }
        PruneMethod::Unstructured(U::L1Global) => {
            "Zeroes the smallest-magnitude weights under one threshold across all layers."
        }
        PruneMethod::Unstructured(U::Snip) => {
            "SNIP (Lee et al. 2019): zeroes weights with the smallest |gradient x weight| on one batch. Needs data; the live preview falls back to magnitude."
        }
    }
}

/// Opens the app window (the binary's default when run without a command).
pub fn run_app() -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1400.0, 900.0])
            .with_title("RAAGR2-Net pruning lab")
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "raagr2-lab",
        options,
        Box::new(|cc| Ok(Box::new(LabApp::new(cc)))),
    )
    .map_err(|e| anyhow::anyhow!("the window could not open: {e}"))
}

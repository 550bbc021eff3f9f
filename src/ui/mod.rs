//! The desktop app (eframe/egui): slice viewer with ground truth | dense | pruned | disagreement,
//! and a pruning panel whose sliders drive live previews computed by the background worker.
//! Knows nothing of burn: it sends requests and draws the plain data that comes back.

mod attention;
mod budget_panel;
pub mod classify_workspace;
mod filters;
mod fine_tune_panel;
mod heatmap;
pub mod layers;
mod lesson_panel;
mod messages;
mod palette;
mod plans;
mod plots;
mod pruning_panel;
mod slices;
mod study_panel;
mod view_panel;
pub mod viewer;

pub use attention::AttentionState;
pub use budget_panel::BudgetState;
pub use filters::{ChannelSort, FilterState};
pub use fine_tune_panel::{FineTuneForm, FineTuneState, GpuState, TrainPoint};
pub use lesson_panel::LessonState;
pub use plans::PlansState;
pub use pruning_panel::{PruningState, method_help, preset_ratios};

use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;

use crate::prune::PruneMethod;
use crate::prune::sweep::SweepPoint;
use crate::render::{OverlayStyle, SliceAxis, Window};
use crate::worker::{
    self, CaseView, FineTuneRequest, MapsRequest, MapsView, ModelView, PreviewRequest,
    PreviewResult, Request, WorkerHandle,
};

/// A view fed by a worker thread: the channel its responses arrive on and what it does with one.
pub trait WorkerFed {
    type Response;
    fn responses(&self) -> &crossbeam_channel::Receiver<Self::Response>;
    fn receive(&mut self, response: Self::Response);

    /// Blocks until the worker sends one message and handles it; for tests (no sleeping: it
    /// waits on the channel). Returns false on timeout.
    fn wait_for_message(&mut self, timeout: Duration) -> bool {
        match self.responses().recv_timeout(timeout) {
            Ok(response) => {
                self.receive(response);
                true
            }
            Err(_) => false,
        }
    }
}

impl WorkerFed for LabApp {
    type Response = worker::Response;

    fn responses(&self) -> &crossbeam_channel::Receiver<worker::Response> {
        &self.worker.responses
    }

    fn receive(&mut self, response: worker::Response) {
        self.handle(response);
    }
}

/// Settings kept between runs (eframe persistence).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    pub axis: SliceAxis,
    pub modality: usize,
    pub window: Window,
    pub overlay: OverlayStyle,
    pub method: PruneMethod,
    /// The last case opened from disk; `None` opens the embedded default case.
    pub last_case: Option<std::path::PathBuf>,
    /// Whether the lesson was offered (the first start offers it in the top bar).
    pub lesson_offered: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            axis: SliceAxis::Axial,
            modality: 3,
            window: Window::default(),
            overlay: OverlayStyle::default(),
            method: PruneMethod::Structured(crate::prune::StructuredMethod::L2),
            last_case: None,
            lesson_offered: false,
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
    pub pruning: PruningState,
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
    /// The embedded model's shipped sweep (read once, when the Plots tab first needs it).
    pub shipped_sweep: Vec<SweepPoint>,
    /// The Plots tab's compression study chart.
    study: study_panel::StudyPanel,
    /// What the Plots tab's lower right shows (`None`: the budget search once it has points,
    /// else the study).
    lower_right: Option<plots::LowerRight>,
    pub fine_tune: FineTuneState,
    pub tab: Tab,
    /// Group whose BN-gamma histogram is shown.
    pub histogram_group: usize,
    /// Region of the Dice-vs-sparsity plot (0 WT, 1 TC, 2 ET).
    pub plot_region: usize,
    pub notices: Vec<String>,
    pub layers: layers::LayersState,
    pub workspace: Workspace,
    /// The classifier workspace, started the first time it is shown.
    pub classifiers: Option<classify_workspace::ClassifierWorkspace>,
    /// Every kept pruning plan, saved to the workspace file.
    pub plans: PlansState,
    /// The last filter/attention maps from the worker (shared: frames clone the handle).
    pub maps: Option<Arc<MapsView>>,
    last_maps_id: u64,
    maps_wanted: bool,
    pub filters: FilterState,
    /// The budget search's settings and results.
    pub budget: BudgetState,
    pub attention: AttentionState,
    /// The guided lesson and where the class is in it.
    pub lesson: LessonState,
}

/// The app's two studies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workspace {
    /// RAAGR2-Net on brain MRI.
    Segmentation,
    /// VGG / DenseNet image classifiers.
    Classifiers,
}

/// The central area's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Slices,
    Plots,
    Layers,
    Filters,
    Attention,
    Plans,
}

impl Tab {
    /// Whether the page shows activation or attention maps (which follow the preview).
    fn shows_maps(self) -> bool {
        matches!(self, Tab::Filters | Tab::Attention)
    }
}

impl LabApp {
    /// Starts the worker and asks for the last case (or the embedded default); the plan tree
    /// lives in the user's data directory.
    pub fn new(cc: &eframe::CreationContext<'_>) -> LabApp {
        LabApp::with_workspace(cc, crate::plan_tree::default_workspace_path())
    }

    /// [`LabApp::new`] with the plan tree's workspace file at `workspace` (none: not saved).
    pub fn with_workspace(
        cc: &eframe::CreationContext<'_>,
        workspace: Option<std::path::PathBuf>,
    ) -> LabApp {
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
        let (lesson, lesson_error) = LessonState::from_env();
        let mut app = LabApp {
            worker,
            settings,
            case: None,
            dense_codes: None,
            pruned_codes: None,
            textures: viewer::TextureCache::default(),
            codes_generation: 0,
            dense_case_dice: None,
            model: None,
            pruning: PruningState::default(),
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
            shipped_sweep: Vec::new(),
            study: Default::default(),
            lower_right: None,
            fine_tune: FineTuneState::default(),
            tab: Tab::Slices,
            histogram_group: 0,
            plot_region: 0,
            notices: Vec::new(),
            layers: layers::LayersState::default(),
            workspace: Workspace::Segmentation,
            classifiers: None,
            plans: PlansState::open(workspace),
            maps: None,
            last_maps_id: 0,
            maps_wanted: false,
            filters: FilterState::default(),
            budget: BudgetState::default(),
            attention: AttentionState::default(),
            lesson,
        };
        app.errors.extend(lesson_error);
        // The model of the node selected when the app was last closed.
        if let Some((node, model)) = app.plans.selected_on_a_file() {
            app.open_model(Some(model.clone()));
            app.plans.pending_restore = Some((node, Some(model)));
        }
        app
    }

    /// Slice textures rendered and uploaded since the start (they are cached per panel).
    pub fn texture_uploads(&self) -> u64 {
        self.textures.uploads
    }

    /// Asks the worker to open a case folder (or a file inside one).
    pub fn open_path(&mut self, path: std::path::PathBuf) {
        let _ = self.worker.requests.send(Request::OpenPath(path));
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

    /// What the panel currently describes (method, ratios, slice, fine-tuned or not).
    fn current_request(&self) -> Option<PreviewRequest> {
        let case = self.case.as_ref()?;
        let slice_idx = match self.settings.axis {
            SliceAxis::Axial => self.slice_idx,
            // Other planes preview the axial slice with the most tumour.
            _ => slices::best_slice(case),
        };
        let model = self.model.as_ref()?;
        Some(PreviewRequest {
            id: self.last_preview_id,
            plan: self.pruning.plan(self.settings.method, model),
            slice_idx,
            fine_tuned: self.fine_tune.show_tuned,
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
        self.maps_wanted = true;
    }

    /// Asks for the filter/attention maps of what the panel describes (the filter view's
    /// group of the dense model, both models' gates).
    fn request_maps(&mut self) {
        let Some(preview) = self.current_request() else {
            return;
        };
        self.last_maps_id += 1;
        let group = match self.tab {
            Tab::Filters => self.filters.group_name(self.model.as_ref()),
            _ => None,
        };
        let request = MapsRequest {
            id: self.last_maps_id,
            preview,
            group,
            attention: self.tab == Tab::Attention,
        };
        let _ = self.worker.requests.send(Request::Maps(request));
        self.maps_wanted = false;
    }

    /// Anything in the pruning settings changed: a new pruned model (not the fine-tuned one,
    /// not a saved node's weights) to preview.
    pub(crate) fn pruning_changed(&mut self) {
        self.fine_tune.show_tuned = false;
        self.pruning.fine_tune = None;
        self.pruning.checkpoint = None;
        self.preview_wanted = true;
    }

    /// Asks the worker to make the model at `path` (a checkpoint or PyTorch state_dict; `None`:
    /// the embedded one) the dense model.
    pub fn open_model(&mut self, path: Option<std::path::PathBuf>) {
        // A node waiting for another model gives way to the model asked for now.
        self.plans.pending_restore = None;
        let _ = self.worker.requests.send(Request::OpenModel(path));
    }

    /// Points of the study the Plots tab shows (0: none).
    pub fn study_points(&self) -> usize {
        self.study.points()
    }

    /// Where the study the Plots tab shows came from.
    pub fn study_source(&self) -> Option<&str> {
        self.study.source()
    }

    /// Asks the worker to read a study file for the Plots tab (answered by the chart or an
    /// error naming the file).
    pub fn open_study(&self, path: std::path::PathBuf) {
        let _ = self.worker.requests.send(Request::OpenStudy(path));
    }

    fn open_model_dialog(&self) {
        let requests = self.worker.requests.clone();
        std::thread::spawn(move || {
            if let Some(path) = rfd::FileDialog::new()
                .set_title("Open a model (raagr2-lab checkpoint or PyTorch state_dict)")
                .add_filter("safetensors", &["safetensors"])
                .pick_file()
            {
                let _ = requests.send(Request::OpenModel(Some(path)));
            }
        });
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
        self.fine_tune.history.clear();
        let request = FineTuneRequest {
            preview: PreviewRequest {
                fine_tuned: false,
                ..preview
            },
            epochs: self.fine_tune.settings.epochs,
            learning_rate: self.fine_tune.settings.learning_rate,
            batches_per_epoch: self.fine_tune.settings.batches_per_epoch,
            device: self.fine_tune.settings.device,
        };
        self.fine_tune_started(request.preview.plan.clone());
        let _ = self.worker.requests.send(Request::StartFineTune(request));
        self.job = Some((
            0,
            self.fine_tune.settings.epochs,
            "fine-tune: starting".into(),
        ));
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
        let fine_tuned = self.fine_tune.show_tuned;
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
            let is_model = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
            if is_model {
                self.open_model(Some(path));
            } else {
                self.settings.last_case = Some(path.clone());
                self.open_path(path);
            }
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
            self.preview_wanted |= self.settings.axis == SliceAxis::Axial;
        }
    }
}

impl eframe::App for LabApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.drain_messages();
        self.update_lesson();
        let ctx = ui.ctx().clone();
        egui::Panel::top("menu").show(ui, |ui| self.top_bar_ui(ui));
        if self.workspace == Workspace::Classifiers {
            let workspace = self.classifiers.get_or_insert_with(|| {
                let ctx = ctx.clone();
                classify_workspace::ClassifierWorkspace::new(move || ctx.request_repaint())
            });
            workspace.ui(ui);
            return;
        }
        self.handle_input(&ctx);
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        if self.lesson.open {
            egui::Panel::left("lesson")
                .default_size(320.0)
                .show(ui, |ui| self.lesson_ui(ui));
        }
        egui::Panel::left("view")
            .default_size(230.0)
            .show(ui, |ui| self.view_panel_ui(ui));
        egui::Panel::right("pruning")
            .default_size(330.0)
            .show(ui, |ui| self.pruning_panel_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            let before = self.tab;
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.tab, Tab::Slices, "Slices");
                ui.selectable_value(&mut self.tab, Tab::Plots, "Plots");
                ui.selectable_value(&mut self.tab, Tab::Layers, "Layers");
                ui.selectable_value(&mut self.tab, Tab::Filters, "Filters")
                    .on_hover_text(
                        "A channel group's activation maps, scores, and channels picked by hand",
                    );
                ui.selectable_value(&mut self.tab, Tab::Attention, "Attention")
                    .on_hover_text("Where each attention gate looks, dense vs pruned");
                ui.selectable_value(&mut self.tab, Tab::Plans, "Plans")
                    .on_hover_text("The plan tree: kept plans, restore, compare, statistics");
            });
            if self.tab != before && self.tab.shows_maps() {
                self.maps_wanted = true;
            }
            ui.separator();
            match self.tab {
                Tab::Slices => self.slices_ui(ui),
                Tab::Plots => self.plots_ui(ui),
                Tab::Layers => self.layers_ui(ui),
                Tab::Filters => self.filters_ui(ui),
                Tab::Attention => self.attention_ui(ui),
                Tab::Plans => self.plans_ui(ui),
            }
        });
        if self.preview_wanted {
            self.request_preview();
        }
        if self.maps_wanted && self.tab.shows_maps() {
            self.request_maps();
        }
        self.apply_workspace_picks();
        self.plans.save_if_changed();
        self.errors.extend(self.plans.take_errors());
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
            ui.selectable_value(&mut self.workspace, Workspace::Segmentation, "Segmentation")
                .on_hover_text("RAAGR2-Net on brain MRI");
            ui.selectable_value(&mut self.workspace, Workspace::Classifiers, "Classifiers")
                .on_hover_text("VGG and DenseNet image classifiers: L1 pruning, accuracy, CKA");
            ui.separator();
            if self.workspace == Workspace::Classifiers {
                return;
            }
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
            ui.separator();
            if ui
                .button("Open model…")
                .on_hover_text(
                    "A raagr2-lab checkpoint or a PyTorch state_dict (.safetensors); or drop one \
                     on the window",
                )
                .clicked()
            {
                self.open_model_dialog();
            }
            self.shipped_models_menu_ui(ui);
            ui.separator();
            self.lesson_top_ui(ui);
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

    /// The models compiled into the program: the default one and the compression study's family.
    fn shipped_models_menu_ui(&mut self, ui: &mut egui::Ui) {
        let mut chosen = None;
        ui.menu_button("Models", |ui| {
            if ui
                .button("Default model (quarter width)")
                .on_hover_text("The embedded default model the app opens with")
                .clicked()
            {
                chosen = Some(None);
            }
            ui.separator();
            ui.weak("The compression study's family (one recipe, data and seed)");
            for shipped in crate::defaults::SHIPPED_MODELS {
                if ui
                    .button(shipped.label)
                    .on_hover_text(format!(
                        "Compiled into the program; the command line opens it as {}",
                        shipped.path
                    ))
                    .clicked()
                {
                    chosen = Some(Some(std::path::PathBuf::from(shipped.path)));
                }
            }
        })
        .response
        .on_hover_text("Models shipped with the program (no file needed)");
        if let Some(path) = chosen {
            self.open_model(path);
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

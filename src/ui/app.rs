//! The app shell: the shared state (settings, case, model, preview, the running job), the
//! panels' own states, the frame's layout, and the one place that carries out the panels'
//! commands: requests to the worker, file dialogs and the plan tree's edits. The worker's
//! answers are applied in `app/messages.rs`, the shell's other half.

mod messages;

use crate::precision::Precision;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;

use super::budget_panel::BudgetState;
use super::command::{AppView, PanelCommand};
use super::fine_tune_panel::{FineTuneForm, FineTuneState};
use super::pruning_panel::{Sections, pruning_panel_ui};
use super::state::{GpuState, PruningState};
use super::view_panel::{slice_dice, view_panel_ui};
use super::volume_view::VolumeView;
use super::{
    AttentionState, ExportChoice, FilterState, LessonState, PlansState, PlotsTab, Settings,
    SlicesTab, Tab, Workspace, classify_workspace, layers, slices,
};
use crate::prune::sweep::SweepPoint;
use crate::prune::{PruneMethod, PrunePlan, StructuredMethod};
use crate::render::SliceAxis;
use crate::worker::{
    self, CaseView, FindingsView, FineTuneRequest, MapsRequest, MapsView, ModelView,
    PreviewRequest, PreviewResult, Request, WorkerHandle,
};

const SETTINGS_KEY: &str = "raagr2-lab-settings";
/// Longest time one frame spends handling worker messages (the rest waits for the next frame).
const MESSAGE_BUDGET: Duration = Duration::from_millis(8);
/// The ratios a whole-case sweep prunes by.
const SWEEP_RATIOS: [f64; 5] = [0.0, 0.1, 0.25, 0.5, 0.75];

/// The application state.
pub struct LabApp {
    worker: WorkerHandle,
    pub settings: Settings,
    /// The open case, shared (frames clone the handle, never the volumes).
    pub case: Option<Arc<CaseView>>,
    /// The dense model's whole-case segmentation (shared: the 3-D view's upload holds it too).
    pub dense_codes: Option<Arc<Vec<u8>>>,
    /// The preview's axial slice placed in a volume of the case's size (built once per preview,
    /// so the viewer indexes it like the other segmentations), replaced by the pruned model's
    /// whole-case segmentation once that arrives.
    pruned_codes: Option<Arc<Vec<u8>>>,
    /// `pruned_codes` is the whole-case segmentation.
    pruned_whole_case: bool,
    /// Volumes and lesions of the open case: the dense model's, then with the pruned model's
    /// once it has segmented the whole case.
    pub findings: Option<Box<FindingsView>>,
    /// The preview whose pruned segmentation `findings` holds.
    findings_preview: Option<u64>,
    /// The last preview asked for, and the one whose model's whole case the app holds (a
    /// preview of another slice of that model keeps it).
    last_request: Option<PreviewRequest>,
    scored_request: Option<PreviewRequest>,
    /// The voxel the viewer was sent to (a lesion clicked).
    pub cursor: Option<[usize; 3]>,
    /// Increases whenever a segmentation shown in the viewer changes (texture cache key).
    codes_generation: u64,
    /// Dense model vs ground truth over the whole case, WT/TC/ET.
    pub dense_case_dice: Option<[f64; 3]>,
    pub model: Option<ModelView>,
    /// The pruning settings (besides the method): the Pruning panel edits them, the plan tree,
    /// the filter picks and the budget search set them.
    pub pruning: PruningState,
    pub slice_idx: usize,
    pub preview: Option<PreviewResult>,
    /// Dice of the previewed model over the whole case (arrives after the slice preview).
    pub preview_case_dice: Option<[f64; 3]>,
    /// The number format that Dice is scored in.
    pub case_dice_precision: Precision,
    last_preview_id: u64,
    preview_wanted: bool,
    pub status: String,
    pub errors: Vec<String>,
    /// Messages handled so far (tests wait on it).
    pub messages_seen: usize,
    /// The running background job: (done, total, what).
    pub job: Option<(usize, usize, String)>,
    pub sweep_points: Vec<SweepPoint>,
    pub notices: Vec<String>,
    pub tab: Tab,
    pub workspace: Workspace,
    /// The last filter/attention maps from the worker (shared: frames clone the handle).
    pub maps: Option<Arc<MapsView>>,
    last_maps_id: u64,
    maps_wanted: bool,
    pub fine_tune: FineTuneState,
    pub slices: SlicesTab,
    /// The 3-D tab's camera (its GPU side lives in the renderer's callback resources).
    pub volume: VolumeView,
    pub plots: PlotsTab,
    pub layers: layers::LayersState,
    pub filters: FilterState,
    pub attention: AttentionState,
    /// Every kept pruning plan, saved to the workspace file.
    pub plans: PlansState,
    /// The budget search's settings and results.
    pub budget: BudgetState,
    /// The guided lesson and where the class is in it.
    pub lesson: LessonState,
    /// The classifier workspace, started the first time it is shown.
    pub classifiers: Option<classify_workspace::ClassifierWorkspace>,
}

/// The panels' own states, borrowed beside the [`AppView`] for one call.
struct Panels<'a> {
    fine_tune: &'a mut FineTuneForm,
    slices: &'a mut SlicesTab,
    volume: &'a mut VolumeView,
    plots: &'a mut PlotsTab,
    layers: &'a mut layers::LayersState,
    filters: &'a mut FilterState,
    attention: &'a mut AttentionState,
    plans: &'a mut PlansState,
    budget: &'a mut BudgetState,
    lesson: &'a mut LessonState,
}

impl LabApp {
    /// Starts the worker and asks for the last case (or the embedded default); the plan tree
    /// lives in the user's data directory.
    pub fn new(cc: &eframe::CreationContext<'_>) -> LabApp {
        LabApp::with_workspace(cc, crate::plan_tree::default_workspace_path())
    }

    /// [`LabApp::new`] with the plan tree's workspace file at `workspace` (none: not saved).
    pub fn with_workspace(cc: &eframe::CreationContext<'_>, workspace: Option<PathBuf>) -> LabApp {
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
        if settings.resample {
            let _ = worker.requests.send(Request::SetResample(true));
        }
        let _ = worker.requests.send(first);
        let (lesson, lesson_error) = LessonState::from_env();
        let mut app = LabApp {
            worker,
            settings,
            case: None,
            dense_codes: None,
            pruned_codes: None,
            codes_generation: 0,
            dense_case_dice: None,
            model: None,
            pruning: PruningState::default(),
            slice_idx: 0,
            preview: None,
            preview_case_dice: None,
            case_dice_precision: Precision::Fp32,
            pruned_whole_case: false,
            findings: None,
            findings_preview: None,
            last_request: None,
            scored_request: None,
            cursor: None,
            last_preview_id: 0,
            preview_wanted: false,
            status: "starting".into(),
            errors: Vec::new(),
            messages_seen: 0,
            job: None,
            sweep_points: Vec::new(),
            notices: Vec::new(),
            tab: Tab::Slices,
            workspace: Workspace::Segmentation,
            maps: None,
            last_maps_id: 0,
            maps_wanted: false,
            fine_tune: FineTuneState::default(),
            slices: SlicesTab::default(),
            volume: VolumeView::new(cc.wgpu_render_state.as_ref()),
            plots: PlotsTab::default(),
            layers: layers::LayersState::default(),
            filters: FilterState::default(),
            attention: AttentionState::default(),
            plans: PlansState::open(workspace),
            budget: BudgetState::default(),
            lesson,
            classifiers: None,
        };
        app.errors.extend(lesson_error);
        // The model of the node selected when the app was last closed.
        if let Some((node, model)) = app.plans.selected_on_a_file() {
            app.open_model(Some(model.clone()));
            app.plans.pending_restore = Some((node, Some(model)));
        }
        app
    }

    /// The shared state as panels read it, beside the panels' own states.
    fn parts(&mut self) -> (AppView<'_>, Panels<'_>) {
        let current = self
            .preview
            .as_ref()
            .is_some_and(|p| p.id == self.last_preview_id);
        let view = AppView {
            settings: &self.settings,
            case: self.case.as_ref(),
            model: self.model.as_ref(),
            pruning: &self.pruning,
            preview: self.preview.as_ref(),
            current_case_dice: (current && !self.preview_wanted)
                .then_some(self.preview_case_dice)
                .flatten(),
            preview_case_dice: self.preview_case_dice,
            case_dice_precision: self.case_dice_precision,
            dense_case_dice: self.dense_case_dice,
            dense_codes: self.dense_codes.as_deref().map(Vec::as_slice),
            pruned_codes: self.pruned_codes.as_deref().map(Vec::as_slice),
            dense_volume: self.dense_codes.as_ref(),
            pruned_volume: self.pruned_codes.as_ref(),
            pruned_whole_case: self.pruned_whole_case,
            findings: self.findings.as_deref(),
            pruned_findings_current: current
                && !self.preview_wanted
                && self.findings_preview == Some(self.last_preview_id),
            cursor: self.cursor,
            codes_generation: self.codes_generation,
            slice_idx: self.slice_idx,
            tab: self.tab,
            job: self.job.as_ref(),
            searching: self.budget.started_from.is_some(),
            sweep_points: &self.sweep_points,
            maps: self.maps.as_ref(),
            notices: &self.notices,
            gpu: &self.fine_tune.gpu,
            fine_tune_history: &self.fine_tune.history,
            tuned_available: self.fine_tune.tuned_available,
            show_tuned: self.fine_tune.show_tuned,
        };
        let panels = Panels {
            fine_tune: &mut self.fine_tune.settings,
            slices: &mut self.slices,
            volume: &mut self.volume,
            plots: &mut self.plots,
            layers: &mut self.layers,
            filters: &mut self.filters,
            attention: &mut self.attention,
            plans: &mut self.plans,
            budget: &mut self.budget,
            lesson: &mut self.lesson,
        };
        (view, panels)
    }

    /// Slice textures rendered and uploaded since the start (they are cached per panel).
    pub fn texture_uploads(&self) -> u64 {
        self.slices.uploads()
    }

    /// Dice WT/TC/ET of the dense and the pruned model on the previewed axial slice.
    pub fn slice_dice(&self) -> (Option<[f64; 3]>, Option<[f64; 3]>) {
        let case = self.case.as_deref();
        slice_dice(
            case,
            self.preview.as_ref(),
            self.dense_codes.as_deref().map(Vec::as_slice),
        )
    }

    /// Points of the study the Plots tab shows (0: none).
    pub fn study_points(&self) -> usize {
        self.plots.study_points()
    }

    /// Where the study the Plots tab shows came from.
    pub fn study_source(&self) -> Option<&str> {
        self.plots.study_source()
    }

    /// Reads and checks a lesson file on a thread of its own; the lesson replaces the current
    /// one, or the error (naming the file and the broken step) is shown.
    pub fn open_lesson_file(&self, path: PathBuf) {
        self.lesson.open_file(path);
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
}

impl eframe::App for LabApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.drain_messages();
        let seen = {
            let (view, panels) = self.parts();
            panels.lesson.update(&view)
        };
        self.apply_all(seen);
        let ctx = ui.ctx().clone();
        let mut commands = Vec::new();
        egui::Panel::top("menu").show(ui, |ui| commands.extend(self.top_bar_ui(ui)));
        if self.workspace == Workspace::Classifiers {
            self.apply_all(commands);
            let workspace = self.classifiers.get_or_insert_with(|| {
                let ctx = ctx.clone();
                classify_workspace::ClassifierWorkspace::new(move || ctx.request_repaint())
            });
            workspace.ui(ui);
            return;
        }
        self.handle_input(&ctx);
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        self.side_panels_ui(ui, &mut commands);
        egui::CentralPanel::default().show(ui, |ui| {
            self.tab_bar_ui(ui);
            ui.separator();
            commands.extend(self.tab_ui(ui));
        });
        if !commands.is_empty() {
            // What they change shows in the next frame.
            ctx.request_repaint();
        }
        self.apply_all(commands);
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

/// The frame's layout: bars, side panels and the central tabs.
impl LabApp {
    /// The lesson (when open), View and Pruning panels.
    fn side_panels_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<PanelCommand>) {
        if self.lesson.open {
            egui::Panel::left("lesson")
                .default_size(320.0)
                .show(ui, |ui| {
                    let (view, panels) = self.parts();
                    commands.extend(panels.lesson.ui(ui, &view));
                });
        }
        egui::Panel::left("view")
            .default_size(230.0)
            .show(ui, |ui| commands.extend(view_panel_ui(ui, &self.parts().0)));
        egui::Panel::right("pruning")
            .default_size(330.0)
            .show(ui, |ui| {
                let (view, panels) = self.parts();
                let sections = Sections {
                    fine_tune: panels.fine_tune,
                    budget: panels.budget,
                    selected_node: panels.plans.tree.selected_node(),
                };
                commands.extend(pruning_panel_ui(ui, &view, sections));
            });
    }

    fn tab_bar_ui(&mut self, ui: &mut egui::Ui) {
        let before = self.tab;
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.tab, Tab::Slices, "Slices");
            ui.selectable_value(&mut self.tab, Tab::Volume, "3-D")
                .on_hover_text("Dense and pruned segmentations in 3-D, side by side");
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
    }

    /// The page of the chosen tab.
    fn tab_ui(&mut self, ui: &mut egui::Ui) -> Vec<PanelCommand> {
        let tab = self.tab;
        let (view, panels) = self.parts();
        match tab {
            Tab::Slices => panels.slices.ui(ui, &view),
            Tab::Plots => panels.plots.ui(ui, &view, panels.budget),
            Tab::Layers => panels.layers.ui(ui, &view),
            Tab::Filters => panels.filters.ui(ui, &view),
            Tab::Attention => {
                panels.attention.ui(ui, &view);
                Vec::new()
            }
            Tab::Plans => panels.plans.ui(ui, &view),
            Tab::Volume => {
                panels.volume.ui(ui, &view);
                Vec::new()
            }
        }
    }

    fn top_bar_ui(&mut self, ui: &mut egui::Ui) -> Option<PanelCommand> {
        let mut command = None;
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
            self.open_buttons_ui(ui);
            ui.separator();
            command = {
                let (view, panels) = self.parts();
                panels.lesson.top_ui(ui, &view)
            };
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
        self.errors_ui(ui);
        command
    }

    /// Open case, the default case, open model and the shipped models.
    fn open_buttons_ui(&mut self, ui: &mut egui::Ui) {
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
    }

    /// The errors so far, each with a Dismiss button.
    fn errors_ui(&mut self, ui: &mut egui::Ui) {
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
                    chosen = Some(Some(PathBuf::from(shipped.path)));
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

    /// Files dropped on the window and the arrow keys.
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
        let step = ctx.input(|i| {
            i.key_pressed(egui::Key::ArrowUp) as i64 - i.key_pressed(egui::Key::ArrowDown) as i64
        });
        self.move_slice(step);
    }
}

/// The panels' commands carried out.
impl LabApp {
    fn apply_all(&mut self, commands: impl IntoIterator<Item = PanelCommand>) {
        for command in commands {
            self.apply(command);
        }
    }

    /// Scores the pruned model's whole-case Dice in `precision` from now on, as the Dice
    /// panel's box does (tests drive it here).
    pub fn score_case_dice_in(&mut self, precision: Precision) {
        self.apply(PanelCommand::SetCaseDicePrecision(precision));
    }

    fn apply(&mut self, command: PanelCommand) {
        match command {
            PanelCommand::SetAxis(axis) => {
                self.settings.axis = axis;
                if let Some(case) = &self.case {
                    self.slice_idx = match self.cursor {
                        Some(voxel) => axis.slice_of(voxel),
                        None => axis.slices(case.dims) / 2,
                    };
                }
            }
            PanelCommand::SetResample(resample) => {
                self.settings.resample = resample;
                let _ = self.worker.requests.send(Request::SetResample(resample));
                self.preview_case_dice = None;
                self.scored_request = None;
                self.preview_wanted = true;
            }
            PanelCommand::GoToVoxel(voxel) => {
                self.cursor = Some(voxel);
                self.set_slice(self.settings.axis.slice_of(voxel));
            }
            PanelCommand::SetModality(modality) => self.settings.modality = modality,
            PanelCommand::SetSlice(slice) => self.set_slice(slice),
            PanelCommand::MoveSlice(step) => self.move_slice(step),
            PanelCommand::SetWindow(window) => self.settings.window = window,
            PanelCommand::SetOverlay(overlay) => self.settings.overlay = overlay,
            PanelCommand::SetPruning { method, pruning } => {
                self.settings.method = method;
                self.pruning = pruning;
                self.pruning_changed();
            }
            PanelCommand::ProbeGpu => {
                self.fine_tune.gpu = GpuState::Probing;
                let _ = self.worker.requests.send(Request::ProbeGpu);
            }
            PanelCommand::StartFineTune => self.start_fine_tune(),
            PanelCommand::StartSweep => self.start_sweep(),
            PanelCommand::CancelJob => self.cancel_job(),
            PanelCommand::ShowTuned(show) => {
                self.fine_tune.show_tuned = show;
                self.preview_wanted = true;
            }
            PanelCommand::SetCaseDicePrecision(precision) => {
                self.case_dice_precision = precision;
                self.preview_case_dice = None;
                self.preview_wanted = true;
            }
            PanelCommand::ExportModel(choice) => self.export_model_dialog(choice),
            PanelCommand::SavePrediction => self.export_prediction_dialog(),
            PanelCommand::SaveReport => self.export_report_dialog(),
            PanelCommand::SaveSweep => self.export_sweep_dialog(),
            PanelCommand::StartBudgetSearch(method) => self.start_budget_search(method),
            PanelCommand::StartSensitivity => self.start_sensitivity(),
            PanelCommand::StartCka => self.start_cka(),
            PanelCommand::WantMaps => self.maps_wanted = true,
            PanelCommand::StartChannelScores { group } => self.start_channel_scores(group),
            PanelCommand::TogglePick {
                group,
                channels,
                channel,
            } => self.toggle_pick(&group, channels, channel),
            PanelCommand::ClearPicks { group } => {
                self.pruning.removed.remove(&group);
                self.pruning_changed();
            }
            PanelCommand::OpenStudyDialog => self.open_study_dialog(),
            command => self.apply_plan_or_lesson(command),
        }
    }

    /// The plan tree's and the lesson's commands.
    fn apply_plan_or_lesson(&mut self, command: PanelCommand) {
        match command {
            PanelCommand::KeepPlan => {
                self.keep_current_plan();
            }
            PanelCommand::SelectNode(id) => self.select_node(id),
            PanelCommand::DeleteNode(id) => self.delete_node(id),
            PanelCommand::StartNodeStats => self.start_node_stats(),
            PanelCommand::CompareNodes => self.compare_nodes(),
            PanelCommand::ExportNodeModel { id, choice } => {
                self.export_node_model_dialog(id, choice)
            }
            PanelCommand::ExportPlan { plan, file_name } => {
                self.save_dialog("Save the plan", &file_name, move |path| {
                    Request::ExportPlan { plan, path }
                });
            }
            PanelCommand::SetPresenter(on) => {
                self.lesson.set_presenter(on, &mut self.settings.overlay)
            }
            PanelCommand::LessonOffered => self.settings.lesson_offered = true,
            PanelCommand::Notice(text) => self.notices.push(text),
            PanelCommand::Failed { status, error } => {
                self.status = status;
                self.errors.push(error);
            }
            other => unreachable!("{other:?} is carried out by `apply`"),
        }
    }

    fn set_slice(&mut self, slice: usize) {
        if slice != self.slice_idx {
            self.slice_idx = slice;
            self.preview_wanted |= self.settings.axis == SliceAxis::Axial;
        }
    }

    /// Moves `step` slices (kept within the case).
    fn move_slice(&mut self, step: i64) {
        let Some(case) = &self.case else { return };
        let slices = self.settings.axis.slices(case.dims);
        if step == 0 || slices == 0 {
            return;
        }
        let next = (self.slice_idx as i64 + step).clamp(0, slices as i64 - 1) as usize;
        self.set_slice(next);
    }

    /// Anything in the pruning settings changed: a new pruned model (not the fine-tuned one,
    /// not a saved node's weights) to preview.
    fn pruning_changed(&mut self) {
        self.fine_tune.show_tuned = false;
        self.pruning.fine_tune = None;
        self.pruning.checkpoint = None;
        self.preview_wanted = true;
    }

    /// Marks channel `channel` of `group` (of `channels`) for removal or back; a group keeps
    /// at least one channel.
    fn toggle_pick(&mut self, group: &str, channels: usize, channel: usize) {
        let picked = self.pruning.removed.get(group).map_or(0, Vec::len);
        let already = self
            .pruning
            .removed
            .get(group)
            .is_some_and(|p| p.contains(&channel));
        if !already && picked + 1 >= channels {
            self.notices
                .push(format!("{group} keeps at least one channel"));
            return;
        }
        self.pruning.toggle_channel(group, channel);
        self.pruning_changed();
    }
}

/// Requests to the worker.
impl LabApp {
    /// Asks the worker to open a case folder (or a file inside one).
    pub fn open_path(&mut self, path: PathBuf) {
        let _ = self.worker.requests.send(Request::OpenPath(path));
    }

    /// Asks the worker to make the model at `path` (a checkpoint or PyTorch state_dict; `None`:
    /// the embedded one) the dense model.
    pub fn open_model(&mut self, path: Option<PathBuf>) {
        // A node waiting for another model gives way to the model asked for now.
        self.plans.pending_restore = None;
        let _ = self.worker.requests.send(Request::OpenModel(path));
    }

    /// Asks the worker to read a study file for the Plots tab (answered by the chart or an
    /// error naming the file).
    pub fn open_study(&self, path: PathBuf) {
        let _ = self.worker.requests.send(Request::OpenStudy(path));
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
            precision: self.case_dice_precision,
        })
    }

    fn request_preview(&mut self) {
        let Some(mut request) = self.current_request() else {
            return;
        };
        self.last_preview_id += 1;
        request.id = self.last_preview_id;
        self.last_request = Some(request.clone());
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

    /// Starts a Dice-vs-sparsity sweep of the open case in the background.
    pub fn start_sweep(&mut self) {
        self.sweep_points.clear();
        let methods = PruneMethod::ALL
            .into_iter()
            .filter(|m| *m != PruneMethod::Unstructured(crate::prune::UnstructuredMethod::Snip))
            .collect();
        let ratios = SWEEP_RATIOS.to_vec();
        self.start_job(Request::StartSweep { methods, ratios }, "sweep", 1);
    }

    /// Sends a job's request; the job shows as starting (of `total` steps) until the worker
    /// answers.
    fn start_job(&mut self, request: Request, what: &str, total: usize) {
        let _ = self.worker.requests.send(request);
        self.job = Some((0, total, format!("{what}: starting")));
    }

    /// Starts fine-tuning the model the panel describes.
    pub fn start_fine_tune(&mut self) {
        let Some(preview) = self.current_request() else {
            return;
        };
        self.fine_tune.history.clear();
        let form = &self.fine_tune.settings;
        let request = FineTuneRequest {
            preview: PreviewRequest {
                fine_tuned: false,
                precision: Precision::Fp32,
                ..preview
            },
            epochs: form.epochs,
            learning_rate: form.learning_rate,
            batches_per_epoch: form.batches_per_epoch,
            device: form.device,
        };
        // What it trains is remembered for the node it will become.
        let source = self.model.as_ref().and_then(|m| m.source.clone());
        let plan = request.preview.plan.clone();
        self.plans.fine_tune_start = Some((plan, source, self.plans.tree.selected));
        let epochs = request.epochs;
        self.start_job(Request::StartFineTune(request), "fine-tune", epochs);
    }

    /// Asks the worker to stop the running job after its current step.
    pub fn cancel_job(&self) {
        let _ = self.worker.requests.send(Request::CancelJob);
    }

    /// Starts a sensitivity run of the dense model on the open case (the panel's channel method).
    fn start_sensitivity(&mut self) {
        self.layers.sensitivity.clear();
        let method = match self.settings.method {
            PruneMethod::Structured(_) => self.settings.method,
            PruneMethod::Unstructured(_) => PruneMethod::Structured(StructuredMethod::L2),
        };
        let ratios = layers::SENSITIVITY_RATIOS.to_vec();
        self.start_job(
            Request::StartSensitivity { method, ratios },
            "sensitivity",
            1,
        );
    }

    /// Starts a CKA between the two chosen models on the open case.
    fn start_cka(&mut self) {
        let (a, b) = (
            self.cka_request(self.layers.cka_rows),
            self.cka_request(self.layers.cka_columns),
        );
        self.start_job(Request::StartCka { a, b }, "CKA", 1);
    }

    fn cka_request(&self, model: layers::CkaModel) -> Option<PreviewRequest> {
        let request = self.current_request()?;
        match model {
            layers::CkaModel::Dense => None,
            layers::CkaModel::Pruned => Some(PreviewRequest {
                fine_tuned: false,
                precision: Precision::Fp32,
                ..request
            }),
            layers::CkaModel::FineTuned => Some(PreviewRequest {
                fine_tuned: true,
                precision: Precision::Fp32,
                ..request
            }),
        }
    }

    /// Scores the channels of `group` on the axial slice the maps show (on other planes, the
    /// one with most tumour).
    fn start_channel_scores(&mut self, group: String) {
        if let Some(preview) = self.current_request() {
            let slice_idx = preview.slice_idx;
            let _ = self
                .worker
                .requests
                .send(Request::StartChannelScores { group, slice_idx });
        }
        self.job = Some((0, 1, "channel scores: starting".into()));
    }

    /// Sends the search request; the search remembers where it started (for the node it
    /// becomes).
    fn start_budget_search(&mut self, method: StructuredMethod) {
        let source = self.model.as_ref().and_then(|m| m.source.clone());
        let request = self
            .budget
            .start(method, (source, self.plans.tree.selected));
        let _ = self.worker.requests.send(Request::StartAutoPrune(request));
    }

    /// Saves the previewed model's segmentation of the open case to `path` (what the dialog
    /// does once a file is chosen); a `Saved` notice or an error follows.
    pub fn export_prediction_to(&self, path: PathBuf) {
        let preview = self.current_request();
        let _ = self
            .worker
            .requests
            .send(Request::ExportPrediction { preview, path });
    }
}

/// File dialogs: each runs on a thread of its own (they block) and sends the request it
/// completes.
impl LabApp {
    /// A dialog that picks a file to open, then sends `request` of it.
    fn open_file_dialog(
        &self,
        dialog: rfd::FileDialog,
        request: impl FnOnce(PathBuf) -> Request + Send + 'static,
    ) {
        let requests = self.worker.requests.clone();
        std::thread::spawn(move || {
            if let Some(path) = dialog.pick_file() {
                let _ = requests.send(request(path));
            }
        });
    }

    fn open_model_dialog(&self) {
        let dialog = rfd::FileDialog::new()
            .set_title("Open a model (raagr2-lab checkpoint or PyTorch state_dict)")
            .add_filter("safetensors", &["safetensors"]);
        self.open_file_dialog(dialog, |path| Request::OpenModel(Some(path)));
    }

    fn open_study_dialog(&self) {
        let dialog = rfd::FileDialog::new()
            .set_title("Open a study file (study -o OUT writes OUT.json)")
            .add_filter("study", &["json"]);
        self.open_file_dialog(dialog, Request::OpenStudy);
    }

    fn open_dialog(&self) {
        let requests = self.worker.requests.clone();
        std::thread::spawn(move || {
            if let Some(folder) = rfd::FileDialog::new()
                .set_title("Open a BraTS case folder")
                .pick_folder()
            {
                let _ = requests.send(Request::OpenPath(folder));
            }
        });
    }

    /// Runs a save dialog and sends the request it completes.
    fn save_dialog(
        &self,
        title: &str,
        file_name: &str,
        request: impl FnOnce(PathBuf) -> Request + Send + 'static,
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

    fn export_report_dialog(&self) {
        let Some(preview) = self.current_request() else {
            return;
        };
        let name = format!(
            "{}_report.png",
            self.case.as_ref().map_or("case", |c| c.id.as_str())
        );
        self.save_dialog("Save the case report (PNG)", &name, move |path| {
            Request::ExportReport { preview, path }
        });
    }

    /// Whether the pruned segmentation the viewer shows covers the whole case (not only the
    /// preview's axial slice).
    pub fn pruned_covers_case(&self) -> bool {
        self.pruned_whole_case
    }

    /// Writes the case report for the previewed model to `path` (what the dialog does once a
    /// file is chosen); a `Saved` notice or an error naming the file follows.
    pub fn export_report_to(&self, path: std::path::PathBuf) {
        if let Some(preview) = self.current_request() {
            let _ = self
                .worker
                .requests
                .send(Request::ExportReport { preview, path });
        }
    }

    fn export_sweep_dialog(&self) {
        let points = self.sweep_points.clone();
        self.save_dialog("Save the sweep (CSV or PNG)", "sweep.csv", move |path| {
            Request::ExportSweep { points, path }
        });
    }

    fn export_model_dialog(&self, choice: ExportChoice) {
        if let Some(request) = self.previewed_model_export(choice) {
            self.export_dialog(request, "pruned", choice);
        }
    }

    /// Exports the previewed model to `path` (what the dialog does once a file is chosen); a
    /// `Saved` notice or an error naming the file follows.
    pub fn export_model_to(&self, path: std::path::PathBuf, choice: ExportChoice) {
        if let Some(request) = self.previewed_model_export(choice) {
            let _ = self.worker.requests.send(request(path));
        }
    }

    /// The export request of the previewed model (the fine-tuned one when shown), given a path.
    fn previewed_model_export(
        &self,
        choice: ExportChoice,
    ) -> Option<impl FnOnce(std::path::PathBuf) -> Request + Send + 'static> {
        let preview = self.current_request()?;
        let fine_tuned = self.fine_tune.show_tuned;
        Some(move |path| Request::ExportModel {
            preview,
            fine_tuned,
            path,
            format: choice.format,
            precision: choice.precision,
        })
    }

    /// Plan tree node `id`'s model: its saved weights, or its plan applied to the open model
    /// (which must be the node's: selecting a node opens it).
    fn export_node_model_dialog(&mut self, id: u64, choice: ExportChoice) {
        let Some(node) = self.plans.tree.node(id).cloned() else {
            return;
        };
        let open = self.model.as_ref().map(|m| &m.source);
        let (Some(mut preview), true) = (self.current_request(), open == Some(&node.model)) else {
            self.notices.push(format!(
                "\"{}\" belongs to a model that is not open yet: select it and export again",
                node.name
            ));
            return;
        };
        preview.plan = node.plan;
        let stem = super::plans::file_stem(&node.name);
        self.export_dialog(
            move |path| Request::ExportModel {
                preview,
                fine_tuned: false,
                path,
                format: choice.format,
                precision: choice.precision,
            },
            &stem,
            choice,
        );
    }

    /// A save dialog proposing `stem` with the format's extension, then `request` to the worker.
    fn export_dialog(
        &self,
        request: impl FnOnce(std::path::PathBuf) -> Request + Send + 'static,
        stem: &str,
        choice: ExportChoice,
    ) {
        let title = format!(
            "Export the model ({}, {})",
            choice.format.label(),
            choice.precision.name()
        );
        self.save_dialog(&title, &choice.format.file_name(stem), request);
    }
}

/// The plan tree's edits that need the model, the settings or the worker.
impl LabApp {
    /// Makes node `id` the current settings (opening its base model first when another is
    /// open).
    fn select_node(&mut self, id: u64) {
        let Some(node) = self.plans.select(id) else {
            return;
        };
        let current = self.model.as_ref().map(|m| m.source.clone());
        if current.as_ref() != Some(&node.model) {
            self.open_model(node.model.clone());
            self.plans.pending_restore = Some((id, node.model));
            return;
        }
        self.restore_node(id);
    }

    /// Node `id`'s settings on the open model (a node of another model is never applied to it).
    fn restore_node(&mut self, id: u64) {
        let Some(model) = &self.model else { return };
        let Some(plan) = self.plans.restore(id, &model.source) else {
            return;
        };
        self.settings.method = plan.method;
        self.pruning.restore(&plan, model);
        // A node's own weights (when fine-tuned and saved) are previewed from its checkpoint.
        self.fine_tune.show_tuned = false;
        self.preview_wanted = true;
    }

    /// Keeps the current settings as a new child of the selected node (or of the model's
    /// root); its id.
    fn keep_current_plan(&mut self) -> Option<u64> {
        let model = self.model.as_ref()?;
        let plan = self.pruning.plan(self.settings.method, model);
        self.plans.keep(plan, &model.source)
    }

    /// Removes a node and its subtree (and their saved weights); the selection is restored.
    fn delete_node(&mut self, id: u64) {
        self.plans.delete(id);
        if let Some(selected) = self.plans.tree.selected {
            self.select_node(selected);
        }
    }

    /// The request that previews `plan` on the current slice.
    fn node_request(&self, plan: &PrunePlan) -> Option<PreviewRequest> {
        let mut request = self.current_request()?;
        request.plan = plan.clone();
        request.fine_tuned = false;
        Some(request)
    }

    /// Asks for every node's statistics (a background job).
    fn start_node_stats(&mut self) {
        let nodes: Vec<(u64, PreviewRequest)> = self
            .plans
            .tree
            .nodes
            .iter()
            .filter(|n| self.model.as_ref().is_some_and(|m| m.source == n.model))
            .filter_map(|n| Some((n.id, self.node_request(&n.plan)?)))
            .collect();
        self.start_job(Request::StartNodeStats(nodes), "node statistics", 1);
    }

    /// Asks for the two ticked nodes' segmentations of the current slice.
    fn compare_nodes(&mut self) {
        let [a, b] = match self.plans.compare.as_slice() {
            [a, b] => [*a, *b],
            _ => return,
        };
        let request = |id: u64| -> Option<PreviewRequest> {
            let node = self.plans.tree.node(id)?;
            self.node_request(&node.plan)
        };
        if let (Some(a), Some(b)) = (request(a), request(b)) {
            let id = self.plans.next_comparison();
            let _ = self
                .worker
                .requests
                .send(Request::CompareSlices { id, a, b });
        }
    }

    /// Applies workspace files chosen in the dialogs; an opened tree restores its selected
    /// node (opening its model when another is open).
    fn apply_workspace_picks(&mut self) {
        if !self.plans.apply_picks() {
            return;
        }
        let model = self.model.as_ref().map(|m| m.source.clone());
        match (self.plans.tree.selected, model) {
            (Some(id), _) => self.select_node(id),
            (None, Some(source)) => {
                let root = self.plans.tree.root_of(source.as_deref());
                self.restore_node(root);
            }
            (None, None) => {}
        }
    }
}

impl super::WorkerFed for LabApp {
    type Response = crate::worker::Response;

    fn responses(&self) -> &crossbeam_channel::Receiver<crate::worker::Response> {
        &self.worker.responses
    }

    fn receive(&mut self, response: crate::worker::Response) {
        self.handle(response);
    }
}

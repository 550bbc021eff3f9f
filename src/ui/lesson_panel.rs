//! The Lesson panel: the guided lesson's current step (explanation, task, whether the app has
//! seen it done, progress of what it waits for), Back / Next / Skip, another lesson file, and
//! the presenter setting (larger text, high-contrast overlay). The panel owns the lesson and
//! checks it against the app's view; notices and settings are asked of the shell.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};

use eframe::egui;

use super::Tab;
use super::command::{AppView, PanelCommand};
use crate::lesson::{Check, LESSON_ENV, Lesson};
use crate::prune::{PruneMethod, StructuredMethod, UnstructuredMethod};
use crate::render::OverlayStyle;

/// Text scale of the lesson panel in the presenter setting (that panel only: the others keep
/// their widths, so the images keep theirs).
pub const PRESENTER_TEXT: f32 = 1.3;
/// Lowest global ratio the magnitude step asks for.
const MAGNITUDE_RATIO: f64 = 0.2;
/// Sweep points the sweep step waits for (the first method's curve taking shape).
const SWEEP_POINTS: usize = 3;

/// A lesson read from a file (or why not), from the reading thread.
type LessonLoad = Result<(Lesson, String), String>;

/// The lesson, where the class is in it, and what the current step has seen so far.
pub struct LessonState {
    pub lesson: Lesson,
    /// Where the lesson came from (a path, or "embedded").
    pub source: String,
    /// Whether the panel is shown.
    pub open: bool,
    pub current: usize,
    /// Steps seen done (or skipped).
    pub done: Vec<bool>,
    /// What the current step has seen: the modalities shown, the Plots tab, the slice it began
    /// on.
    seen_modalities: [bool; 4],
    seen_plots: bool,
    start_slice: Option<usize>,
    /// Larger text and a high-contrast overlay; the overlay it replaced.
    pub presenter: bool,
    saved_overlay: Option<OverlayStyle>,
    loads: (Sender<LessonLoad>, Receiver<LessonLoad>),
}

impl LessonState {
    /// The lesson of `RAAGR2_LESSON` when set (an error when it is broken), else the embedded
    /// one.
    pub fn from_env() -> (LessonState, Option<String>) {
        let (lesson, source, error) = match std::env::var_os(LESSON_ENV) {
            Some(path) => {
                let path = PathBuf::from(path);
                match Lesson::read(&path) {
                    Ok(lesson) => (lesson, path.display().to_string(), None),
                    Err(e) => (Lesson::embedded(), "embedded".into(), Some(e)),
                }
            }
            None => (Lesson::embedded(), "embedded".into(), None),
        };
        (LessonState::new(lesson, source), error)
    }

    fn new(lesson: Lesson, source: String) -> LessonState {
        LessonState {
            done: vec![false; lesson.steps.len()],
            lesson,
            source,
            open: false,
            current: 0,
            seen_modalities: [false; 4],
            seen_plots: false,
            start_slice: None,
            presenter: false,
            saved_overlay: None,
            loads: channel(),
        }
    }

    /// Goes to step `index`, forgetting what the previous step saw.
    pub fn go_to(&mut self, index: usize) {
        self.current = index.min(self.lesson.steps.len().saturating_sub(1));
        self.seen_modalities = [false; 4];
        self.seen_plots = false;
        self.start_slice = None;
    }

    /// Another lesson, from its first step (the panel and presenter setting stay as they are).
    fn replace(&mut self, lesson: Lesson, source: String) {
        self.done = vec![false; lesson.steps.len()];
        self.lesson = lesson;
        self.source = source;
        self.go_to(0);
    }

    /// Reads and checks a lesson file on a thread of its own; the lesson replaces the current
    /// one, or the error (naming the file and the broken step) is shown.
    pub fn open_file(&self, path: PathBuf) {
        let sender = self.loads.0.clone();
        std::thread::spawn(move || {
            let read = Lesson::read(&path).map(|l| (l, path.display().to_string()));
            let _ = sender.send(read);
        });
    }

    fn open_dialog(&self) {
        let sender = self.loads.0.clone();
        std::thread::spawn(move || {
            if let Some(path) = rfd::FileDialog::new()
                .set_title("Open a lesson file")
                .add_filter("lesson (TOML)", &["toml"])
                .pick_file()
            {
                let read = Lesson::read(&path).map(|l| (l, path.display().to_string()));
                let _ = sender.send(read);
            }
        });
    }

    /// Starts (or restarts) the lesson from its first step.
    pub fn start(&mut self) {
        self.open = true;
        self.done = vec![false; self.lesson.steps.len()];
        self.go_to(0);
    }

    /// Once a frame: lessons read from files, and what the current step has seen.
    pub(super) fn update(&mut self, view: &AppView<'_>) -> Vec<PanelCommand> {
        let mut commands = Vec::new();
        while let Ok(load) = self.loads.1.try_recv() {
            match load {
                Ok((lesson, source)) => {
                    commands.push(PanelCommand::Notice(format!("lesson: {source}")));
                    self.replace(lesson, source);
                }
                Err(error) => commands.push(PanelCommand::Failed {
                    status: "lesson not loaded (see above)".into(),
                    error,
                }),
            }
        }
        if !self.open {
            return commands;
        }
        self.seen_modalities[view.settings.modality.min(3)] = true;
        self.seen_plots |= view.tab == Tab::Plots;
        self.start_slice.get_or_insert(view.slice_idx);
        let check = self.lesson.steps[self.current].check;
        if self.check(check, view) {
            self.done[self.current] = true;
        }
        commands
    }

    /// Whether the app shows what `check` asks for.
    fn check(&self, check: Check, view: &AppView<'_>) -> bool {
        let method = view.settings.method;
        match check {
            Check::Modalities => self.seen_modalities.iter().all(|s| *s),
            Check::DenseDice => view.dense_case_dice.is_some(),
            Check::Magnitude => {
                method == PruneMethod::Unstructured(UnstructuredMethod::L1)
                    && view.pruning.use_global
                    && view.pruning.global_ratio >= MAGNITUDE_RATIO - 1e-6
                    && view.current_case_dice.is_some()
            }
            Check::Slimming => {
                let pruned = match (view.preview, view.model) {
                    (Some(p), Some(m)) => p.params < m.params,
                    _ => false,
                };
                self.seen_plots
                    && method == PruneMethod::Structured(StructuredMethod::BnGamma)
                    && pruned
                    && view.current_case_dice.is_some()
            }
            Check::Sweep => view.sweep_points.len() >= SWEEP_POINTS,
            Check::FineTune => view.tuned_available,
            Check::Disagreement => {
                view.tab == Tab::Slices && self.start_slice.is_some_and(|s| s != view.slice_idx)
            }
            Check::Attention => view.tab == Tab::Attention && view.maps.is_some(),
        }
    }

    /// The top bar's lesson controls: the Lesson toggle and, on a first start, the offer.
    pub(super) fn top_ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) -> Option<PanelCommand> {
        let mut command = None;
        if ui
            .selectable_label(self.open, "Lesson")
            .on_hover_text("A guided lesson: pruning explained on this MRI, step by step")
            .clicked()
        {
            if self.open {
                self.open = false;
            } else {
                self.open = true;
                command = Some(PanelCommand::LessonOffered);
            }
        }
        if !view.settings.lesson_offered && !self.open {
            ui.label("New here?");
            if ui.button("Start the lesson").clicked() {
                self.start();
                command = Some(PanelCommand::LessonOffered);
            }
            if ui.small_button("Not now").clicked() {
                command = Some(PanelCommand::LessonOffered);
            }
        }
        command
    }

    /// The lesson side panel.
    pub(super) fn ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) -> Vec<PanelCommand> {
        let mut commands = Vec::new();
        let total = self.lesson.steps.len();
        let index = self.current;
        let step = self.lesson.steps[index].clone();
        let done = self.done[index];
        if self.presenter {
            for font in ui.style_mut().text_styles.values_mut() {
                font.size *= PRESENTER_TEXT;
            }
        }
        ui.heading(&self.lesson.title);
        ui.label(format!("Step {} of {total}", index + 1));
        let finished = self.done.iter().filter(|d| **d).count();
        ui.add(
            egui::ProgressBar::new(finished as f32 / total.max(1) as f32)
                .text(format!("{finished} of {total} steps done")),
        );
        ui.separator();
        ui.strong(&step.title);
        egui::ScrollArea::vertical()
            .max_height(ui.available_height() - 230.0)
            .show(ui, |ui| {
                for paragraph in step.text.split("\n\n") {
                    ui.label(paragraph.trim());
                    ui.add_space(4.0);
                }
            });
        ui.separator();
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.strong("To do");
            ui.label(&step.task);
        });
        if done {
            ui.colored_label(
                egui::Color32::from_rgb(90, 200, 120),
                "Done: the app has seen it.",
            );
        } else if step.check.waits()
            && let Some((d, t, label)) = view.job
        {
            ui.add(egui::ProgressBar::new(*d as f32 / (*t).max(1) as f32).text(label.as_str()));
        } else {
            ui.weak("Waiting for you to do it.");
        }
        commands.extend(self.buttons_ui(ui, index, total, done));
        ui.separator();
        commands.extend(self.presenter_ui(ui));
        ui.horizontal(|ui| {
            if ui
                .button("Open lesson file…")
                .on_hover_text("A lesson of your own (TOML): copy assets/lesson.toml and edit it")
                .clicked()
            {
                self.open_dialog();
            }
            ui.weak(format!("from {}", self.source));
        });
        commands
    }

    fn buttons_ui(
        &mut self,
        ui: &mut egui::Ui,
        index: usize,
        total: usize,
        done: bool,
    ) -> Option<PanelCommand> {
        let mut command = None;
        ui.horizontal(|ui| {
            if ui
                .add_enabled(index > 0, egui::Button::new("Back"))
                .clicked()
            {
                self.go_to(index - 1);
            }
            let last = index + 1 == total;
            let next = if last { "Finish" } else { "Next" };
            if ui.add_enabled(done, egui::Button::new(next)).clicked() {
                if last {
                    self.open = false;
                    command = Some(PanelCommand::Notice("lesson finished".into()));
                } else {
                    self.go_to(index + 1);
                }
            }
            if !done
                && ui
                    .button("Skip")
                    .on_hover_text("Go on without doing this step")
                    .clicked()
            {
                self.done[index] = true;
                if !last {
                    self.go_to(index + 1);
                }
            }
        });
        command
    }

    fn presenter_ui(&mut self, ui: &mut egui::Ui) -> Option<PanelCommand> {
        let mut presenter = self.presenter;
        ui.checkbox(&mut presenter, "Presenter mode")
            .on_hover_text("Larger text and a high-contrast overlay, for a projector");
        (presenter != self.presenter).then_some(PanelCommand::SetPresenter(presenter))
    }

    /// The lesson's text 30 % larger and a high-contrast overlay (magenta, cyan, yellow at
    /// 60 %), or back to what was there before.
    pub fn set_presenter(&mut self, on: bool, overlay: &mut OverlayStyle) {
        self.presenter = on;
        if on {
            self.saved_overlay = Some(overlay.clone());
            *overlay = OverlayStyle {
                visible: [true; 3],
                colours: [[255, 0, 255], [0, 230, 255], [255, 255, 0]],
                opacity: 0.6,
                outline: false,
            };
        } else {
            if let Some(saved) = self.saved_overlay.take() {
                *overlay = saved;
            }
        }
    }
}

//! The Lesson panel: the guided lesson's current step (explanation, task, whether the app has
//! seen it done, progress of what it waits for), Back / Next / Skip, another lesson file, and
//! the presenter setting (larger text, high-contrast overlay).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};

use eframe::egui;

use super::{LabApp, Tab};
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
}

impl LabApp {
    /// Reads and checks a lesson file on a thread of its own; the lesson replaces the current
    /// one, or the error (naming the file and the broken step) is shown.
    pub fn open_lesson_file(&self, path: PathBuf) {
        let sender = self.lesson.loads.0.clone();
        std::thread::spawn(move || {
            let read = Lesson::read(&path).map(|l| (l, path.display().to_string()));
            let _ = sender.send(read);
        });
    }

    fn open_lesson_dialog(&self) {
        let sender = self.lesson.loads.0.clone();
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
    pub fn start_lesson(&mut self) {
        self.lesson.open = true;
        self.lesson.done = vec![false; self.lesson.lesson.steps.len()];
        self.lesson.go_to(0);
        self.settings.lesson_offered = true;
    }

    /// Once a frame: lessons read from files, and what the current step has seen.
    pub(super) fn update_lesson(&mut self) {
        while let Ok(load) = self.lesson.loads.1.try_recv() {
            match load {
                Ok((lesson, source)) => {
                    self.notices.push(format!("lesson: {source}"));
                    self.lesson.replace(lesson, source);
                }
                Err(e) => {
                    self.status = "lesson not loaded (see above)".into();
                    self.errors.push(e);
                }
            }
        }
        if !self.lesson.open {
            return;
        }
        let state = &mut self.lesson;
        state.seen_modalities[self.settings.modality.min(3)] = true;
        state.seen_plots |= self.tab == Tab::Plots;
        state.start_slice.get_or_insert(self.slice_idx);
        let check = state.lesson.steps[state.current].check;
        if self.lesson_check(check) {
            self.lesson.done[self.lesson.current] = true;
        }
    }

    /// Whether the app shows what `check` asks for.
    fn lesson_check(&self, check: Check) -> bool {
        let state = &self.lesson;
        match check {
            Check::Modalities => state.seen_modalities.iter().all(|s| *s),
            Check::DenseDice => self.dense_case_dice.is_some(),
            Check::Magnitude => {
                self.settings.method == PruneMethod::Unstructured(UnstructuredMethod::L1)
                    && self.pruning.use_global
                    && self.pruning.global_ratio >= MAGNITUDE_RATIO - 1e-6
                    && self.current_case_dice().is_some()
            }
            Check::Slimming => {
                let pruned = match (&self.preview, &self.model) {
                    (Some(p), Some(m)) => p.params < m.params,
                    _ => false,
                };
                state.seen_plots
                    && self.settings.method == PruneMethod::Structured(StructuredMethod::BnGamma)
                    && pruned
                    && self.current_case_dice().is_some()
            }
            Check::Sweep => self.sweep_points.len() >= SWEEP_POINTS,
            Check::FineTune => self.fine_tune.tuned_available,
            Check::Disagreement => {
                self.tab == Tab::Slices && state.start_slice.is_some_and(|s| s != self.slice_idx)
            }
            Check::Attention => self.tab == Tab::Attention && self.maps.is_some(),
        }
    }

    /// The whole-case Dice of the preview of the current settings (none while a newer preview
    /// is on its way).
    fn current_case_dice(&self) -> Option<[f64; 3]> {
        let current = self
            .preview
            .as_ref()
            .is_some_and(|p| p.id == self.last_preview_id);
        (current && !self.preview_wanted)
            .then_some(self.preview_case_dice)
            .flatten()
    }

    /// The top bar's lesson controls: the Lesson toggle and, on a first start, the offer.
    pub(super) fn lesson_top_ui(&mut self, ui: &mut egui::Ui) {
        if ui
            .selectable_label(self.lesson.open, "Lesson")
            .on_hover_text("A guided lesson: pruning explained on this MRI, step by step")
            .clicked()
        {
            if self.lesson.open {
                self.lesson.open = false;
            } else {
                self.lesson.open = true;
                self.settings.lesson_offered = true;
            }
        }
        if !self.settings.lesson_offered && !self.lesson.open {
            ui.label("New here?");
            if ui.button("Start the lesson").clicked() {
                self.start_lesson();
            }
            if ui.small_button("Not now").clicked() {
                self.settings.lesson_offered = true;
            }
        }
    }

    /// The lesson side panel.
    pub(super) fn lesson_ui(&mut self, ui: &mut egui::Ui) {
        let total = self.lesson.lesson.steps.len();
        let index = self.lesson.current;
        let step = self.lesson.lesson.steps[index].clone();
        let done = self.lesson.done[index];
        if self.lesson.presenter {
            for font in ui.style_mut().text_styles.values_mut() {
                font.size *= PRESENTER_TEXT;
            }
        }
        ui.heading(&self.lesson.lesson.title);
        ui.label(format!("Step {} of {total}", index + 1));
        let finished = self.lesson.done.iter().filter(|d| **d).count();
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
            && let Some((d, t, label)) = &self.job
        {
            ui.add(egui::ProgressBar::new(*d as f32 / (*t).max(1) as f32).text(label.as_str()));
        } else {
            ui.weak("Waiting for you to do it.");
        }
        self.lesson_buttons_ui(ui, index, total, done);
        ui.separator();
        self.presenter_ui(ui);
        ui.horizontal(|ui| {
            if ui
                .button("Open lesson file…")
                .on_hover_text("A lesson of your own (TOML): copy assets/lesson.toml and edit it")
                .clicked()
            {
                self.open_lesson_dialog();
            }
            ui.weak(format!("from {}", self.lesson.source));
        });
    }

    fn lesson_buttons_ui(&mut self, ui: &mut egui::Ui, index: usize, total: usize, done: bool) {
        ui.horizontal(|ui| {
            if ui
                .add_enabled(index > 0, egui::Button::new("Back"))
                .clicked()
            {
                self.lesson.go_to(index - 1);
            }
            let last = index + 1 == total;
            let next = if last { "Finish" } else { "Next" };
            if ui.add_enabled(done, egui::Button::new(next)).clicked() {
                if last {
                    self.lesson.open = false;
                    self.notices.push("lesson finished".into());
                } else {
                    self.lesson.go_to(index + 1);
                }
            }
            if !done
                && ui
                    .button("Skip")
                    .on_hover_text("Go on without doing this step")
                    .clicked()
            {
                self.lesson.done[index] = true;
                if !last {
                    self.lesson.go_to(index + 1);
                }
            }
        });
    }

    fn presenter_ui(&mut self, ui: &mut egui::Ui) {
        let mut presenter = self.lesson.presenter;
        ui.checkbox(&mut presenter, "Presenter mode")
            .on_hover_text("Larger text and a high-contrast overlay, for a projector");
        if presenter != self.lesson.presenter {
            self.set_presenter(presenter);
        }
    }

    /// The lesson's text 30 % larger and a high-contrast overlay (magenta, cyan, yellow at
    /// 60 %), or back to what was there before.
    pub fn set_presenter(&mut self, on: bool) {
        self.lesson.presenter = on;
        if on {
            self.lesson.saved_overlay = Some(self.settings.overlay.clone());
            self.settings.overlay = OverlayStyle {
                visible: [true; 3],
                colours: [[255, 0, 255], [0, 230, 255], [255, 255, 0]],
                opacity: 0.6,
                outline: false,
            };
        } else {
            if let Some(overlay) = self.lesson.saved_overlay.take() {
                self.settings.overlay = overlay;
            }
        }
    }
}

//! The Fine-tune and export panel: device (with the GPU adapter found, or the CPU offered),
//! epochs, the fine-tune and sweep jobs with progress and cancel, and the save buttons.

use eframe::egui;

use super::LabApp;
use super::Request;

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

/// The fine-tuning settings as the panel edits them (what a fine-tune request is made from).
#[derive(Debug, Clone)]
pub struct FineTuneForm {
    pub epochs: usize,
    pub learning_rate: f64,
    pub batches_per_epoch: usize,
    pub device: crate::backend::DeviceChoice,
}

impl Default for FineTuneForm {
    fn default() -> Self {
        FineTuneForm {
            epochs: 2,
            learning_rate: 1e-3,
            batches_per_epoch: 10,
            device: crate::backend::DeviceChoice::Auto,
        }
    }
}

/// The panel's state: settings, the GPU found, the epochs of the last fine-tune and whether its
/// model exists and is shown.
#[derive(Debug, Clone)]
pub struct FineTuneState {
    pub settings: FineTuneForm,
    pub gpu: GpuState,
    pub history: Vec<TrainPoint>,
    /// A fine-tuned model exists in the worker; `show_tuned` previews it.
    pub tuned_available: bool,
    pub show_tuned: bool,
}

impl Default for FineTuneState {
    fn default() -> Self {
        FineTuneState {
            settings: FineTuneForm::default(),
            gpu: GpuState::Unknown,
            history: Vec::new(),
            tuned_available: false,
            show_tuned: false,
        }
    }
}

/// What the panel asks of the app: the panel edits only its own settings and says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PanelCommand {
    ProbeGpu,
    StartFineTune,
    StartSweep,
    CancelJob,
    ShowTuned(bool),
    SaveModel,
    SavePrediction,
    SaveSweep,
}

/// What the panel shows but does not own.
pub(super) struct PanelView<'a> {
    pub gpu: &'a GpuState,
    /// The running background job: (done, total, what).
    pub job: Option<&'a (usize, usize, String)>,
    /// Whether the job's progress shows elsewhere (the budget search's own section).
    pub progress_elsewhere: bool,
    pub tuned_available: bool,
    pub show_tuned: bool,
    pub sweep_ready: bool,
    pub notices: &'a [String],
}

/// The Fine-tune and export panel; returns what was asked.
pub(super) fn fine_tune_ui(
    settings: &mut FineTuneForm,
    view: &PanelView<'_>,
    ui: &mut egui::Ui,
) -> Vec<PanelCommand> {
    let mut commands = Vec::new();
    egui::CollapsingHeader::new("Fine-tune and export")
        .default_open(true)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.add(
                    egui::DragValue::new(&mut settings.epochs)
                        .range(1..=50)
                        .prefix("epochs "),
                );
                ui.add(
                    egui::DragValue::new(&mut settings.batches_per_epoch)
                        .range(1..=500)
                        .prefix("batches/epoch "),
                );
            });
            device_ui(settings, view.gpu, ui, &mut commands);
            jobs_ui(view, ui, &mut commands);
            let mut show_tuned = view.show_tuned;
            ui.add_enabled(
                view.tuned_available,
                egui::Checkbox::new(&mut show_tuned, "Show the fine-tuned model"),
            );
            if show_tuned != view.show_tuned {
                commands.push(PanelCommand::ShowTuned(show_tuned));
            }
            save_ui(view, ui, &mut commands);
            for notice in view.notices.iter().rev().take(3) {
                ui.label(notice);
            }
        });
    commands
}

/// The device choice, and the adapter a GPU fine-tune would use or, when there is none, why,
/// with the CPU offered.
fn device_ui(
    settings: &mut FineTuneForm,
    gpu: &GpuState,
    ui: &mut egui::Ui,
    commands: &mut Vec<PanelCommand>,
) {
    use crate::backend::DeviceChoice as D;
    ui.horizontal(|ui| {
        ui.label("Device");
        for (choice, name, help) in [
            (
                D::Auto,
                "auto",
                "wgpu when a GPU adapter exists, else the CPU",
            ),
            (D::Cpu, "CPU", "burn's Flex backend"),
            (D::Gpu, "GPU", "wgpu; an error when no adapter exists"),
        ] {
            ui.selectable_value(&mut settings.device, choice, name)
                .on_hover_text(help);
        }
    });
    if settings.device == D::Cpu {
        return;
    }
    match gpu {
        GpuState::Unknown | GpuState::Probing => {
            if *gpu == GpuState::Unknown {
                commands.push(PanelCommand::ProbeGpu);
            }
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("looking for a GPU adapter…");
            });
        }
        GpuState::Found(name) => {
            ui.label(format!("GPU: {name}"));
        }
        GpuState::Missing(reason) => {
            let what = if settings.device == D::Auto {
                "no usable GPU adapter: auto fine-tunes on the CPU"
            } else {
                "no usable GPU adapter"
            };
            ui.colored_label(ui.visuals().warn_fg_color, what)
                .on_hover_text(reason.as_str());
            if settings.device == D::Gpu && ui.button("Use the CPU").clicked() {
                settings.device = D::Cpu;
            }
        }
    }
}

/// Fine-tune, sweep and cancel, and the running job's progress.
fn jobs_ui(view: &PanelView<'_>, ui: &mut egui::Ui, commands: &mut Vec<PanelCommand>) {
    let running = view.job.is_some();
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!running, egui::Button::new("Fine-tune"))
            .on_hover_text(
                "Train the pruned model on synthetic cases 0-3 (masks kept); the best epoch is previewed",
            )
            .clicked()
        {
            commands.push(PanelCommand::StartFineTune);
        }
        if ui
            .add_enabled(!running, egui::Button::new("Run sweep"))
            .on_hover_text("Dice of this case vs sparsity for every method (Plots tab)")
            .clicked()
        {
            commands.push(PanelCommand::StartSweep);
        }
        if ui.add_enabled(running, egui::Button::new("Cancel")).clicked() {
            commands.push(PanelCommand::CancelJob);
        }
    });
    if let Some((done, total, label)) = view.job.filter(|_| !view.progress_elsewhere) {
        ui.add(egui::ProgressBar::new(*done as f32 / (*total).max(1) as f32).text(label.as_str()));
    }
}

fn save_ui(view: &PanelView<'_>, ui: &mut egui::Ui, commands: &mut Vec<PanelCommand>) {
    ui.horizontal(|ui| {
        if ui
            .button("Save model…")
            .on_hover_text("The previewed model as a checkpoint (safetensors + config)")
            .clicked()
        {
            commands.push(PanelCommand::SaveModel);
        }
        if ui
            .button("Save segmentation…")
            .on_hover_text(
                "The previewed model's segmentation of the whole case as a NIfTI label map (0/1/2/4) on the case's grid",
            )
            .clicked()
        {
            commands.push(PanelCommand::SavePrediction);
        }
        if ui
            .add_enabled(view.sweep_ready, egui::Button::new("Save sweep…"))
            .on_hover_text(
                "The Dice-vs-sparsity points as CSV, or the plot as PNG (by the file's extension)",
            )
            .clicked()
        {
            commands.push(PanelCommand::SaveSweep);
        }
    });
}

impl LabApp {
    /// Draws the panel and carries out what it asked.
    pub(super) fn jobs_ui(&mut self, ui: &mut egui::Ui) {
        let view = PanelView {
            gpu: &self.fine_tune.gpu,
            job: self.job.as_ref(),
            progress_elsewhere: self.budget.started_from.is_some(),
            tuned_available: self.fine_tune.tuned_available,
            show_tuned: self.fine_tune.show_tuned,
            sweep_ready: !self.sweep_points.is_empty(),
            notices: &self.notices,
        };
        let commands = fine_tune_ui(&mut self.fine_tune.settings, &view, ui);
        for command in commands {
            self.apply(command);
        }
    }

    fn apply(&mut self, command: PanelCommand) {
        match command {
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
            PanelCommand::SaveModel => self.export_model_dialog(),
            PanelCommand::SavePrediction => self.export_prediction_dialog(),
            PanelCommand::SaveSweep => self.export_sweep_dialog(),
        }
    }
}

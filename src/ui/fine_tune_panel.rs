//! The Fine-tune and export panel: device (with the GPU adapter found, or the CPU offered),
//! epochs, the fine-tune and sweep jobs with progress and cancel, and the save buttons. The
//! panel edits only its own form and asks the shell for the rest.

use eframe::egui;

use super::command::{AppView, PanelCommand};
use super::state::{GpuState, TrainPoint};

/// The fine-tuning settings as the panel edits them (what a fine-tune request is made from).
#[derive(Debug, Clone)]
pub struct FineTuneForm {
    pub epochs: usize,
    pub learning_rate: f64,
    pub batches_per_epoch: usize,
    pub device: crate::backend::DeviceChoice,
    /// Format and precision of "Export model…".
    pub export: super::ExportChoice,
}

impl Default for FineTuneForm {
    fn default() -> Self {
        FineTuneForm {
            epochs: 2,
            learning_rate: 1e-3,
            batches_per_epoch: 10,
            device: crate::backend::DeviceChoice::Auto,
            export: super::ExportChoice::default(),
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

/// The Fine-tune and export panel; returns what was asked.
pub(super) fn fine_tune_ui(
    settings: &mut FineTuneForm,
    view: &AppView<'_>,
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
            save_ui(&mut settings.export, view, ui, &mut commands);
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
fn jobs_ui(view: &AppView<'_>, ui: &mut egui::Ui, commands: &mut Vec<PanelCommand>) {
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
    if let Some((done, total, label)) = view.job.filter(|_| !view.searching) {
        ui.add(egui::ProgressBar::new(*done as f32 / (*total).max(1) as f32).text(label.as_str()));
    }
}

fn save_ui(
    export: &mut super::ExportChoice,
    view: &AppView<'_>,
    ui: &mut egui::Ui,
    commands: &mut Vec<PanelCommand>,
) {
    ui.horizontal(|ui| {
        if ui
            .button("Export model…")
            .on_hover_text("The previewed model, written in the format and precision beside")
            .clicked()
        {
            commands.push(PanelCommand::ExportModel(*export));
        }
        export.ui(ui, "previewed model");
    });
    ui.horizontal(|ui| {
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
            .add_enabled(!view.sweep_points.is_empty(), egui::Button::new("Save sweep…"))
            .on_hover_text(
                "The Dice-vs-sparsity points as CSV, or the plot as PNG (by the file's extension)",
            )
            .clicked()
        {
            commands.push(PanelCommand::SaveSweep);
        }
    });
}

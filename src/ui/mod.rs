//! The desktop app (eframe/egui): slice viewer with ground truth | dense | pruned | disagreement,
//! and a pruning panel whose sliders drive live previews computed by the background worker.
//! Knows nothing of burn: it sends requests and draws the plain data that comes back.
//! The shell (`app.rs`, `messages.rs`) owns the shared state and the worker; each panel owns
//! its own state, reads an [`command::AppView`] and emits [`command::PanelCommand`]s.

mod app;
mod attention;
mod budget_panel;
pub mod classify_workspace;
mod command;
mod export_choice;
mod filters;
pub mod findings_panel;
mod fine_tune_panel;
mod heatmap;
pub mod layers;
mod lesson_panel;
mod palette;
mod plans;
mod plots;
mod pruning_panel;
mod slices;
mod state;
mod study_panel;
mod view_panel;
pub mod viewer;
pub mod volume_view;

pub use app::LabApp;
pub use attention::AttentionState;
pub use budget_panel::BudgetState;
pub use export_choice::ExportChoice;
pub use filters::{ChannelSort, FilterState};
pub use fine_tune_panel::{FineTuneForm, FineTuneState};
pub use lesson_panel::LessonState;
pub use plans::PlansState;
pub use plots::PlotsTab;
pub use pruning_panel::{method_help, preset_ratios};
pub use slices::SlicesTab;
pub use state::{GpuState, PruningState, TrainPoint};

use std::time::Duration;

use eframe::egui;

use crate::prune::PruneMethod;
use crate::render::{OverlayStyle, SliceAxis, Window};

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
    /// Segment whole cases on the model's 1 mm grid (labels back on the case's own grid).
    #[serde(default)]
    pub resample: bool,
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
            resample: false,
        }
    }
}

/// Modality names in the network's channel order.
pub const MODALITIES: [&str; 4] = ["T1", "T1ce", "T2", "FLAIR"];

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
    /// The 3-D view.
    Volume,
}

impl Tab {
    /// Whether the page shows activation or attention maps (which follow the preview).
    fn shows_maps(self) -> bool {
        matches!(self, Tab::Filters | Tab::Attention)
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

//! The desktop app under egui_kittest for the app tests: a harness with its own plan-tree
//! workspace, and waiting on the worker's messages (no sleeps).

use std::time::Duration;

use eframe::egui;
use egui_kittest::Harness;
use raagr2_lab::ui::{LabApp, WorkerFed};

use super::scratch_dir;

/// Longest wait for one worker message (the dense segmentation of the default case is the
/// slowest: a few seconds in release builds).
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(300);

pub fn app() -> Harness<'static, LabApp> {
    let workspace = scratch_dir("app-workspace").join("workspace.json");
    app_with_workspace(workspace)
}

/// The app with its plan tree in `workspace` (tests never touch the user's data directory).
pub fn app_with_workspace(workspace: std::path::PathBuf) -> Harness<'static, LabApp> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(move |cc| LabApp::with_workspace(cc, Some(workspace)))
}

/// Runs frames and handles worker messages until `done` holds.
pub fn wait_until(
    harness: &mut Harness<'static, LabApp>,
    what: &str,
    mut done: impl FnMut(&LabApp) -> bool,
) {
    loop {
        harness.step();
        if done(harness.state()) {
            harness.step();
            return;
        }
        assert!(
            harness.state_mut().wait_for_message(MESSAGE_TIMEOUT),
            "no worker message while waiting for {what}"
        );
    }
}

pub fn ready(app: &LabApp) -> bool {
    app.case.is_some() && app.model.is_some() && app.dense_codes.is_some() && app.preview.is_some()
}

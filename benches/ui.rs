//! UI frame benchmark (not a test): the app's viewer on the embedded 240x240x155 case, scrolled
//! one slice per frame for 200 frames while a fine-tuning job trains in the background, through
//! egui_kittest (no window). Reports the UI thread's CPU time per frame (the egui pass, slice
//! rendering and texture updates) and wall time, p50/p95/max; then the 3-D tab turning a step
//! per frame (the UI thread's share: GPU time is not in it, kittest having no renderer).
//!
//! Run: `cargo bench --bench ui` (add `-- --json` for JSON).

use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use raagr2_lab::backend::DeviceChoice;
use raagr2_lab::ui::{LabApp, WorkerFed};

const FRAMES: usize = 200;

/// CPU time consumed by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

fn summary(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    (
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        *ms.last().unwrap(),
    )
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(|cc| LabApp::new(cc));
    // The default case, the dense segmentation and the first preview.
    let ready = |app: &LabApp| {
        app.case.is_some()
            && app.model.is_some()
            && app.dense_codes.is_some()
            && app.preview.is_some()
    };
    while !ready(harness.state()) {
        harness.step();
        harness
            .state_mut()
            .wait_for_message(Duration::from_secs(300));
    }
    // A fine-tune long enough to outlast the frames; wait until it trains (past data loading).
    {
        let app = harness.state_mut();
        app.fine_tune.settings.epochs = 50;
        app.fine_tune.settings.batches_per_epoch = 1000;
        app.fine_tune.settings.device = DeviceChoice::Cpu;
        app.start_fine_tune();
    }
    let training = |app: &LabApp| {
        app.job
            .as_ref()
            .is_some_and(|(_, _, label)| label.contains("batch"))
    };
    let started = Instant::now();
    while !training(harness.state()) {
        harness.step();
        harness
            .state_mut()
            .wait_for_message(Duration::from_secs(300));
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the fine-tune never started training"
        );
    }
    let dims = harness.state().case.as_ref().unwrap().dims;
    let first = harness.state().slice_idx.saturating_sub(FRAMES / 4);
    let (mut cpu_ms, mut wall_ms) = (Vec::new(), Vec::new());
    for frame in 0..FRAMES {
        // Scroll down then back up through the tumour.
        let offset = if frame < FRAMES / 2 {
            frame
        } else {
            FRAMES - frame
        };
        harness.state_mut().slice_idx = (first + offset / 2).min(dims[2] - 1);
        let (cpu, wall) = (thread_cpu_time(), Instant::now());
        harness.step();
        cpu_ms.push((thread_cpu_time() - cpu).as_secs_f64() * 1e3);
        wall_ms.push(wall.elapsed().as_secs_f64() * 1e3);
    }
    let still_training = training(harness.state());
    // The 3-D tab turning one step a frame: the UI thread's work per frame (input, camera,
    // the paint callbacks); kittest has no renderer, so no GPU time is in it.
    {
        let app = harness.state_mut();
        app.tab = raagr2_lab::ui::Tab::Volume;
        app.volume.draw_without_renderer();
    }
    let mut rotate_cpu_ms = Vec::new();
    for _ in 0..FRAMES {
        harness.state_mut().volume.rotate(4.0, 0.5);
        let cpu = thread_cpu_time();
        harness.step();
        rotate_cpu_ms.push((thread_cpu_time() - cpu).as_secs_f64() * 1e3);
    }
    let (rot50, rot95, rot_max) = summary(rotate_cpu_ms);
    harness.state().cancel_job();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (cpu50, cpu95, cpu_max) = summary(cpu_ms);
    let (wall50, wall95, wall_max) = summary(wall_ms);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "frames": FRAMES,
                "case_dims": dims,
                "cores": threads,
                "fine_tune_running_throughout": still_training,
                "cpu_ms": {"p50": cpu50, "p95": cpu95, "max": cpu_max},
                "wall_ms": {"p50": wall50, "p95": wall95, "max": wall_max},
                "rotating_3d_cpu_ms": {"p50": rot50, "p95": rot95, "max": rot_max},
            })
        );
    } else {
        println!(
            "UI frames: {FRAMES} frames scrolling a {}x{}x{} case, fine-tune running {} ({threads} cores)",
            dims[0],
            dims[1],
            dims[2],
            if still_training {
                "throughout"
            } else {
                "at the start only"
            }
        );
        println!(
            "  UI thread CPU per frame: p50 {cpu50:.2} ms, p95 {cpu95:.2} ms, max {cpu_max:.2} ms"
        );
        println!(
            "  wall time per frame:     p50 {wall50:.2} ms, p95 {wall95:.2} ms, max {wall_max:.2} ms"
        );
        println!(
            "  3-D tab rotating, UI thread CPU per frame: p50 {rot50:.2} ms, p95 {rot95:.2} ms, max {rot_max:.2} ms"
        );
    }
}

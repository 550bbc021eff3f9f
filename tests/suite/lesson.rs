//! The guided lesson driven through egui_kittest: every step done as it asks, from the first
//! to the last, the presenter setting, and a broken lesson file named with its step.

use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::kittest::Queryable;
use raagr2_lab::prune::{PruneMethod, StructuredMethod, UnstructuredMethod};
use raagr2_lab::ui::Tab;

use crate::common;
use crate::common::app::{app, ready, wait_until};

/// Waits until the lesson has seen step `index` done, then presses Next (or Finish).
fn finish_step(harness: &mut egui_kittest::Harness<'static, raagr2_lab::ui::LabApp>, index: usize) {
    let title = harness.state().lesson.lesson.steps[index].title.clone();
    wait_until(
        harness,
        &format!("step {} ({title}) done", index + 1),
        |app| app.lesson.done[index],
    );
    let last = index + 1 == harness.state().lesson.lesson.steps.len();
    harness
        .get_by_label(if last { "Finish" } else { "Next" })
        .click();
    harness.step();
}

#[test]
fn the_lesson_is_walked_from_the_first_step_to_the_last_by_doing_what_each_asks() {
    let mut harness = app();
    wait_until(&mut harness, "the default case and model", ready);
    // A first start offers the lesson in the top bar.
    harness.get_by_label("Start the lesson").click();
    harness.step();
    assert!(harness.state().lesson.open);
    harness.get_by_label_contains("Step 1 of 8");
    // Next waits until the step is done.
    assert!(!harness.state().lesson.done[0]);

    // 1. The four modalities (what the Modality list sets).
    for modality in 0..4 {
        harness.state_mut().settings.modality = modality;
        harness.step();
    }
    finish_step(&mut harness, 0);
    // 2. The dense model's whole-case Dice.
    finish_step(&mut harness, 1);
    // 3. Magnitude pruning at a global 20 %.
    harness.state_mut().settings.method = PruneMethod::Unstructured(UnstructuredMethod::L1);
    harness.get_by_label("One global ratio").click();
    harness.step();
    harness
        .get_by_role_and_label(egui::accesskit::Role::Slider, "Global ratio")
        .set_value_accesskit(0.2);
    finish_step(&mut harness, 2);
    // 4. The BN-gamma histogram, then slimming at the quarter preset.
    harness.get_by_label("Plots").click();
    harness.step();
    harness.state_mut().settings.method = PruneMethod::Structured(StructuredMethod::BnGamma);
    harness.get_by_label("quarter").click();
    finish_step(&mut harness, 3);
    // 5. The first points of a sweep, then the sweep stopped to free the job slot.
    harness.get_by_label("Run sweep").click();
    finish_step(&mut harness, 4);
    harness.get_by_label("Cancel").click();
    wait_until(&mut harness, "the sweep to stop", |app| app.job.is_none());
    // 6. A short fine-tune.
    harness.state_mut().fine_tune.settings.epochs = 1;
    harness.state_mut().fine_tune.settings.batches_per_epoch = 2;
    harness.get_by_label("Fine-tune").click();
    finish_step(&mut harness, 5);
    // 7. The disagreement map, through a few slices.
    harness.get_by_label("Slices").click();
    harness.step();
    let slice = harness.state().slice_idx;
    harness
        .get_by_role_and_label(egui::accesskit::Role::Slider, "Slice")
        .set_value_accesskit((slice + 3) as f64);
    finish_step(&mut harness, 6);
    assert_eq!(harness.state().tab, Tab::Slices);
    // 8. The attention maps; Finish closes the lesson.
    harness.get_by_label("Attention").click();
    finish_step(&mut harness, 7);
    let app = harness.state();
    assert!(!app.lesson.open);
    assert!(app.lesson.done.iter().all(|d| *d));
    assert!(app.notices.iter().any(|n| n == "lesson finished"));
    assert!(app.errors.is_empty(), "{:?}", app.errors);

    // Presenter mode: larger text and a high-contrast overlay, and back.
    let overlay = harness.state().settings.overlay.clone();

    harness.get_by_label("Lesson").click();
    harness.step();
    harness.get_by_label("Presenter mode").click();
    harness.step();
    harness.step();
    assert!(harness.state().lesson.presenter);
    assert_ne!(harness.state().settings.overlay.colours, overlay.colours);
    harness.get_by_label("Presenter mode").click();
    harness.step();
    harness.step();
    assert!(!harness.state().lesson.presenter);
    assert_eq!(harness.state().settings.overlay.colours, overlay.colours);
}

#[test]
fn a_broken_lesson_file_is_refused_naming_the_file_and_the_step() {
    let mut harness = app();
    harness.step();
    let dir = common::scratch_dir("lesson");
    let path = dir.join("lesson.toml");
    let broken = raagr2_lab::lesson::DEFAULT_LESSON.replacen(
        "check = \"dense-dice\"",
        "check = \"dense-dice-please\"",
        1,
    );
    std::fs::write(&path, broken).unwrap();
    harness.state().open_lesson_file(path.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while harness.state().errors.is_empty() {
        assert!(Instant::now() < deadline, "no error for the broken lesson");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.step();
    let error = harness.state().errors[0].clone();
    assert!(error.contains("lesson.toml"), "{error}");
    assert!(
        error.contains("step 2 (\"The dense model and its Dice\")")
            && error.contains("dense-dice-please"),
        "{error}"
    );
    harness.get_by_label_contains("dense-dice-please");
    // The lesson in use stays the embedded one; a good file replaces it.
    assert_eq!(harness.state().lesson.source, "embedded");
    std::fs::write(
        &path,
        raagr2_lab::lesson::DEFAULT_LESSON.replace("Four MRI scans", "Vier MRT-Aufnahmen"),
    )
    .unwrap();
    harness.state().open_lesson_file(path.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while harness.state().lesson.source == "embedded" {
        assert!(Instant::now() < deadline, "the good lesson was not loaded");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        harness.state().lesson.lesson.steps[0]
            .title
            .starts_with("Vier")
    );
}

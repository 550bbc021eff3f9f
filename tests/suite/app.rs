//! The desktop app driven through egui_kittest: it opens on the embedded default case, a layer
//! slider prunes the model and changes the parameter count, overlay and view controls work,
//! a bad folder shows an error while the app keeps working, and frames keep coming while the
//! worker is busy. No sleeps: the tests wait on the worker's channel.

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use raagr2_lab::backend::DeviceChoice;
use raagr2_lab::metrics::Region;
use raagr2_lab::metrics::findings::LesionOrigin;
use raagr2_lab::render::SliceAxis;
use raagr2_lab::ui::{GpuState, LabApp, WorkerFed};

use crate::common;
use crate::common::app::{MESSAGE_TIMEOUT, app, ready, wait_until};

#[test]
fn a_layer_slider_prunes_the_model_and_changes_params_and_dice() {
    let mut harness = app();
    wait_until(
        &mut harness,
        "the default case, model and first preview",
        ready,
    );
    let dense_params = harness.state().model.as_ref().unwrap().params;
    assert_eq!(
        harness.state().preview.as_ref().unwrap().params,
        dense_params
    );
    assert_eq!(harness.state().case.as_ref().unwrap().id, "Synth_10004");
    harness.get_by_label_contains("dense, case");
    // The first preview is the dense model: the disagreement panel says they agree, in words.
    harness.get_by_label_contains("Dense and pruned agree on every voxel of this slice");

    let (_, dense_dice) = harness.state().slice_dice();
    let slider = harness.get_by_role_and_label(egui::accesskit::Role::Slider, "enc1.out 8/8");
    slider.set_value_accesskit(0.5);
    wait_until(&mut harness, "a preview of the pruned model", |app| {
        app.preview
            .as_ref()
            .is_some_and(|p| p.params < dense_params)
    });
    let preview = harness.state().preview.clone().unwrap();
    let group = harness
        .state()
        .model
        .as_ref()
        .unwrap()
        .groups
        .iter()
        .position(|g| g.name == "enc1.out")
        .unwrap();
    assert_eq!(preview.kept[group], 4, "half of enc1.out's 8 channels kept");
    // The pruned model segments the slice differently, and the Dice table shows it.
    let (_, pruned_dice) = harness.state().slice_dice();
    assert_ne!(
        pruned_dice, dense_dice,
        "pruning half of enc1.out changes the slice's Dice"
    );
    let shown = format!("{:.3}", pruned_dice.unwrap()[0]);
    assert!(
        harness.get_all_by_label(&shown).count() >= 1,
        "pruned WT Dice {shown} shown"
    );
    harness.get_by_label_contains("differ on this slice");
    // Then the whole case is scored with the pruned model in the background.
    wait_until(
        &mut harness,
        "the pruned model's Dice on the whole case",
        |app| app.preview_case_dice.is_some(),
    );
    let case_dice = harness.state().preview_case_dice.unwrap();
    let dense_case = harness.state().dense_case_dice.unwrap();
    assert_ne!(
        case_dice, dense_case,
        "the pruned model scores the case differently"
    );
    findings_show_volumes_and_take_the_viewer_to_a_lesion(&mut harness);
    // The panel shows the new count and the new parameter total.
    harness.get_by_role_and_label(egui::accesskit::Role::Slider, "enc1.out 4/8");
    assert!(
        harness
            .get_all_by_label(&preview.params.to_string())
            .count()
            >= 1
    );
    // The same pruned model's whole-case Dice as its static INT8 export computes it: close to
    // the float one, not the same, and labelled with its precision.
    harness
        .state_mut()
        .score_case_dice_in(raagr2_lab::precision::Precision::Int8);
    wait_until(
        &mut harness,
        "the pruned model's whole-case Dice in int8",
        |app| app.preview_case_dice.is_some(),
    );
    let int8 = harness.state().preview_case_dice.unwrap();
    assert_ne!(int8, case_dice, "int8 rounds activations");
    for (a, b) in int8.iter().zip(&case_dice) {
        assert!((a - b).abs() < 0.05, "int8 {int8:?} vs fp32 {case_dice:?}");
    }
    harness.get_by_label_contains("pruned, case (int8)");
}

/// With the pruned model's whole case scored: the volume table holds each model's WT volume as
/// its voxels times the case's voxel volume, and clicking the largest lesion moves the axial
/// and then the coronal plane through it.
fn findings_show_volumes_and_take_the_viewer_to_a_lesion(harness: &mut Harness<'static, LabApp>) {
    let app = harness.state();
    let case = app.case.clone().unwrap();
    let findings = app.findings.as_ref().expect("findings with the whole case");
    let voxel_ml: f64 = case.spacing_mm.iter().map(|s| *s as f64).product::<f64>() / 1000.0;
    let wt_ml = |codes: &[u8]| codes.iter().filter(|c| **c != 0).count() as f64 * voxel_ml;
    let volumes = findings.volumes;
    let dense_wt = volumes.dense_ml.unwrap().get(Region::Wt);
    let pruned_wt = volumes.pruned_ml.unwrap().get(Region::Wt);
    assert!((dense_wt - wt_ml(app.dense_codes.as_ref().unwrap())).abs() < 1e-9);
    assert!(
        (volumes.truth_ml.unwrap().get(Region::Wt) - wt_ml(case.truth.as_ref().unwrap())).abs()
            < 1e-9
    );
    assert_ne!(
        pruned_wt, dense_wt,
        "half of enc1.out changes the WT volume"
    );
    harness.get_by_label(&format!("{:.2}", pruned_wt));
    harness.get_by_label(&format!("{:+.2}", pruned_wt - dense_wt));
    let largest = findings
        .lesions
        .iter()
        .find(|l| l.region == Region::Wt)
        .expect("a WT lesion")
        .clone();
    assert_eq!(largest.origin, LesionOrigin::Truth);
    // The strip's layout settles over a frame or two before a click lands where it aims.
    harness.run_steps(3);
    harness.get_by_label("#1").click();
    harness.run_steps(2);
    let [_, y, z] = largest.anchor_voxel;
    assert_eq!(harness.state().cursor, Some(largest.anchor_voxel));
    assert_eq!(
        harness.state().slice_idx,
        z,
        "the axial plane through the lesion"
    );
    harness.get_by_label("Coronal").click();
    harness.run_steps(2);
    assert_eq!(
        harness.state().slice_idx,
        y,
        "the coronal plane through the lesion"
    );
    harness.get_by_label("Axial").click();
    harness.run_steps(2);
    // The case report of the previewed model, written by the worker.
    let path = common::scratch_dir("app-report").join("case_report.png");
    harness.state().export_report_to(path.clone());
    wait_until(harness, "the case report", |app| {
        app.notices.iter().any(|n| n.contains("case_report.png")) || !app.errors.is_empty()
    });
    assert!(
        harness.state().errors.is_empty(),
        "{:?}",
        harness.state().errors
    );
    let page = image::open(&path).expect("the report is a PNG");
    assert!(page.width() >= 3 * 240 && page.height() > 3 * 240);
}

#[test]
fn overlay_toggle_and_view_switch_change_what_is_drawn() {
    let mut harness = app();
    wait_until(&mut harness, "the default case", |app| app.case.is_some());
    harness
        .get_by_role_and_label(egui::accesskit::Role::CheckBox, "ED")
        .click();
    harness.run_steps(2);
    assert!(!harness.state().settings.overlay.visible[1], "ED hidden");
    assert!(
        harness.state().settings.overlay.visible[0],
        "NCR/NET still shown"
    );

    harness.get_by_label("Coronal").click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings.axis, SliceAxis::Coronal);
    let dims = harness.state().case.as_ref().unwrap().dims;
    assert!(
        harness.state().slice_idx < dims[1],
        "slice index within the coronal range"
    );
    // Until the pruned model has segmented the whole case only its axial slice exists; then
    // the other planes show it too and the note goes.
    if !harness.state().pruned_covers_case() {
        harness.get_by_label_contains("computed on axial slices");
    }
    wait_until(&mut harness, "the pruned model's whole case", |app| {
        app.pruned_covers_case()
    });
    harness.run_steps(2);
    assert!(
        harness
            .query_by_label_contains("computed on axial slices")
            .is_none()
    );
    // The 3-D tab says plainly that this window (kittest: no wgpu renderer) cannot draw it.
    harness.get_by_label("3-D").click();
    harness.run_steps(2);
    harness.get_by_label_contains("needs the app's wgpu renderer");
}

#[test]
fn a_bad_folder_shows_an_error_and_the_app_keeps_working() {
    let mut harness = app();
    wait_until(&mut harness, "the default case", |app| app.case.is_some());
    let folder = common::scratch_dir("app-bad-folder");
    std::fs::write(folder.join("notes.txt"), "not an MRI").unwrap();
    harness.state_mut().open_path(folder.join("notes.txt"));
    wait_until(&mut harness, "an error", |app| !app.errors.is_empty());
    let error = harness.state().errors[0].clone();
    assert!(
        error.contains(folder.to_str().unwrap()),
        "names the folder: {error}"
    );
    eprintln!("shown: {error}");
    // The message is visible in the window, not just stored.
    harness.get_by_label_contains(&format!("Error: {}", &error[..20]));
    assert_eq!(
        harness.state().case.as_ref().unwrap().id,
        "Synth_10004",
        "the open case stays"
    );
    harness.get_by_label("Dismiss").click();
    harness.run_steps(2);
    assert!(harness.state().errors.is_empty());
}

#[test]
fn a_refused_job_shows_why_and_leaves_the_app_usable() {
    use raagr2_lab::data::LabelConvention;
    use raagr2_lab::data::synth::{SynthKind, SynthOptions, generate_case, write_case};
    let mut harness = app();
    wait_until(&mut harness, "the default case", |app| app.case.is_some());
    // A case with no segmentation: a sweep scores Dice, so the worker refuses it.
    let options = SynthOptions::over_brats_view(SynthKind::Realistic, Some(3.0)).unwrap();
    let dir = common::scratch_dir("app-no-seg");
    let folder = write_case(
        &dir,
        "NoSeg_1",
        &generate_case(1, &options),
        LabelConvention::Brats2021,
    )
    .unwrap();
    std::fs::remove_file(folder.join("NoSeg_1_seg.nii.gz")).unwrap();
    harness.state_mut().open_path(folder);
    wait_until(&mut harness, "the case without labels", |app| {
        app.case.as_ref().is_some_and(|c| c.id == "NoSeg_1")
    });
    harness.state_mut().start_sweep();
    // The worker's answer is a refusal (never a start): an error, and no job left running.
    wait_until(&mut harness, "the refusal", |app| !app.errors.is_empty());
    assert!(harness.state().job.is_none());
    let error = harness.state().errors.last().cloned().unwrap_or_default();
    assert!(error.contains("no ground truth"), "says why: {error}");
    harness.get_by_label_contains("Error: NoSeg_1: no ground truth");
    // Nothing stays busy: a new job can be asked for.
    {
        let button = harness.get_by_label("Run sweep");
        assert!(!button.accesskit_node().is_disabled());
    }
}

#[test]
fn textures_are_uploaded_only_when_what_they_show_changes() {
    let mut harness = app();
    wait_until(&mut harness, "the default case, model and preview", ready);
    // Let the last results land, then count uploads over frames where nothing changes.
    harness.run_steps(3);
    let before = harness.state().texture_uploads();
    harness.run_steps(20);
    assert_eq!(
        harness.state().texture_uploads(),
        before,
        "idle frames upload nothing"
    );
    // One slice further: each of the four panels uploads once.
    harness.state_mut().slice_idx += 1;
    harness.run_steps(5);
    let after = harness.state().texture_uploads();
    assert!(after > before && after <= before + 4, "{before} -> {after}");
}

#[test]
fn under_a_global_ratio_the_group_sliders_show_the_share_it_removed() {
    let mut harness = app();
    wait_until(&mut harness, "the default case, model and preview", ready);
    // A preset prunes every group but the first encoder and last decoder levels.
    harness.get_by_label("quarter").click();
    harness.run_steps(2);
    let ratios = harness.state().pruning.group_ratios.clone();
    let model = harness.state().model.clone().unwrap();
    for (group, ratio) in model.groups.iter().zip(&ratios) {
        let kept_whole = group.name.starts_with("enc1.")
            || ["up2", "att2", "dec2"].contains(&group.name.as_str());
        assert_eq!(
            *ratio,
            if kept_whole { 0.0 } else { 0.25 },
            "{}",
            group.name
        );
    }
    harness.get_by_label("One global ratio").click();
    harness.run_steps(1);
    harness
        .get_by_role_and_label(egui::accesskit::Role::Slider, "Global ratio")
        .set_value_accesskit(0.5);
    wait_until(&mut harness, "the preview of the global pruning", |app| {
        app.preview
            .as_ref()
            .is_some_and(|p| p.params < app.model.as_ref().unwrap().params)
    });
    let model = harness.state().model.clone().unwrap();
    let kept = harness.state().preview.as_ref().unwrap().kept.clone();
    let g = model
        .groups
        .iter()
        .position(|g| g.name == "enc5.out")
        .unwrap();
    let label = format!("enc5.out {}/{}", kept[g], model.groups[g].channels);
    let slider = harness.get_by_role_and_label(egui::accesskit::Role::Slider, &label);
    let shown = slider.accesskit_node().numeric_value().unwrap();
    let effective = 1.0 - kept[g] as f64 / model.groups[g].channels as f64;
    assert!(
        effective > 0.0,
        "the global ratio removed channels of enc5.out"
    );
    assert!(
        (shown - effective).abs() < 1e-9,
        "shows {shown}, removed {effective}"
    );
}

#[test]
fn frames_keep_coming_while_the_worker_segments_a_case() {
    let mut harness = app();
    // Until the dense segmentation of the default case arrives, the worker is busy for seconds;
    // a UI that waited on it would produce a single frame in that time.
    let mut frames = 0u64;
    while harness.state().dense_codes.is_none() {
        harness.step();
        frames += 1;
        assert!(frames < 50_000_000, "the worker never finished");
    }
    assert!(frames >= 20, "only {frames} frames while the worker worked");
}

#[test]
fn a_fine_tune_starts_on_the_chosen_device_and_cancels() {
    let mut harness = app();
    wait_until(&mut harness, "the default case and model", ready);
    harness.get_by_label("CPU").click();
    harness.run_steps(2);
    harness.get_by_label("Fine-tune").click();
    wait_until(&mut harness, "the first training batch", |app| {
        app.job
            .as_ref()
            .is_some_and(|(_, _, label)| label.contains("batch"))
    });
    let label = harness.state().job.clone().unwrap().2;
    assert!(label.contains("cpu (flex)"), "the device is shown: {label}");
    harness.get_by_label("Cancel").click();
    wait_until(&mut harness, "the job to end", |app| app.job.is_none());
    let notice = harness.state().notices.last().cloned().unwrap_or_default();
    assert!(notice.contains("cancelled after 0 epoch"), "{notice}");
    assert!(
        !harness.state().fine_tune.tuned_available,
        "nothing fine-tuned to show"
    );
    // The app still previews after the cancelled job.
    harness
        .get_by_role_and_label(egui::accesskit::Role::Slider, "enc4.out 64/64")
        .set_value_accesskit(0.5);
    wait_until(&mut harness, "a preview after the cancel", |app| {
        app.preview.as_ref().is_some_and(|p| p.kept.contains(&32))
    });
}

#[test]
fn without_a_gpu_adapter_the_app_says_so_and_offers_the_cpu() {
    let mut harness = app();
    wait_until(&mut harness, "the default case and model", ready);
    // As the worker's probe answers on a machine without a usable adapter.
    harness.state_mut().fine_tune.gpu =
        GpuState::Missing("no Vulkan, Metal or DX12 adapter".into());
    harness.get_by_label("GPU").click();
    harness.run_steps(2);
    harness.get_by_label("no usable GPU adapter");
    harness.get_by_label("Use the CPU").click();
    harness.run_steps(2);
    assert_eq!(harness.state().fine_tune.settings.device, DeviceChoice::Cpu);
    assert!(harness.query_by_label("Use the CPU").is_none());
}

/// The app's GPU path on real hardware: probe, name the adapter, fine-tune two epochs and time
/// them. Run where a GPU exists: `cargo test --release --test main -- --ignored gpu_fine_tune`.
#[test]
#[ignore = "needs a GPU adapter (on lavapipe the kernels take minutes to compile)"]
fn a_gpu_fine_tune_names_the_adapter_and_times_each_epoch() {
    let mut harness = app();
    wait_until(&mut harness, "the default case and model", ready);
    harness.get_by_label("GPU").click();
    wait_until(&mut harness, "the GPU probe", |app| {
        matches!(app.fine_tune.gpu, GpuState::Found(_) | GpuState::Missing(_))
    });
    let name = match harness.state().fine_tune.gpu.clone() {
        GpuState::Found(name) => name,
        other => panic!("no GPU adapter: {other:?}"),
    };
    eprintln!("adapter: {name}");
    harness.get_by_label(&format!("GPU: {name}"));
    harness.state_mut().fine_tune.settings.epochs = 2;
    harness.get_by_label("Fine-tune").click();
    // The job's progress line as it changes, with the time since the click: on a real card the
    // first steps compile and autotune kernels, and this log says where the time went.
    let started = std::time::Instant::now();
    let mut last_label = String::new();
    wait_until(&mut harness, "the fine-tune to end", |app| {
        if let Some((_, _, label)) = &app.job
            && *label != last_label
        {
            eprintln!("{:7.1} s  {label}", started.elapsed().as_secs_f64());
            last_label.clone_from(label);
        }
        !app.errors.is_empty()
            || (app.job.is_none() && app.notices.iter().any(|n| n.contains("fine-tuning on")))
    });
    assert!(
        harness.state().errors.is_empty(),
        "{:?}",
        harness.state().errors
    );
    let notice = harness.state().notices.last().cloned().unwrap_or_default();
    eprintln!("{notice}");
    for point in &harness.state().fine_tune.history {
        eprintln!(
            "epoch {}: {:.2} s, train loss {:.4}, val Dice {:?}",
            point.epoch, point.secs, point.train_loss, point.val_dice
        );
    }
    assert!(
        notice.contains(&format!("gpu (wgpu: {name}) finished: 2 epoch(s)")),
        "{notice}"
    );
    assert!(notice.contains("s per epoch"), "{notice}");
    assert_eq!(harness.state().fine_tune.history.len(), 2);
    // BCE + (1 - Dice) of a trained model stays near 1: a device whose arithmetic is wrong
    // (lavapipe's large reductions gave 1e15) must not pass as a working fine-tune.
    for point in &harness.state().fine_tune.history {
        assert!(
            point.train_loss.is_finite() && point.train_loss < 10.0,
            "epoch {} train loss {}",
            point.epoch,
            point.train_loss
        );
    }
    assert!(
        harness
            .state()
            .fine_tune
            .history
            .iter()
            .all(|p| p.secs > 0.0)
    );
    assert!(harness.state().fine_tune.tuned_available);
}

#[test]
fn the_pruned_segmentation_is_saved_as_nifti_on_the_case_grid() {
    let mut harness = app();
    wait_until(&mut harness, "the default case and model", ready);
    harness.get_by_label("half").click();
    harness.run_steps(2);
    let path = common::scratch_dir("app-seg").join("pruned_seg.nii.gz");
    harness.state().export_prediction_to(path.clone());
    wait_until(&mut harness, "the saved file", |app| {
        app.notices.iter().any(|n| n.contains("saved")) || !app.errors.is_empty()
    });
    assert!(
        harness.state().errors.is_empty(),
        "{:?}",
        harness.state().errors
    );
    let volume = raagr2_lab::data::nifti_io::read_volume(&path).expect("a readable NIfTI");
    let case = harness.state().case.clone().unwrap();
    assert_eq!(volume.dims, case.dims);
    assert_eq!(volume.spacing_mm, case.spacing_mm);
    assert!(
        volume.data.iter().all(|v| [0.0, 1.0, 2.0, 4.0].contains(v)),
        "BraTS labels only"
    );
    let _ = std::fs::remove_file(&path);
}

/// "Export model…" writes the previewed (pruned) model in the chosen format through the
/// worker; an unwritable folder is an error naming it, with nothing left behind.
#[test]
fn the_previewed_model_is_exported_in_the_chosen_format() {
    use raagr2_lab::export::{ModelFormat, Precision};
    use raagr2_lab::ui::ExportChoice;
    let mut harness = app();
    wait_until(&mut harness, "the default case and model", ready);
    harness.get_by_label("half").click();
    wait_until(&mut harness, "the pruned preview", |app| {
        app.preview.is_some()
    });
    let dir = common::scratch_dir("app-export-model");
    let path = dir.join("pruned.pt.safetensors");
    let choice = ExportChoice {
        format: ModelFormat::PyTorch,
        precision: Precision::Fp32,
    };
    harness.state().export_model_to(path.clone(), choice);
    wait_until(&mut harness, "the exported model", |app| {
        app.notices
            .iter()
            .any(|n| n.contains("pruned.pt.safetensors"))
            || !app.errors.is_empty()
    });
    assert!(
        harness.state().errors.is_empty(),
        "{:?}",
        harness.state().errors
    );
    let exported = raagr2_lab::model::open_model(&path).expect("the export opens again");
    let dense = raagr2_lab::defaults::default_checkpoint();
    let widths = |c: &raagr2_lab::model::Checkpoint| -> Vec<usize> {
        c.config.plan.encoders.iter().map(|e| e.out).collect()
    };
    assert!(
        widths(&exported).iter().sum::<usize>() < widths(&dense).iter().sum::<usize>(),
        "the previewed half-width model, not the dense one: {:?}",
        widths(&exported)
    );

    // A file where the folder should be: no folder can be made there.
    let blocker = dir.join("not-a-folder");
    std::fs::write(&blocker, b"").unwrap();
    let unwritable = blocker.join("pruned.onnx");
    harness.state_mut().errors.clear();
    harness.state().export_model_to(
        unwritable.clone(),
        ExportChoice {
            format: ModelFormat::Onnx,
            precision: Precision::Fp16,
        },
    );
    wait_until(&mut harness, "the export's error", |app| {
        !app.errors.is_empty()
    });
    let error = harness.state().errors.join(" ");
    assert!(error.contains("not-a-folder"), "{error}");
    assert!(!unwritable.exists());
}

#[test]
fn the_layers_tab_computes_cka_and_a_cancellable_sensitivity_heatmap() {
    let mut harness = app();
    wait_until(&mut harness, "the default case and model", ready);
    harness
        .get_by_role_and_label(egui::accesskit::Role::Slider, "enc4.out 64/64")
        .set_value_accesskit(0.5);
    wait_until(&mut harness, "the pruned preview", |app| {
        app.preview.as_ref().is_some_and(|p| p.kept.contains(&32))
    });
    harness.get_by_label("Layers").click();
    harness.run_steps(2);

    // Dense (rows) vs the panel's pruned model (columns), the default choice.
    harness.get_by_label("Compute CKA").click();
    wait_until(&mut harness, "the CKA matrix", |app| {
        app.layers.cka.is_some() && app.job.is_none()
    });
    let cka = harness.state().layers.cka.clone().unwrap();
    assert_eq!((cka.rows.len(), cka.columns.len()), (9, 9), "nine levels");
    // Whole minibatches of 8 tumour slices, at most 32 (the default case has fewer).
    assert!(
        cka.slices % 8 == 0 && (16..=32).contains(&cka.slices),
        "{}",
        cka.slices
    );
    let enc1 = cka.rows.iter().position(|r| r == "enc1").unwrap();
    // enc1 comes before the pruned group and matches itself exactly; later levels drift.
    assert!((cka.values[enc1][enc1] - 1.0).abs() < 1e-6, "{cka:?}");
    let lowest = (0..9).map(|i| cka.values[i][i]).fold(1.0, f64::min);
    assert!(lowest < 0.995, "{cka:?}");
    harness.get_by_label_contains("dense (rows) vs pruned l2");

    harness.get_by_label("Run sensitivity").click();
    wait_until(&mut harness, "the first sensitivity cell", |app| {
        !app.layers.sensitivity.is_empty()
    });
    harness.get_by_label("Cancel").click();
    wait_until(&mut harness, "the job to end", |app| app.job.is_none());
    let cells = harness.state().layers.sensitivity.clone();
    assert!(
        !cells.is_empty() && cells.len() < 111,
        "stopped early: {}",
        cells.len()
    );
    assert_eq!((cells[0].group, cells[0].ratio), (0, 0.25));
    assert!(cells[0].dice.iter().all(|d| (0.0..=1.0).contains(d)));
    harness.get_by_label_contains("cells");
}

/// Runs frames and handles classifier-worker messages until `done` holds.
fn wait_for_classifiers(
    harness: &mut Harness<'static, LabApp>,
    what: &str,
    mut done: impl FnMut(&raagr2_lab::ui::classify_workspace::ClassifierWorkspace) -> bool,
) {
    loop {
        harness.step();
        let workspace = harness
            .state()
            .classifiers
            .as_ref()
            .expect("workspace shown");
        if done(workspace) {
            harness.step();
            return;
        }
        let workspace = harness.state_mut().classifiers.as_mut().unwrap();
        assert!(
            workspace.wait_for_message(MESSAGE_TIMEOUT),
            "no classifier-worker message while waiting for {what}"
        );
    }
}

#[test]
fn the_classifier_workspace_opens_on_the_demo_and_its_slider_changes_accuracy() {
    let mut harness = app();
    harness.get_by_label("Classifiers").click();
    harness.step();
    wait_for_classifiers(&mut harness, "the demo and its first evaluations", |w| {
        w.demo.is_some() && w.dense.is_some() && w.pruned.is_some()
    });
    let workspace = harness.state().classifiers.as_ref().unwrap();
    let dense = workspace.dense.clone().unwrap();
    let half = workspace.pruned.clone().unwrap();
    assert!(
        dense.top1 > 0.3,
        "the demo beats chance (0.1): {}",
        dense.top1
    );
    assert!((half.sparsity - 0.5).abs() < 0.005, "{}", half.sparsity);
    harness.get_by_label_contains("held-out images");

    let slider = harness.get_by_role_and_label(egui::accesskit::Role::Slider, "sparsity");
    slider.set_value_accesskit(0.98);
    wait_for_classifiers(&mut harness, "an evaluation at 98 %", |w| {
        w.pruned.as_ref().is_some_and(|p| p.spec.sparsity > 0.97)
    });
    let pruned = harness
        .state()
        .classifiers
        .as_ref()
        .unwrap()
        .pruned
        .clone()
        .unwrap();
    assert!(
        (pruned.sparsity - 0.98).abs() < 0.005,
        "{}",
        pruned.sparsity
    );
    assert!(
        pruned.top1 < half.top1,
        "98 % of the weights gone must cost accuracy: {} vs {}",
        pruned.top1,
        half.top1
    );
    assert_eq!(pruned.predictions.len(), dense.predictions.len());

    harness.get_by_label("Classes").click();
    harness.step();
    harness.get_by_label_contains("Recall per class");
}

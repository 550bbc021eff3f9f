//! The headless pipeline end to end, as a user runs it: synthetic BraTS folders on disk ->
//! `train` (loss falls, checkpoints each epoch, resume) -> `eval` (JSON and CSV) -> `predict`
//! (a NIfTI label map with the source geometry, whose labels score what `predict` reported).
//! Plus cancelling the training loop after a batch keeps the last completed epoch.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};

use raagr2_lab::data::dataset::{SliceDataset, SliceSelection, synthetic_case_with};
use raagr2_lab::data::read_volume;
use raagr2_lab::data::synth::{SynthKind, SynthOptions};
use raagr2_lab::metrics::{Region, evaluate_case};
use raagr2_lab::model::{Head, ModelConfig, Variant, load_checkpoint};
use raagr2_lab::train::{CheckpointPaths, StopReason, TrainEvent, TrainOptions, TrainState, fit};
use serde_json::Value;

use crate::common::cli::{run, stderr};

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "command failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn synth_train_eval_predict_round_trip() {
    let dir = common::scratch_dir("pipeline");
    let data = dir.join("cases");
    let model = dir.join("run/model.safetensors");
    // Realistic cases over BraTS's field of view at 2 mm (120x120x78): quick to train on.
    json_of(&run(&[
        "synth",
        "-o",
        s(&data),
        "-n",
        "3",
        "--spacing",
        "2",
        "--json",
    ]));

    let train_args = [
        "train",
        "--data",
        s(&data),
        "--width",
        "0.125",
        "--crop",
        "128",
        "--batch",
        "4",
        "--max-batches",
        "4",
        "--lr",
        "3e-3",
        "--val-fraction",
        "0.34",
        "-o",
        s(&model),
        "--json",
    ];
    let mut first = train_args.to_vec();
    first.extend(["--epochs", "3"]);
    let report = json_of(&run(&first));
    let history = report["state"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    let loss = |e: &Value| e["train_loss"].as_f64().unwrap();
    assert!(
        loss(&history[2]) < loss(&history[0]),
        "training loss did not fall: {:?}",
        history.iter().map(loss).collect::<Vec<_>>()
    );
    let last = dir.join("run/model.last.safetensors");
    assert!(
        model.exists() && last.exists(),
        "best and last checkpoints written"
    );

    // Resume continues the epoch count and keeps the recorded split and slice settings, even
    // when the flags now say otherwise.
    let mut resume = train_args.to_vec();
    resume.extend(["--epochs", "4", "--resume", s(&last), "--seed", "99"]);
    let resumed = json_of(&run(&resume));
    assert_eq!(resumed["state"]["epochs_done"], 4);
    assert_eq!(resumed["state"]["history"].as_array().unwrap().len(), 4);
    assert_eq!(resumed["state"]["val_ids"], report["state"]["val_ids"]);
    assert_eq!(resumed["state"]["slices"], report["state"]["slices"]);
    assert_eq!(resumed["train_slices"], report["train_slices"]);

    let (json_file, csv_file) = (dir.join("eval.json"), dir.join("eval.csv"));
    let eval = json_of(&run(&[
        "eval",
        s(&model),
        "--data",
        s(&data),
        "--json-out",
        s(&json_file),
        "--csv",
        s(&csv_file),
        "--json",
    ]));
    let cases = eval["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        for region in ["WT", "TC", "ET", "NCR", "ED"] {
            let d = case["dice"][region].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&d), "{region} Dice {d}");
        }
        assert!(case["hd95_mm"]["WT"].as_f64().unwrap() >= 0.0);
    }
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    assert_eq!(written["mean"], eval["mean"]);
    let csv = std::fs::read_to_string(&csv_file).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 + 1, "header, 3 cases, mean");
    assert!(
        csv.lines().next().unwrap().contains("volume ET ml,"),
        "{csv}"
    );

    let case_dir = data.join("Synth_0000");
    let output = dir.join("pred/Synth_0000_pred.nii.gz");
    let predicted = json_of(&run(&[
        "predict",
        s(&case_dir),
        "--model",
        s(&model),
        "-o",
        s(&output),
        "--json",
    ]));
    let source = read_volume(&case_dir.join("Synth_0000_flair.nii.gz")).unwrap();
    let labels = read_volume(&output).unwrap();
    assert_eq!(labels.dims, source.dims);
    assert_eq!(labels.spacing_mm, source.spacing_mm);
    assert_eq!(labels.affine(), source.affine());
    assert!(
        labels.data.iter().all(|l| [0.0, 1.0, 2.0, 4.0].contains(l)),
        "BraTS 2019-2021 labels only"
    );
    // The file's labels, read back and scored against the seg, give predict's own Dice: the
    // label values carry the regions (4 = ET) correctly.
    let seg = read_volume(&case_dir.join("Synth_0000_seg.nii.gz")).unwrap();
    let code = |l: &f32| match *l as u8 {
        4 => 3,
        other => other,
    };
    let from_file: Vec<u8> = labels.data.iter().map(code).collect();
    let truth: Vec<u8> = seg.data.iter().map(code).collect();
    let metrics = evaluate_case("c", &from_file, &truth, seg.dims, seg.spacing_mm);
    // Volumes are the written file's voxels times the header's voxel volume (2 mm: 8 ul), so
    // the same voxels on a 1 mm grid would be an eighth.
    let voxel_ml: f64 = labels.spacing_mm.iter().map(|s| *s as f64).product::<f64>() / 1000.0;
    assert!((voxel_ml - 0.008).abs() < 1e-9);
    for region in Region::ALL {
        let voxels = from_file.iter().filter(|c| region.contains(**c)).count();
        let reported = predicted["volumes_ml"][region.name()].as_f64().unwrap();
        assert!(
            (reported - voxels as f64 * voxel_ml).abs() < 0.01,
            "{region:?}: {reported} ml vs {voxels} voxels"
        );
        if voxels > 0 {
            assert!(
                (reported - voxels as f64 / 1000.0).abs() > 0.01,
                "spacing counted"
            );
        }
        let truth_ml = cases[0]["truth_volume_ml"][region.name()].as_f64().unwrap();
        let truth_voxels = truth.iter().filter(|c| region.contains(**c)).count();
        assert!((truth_ml - truth_voxels as f64 * voxel_ml).abs() < 0.01);
    }
    // The lesions partition each region's voxels, and their centres are the written file's
    // affine applied to their mean voxel.
    let lesions = predicted["lesions"].as_array().unwrap();
    let affine = labels.affine();
    for region in [Region::Wt, Region::Tc, Region::Et] {
        let of_region: Vec<&Value> = lesions
            .iter()
            .filter(|l| l["region"] == region.name())
            .collect();
        let summed: f64 = of_region
            .iter()
            .map(|l| l["volume_ml"].as_f64().unwrap())
            .sum();
        let reported = predicted["volumes_ml"][region.name()].as_f64().unwrap();
        assert!(
            (summed - reported).abs() < 1e-9,
            "{region:?}: {summed} vs {reported}"
        );
        for lesion in of_region {
            let voxel: Vec<f64> = (0..3)
                .map(|a| lesion["centroid_voxel"][a].as_f64().unwrap())
                .collect();
            for (r, row) in affine.iter().take(3).enumerate() {
                let mm = row[0] * voxel[0] + row[1] * voxel[1] + row[2] * voxel[2] + row[3];
                let reported = lesion["centroid_mm"][r].as_f64().unwrap();
                assert!(
                    (mm - reported).abs() < 1e-6,
                    "{region:?} axis {r}: {mm} vs {reported}"
                );
            }
        }
    }
    assert!(!lesions.is_empty(), "the case has a tumour");
    for region in [Region::Wt, Region::Tc, Region::Et] {
        let reported = predicted["metrics"]["dice"][region.name()]
            .as_f64()
            .unwrap();
        assert!(
            (metrics.dice(region) - reported).abs() < 1e-12,
            "{region:?}"
        );
        let from_eval = cases[0]["dice"][region.name()].as_f64().unwrap();
        assert!(
            (from_eval - reported).abs() < 1e-12,
            "eval and predict agree"
        );
    }
    report_of_the_case_matches_predict_and_refuses_bad_output(&dir, &case_dir, &model, &predicted);
    // With --resample the 2 mm case is segmented on a 1 mm grid and the labels come back onto
    // the case's own grid: same dims, spacing and affine as the input.
    let resampled = dir.join("pred/resampled.nii.gz");
    let from_1mm = json_of(&run(&[
        "predict",
        s(&case_dir),
        "--model",
        s(&model),
        "--resample",
        "-o",
        s(&resampled),
        "--json",
    ]));
    let written = read_volume(&resampled).unwrap();
    assert_eq!(written.dims, source.dims);
    assert_eq!(written.spacing_mm, source.spacing_mm);
    assert_eq!(written.affine(), source.affine());
    assert!(from_1mm["volumes_ml"]["WT"].as_f64().unwrap() >= 0.0);
}

/// `report` on the case with the trained model and half its channels cut: the page is drawn
/// (three planes per segmentation), its dense figures are predict's, and a bad output is refused.
fn report_of_the_case_matches_predict_and_refuses_bad_output(
    dir: &Path,
    case_dir: &Path,
    model: &Path,
    predicted: &Value,
) {
    use raagr2_lab::prune::{PruneMethod, PrunePlan, StructuredMethod};
    let plan = dir.join("half.plan.json");
    PrunePlan {
        global_ratio: Some(0.5),
        ..PrunePlan::dense(PruneMethod::Structured(StructuredMethod::L2))
    }
    .write(&plan)
    .unwrap();
    let page = dir.join("report.png");
    let args = |output: &Path, plan: &Path| {
        vec![
            "report".to_string(),
            s(case_dir).into(),
            "--model".into(),
            s(model).into(),
            "--plan".into(),
            s(plan).into(),
            "-o".into(),
            s(output).into(),
            "--json".into(),
        ]
    };
    let figures = json_of(&run(&args(&page, &plan)));
    for region in Region::ALL {
        let name = region.name();
        assert_eq!(
            figures["volumes_ml"]["dense_ml"][name], predicted["volumes_ml"][name],
            "{name}: the report's dense volume is predict's"
        );
        assert!(figures["volumes_ml"]["pruned_ml"][name].is_number());
    }
    for region in ["WT", "TC", "ET"] {
        let from_predict = predicted["metrics"]["dice"][region].as_f64().unwrap();
        let reported = figures["dice_dense"][region].as_f64().unwrap();
        assert!((from_predict - reported).abs() < 1e-12, "{region}");
    }
    let truth_lesions_ml: f64 = figures["lesions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["region"] == "WT" && l["origin"] == "truth")
        .map(|l| l["volume_ml"].as_f64().unwrap())
        .sum();
    let truth_wt = figures["volumes_ml"]["truth_ml"]["WT"].as_f64().unwrap();
    assert!(
        (truth_lesions_ml - truth_wt).abs() < 1e-9,
        "{truth_lesions_ml} vs {truth_wt}"
    );
    // Truth, dense and pruned rows of three planes (120 x 120, 120 x 78, 120 x 78 at 2 mm).
    let image = image::open(&page).unwrap();
    assert!(image.width() >= 3 * 120, "{}", image.width());
    assert!(image.height() > 3 * (120 + 20), "{}", image.height());

    let wrong_kind = run(&args(&dir.join("report.txt"), &plan));
    assert!(!wrong_kind.status.success());
    assert!(
        stderr(&wrong_kind).contains("PNG"),
        "{}",
        stderr(&wrong_kind)
    );
    // A file where a folder should be: nothing can be written there.
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let unwritable = run(&args(&blocker.join("report.png"), &plan));
    assert!(!unwritable.status.success());
    assert!(
        stderr(&unwritable).contains("blocker"),
        "{}",
        stderr(&unwritable)
    );
    let no_plan = run(&args(&page, &dir.join("no.plan.json")));
    assert!(!no_plan.status.success());
    assert!(
        stderr(&no_plan).contains("no.plan.json"),
        "{}",
        stderr(&no_plan)
    );
}

/// A generated 1 mm case resampled to a clinical 0.94 x 0.94 x 3 mm grid: segmented with
/// resampling to the model's 1 mm grid and back, its WT Dice against its own (resampled) truth
/// is within 0.05 of the 1 mm case's; segmented voxel by voxel as if it were 1 mm, it is not
/// what the model expects (printed beside, for the record).
#[test]
fn a_coarse_case_resampled_to_1mm_scores_as_the_1mm_case() {
    use raagr2_lab::data::dataset::synthetic_case;
    use raagr2_lab::data::resample::{MODEL_SPACING_MM, resample_case_onto};
    use raagr2_lab::inference::{InferenceOptions, predict_regions};
    use raagr2_lab::metrics::findings::CaseGrid;
    use raagr2_lab::metrics::region_dice;

    let fine = synthetic_case(10_001);
    let grid = fine.grid();
    let clinical_spacing = [0.94f32, 0.94, 3.0];
    let clinical_grid = CaseGrid {
        dims: std::array::from_fn(|a| {
            ((grid.dims[a] - 1) as f64 / clinical_spacing[a] as f64).floor() as usize + 1
        }),
        spacing_mm: clinical_spacing,
        affine: std::array::from_fn(|r| {
            let row = grid.affine[r];
            [
                row[0] * clinical_spacing[0] as f64,
                row[1] * clinical_spacing[1] as f64,
                row[2] * clinical_spacing[2] as f64,
                row[3],
            ]
        }),
    };
    let clinical = resample_case_onto(&fine, &clinical_grid);
    assert_eq!(clinical.dims, [255, 255, 52]);
    let checkpoint = raagr2_lab::defaults::default_checkpoint();
    let device = raagr2_lab::backend::cpu_device();
    let model = checkpoint.build(&device).unwrap();
    let segment = |case, resample_mm| {
        let options = InferenceOptions {
            resample_mm,
            ..InferenceOptions::default()
        };
        predict_regions(
            &model,
            checkpoint.config.head,
            case,
            options,
            &device,
            |_, _| {},
        )
    };
    let wt = |codes: &[u8], truth: &Option<Vec<u8>>| region_dice(codes, truth.as_ref().unwrap())[0];
    let at_1mm = wt(&segment(&fine, None), &fine.regions);
    let resampled = segment(&clinical, Some(MODEL_SPACING_MM));
    assert_eq!(resampled.len(), clinical.dims.iter().product::<usize>());
    let through_1mm = wt(&resampled, &clinical.regions);
    let as_is = wt(&segment(&clinical, None), &clinical.regions);
    eprintln!(
        "WT Dice: 1 mm case {at_1mm:.3}, 0.94x0.94x3 mm resampled {through_1mm:.3}, as is {as_is:.3}"
    );
    assert!(
        (through_1mm - at_1mm).abs() <= 0.05,
        "resampled {through_1mm:.3} vs 1 mm {at_1mm:.3}"
    );
}

#[test]
fn cancelling_after_a_batch_keeps_the_last_completed_epoch() {
    let dir = common::scratch_dir("cancel");
    let coarse = SynthOptions::over_brats_view(SynthKind::Realistic, Some(3.75)).unwrap();
    let cases = [
        synthetic_case_with(1, &coarse),
        synthetic_case_with(2, &coarse),
    ];
    let selection = SliceSelection {
        tumour_free_share: 0.0,
        slice_step: 1,
        seed: 0,
    };
    let train = SliceDataset::from_cases(&cases[..1], 64, selection).unwrap();
    let val = SliceDataset::from_cases(&cases[1..], 64, selection).unwrap();
    let config = ModelConfig::with_width_multiplier(Variant::Base, Head::Regions3, 0.0625);
    let device = raagr2_lab::backend::cpu_device().autodiff();
    let model = config.init(&device);
    let options = TrainOptions {
        epochs: 5,
        batch_size: 2,
        max_batches_per_epoch: Some(2),
        ..TrainOptions::default()
    };
    let paths = CheckpointPaths::beside(&dir.join("m.safetensors"));
    let cancel = AtomicBool::new(false);
    let outcome = fit(
        &config,
        model,
        &train,
        &val,
        &options,
        TrainState::default(),
        &paths,
        &cancel,
        |event| {
            // As Ctrl-C would: raised during the first batch of epoch 2.
            if let TrainEvent::Batch { epoch: 2, .. } = event {
                cancel.store(true, Ordering::SeqCst);
            }
        },
    )
    .unwrap();
    assert_eq!(outcome.stop, StopReason::Cancelled);
    assert_eq!(outcome.state.epochs_done, 1);
    let kept = load_checkpoint(&paths.last).unwrap();
    let state = TrainState::from_checkpoint(&kept).unwrap().unwrap();
    assert_eq!(state.epochs_done, 1, "the last checkpoint is epoch 1's");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
}

//! `score` against the official BraTS evaluation: Dice and HD95 of brats-evaluation 0.0.10
//! (panoptica) and the lesion-wise figures, sensitivity and specificity of the BraTS 2023 metrics
//! script, on the pairs `tools/brats_reference.py` wrote to tests/fixtures/score (empty masks,
//! a far false-positive blob, a missed lesion...). Where the package has no number (NaN for two
//! empty masks, inf for one) the BraTS rules apply: Dice 1 and HD95 0, or Dice 0 and HD95 the
//! grid's diagonal.

use crate::common;

use serde_json::Value;

fn score_json(pred: &str, gt: &str, extra: &[&str]) -> Value {
    let dir = common::fixture("score");
    let out = crate::common::cli::command()
        .args(["score", "--json", "--labels", "brats2023"])
        .arg(dir.join(pred))
        .arg(dir.join(gt))
        .args(extra)
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn expected() -> Value {
    let text = std::fs::read_to_string(common::fixture("score").join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The diagonal of the fixtures' 48 x 48 x 32 grid of 1 mm.
fn diagonal() -> f64 {
    (48f64 * 48.0 + 48.0 * 48.0 + 32.0 * 32.0).sqrt()
}

#[test]
fn dice_and_hd95_agree_with_the_brats_evaluation_package() {
    let expected = expected();
    let pairs = expected["pairs"].as_object().unwrap();
    assert!(pairs.len() >= 9);
    for (name, pair) in pairs {
        let ours = score_json(
            pair["pred"].as_str().unwrap(),
            pair["gt"].as_str().unwrap(),
            &[],
        );
        let directed = score_json(
            pair["pred"].as_str().unwrap(),
            pair["gt"].as_str().unwrap(),
            &["--hd95", "max-of-directed"],
        );
        for region in ["WT", "TC", "ET"] {
            let theirs = &pair["regions"][region];
            let mine = &ours[region];
            let (pred_voxels, truth_voxels) = (
                mine["predicted_voxels"].as_u64().unwrap(),
                mine["truth_voxels"].as_u64().unwrap(),
            );
            let what = format!("{name} {region}");
            let dice = mine["dice"].as_f64().unwrap();
            let hd95 = mine["hd95_mm"].as_f64().unwrap();
            match number(&theirs["dice"]) {
                Some(d) => assert!((dice - d).abs() < 1e-4, "{what}: Dice {dice} vs {d}"),
                None => {
                    assert_eq!((pred_voxels, truth_voxels), (0, 0), "{what}");
                    assert_eq!((dice, hd95), (1.0, 0.0), "{what}: both empty");
                }
            }
            match (number(&theirs["hd95"]), theirs["hd95"].as_str()) {
                (Some(h), _) => assert!((hd95 - h).abs() < 0.05, "{what}: HD95 {hd95} vs {h}"),
                (None, Some("inf")) if pred_voxels == 0 || truth_voxels == 0 => {
                    assert!((hd95 - diagonal()).abs() < 1e-9, "{what}: one empty")
                }
                // Disjoint masks: the package gives up (inf); this project measures them.
                (None, Some("inf")) => assert!(hd95 > 0.0 && hd95 < diagonal(), "{what}"),
                _ => {}
            }
            let max_directed = &theirs["script_computed_not_package"]["hd95_directed_voxels"]["max_of_directed_p95"];
            if let Some(h) = number(max_directed) {
                let mine = directed[region]["hd95_mm"].as_f64().unwrap();
                assert!(
                    (mine - h).abs() < 0.05,
                    "{what}: max of directed {mine} vs {h}"
                );
            }
        }
    }
}

#[test]
fn lesion_wise_figures_and_rates_agree_with_the_brats_2023_script() {
    let expected = expected();
    let script = expected["brats2023_script"]["pairs"].as_object().unwrap();
    let pairs = &expected["pairs"];
    let mut compared_hd95 = 0;
    for (name, regions) in script {
        let pair = &pairs[name];
        let ours = score_json(
            pair["pred"].as_str().unwrap(),
            pair["gt"].as_str().unwrap(),
            &[],
        );
        for region in ["WT", "TC", "ET"] {
            let (theirs, mine) = (&regions[region], &ours[region]);
            let what = format!("{name} {region}");
            let close = |key: &str, their_key: &str, tolerance: f64| {
                let (a, b) = (
                    mine[key].as_f64().unwrap(),
                    theirs[their_key].as_f64().unwrap(),
                );
                assert!((a - b).abs() < tolerance, "{what}: {key} {a} vs {b}");
            };
            close("sensitivity", "sensitivity", 1e-9);
            close("specificity", "specificity", 1e-9);
            close("lesion_dice", "lesionwise_dice", 1e-4);
            let found =
                mine["lesions"].as_u64().unwrap() - mine["missed_lesions"].as_u64().unwrap();
            assert_eq!(
                found,
                theirs["tp"].as_u64().unwrap(),
                "{what}: lesions found"
            );
            assert_eq!(
                mine["false_positive_lesions"].as_u64().unwrap(),
                theirs["fp"].as_u64().unwrap(),
                "{what}: false positives"
            );
            assert_eq!(
                mine["missed_lesions"].as_u64().unwrap(),
                theirs["fn"].as_u64().unwrap(),
                "{what}: missed"
            );
            // Per-lesion HD95 in the script is the max of surfel-weighted directed percentiles;
            // the figures agree where every lesion is exact, missed or a false positive.
            if mine["lesion_dice"].as_f64().unwrap().fract() == 0.0
                || [0.5, 1.0 / 3.0]
                    .iter()
                    .any(|v| (mine["lesion_dice"].as_f64().unwrap() - v).abs() < 1e-12)
            {
                close("lesion_hd95_mm", "lesionwise_hd95", 1e-6);
                compared_hd95 += 1;
            }
        }
    }
    assert!(
        compared_hd95 >= 10,
        "only {compared_hd95} lesion-wise HD95 compared"
    );
}

#[test]
fn folders_are_matched_by_case_id_and_written_as_csv() {
    let dir = common::scratch_dir("score-dirs");
    let (pred, gt) = (dir.join("pred"), dir.join("gt"));
    std::fs::create_dir_all(&pred).unwrap();
    let fixtures = common::fixture("score");
    for (case, name) in [("Case_001", "shifted"), ("Case_002", "identical")] {
        std::fs::create_dir_all(gt.join(case)).unwrap();
        std::fs::copy(
            fixtures.join(format!("{name}_gt.nii.gz")),
            gt.join(case).join(format!("{case}-seg.nii.gz")),
        )
        .unwrap();
        std::fs::copy(
            fixtures.join(format!("{name}_pred.nii.gz")),
            pred.join(format!("{case}.nii.gz")),
        )
        .unwrap();
    }
    std::fs::copy(
        fixtures.join("identical_pred.nii.gz"),
        pred.join("Stray_009.nii.gz"),
    )
    .unwrap();
    let csv = dir.join("scores.csv");
    let out = crate::common::cli::command()
        .args(["score", "--json", "--labels", "brats2023", "--pred-dir"])
        .arg(&pred)
        .arg("--gt-dir")
        .arg(&gt)
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["cases"].as_array().unwrap().len(), 2);
    let unmatched = report["unmatched_predictions"].as_array().unwrap();
    assert_eq!(unmatched.len(), 1);
    assert!(unmatched[0].as_str().unwrap().ends_with("Stray_009.nii.gz"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Stray_009"));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.starts_with("case_id,WT_dice,"));
    assert!(text.contains("\nCase_002,1.000000,"));
}

#[test]
fn pairs_on_different_grids_or_with_stray_labels_are_refused() {
    let fixtures = common::fixture("score");
    let run = |pred: &std::path::Path, gt: &std::path::Path| {
        crate::common::cli::command()
            .arg("score")
            .arg(pred)
            .arg(gt)
            .output()
            .unwrap()
    };
    let gt = fixtures.join("shifted_gt.nii.gz");
    let other_grid = common::fixture("nifti2_f32_be.nii");
    let out = run(&other_grid, &gt);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("nifti2_f32_be.nii") && e.contains("shifted_gt.nii.gz"),
        "{e}"
    );
    // Values 0..=119 are not labels.
    let scaled = common::fixture("nifti2_i16_scaled.nii.gz");
    let out = run(&scaled, &scaled);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("is not a BraTS label"), "{e}");
}

//! The command line as users run it: JSON output matches the table, import works end to end,
//! bad input exits non-zero naming the file.

use crate::common;

use std::process::Command;

use crate::common::cli::{command, run, stderr, stdout};

#[test]
fn info_json_and_table_agree() {
    let json_out = run(&[
        "info",
        "--width",
        "0.25",
        "--head",
        "reference5",
        "--size",
        "64",
        "--json",
    ]);
    assert!(json_out.status.success(), "{}", stderr(&json_out));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&json_out)).unwrap();
    assert_eq!(summary["params"], 569_429);
    let macs = summary["macs"].as_u64().unwrap();
    assert!(macs > 0);
    let block_params: u64 = summary["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["params"].as_u64().unwrap())
        .sum();
    assert_eq!(block_params, 569_429);

    let table = run(&[
        "info",
        "--width",
        "0.25",
        "--head",
        "reference5",
        "--size",
        "64",
    ]);
    assert!(table.status.success());
    let text = stdout(&table);
    assert!(text.contains("569,429 params"), "{text}");
    assert!(
        text.contains(&format!("{:.1} M MACs", macs as f64 / 1e6)),
        "{text}"
    );
}

#[test]
fn import_then_info_on_the_checkpoint() {
    let dir = common::scratch_dir("cli-import");
    let out_path = dir.join("w8.safetensors");
    let fixture = common::fixture("dlunet_w8.safetensors");
    let imported = run(&[
        "import",
        fixture.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
        "--json",
    ]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    let report: serde_json::Value = serde_json::from_str(&stdout(&imported)).unwrap();
    assert_eq!(report["params"], 569_429);
    assert_eq!(report["config"]["head"], "reference5");

    let info = run(&["info", out_path.to_str().unwrap(), "--json"]);
    assert!(info.status.success(), "{}", stderr(&info));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&info)).unwrap();
    assert_eq!(summary["params"], 569_429);
    let on_disk = std::fs::metadata(&out_path).unwrap().len();
    assert_eq!(summary["bytes_on_disk"].as_u64().unwrap(), on_disk);
}

#[test]
fn bad_inputs_exit_non_zero_and_name_the_problem() {
    let missing = run(&["info", "no/such/model.safetensors"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no/such/model.safetensors"),
        "{}",
        stderr(&missing)
    );

    let json = common::fixture("dlunet_w8.json");
    let never_written = common::scratch_dir("cli-bad-inputs").join("never-written.safetensors");
    let not_safetensors = run(&[
        "import",
        json.to_str().unwrap(),
        "-o",
        never_written.to_str().unwrap(),
    ]);
    assert!(!not_safetensors.status.success());
    assert!(
        stderr(&not_safetensors).contains("dlunet_w8.json"),
        "{}",
        stderr(&not_safetensors)
    );
    assert!(!never_written.exists());

    let bad_size = run(&["info", "--size", "100"]);
    assert!(!bad_size.status.success());
    assert!(stderr(&bad_size).contains("multiple of 16"));

    let bad_width = run(&["info", "--width", "-1"]);
    assert!(!bad_width.status.success());

    let four_widths = run(&["info", "--widths", "8,16,32,64"]);
    assert!(!four_widths.status.success());
    assert!(
        stderr(&four_widths).contains("five"),
        "{}",
        stderr(&four_widths)
    );
}

#[test]
fn explicit_widths_and_synth_cases_work_from_the_command_line() {
    let out = run(&[
        "info",
        "--widths",
        "8,16,32,64,128",
        "--head",
        "reference5",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["params"], 569_429);

    let dir = common::scratch_dir("cli-synth");
    let out = run(&[
        "synth",
        "-o",
        dir.to_str().unwrap(),
        "-n",
        "2",
        "--kind",
        "cartoon",
        "--dims",
        "32,32,16",
        "--spacing",
        "7.5",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["cases"].as_array().unwrap().len(), 2);
    let case = raagr2_lab::data::load_case(&dir.join("Synth_0001"), None).unwrap();
    assert_eq!(case.modalities[3].dims, [32, 32, 16]);

    let bad = run(&["synth", "-o", dir.to_str().unwrap(), "--dims", "0,1,2"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--dims"), "{}", stderr(&bad));

    // BraTS 2023+ naming and labels (ET = 3), on a coarse grid over BraTS's field of view.
    let out = run(&[
        "synth",
        "-o",
        dir.to_str().unwrap(),
        "-n",
        "1",
        "--seed",
        "3",
        "--spacing",
        "4",
        "--naming",
        "brats2023",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let folder = dir.join("BraTS-SYN-00003-000");
    assert!(folder.join("BraTS-SYN-00003-000-t1c.nii.gz").exists());
    let case = raagr2_lab::data::load_case(&folder, None).unwrap();
    assert_eq!(
        case.convention,
        raagr2_lab::data::LabelConvention::Brats2023
    );
    assert_eq!(case.modalities[0].dims, [60, 60, 39]);
    let seg = case.seg.expect("a seg");
    assert!(seg.data.iter().all(|l| [0.0, 1.0, 2.0, 3.0].contains(l)));
    assert!(seg.data.contains(&2.0), "oedema present");
}

#[test]
fn bench_json_reports_forward_timings_per_batch_and_the_first_call_apart() {
    let out = run(&[
        "bench",
        "--width",
        "0.0625",
        "--size",
        "32",
        "--runs",
        "1",
        "--forward-batches",
        "1,2",
        "--train-batch",
        "1",
        "--backends",
        "flex",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let first = &report["results"][0];
    for (i, batch) in [1, 2].into_iter().enumerate() {
        let forward = &first["forward"][i];
        assert_eq!(forward["batch"], batch);
        assert!(forward["median_secs"].as_f64().unwrap() > 0.0);
        assert!(forward["first_secs"].as_f64().unwrap() > 0.0);
    }
    assert!(first["train_step"]["median_secs"].as_f64().unwrap() > 0.0);
}

/// `bench` on a sixteenth-width network at 32x32, one forward run, Flex only: seconds.
const TINY_BENCH: [&str; 11] = [
    "bench",
    "--width",
    "0.0625",
    "--size",
    "32",
    "--runs",
    "1",
    "--train-batch",
    "0",
    "--backends",
    "flex",
];

#[test]
fn bench_against_pytorch_without_python_says_why_and_still_times_burn() {
    let out = command()
        .args(TINY_BENCH)
        .arg("--against-pytorch")
        .env("RAAGR2_PYTHON", "/no/such/python3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("cpu (flex)"), "{table}");
    assert!(
        table.contains("pytorch (cpu)") && table.contains("cannot run /no/such/python3"),
        "{table}"
    );
    assert!(
        !table.contains("/ pytorch"),
        "no ratio without a peer: {table}"
    );
}

/// `bench --pruned 0.5` times the network with half of every channel group removed and gives
/// each backend's speedup over its own dense forward, and that over the MACs cut, as numbers;
/// PyTorch's pruned row says why it is missing where there is no Python; an impossible ratio is
/// refused by name.
#[test]
fn bench_pruned_rows_give_each_backends_speedup_per_mac_cut() {
    let out = command()
        .args(TINY_BENCH)
        .args(["--pruned", "0.5", "--against-pytorch", "--json"])
        .env("RAAGR2_PYTHON", "/no/such/python3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let pruned = &report["pruned"];
    assert_eq!(pruned["ratio"], 0.5);
    let (dense_macs, pruned_macs) = (
        pruned["dense_macs"].as_f64().unwrap(),
        pruned["pruned_macs"].as_f64().unwrap(),
    );
    assert!(
        pruned_macs > 0.0 && pruned_macs < dense_macs / 2.0,
        "{pruned}"
    );
    let median = |row: &serde_json::Value| row["forward"][0]["median_secs"].as_f64().unwrap();
    let ours = &pruned["results"][0];
    assert_eq!(ours["backend"], report["results"][0]["backend"]);
    let peer = &pruned["results"][1];
    assert!(
        peer["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("/no/such/python3")),
        "{peer}"
    );
    let speedups = pruned["speedups"].as_array().unwrap();
    assert_eq!(
        speedups.len(),
        1,
        "only measured rows have speedups: {speedups:?}"
    );
    let speedup = speedups[0]["speedup"].as_f64().unwrap();
    let expected = median(&report["results"][0]) / median(ours);
    assert!((speedup - expected).abs() < 1e-9, "{speedup} vs {expected}");
    let per_cut = speedups[0]["speedup_per_mac_cut"].as_f64().unwrap();
    assert!(
        (per_cut - speedup * pruned_macs / dense_macs).abs() < 1e-9,
        "{per_cut}"
    );
    let table = stdout(
        &command()
            .args(TINY_BENCH)
            .args(["--pruned", "0.5"])
            .output()
            .unwrap(),
    );
    assert!(
        table.contains("backend (pruned network)") && table.contains("per MAC cut"),
        "{table}"
    );

    let mut args: Vec<&str> = TINY_BENCH.to_vec();
    args.extend(["--pruned", "1"]);
    let e = failure(&args);
    assert!(e.contains("--pruned"), "{e}");
}

/// `bench --onnx` times this project's own ONNX export (fp32, fp16, int8) in ONNX Runtime beside
/// its forward: measured where onnxruntime is installed, rows saying why not elsewhere; a
/// missing graph is refused by name.
#[test]
fn bench_times_its_own_onnx_export_in_onnx_runtime() {
    let args: Vec<&str> = TINY_BENCH
        .iter()
        .copied()
        .chain(["--onnx", "--json"])
        .collect();
    let ort_rows = |out: &std::process::Output| -> Vec<serde_json::Value> {
        assert!(out.status.success(), "{}", stderr(out));
        let report: serde_json::Value = serde_json::from_str(&stdout(out)).unwrap();
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["backend"].as_str().unwrap().starts_with("onnxruntime"))
            .cloned()
            .collect()
    };
    let no_python = command()
        .args(&args)
        .env("RAAGR2_PYTHON", "/no/such/python3")
        .output()
        .unwrap();
    let rows = ort_rows(&no_python);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (row, precision) in rows.iter().zip(["fp32", "fp16", "int8"]) {
        assert!(
            row["backend"].as_str().unwrap().contains(precision),
            "{row}"
        );
        assert!(
            row["skipped"]
                .as_str()
                .is_some_and(|s| s.contains("/no/such/python3")),
            "{row}"
        );
    }
    let has_ort = std::process::Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_ort {
        let measured = command().args(&args).output().unwrap();
        let rows = ort_rows(&measured);
        assert_eq!(rows.len(), 3, "{rows:?}");
        let report: serde_json::Value = serde_json::from_str(&stdout(&measured)).unwrap();
        let ours = report["results"][0]["forward"][0]["median_secs"]
            .as_f64()
            .unwrap();
        // Each peer's ratio is in the JSON as a number: this project's time over the peer's.
        let ratios = report["ratios"].as_array().unwrap();
        assert_eq!(ratios.len(), 3, "{ratios:?}");
        for (row, ratio) in rows.iter().zip(ratios) {
            assert!(row["skipped"].is_null(), "{row}");
            let median = row["forward"][0]["median_secs"].as_f64().unwrap();
            assert!(median > 0.0, "{row}");
            assert_eq!(ratio["peer"], row["backend"]);
            let forward = ratio["forward"][0][1].as_f64().unwrap();
            assert!((forward - ours / median).abs() < 1e-9, "{ratio}");
        }
    } else {
        eprintln!("measuring skipped: python3 with onnxruntime is not installed");
    }
    let e = failure(&[
        "bench",
        "--backends",
        "none",
        "--onnx",
        "no-such-graph.onnx",
    ]);
    assert!(e.contains("no-such-graph.onnx"), "{e}");
}

#[test]
fn bench_times_loading_a_case_and_names_a_missing_peer() {
    let dir = common::scratch_dir("cli-bench-load");
    let out = run(&[
        "synth",
        "-o",
        dir.to_str().unwrap(),
        "--kind",
        "cartoon",
        "--dims",
        "32,32,16",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let case = dir.join("Synth_0000");
    let out = command()
        .args(["bench", "--backends", "none", "--runs", "2", "--json"])
        .arg("--load-case")
        .arg(&case)
        .arg("--against-pytorch")
        .env("RAAGR2_PYTHON", "/no/such/python3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let own = &report["case_load"][0];
    assert!(
        own["timing"]["median_secs"].as_f64().unwrap() > 0.0,
        "{own}"
    );
    assert_eq!(own["timing"]["runs"], 2);
    let peer = &report["case_load"][1];
    assert!(
        peer["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("/no/such/python3")),
        "{peer}"
    );
    assert!(report["results"].as_array().unwrap().is_empty());

    let missing = dir.join("no-such-case");
    let e = failure(&[
        "bench",
        "--backends",
        "none",
        "--load-case",
        missing.to_str().unwrap(),
    ]);
    assert!(e.contains("no-such-case"), "{e}");
}

/// Runs a command that must fail; returns its stderr.
fn failure(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} should fail");
    stderr(&out)
}

#[test]
fn pipeline_commands_refuse_bad_input_naming_the_problem() {
    let dir = common::scratch_dir("cli-bad-pipeline");
    let missing = dir.join("no-such-folder");
    let out = dir.join("m.safetensors");
    let (missing, out) = (missing.to_str().unwrap(), out.to_str().unwrap());

    let e = failure(&["train", "--data", missing, "-o", out]);
    assert!(
        e.contains("no-such-folder") && e.contains("not found"),
        "{e}"
    );
    let e = failure(&["predict", missing, "-o", out]);
    assert!(e.contains("no-such-folder"), "{e}");
    let e = failure(&[
        "train",
        "--synthetic",
        "3",
        "--val-fraction",
        "0.6",
        "--test-fraction",
        "0.5",
        "-o",
        out,
    ]);
    assert!(e.contains("--val-fraction"), "{e}");
    let e = failure(&["train", "--synthetic", "1", "-o", out]);
    assert!(e.contains("at least 2 cases"), "{e}");
    let e = failure(&["train", "--synthetic", "2", "--crop", "100", "-o", out]);
    assert!(e.contains("--crop"), "{e}");
    let e = failure(&["eval", "--threshold", "1.5"]);
    assert!(e.contains("--threshold"), "{e}");

    // A file that is not a checkpoint, given as the model.
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let e = failure(&["eval", junk.to_str().unwrap(), "--synthetic", "1"]);
    assert!(e.contains("junk.safetensors"), "{e}");
    // Resuming from a checkpoint that holds no training state.
    let plain = dir.join("plain.safetensors");
    let mut untrained = raagr2_lab::defaults::default_checkpoint();
    untrained.metadata.clear();
    raagr2_lab::model::save_checkpoint(&plain, &untrained).unwrap();
    let e = failure(&[
        "train",
        "--synthetic",
        "2",
        "--resume",
        plain.to_str().unwrap(),
        "-o",
        out,
    ]);
    assert!(e.contains("no training state"), "{e}");
    // Resuming on data that lacks the recorded split's patients.
    let e = failure(&[
        "train",
        "--synthetic",
        "2",
        "--resume",
        "assets/default_model.safetensors",
        "-o",
        out,
    ]);
    assert!(e.contains("recorded split") && e.contains("Synth_"), "{e}");
}

#[test]
fn ratio_zero_is_the_dense_model_for_every_schedule_and_ratio_one_is_explained() {
    let dir = common::scratch_dir("cli-ratio-zero");
    let out = dir.join("p.safetensors");
    let out = out.to_str().unwrap();
    // One coarse case keeps this quick; the point is that nothing panics.
    let data = ["--synthetic", "1", "--synthetic-spacing", "3.75"];
    let mut prune = vec![
        "prune",
        "--schedule",
        "layer-wise",
        "--ratio",
        "0",
        "--runs",
        "1",
    ];
    prune.extend(data);
    prune.extend(["-o", out, "--json"]);
    let done = run(&prune);
    assert!(done.status.success(), "{}", stderr(&done));
    let report: serde_json::Value = serde_json::from_str(&stdout(&done)).unwrap();
    assert_eq!(report["params_before"], report["params_after"]);

    let csv = dir.join("sweep.csv");
    let mut sweep = vec!["sweep", "--schedule", "layer-wise", "--ratios", "0,0.25"];
    sweep.extend(["--methods", "l2", "--runs", "1"]);
    sweep.extend(data);
    sweep.extend(["-o", csv.to_str().unwrap()]);
    let done = run(&sweep);
    assert!(done.status.success(), "{}", stderr(&done));
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 3);

    let mut one = vec!["prune", "--ratio", "1"];
    one.extend(data);
    one.extend(["-o", out]);
    let e = failure(&one);
    assert!(e.contains("below 1") && e.contains("got 1"), "{e}");
    let e = failure(&["compare-schedules", "--cka-slices", "4", "-o", out]);
    assert!(
        e.contains("--cka-slices 4") && !e.contains("tumour slices"),
        "{e}"
    );
}

#[test]
fn eval_with_no_arguments_scores_the_default_model_on_held_out_cases() {
    let out = run(&[
        "eval",
        "--baseline",
        "threshold",
        "--baseline-fit-cases",
        "4",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), raagr2_lab::defaults::HELD_OUT_CASES);
    assert_eq!(cases[0]["case_id"], "Synth_10000");
    // The shipped model learned the task, lies in the informative band in every region (neither
    // failing nor saturated), and beats thresholds fitted on training cases by a clear margin.
    let baseline = &report["baseline"];
    assert_eq!(baseline["cases"].as_array().unwrap().len(), cases.len());
    for region in ["WT", "TC", "ET"] {
        let model = report["mean"]["dice"][region].as_f64().unwrap();
        let base = baseline["mean"]["dice"][region].as_f64().unwrap();
        assert!(
            (0.70..=0.95).contains(&model),
            "default model's held-out {region} Dice {model}"
        );
        assert!(
            model >= base + 0.05,
            "{region}: model {model} vs threshold baseline {base}"
        );
    }
}

#[test]
fn cka_of_a_model_with_itself_has_a_unit_diagonal_and_writes_csv_and_png() {
    let dir = common::scratch_dir("cka-cli");
    let csv = dir.join("cka.csv");
    let out = run(&[
        "cka",
        "--synthetic",
        "1",
        "--synthetic-seed",
        "10000",
        "--slices",
        "16",
        "--batch",
        "8",
        "-o",
        csv.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let matrix: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = matrix["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 9, "enc1..enc5 and dec5..dec2");
    assert_eq!(matrix["slices"], 16);
    for (i, row) in matrix["values"].as_array().unwrap().iter().enumerate() {
        let row = row.as_array().unwrap();
        assert!(
            (row[i].as_f64().unwrap() - 1.0).abs() < 1e-9,
            "diagonal {i}"
        );
        assert!(row.iter().all(|v| v.as_f64().unwrap() <= 1.0 + 1e-9));
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("layer,enc1,enc2"));
    assert_eq!(text.lines().count(), 10);
    let png = image::open(csv.with_extension("png")).expect("heatmap PNG");
    assert!(png.width() > 400 && png.height() > 400);

    let refused = run(&["cka", "--batch", "3", "-o", csv.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--batch"));
}

#[test]
fn sensitivity_prunes_one_group_at_a_time_and_writes_csv_and_heatmaps() {
    let dir = common::scratch_dir("sensitivity-cli");
    let csv = dir.join("sens.csv");
    let out = run(&[
        "sensitivity",
        "--synthetic",
        "1",
        "--synthetic-spacing",
        "2",
        "--synthetic-seed",
        "10000",
        "--groups",
        "enc1.out,dec2",
        "--ratios",
        "0.5,0.75",
        "-o",
        csv.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4, "2 groups x 2 ratios");
    assert_eq!(rows[0]["group"], "enc1.out");
    assert_eq!(rows[3]["group"], "dec2");
    for row in rows {
        for d in row["dice"].as_array().unwrap() {
            assert!((0.0..=1.0).contains(&d.as_f64().unwrap()));
        }
    }
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 5);
    for region in ["wt", "tc", "et"] {
        image::open(csv.with_extension(format!("{region}.png"))).expect("a heatmap per region");
    }
    let refused = run(&[
        "sensitivity",
        "--groups",
        "enc9",
        "-o",
        csv.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("enc9"));
}

#[test]
fn attention_and_activation_pictures_and_a_plan_file_from_the_command_line() {
    let dir = common::scratch_dir("cli-maps");
    let plan = dir.join("plan.json");
    std::fs::write(
        &plan,
        r#"{"format": 1, "method": "l2", "group_ratios": {"enc3.out": 0.5},
            "removed_channels": {"enc1.out": [0, 2]}}"#,
    )
    .unwrap();
    let attention = dir.join("attention.png");
    let out = run(&[
        "attention",
        "--plan",
        plan.to_str().unwrap(),
        "--slice",
        "74",
        "-o",
        attention.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Four gates in each of three rows (dense, pruned, difference).
    assert!(stderr(&out).contains("12 maps"), "{}", stderr(&out));
    let picture = image::open(&attention).unwrap();
    assert!(picture.width() > 4 * 240 && picture.height() > 3 * 240);

    let grid = dir.join("grid.png");
    let out = run(&[
        "activations",
        "--group",
        "enc1.out",
        "--plan",
        plan.to_str().unwrap(),
        "-o",
        grid.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // enc1.out has 8 channels; the plan removed two of them.
    assert!(stderr(&out).contains("6 maps"), "{}", stderr(&out));

    let error = failure(&[
        "activations",
        "--group",
        "enc9.out",
        "-o",
        grid.to_str().unwrap(),
    ]);
    assert!(error.contains("enc9.out"), "{error}");
    std::fs::write(
        &plan,
        r#"{"format": 1, "method": "l2", "group_ratios": {"up7": 0.5}}"#,
    )
    .unwrap();
    let error = failure(&[
        "prune",
        "--plan",
        plan.to_str().unwrap(),
        "-o",
        dir.join("out.safetensors").to_str().unwrap(),
        "--synthetic",
        "1",
    ]);
    assert!(error.contains("up7"), "{error}");
}

#[test]
fn a_sweep_spread_over_gnu_parallel_and_a_slurm_array_merges_to_the_single_run() {
    use raagr2_lab::prune::sweep::parse_csv;
    let dir = common::scratch_dir("cli-sweep-points");
    let bin = env!("CARGO_BIN_EXE_raagr2-lab");
    let options = [
        "--methods",
        "l2,l1-global",
        "--ratios",
        "0,0.25",
        "--synthetic",
        "1",
        "--synthetic-seed",
        "10004",
        "--synthetic-kind",
        "cartoon",
        "--size",
        "64",
        "--batch",
        "1",
        "--runs",
        "1",
        "--fine-tune-epochs",
        "1",
        "--fine-tune-cases",
        "2",
        "--fine-tune-batches",
        "2",
        "--fine-tune-crop",
        "64",
        "--fine-tune-seed",
        "3",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut all = vec!["sweep".to_string()];
        all.extend(options.iter().map(|s| s.to_string()));
        all.extend(extra.iter().map(|s| s.to_string()));
        all
    };
    let single = dir.join("single.csv");
    let out = run(&with(&["-o", single.to_str().unwrap()])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let points = dir.join("points.json");
    let out = run(&with(&["--write-points", points.to_str().unwrap()])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("4 point(s)"), "{}", stdout(&out));

    // Points 0 and 1 through GNU parallel, 2 and 3 through the SLURM script's body.
    let parallel = Command::new("parallel")
        .args([
            "-j",
            "2",
            bin,
            "sweep",
            "--run-point",
            points.to_str().unwrap(),
            "--index",
            "{}",
            ":::",
            "0",
            "1",
        ])
        .output()
        .expect("GNU parallel runs (CI installs it)");
    assert!(parallel.status.success(), "{}", stderr(&parallel));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/sweep_slurm.sh");
    for task in ["2", "3"] {
        let out = Command::new("bash")
            .arg(script)
            .arg(&points)
            .env("SLURM_ARRAY_TASK_ID", task)
            .env("RAAGR2_LAB", bin)
            .output()
            .unwrap();
        assert!(out.status.success(), "task {task}: {}", stderr(&out));
    }
    let merged = dir.join("merged.csv");
    let rows = dir.join("points.rows");
    let out = run(&[
        "sweep",
        "--merge",
        rows.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let read = |path: &std::path::Path| {
        let mut points = parse_csv(&std::fs::read_to_string(path).unwrap()).unwrap();
        for p in &mut points {
            // Timings differ from run to run; everything else must not.
            p.latency_ms = None;
            p.dense_latency_ms = None;
        }
        points
    };
    let (single, merged) = (read(&single), read(&merged));
    assert_eq!(single.len(), 4);
    assert!(
        single.iter().all(|p| p.dice_fine_tuned.is_some()),
        "fine-tuned points"
    );
    assert_eq!(merged, single);
    assert!(dir.join("merged.png").exists());
    let error = failure(&[
        "sweep",
        "--run-point",
        points.to_str().unwrap(),
        "--index",
        "9",
    ]);
    assert!(error.contains("no point 9"), "{error}");
}

#[test]
fn prune_auto_stays_within_its_budget_and_writes_checkpoint_plan_and_trace() {
    use raagr2_lab::model::load_checkpoint;
    use raagr2_lab::prune::PrunePlan;

    let dir = common::scratch_dir("cli-auto");
    let output = dir.join("auto.safetensors");
    let small = ["--synthetic-spacing", "2", "--fine-tune-crop", "64"];
    let mut args = vec![
        "prune",
        "--auto",
        "--budget",
        "wt=0.2,tc=0.3",
        "--auto-step",
        "0.05",
        "--auto-max-steps",
        "3",
        "--auto-fine-tune-every",
        "2",
        "--auto-fine-tune-steps",
        "2",
        "--val-synthetic",
        "1",
        "--subset-slices",
        "4",
        "--subset-side",
        "64",
        "--synthetic",
        "1",
        "--synthetic-seed",
        "10000",
        "--fine-tune-cases",
        "2",
        "--against-uniform",
        "0.45",
        "--json",
        "-o",
        output.to_str().unwrap(),
    ];
    args.extend(small);
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let trace = &report["trace"];
    // Regions not named in --budget get 0.02.
    assert_eq!(trace["settings"]["budget"]["ET"].as_f64(), Some(0.02));
    let steps = trace["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{}", stderr(&out));
    let (dense_macs, macs) = (trace["dense_macs"].as_u64(), trace["macs"].as_u64());
    assert!(macs < dense_macs);
    for (region, budget) in [("WT", 0.2), ("TC", 0.3), ("ET", 0.02)] {
        let drop =
            trace["dense_dice"][region].as_f64().unwrap() - trace["dice"][region].as_f64().unwrap();
        assert!(drop <= budget + 1e-9, "{region} dropped {drop}");
        for step in steps {
            let kept = trace["dense_dice"][region].as_f64().unwrap()
                - step["confirmed_dice"][region].as_f64().unwrap();
            assert!(
                kept <= budget + 1e-9,
                "a kept step broke the {region} budget"
            );
        }
    }
    // The fine-tunes ran (2 Adam steps after every 2 kept steps, and at the end).
    assert!(report["fine_tune_steps"].as_u64().unwrap() >= 2);
    // The checkpoint is the searched model; the plan's ratios give its widths.
    let searched = load_checkpoint(&output).unwrap();
    let plan = PrunePlan::read(&dir.join("auto.plan.json")).unwrap();
    assert_eq!(plan.checkpoint.as_deref(), Some(output.as_path()));
    assert_eq!(plan.budget_search.as_ref().unwrap().steps, steps.len());
    let replayed = plan
        .apply(&raagr2_lab::defaults::default_checkpoint(), None)
        .unwrap();
    assert_eq!(replayed.config, searched.config);
    let trace_file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("auto.trace.json")).unwrap())
            .unwrap();
    assert_eq!(trace_file["steps"], trace["steps"]);
    // The uniform grid ran with the same fine-tuning, and the rows have held-out Dice.
    assert!(!report["uniform"].as_array().unwrap().is_empty());
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows[0]["model"], "dense");
    assert_eq!(rows[1]["macs"].as_u64(), macs);
    assert!(rows[1]["held_out_dice"]["mean"]["WT"].as_f64().unwrap() > 0.0);

    // A mask method cannot search channel ratios; an unknown region is named.
    let error = failure(&["prune", "--auto", "--method", "l1", "-o", "x.safetensors"]);
    assert!(error.contains("channel method"), "{error}");
    let error = failure(&[
        "prune",
        "--auto",
        "--budget",
        "nc=0.1",
        "-o",
        "x.safetensors",
    ]);
    assert!(error.contains("\"nc\""), "{error}");
}

/// A study of three points on the embedded model at a coarse grid: cheap enough for every run.
fn small_study_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "study",
        "--base",
        "assets/default_model.safetensors",
        "--rows",
        "dense,filter-l2,magnitude",
        "--targets",
        "0.5",
        "--seeds",
        "0,1",
        "--fine-tune-steps",
        "1",
        "--fine-tune-cases",
        "2",
        "--fine-tune-crop",
        "64",
        "--bn-recalibrate",
        "8",
        "--synthetic",
        "1",
        "--synthetic-seed",
        "10004",
        "--synthetic-spacing",
        "4",
        "--size",
        "64",
        "--runs",
        "1",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The CSV's columns but for the timings and the gzip size (which differ from run to run: the
/// safetensors header lists its metadata in a per-process hash order).
fn without_timings(csv: &str) -> Vec<Vec<String>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keep: Vec<bool> = header
        .iter()
        .map(|h| !h.contains("latency") && *h != "gzip_bytes")
        .collect();
    lines
        .map(|l| {
            l.split(',')
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(c, _)| c.to_string())
                .collect()
        })
        .collect()
}

#[test]
fn a_stopped_study_resumes_and_its_points_merge_to_the_same_table() {
    let dir = common::scratch_dir("cli-study");
    let stem = dir.join("study");
    let stem_arg = stem.to_str().unwrap();
    let run_owned = |args: Vec<String>| run(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // Stopped after one point: one row kept, and the table so far holds just it.
    let first = run_owned(small_study_args(&["-o", stem_arg, "--max-points", "1"]));
    assert!(first.status.success(), "{}", stderr(&first));
    let rows = dir.join("study.rows");
    let kept = std::fs::read_to_string(rows.join("point-00000.json")).unwrap();
    assert!(!rows.join("point-00001.json").exists());
    let partial = std::fs::read_to_string(stem.with_extension("csv")).unwrap();
    assert_eq!(partial.lines().count(), 2, "header and one row: {partial}");

    // The same command resumes: the kept row is not redone, the others are added.
    let resumed = run_owned(small_study_args(&["-o", stem_arg, "--json"]));
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("resuming, 1 of 3 point(s)"),
        "{}",
        stderr(&resumed)
    );
    assert_eq!(
        std::fs::read_to_string(rows.join("point-00000.json")).unwrap(),
        kept
    );
    let study: serde_json::Value = serde_json::from_str(&stdout(&resumed)).unwrap();
    let results = study["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for result in results {
        let target = result["point"]["target"].as_f64();
        let removed = result["removed_share"].as_f64().unwrap();
        match target {
            // Within the channel rounding of the bisection.
            Some(t) => assert!((removed - t).abs() < 0.03, "{result}"),
            None => assert_eq!(removed, 0.0),
        }
        // Cuts are recalibrated, every point fine-tuned once per seed.
        assert_eq!(
            result["dice_recalibrated"].is_null(),
            target.is_none(),
            "{result}"
        );
        assert_eq!(result["dice_fine_tuned"].as_array().unwrap().len(), 2);
        // The same share removed from the published full-width network (8,911,235 parameters).
        let full = result["full_width"]["nonzero_params"].as_u64().unwrap() as f64;
        let asked = 8_911_235.0 * (1.0 - target.unwrap_or(0.0));
        assert!((full / asked - 1.0).abs() < 0.05, "{result}");
    }
    for suffix in ["csv", "macs.png", "size.png"] {
        assert!(stem.with_extension(suffix).exists(), "{suffix}");
    }
    let tables = std::fs::read_to_string(stem.with_extension("md")).unwrap();
    for name in [
        "after BN recalibration",
        "filter L2",
        "magnitude (global L1)",
        "full width",
    ] {
        assert!(tables.contains(name), "{name}: {tables}");
    }
    // Rows made by other options are not resumed into: point 1 is filter-l2@0.5 here, and
    // with a second target it would be filter-l2@0.25.
    let mut other_targets = small_study_args(&["-o", stem_arg]);
    let at = other_targets.iter().position(|a| a == "--targets").unwrap();
    other_targets[at + 1] = "0.25,0.5".into();
    let other = run_owned(other_targets);
    assert!(!other.status.success());
    assert!(
        stderr(&other).contains("point-00001.json: this row is filter-l2@0.5"),
        "{}",
        stderr(&other)
    );
    // Nor into rows scored in another precision.
    let other = run_owned(small_study_args(&["-o", stem_arg, "--precision", "int8"]));
    assert!(!other.status.success());
    assert!(
        stderr(&other).contains("scored in fp32") && stderr(&other).contains("in int8"),
        "{}",
        stderr(&other)
    );

    // The same study as points run one by one (as GNU parallel or SLURM would), then merged.
    let points = dir.join("points.json");
    let written = run_owned(small_study_args(&[
        "--write-points",
        points.to_str().unwrap(),
    ]));
    assert!(written.status.success(), "{}", stderr(&written));
    for index in ["2", "0", "1"] {
        let out = run(&[
            "study",
            "--run-point",
            points.to_str().unwrap(),
            "--index",
            index,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let merged = dir.join("merged");
    let out = run(&[
        "study",
        "--merge",
        dir.join("points.rows").to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let single = std::fs::read_to_string(stem.with_extension("csv")).unwrap();
    let spread = std::fs::read_to_string(merged.with_extension("csv")).unwrap();
    assert_eq!(without_timings(&single), without_timings(&spread));
    // A sweep does not run a study's points.
    let wrong = run(&[
        "sweep",
        "--run-point",
        points.to_str().unwrap(),
        "--index",
        "0",
    ]);
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("points of `study`"),
        "{}",
        stderr(&wrong)
    );
}

/// The embedded default model's file, and `export` of it with `args` (ending in `--json`):
/// its JSON report once it succeeded.
fn export_default_model(args: &[&str]) -> (std::path::PathBuf, serde_json::Value) {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join("default_model.safetensors");
    let mut all = vec!["export", model.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = serde_json::from_str(&stdout(&out)).unwrap();
    (model, report)
}

#[test]
fn export_in_half_precision_halves_the_file_and_keeps_the_model() {
    let dir = common::scratch_dir("cli-export");
    let half = dir.join("half.safetensors");
    let (model, report) = export_default_model(&[
        "--checkpoint",
        half.to_str().unwrap(),
        "--precision",
        "fp16",
        "--json",
    ]);
    let full_bytes = std::fs::metadata(&model).unwrap().len();
    let half_bytes = report["written"][0]["bytes"].as_u64().unwrap();
    assert_eq!(half_bytes, std::fs::metadata(&half).unwrap().len());
    assert!(
        (half_bytes as f64) < 0.55 * full_bytes as f64,
        "{half_bytes} of {full_bytes} bytes"
    );
    // Same config, training history and weights to half precision's rounding.
    let original = raagr2_lab::model::load_checkpoint(&model).unwrap();
    let exported = raagr2_lab::model::load_checkpoint(&half).unwrap();
    assert_eq!(exported.config, original.config);
    assert_eq!(exported.metadata, original.metadata);
    for (key, tensor) in &original.weights {
        let stored = &exported.weights[key];
        assert_eq!(stored.shape, tensor.shape, "{key}");
        for (a, b) in tensor.values.iter().zip(&stored.values) {
            assert!(
                (a - b).abs() <= 1e-3 * a.abs().max(1e-4),
                "{key}: {a} stored as {b}"
            );
        }
    }

    // A missing model: a non-zero exit naming it, nothing written.
    export_is_refused(
        &dir.join("missing.safetensors"),
        "--checkpoint",
        &dir.join("never.safetensors"),
        "missing.safetensors",
    );
}

/// `export MODEL FLAG TARGET` exits non-zero with `expected` in its message and writes nothing.
fn export_is_refused(
    model: &std::path::Path,
    flag: &str,
    target: &std::path::Path,
    expected: &str,
) {
    let out = run(&[
        "export",
        model.to_str().unwrap(),
        flag,
        target.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(expected), "{}", stderr(&out));
    assert!(!target.exists());
}

/// `export --onnx` writes the trained default model as a graph that another runtime (tract,
/// pure Rust) runs to this project's own probabilities; bad requests exit non-zero and write
/// nothing.
#[test]
fn export_to_onnx_runs_elsewhere_to_the_same_probabilities() {
    use tract_onnx::prelude::*;
    let dir = common::scratch_dir("cli-export-onnx");
    let graph = dir.join("default.onnx");
    let (model, report) = export_default_model(&["--onnx", graph.to_str().unwrap(), "--json"]);
    assert_eq!(report["written"][0]["format"], "ONNX");
    assert_eq!(
        report["written"][0]["bytes"].as_u64().unwrap(),
        std::fs::metadata(&graph).unwrap().len()
    );

    let (shape, input) = held_out_slices();
    let ours = our_probabilities(&model, shape, &input);
    let runnable = tract_onnx::onnx()
        .model_for_path(&graph)
        .unwrap()
        .with_input_fact(0, f32::fact(shape).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let x = tract_ndarray::Array4::from_shape_vec(shape, input).unwrap();
    let theirs: Vec<f32> = runnable.run(tvec!(Tensor::from(x).into())).unwrap()[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect();
    assert_eq!(theirs.len(), ours.len());
    let diff = raagr2_lab::analysis::max_abs_diff(&ours, &theirs);
    assert!(diff <= 1e-4, "tract and raagr2-lab differ by {diff}");

    // No output named, or an output that cannot be written: a non-zero exit naming it.
    let none = run(&["export", model.to_str().unwrap()]);
    assert!(!none.status.success());
    assert!(stderr(&none).contains("--onnx"), "{}", stderr(&none));
    // A file where the folder should be: no folder can be made there.
    let blocker = dir.join("not-a-folder");
    std::fs::write(&blocker, b"").unwrap();
    export_is_refused(&model, "--onnx", &blocker.join("x.onnx"), "not-a-folder");
    // Another network's checkpoint: refused as not RAAGR2-Net, nothing written.
    export_is_refused(
        &model.with_file_name("classifier_demo.safetensors"),
        "--onnx",
        &dir.join("classifier.onnx"),
        "not a RAAGR2-Net checkpoint",
    );
}

/// Re-running `eval` on a shipped study checkpoint gives, case for case, what the kept report
/// (`docs/study/eval/<model>.json`, whose means the book shows) says. One held-out case of two
/// models, one per architecture (the base network and a weight-shared one), so the suite stays
/// quick; the book's means are checked against all four reports in
/// `docs::the_book_gives_the_held_out_dice_eval_wrote_for_each_study_model`.
#[test]
fn eval_of_a_shipped_study_model_reproduces_its_kept_report() {
    for model in ["base", "paired-shared"] {
        let checkpoint = format!("assets/study_{model}.safetensors");
        let out = run(&[
            "eval",
            checkpoint.as_str(),
            "--synthetic",
            "1",
            "--synthetic-seed",
            "10000",
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let fresh: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let kept_path = format!("docs/study/eval/{model}.json");
        let kept: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&kept_path).unwrap()).unwrap();
        let (fresh, kept) = (&fresh["cases"][0], &kept["cases"][0]);
        assert_eq!(fresh["case_id"], kept["case_id"]);
        for region in ["WT", "TC", "ET", "NCR", "ED"] {
            let (now, then) = (
                fresh["dice"][region].as_f64().unwrap(),
                kept["dice"][region].as_f64().unwrap(),
            );
            assert!(
                (now - then).abs() <= 1e-3,
                "{model} {region} on {}: eval gives {now}, {kept_path} says {then}",
                kept["case_id"]
            );
        }
    }
}

/// `eval --precision` and `prune --precision` score a model as its export in that precision
/// computes: static INT8 costs the default model little Dice on a held-out case (the lib tests
/// check that the simulation is the ONNX graph's); INT8 is written as ONNX only.
#[test]
fn reduced_precision_is_scored_as_the_export_computes_it() {
    let regions = |scores: &serde_json::Value| -> Vec<f64> {
        ["WT", "TC", "ET"]
            .iter()
            .map(|r| scores[r].as_f64().unwrap())
            .collect()
    };
    let one_case = ["--synthetic", "1", "--synthetic-seed", "10000"];
    let out = run(&[&["eval", "--json"][..], &one_case].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["precision"], "fp32");
    let full = regions(&report["cases"][0]["dice"]);
    // prune's Dice in int8, on the dense model (ratio 0) and the same case.
    let dir = common::scratch_dir("cli-precision");
    let pruned = dir.join("same.safetensors");
    let args = [
        "prune",
        "--ratio",
        "0",
        "--precision",
        "int8",
        "--runs",
        "1",
        "--size",
        "64",
        "--json",
        "-o",
        pruned.to_str().unwrap(),
    ];
    let out = run(&[&args[..], &one_case].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["precision"], "int8");
    let int8 = regions(&report["dice_before"]);
    assert_ne!(full, int8, "int8 rounds activations");
    for (region, (a, b)) in ["WT", "TC", "ET"].iter().zip(full.iter().zip(&int8)) {
        assert!((a - b).abs() <= 0.02, "{region}: fp32 {a}, int8 {b}");
    }
    // INT8 asked of a format that has none: refused before any file is written (the ONNX
    // graph, which int8 allows, is not written either).
    let dir = common::scratch_dir("cli-export-int8");
    let (graph, target) = (dir.join("int8.onnx"), dir.join("int8.pt.safetensors"));
    let out = run(&[
        "export",
        "assets/default_model.safetensors",
        "--onnx",
        graph.to_str().unwrap(),
        "--pytorch",
        target.to_str().unwrap(),
        "--precision",
        "int8",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("int8"), "{}", stderr(&out));
    assert!(!target.exists() && !graph.exists());
}

/// The first slices of a held-out case, as the network's N x 4 x H x W input.
fn held_out_slices() -> ([usize; 4], Vec<f32>) {
    let case = raagr2_lab::data::dataset::synthetic_case(10000);
    let input = [70, 80]
        .iter()
        .flat_map(|&z| {
            case.modalities
                .iter()
                .flat_map(move |m| raagr2_lab::data::preprocess::axial_slice(m, case.dims, z, 240))
        })
        .collect();
    ([2, 4, 240, 240], input)
}

/// This project's forward of the checkpoint at `model` on `input`.
fn our_probabilities(model: &std::path::Path, shape: [usize; 4], input: &[f32]) -> Vec<f32> {
    let device = raagr2_lab::backend::cpu_device();
    raagr2_lab::model::load_checkpoint(model)
        .unwrap()
        .build(&device)
        .unwrap()
        .forward(burn::tensor::Tensor::from_data(
            burn::tensor::TensorData::new(input.to_vec(), shape),
            &device,
        ))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

/// Exports the default model and a pruned one (uneven widths after an L2 cut) as PyTorch
/// state_dicts, and checks that `tools/raagr2_torch.py` loads each with strict=True and computes
/// the same probabilities. Skipped (saying so) where PyTorch is not installed.
#[test]
fn export_to_pytorch_loads_strictly_there_to_the_same_probabilities() {
    let has_torch = std::process::Command::new("python3")
        .args(["-c", "import torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        eprintln!("skipped: python3 with torch and safetensors is not installed");
        return;
    }
    let dir = common::scratch_dir("cli-export-pytorch");
    let pruned = dir.join("pruned.safetensors");
    let cut = raagr2_lab::prune::prune_checkpoint(
        &raagr2_lab::defaults::default_checkpoint(),
        raagr2_lab::prune::PruneMethod::Structured(raagr2_lab::prune::StructuredMethod::L2),
        &raagr2_lab::prune::Ratios::Uniform(0.5),
        None,
    )
    .unwrap();
    raagr2_lab::model::save_checkpoint(&pruned, &cut).unwrap();
    let (shape, input) = held_out_slices();
    let x_path = dir.join("x.safetensors");
    let x_bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    let x_view = safetensors::tensor::TensorView::new(
        safetensors::tensor::Dtype::F32,
        shape.to_vec(),
        &x_bytes,
    )
    .unwrap();
    std::fs::write(
        &x_path,
        safetensors::serialize([("x", x_view)], None).unwrap(),
    )
    .unwrap();
    let default = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join("default_model.safetensors");
    for (name, model) in [("default", default), ("pruned", pruned)] {
        let exported = dir.join(format!("{name}.pt.safetensors"));
        let out = run(&[
            "export",
            model.to_str().unwrap(),
            "--pytorch",
            exported.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let y_path = dir.join(format!("{name}.y.safetensors"));
        let tool = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/raagr2_torch.py");
        let torch = std::process::Command::new("python3")
            .arg(&tool)
            .arg(&exported)
            .arg("--input")
            .arg(&x_path)
            .arg("--output")
            .arg(&y_path)
            .output()
            .unwrap();
        assert!(
            torch.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&torch.stderr)
        );
        let y_bytes = std::fs::read(&y_path).unwrap();
        let y_file = safetensors::SafeTensors::deserialize(&y_bytes).unwrap();
        let theirs: Vec<f32> = y_file
            .tensor("y")
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let ours = our_probabilities(&model, shape, &input);
        assert_eq!(theirs.len(), ours.len(), "{name}");
        let diff = raagr2_lab::analysis::max_abs_diff(&ours, &theirs);
        assert!(
            diff <= 1e-4,
            "{name}: PyTorch and raagr2-lab differ by {diff}"
        );
    }
}

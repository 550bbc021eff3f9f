//! The classifiers against torchvision: VGG and DenseNet fixtures made by torchvision's own
//! classes (tools/classifier_fixtures.py) reproduce PyTorch's logits; configs are inferred from
//! the state_dicts; checkpoints round-trip with their masks; broken files name themselves.

use crate::common;

use burn::prelude::*;
use common::{fixture, max_abs_diff};
use raagr2_lab::backend::cpu_device;
use raagr2_lab::classify::import::import_state_dict;
use raagr2_lab::classify::{ClassifierCheckpoint, ClassifierConfig};
use raagr2_lab::model::checkpoint::{read_file, tensors_from_bytes};
use raagr2_lab::model::{HostMask, HostTensor, WeightMap};

/// A fixture's state_dict, input, expected logits and the config it was made with.
fn load_fixture(name: &str) -> (WeightMap, HostTensor, HostTensor, ClassifierConfig) {
    let path = fixture(&format!("classifiers/{name}.safetensors"));
    let bytes = read_file(&path).unwrap();
    let (mut weights, _, metadata) = tensors_from_bytes(&path, &bytes).unwrap();
    let input = weights.remove("fixture.input").unwrap();
    let output = weights.remove("fixture.output").unwrap();
    let config = serde_json::from_str(&metadata["config"]).unwrap();
    (weights, input, output, config)
}

fn check_parity(name: &str) {
    let (weights, input, expected, config) = load_fixture(name);
    let checkpoint = import_state_dict(weights).unwrap();
    assert_eq!(
        checkpoint.config, config,
        "config inferred from {name}'s shapes"
    );
    let device = cpu_device();
    let model = checkpoint.build(&device).unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(input.values, input.shape), &device);
    let y = model.forward(x);
    assert_eq!(y.dims().to_vec(), expected.shape);
    let diff = max_abs_diff(
        &y.into_data().try_to_vec_as::<f32>().unwrap(),
        &expected.values,
    );
    println!("{name}: max abs difference to torchvision {diff:e}");
    assert!(diff < 1e-4, "{name}: max abs difference {diff}");
}

#[test]
fn vgg11_with_the_imagenet_head_matches_torchvision() {
    check_parity("vgg11_imagenet_head");
}

#[test]
fn vgg16_bn_with_the_cifar_head_matches_torchvision() {
    check_parity("vgg16_bn_cifar_head");
}

#[test]
fn densenet_matches_torchvision() {
    check_parity("densenet_small");
}

#[test]
fn a_classifier_checkpoint_round_trips_with_its_masks() {
    let (weights, _, _, _) = load_fixture("densenet_small");
    let mut checkpoint = import_state_dict(weights).unwrap();
    let key = "classifier.weight".to_string();
    let shape = checkpoint.weights[&key].shape.clone();
    let keep: Vec<bool> = (0..shape.iter().product()).map(|i| i % 3 != 0).collect();
    checkpoint
        .masks
        .insert(key.clone(), HostMask { shape, keep });
    let dir = common::scratch_dir("classifier-roundtrip");
    let path = dir.join("densenet.safetensors");
    checkpoint.save(&path).unwrap();
    let back = ClassifierCheckpoint::load(&path).unwrap();
    assert_eq!(back.config, checkpoint.config);
    assert_eq!(back.masks, checkpoint.masks);
    // Loading applies the masks: every masked weight is zero.
    let w = &back.weights[&key].values;
    assert!(w.iter().step_by(3).all(|v| *v == 0.0));
    assert!(back.mask_sparsity() > 0.0);
}

#[test]
fn a_state_dict_with_a_wrong_shape_or_missing_key_is_refused_by_name() {
    let (weights, _, _, _) = load_fixture("vgg16_bn_cifar_head");
    let mut missing = weights.clone();
    missing.remove("features.1.running_var");
    let err = import_state_dict(missing).unwrap_err().to_string();
    assert!(err.contains("features.1.running_var"), "{err}");

    let mut flat = weights.clone();
    let first = flat.get_mut("features.0.weight").unwrap();
    first.shape = vec![first.shape[0], first.values.len() / first.shape[0]];
    let err = import_state_dict(flat).unwrap_err().to_string();
    assert!(err.contains("features.0.weight"), "{err}");

    let mut wrong = weights;
    let bias = wrong.get_mut("classifier.3.bias").unwrap();
    bias.shape = vec![bias.values.len() - 1];
    bias.values.pop();
    let err = import_state_dict(wrong).unwrap_err().to_string();
    assert!(err.contains("classifier.3.bias"), "{err}");
}

/// The command line on a tiny CIFAR-format stand-in: a few training steps, a resume, an
/// evaluation and a pruning schedule whose checkpoint keeps its masks.
mod command_line {
    use std::path::Path;
    use std::process::Output;

    use raagr2_lab::classify::ClassifierCheckpoint;
    use raagr2_lab::classify::prune::{weight_layers, weight_sparsity};

    fn run(args: &[&str]) -> Output {
        crate::common::cli::command()
            .arg("classify")
            .args(args)
            .output()
            .expect("binary runs")
    }

    fn ok(out: Output) -> String {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn path(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    #[test]
    fn train_resume_eval_and_prune_on_a_tiny_stand_in() {
        let dir = crate::common::scratch_dir("classify-cli");
        let data = dir.join("cifar");
        let model = dir.join("vgg.safetensors");
        ok(run(&[
            "stand-in",
            "--classes",
            "4",
            "--train-per-class",
            "6",
            "--test-per-class",
            "3",
            "-o",
            path(&data),
        ]));
        let tiny = [
            "--arch",
            "vgg11-bn",
            "--width-divisor",
            "16",
            "--batch-size",
            "8",
        ];
        let train = |epochs: &str, resume: bool| {
            let mut args = vec!["train", "--data", path(&data), "-o", path(&model), "--json"];
            args.extend(tiny);
            args.extend(["--epochs", epochs]);
            if resume {
                args.extend(["--resume", path(&model)]);
            }
            serde_json::from_str::<serde_json::Value>(&ok(run(&args))).unwrap()
        };
        let first = train("1", false);
        assert_eq!(first["state"]["epochs_done"], 1);
        let resumed = train("2", true);
        assert_eq!(
            resumed["state"]["epochs_done"], 2,
            "the resumed run adds one epoch"
        );
        assert_eq!(resumed["state"]["history"].as_array().unwrap().len(), 2);
        assert_eq!(resumed["test"]["images"], 12);

        let eval: serde_json::Value = serde_json::from_str(&ok(run(&[
            "eval",
            path(&model),
            "--data",
            path(&data),
            "--json",
        ])))
        .unwrap();
        assert_eq!(eval["confusion"].as_array().unwrap().len(), 100);

        let pruned = dir.join("pruned.safetensors");
        let report: serde_json::Value = serde_json::from_str(&ok(run(&[
            "prune",
            path(&model),
            "--data",
            path(&data),
            "--schedule",
            "iterative",
            "--sparsity",
            "0.3",
            "--fine-tune-epochs",
            "1",
            "--batch-size",
            "8",
            "-o",
            path(&pruned),
            "--json",
        ])))
        .unwrap();
        assert_eq!(report["steps"].as_array().unwrap().len(), 3);
        let checkpoint = ClassifierCheckpoint::load(&pruned).unwrap();
        let measured = weight_sparsity(&checkpoint.weights, &weight_layers(&checkpoint));
        assert!(
            (measured - 0.3).abs() < 0.005,
            "fine-tuned sparsity {measured}"
        );
        assert!((report["sparsity"].as_f64().unwrap() - measured).abs() < 1e-9);
        assert!(
            !checkpoint.masks.is_empty(),
            "masks are saved with the model"
        );
    }

    #[test]
    fn a_ham10000_folder_trains_with_its_seven_classes_split_by_lesion() {
        let dir = crate::common::scratch_dir("classify-ham");
        let data = dir.join("ham");
        ok(run(&[
            "stand-in",
            "--format",
            "ham10000",
            "--images",
            "42",
            "-o",
            path(&data),
        ]));
        let report: serde_json::Value = serde_json::from_str(&ok(run(&[
            "train",
            "--data",
            path(&data),
            "--side",
            "32",
            "--arch",
            "vgg11",
            "--width-divisor",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "-o",
            path(&dir.join("m")),
            "--json",
        ])))
        .unwrap();
        assert_eq!(report["config"]["classes"], 7);
        let test_images = report["test"]["images"].as_u64().unwrap();
        assert!(
            test_images > 0 && test_images < 42,
            "{test_images} held out"
        );
    }

    #[test]
    fn impossible_requests_exit_non_zero_naming_the_problem() {
        let dir = crate::common::scratch_dir("classify-cli-errors");
        let missing = dir.join("nowhere");
        let out = run(&[
            "train",
            "--data",
            path(&missing),
            "-o",
            path(&dir.join("m")),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("nowhere"), "{err}");

        let seg = crate::common::fixture("dlunet_w8.safetensors");
        let out = run(&[
            "prune",
            path(&seg),
            "--data",
            path(&missing),
            "--sparsity",
            "1.5",
            "-o",
            "x",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("1.5"), "{err}");

        let data = dir.join("cifar");
        ok(run(&[
            "stand-in",
            "--classes",
            "2",
            "--train-per-class",
            "2",
            "--test-per-class",
            "1",
            "-o",
            path(&data),
        ]));
        let out = run(&["eval", path(&seg), "--data", path(&data)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("dlunet_w8.safetensors"),
            "{err}"
        );
    }
}

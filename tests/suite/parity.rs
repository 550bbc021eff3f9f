//! Parity with the PyTorch reference: the reference weights loaded into our model at widths
//! 8..128 with 5 outputs reproduce the reference output; bad keys and shapes name themselves.

use crate::common;

use burn::prelude::*;
use common::{fixture, max_abs_diff, read_tensor};
use raagr2_lab::backend::cpu_device;
use raagr2_lab::model::weights::{HostTensor, WeightMap, import_weights};
use raagr2_lab::model::{
    ChannelPlan, Head, ImportOptions, ModelConfig, ModelError, Variant, import_pytorch,
};

fn reference_config() -> ModelConfig {
    ModelConfig::new(
        Variant::Base,
        Head::Reference5,
        ChannelPlan::from_encoder_widths([8, 16, 32, 64, 128]),
    )
}

fn reference_input(device: &Device) -> (Tensor<4>, Vec<f32>) {
    let io = fixture("dlunet_w8.io.safetensors");
    let (x_shape, x) = read_tensor(&io, "x");
    let (y_shape, y) = read_tensor(&io, "y");
    assert_eq!(x_shape, vec![1, 4, 64, 64]);
    assert_eq!(y_shape, vec![1, 5, 64, 64]);
    (Tensor::from_data(TensorData::new(x, x_shape), device), y)
}

#[test]
fn reference_weights_reproduce_reference_output() {
    let device = cpu_device();
    let options = ImportOptions {
        plan: Some(reference_config().plan),
        ..Default::default()
    };
    let checkpoint = import_pytorch(&fixture("dlunet_w8.safetensors"), &options).unwrap();
    assert_eq!(checkpoint.config, reference_config());
    let model = checkpoint.build(&device).unwrap();
    assert_eq!(raagr2_lab::model::summary::count_params(&model), 569_429);
    let (x, expected) = reference_input(&device);
    let y = model.forward(x).into_data().try_to_vec_as::<f32>().unwrap();
    let diff = max_abs_diff(&y, &expected);
    println!("max abs difference to PyTorch: {diff:e}");
    assert!(diff < 1e-4, "max abs difference {diff}");
}

#[test]
fn widths_and_head_are_inferred_from_shapes() {
    let checkpoint =
        import_pytorch(&fixture("dlunet_w8.safetensors"), &ImportOptions::default()).unwrap();
    assert_eq!(checkpoint.config, reference_config());
}

fn reference_weights() -> WeightMap {
    raagr2_lab::model::import_pytorch(&fixture("dlunet_w8.safetensors"), &ImportOptions::default())
        .unwrap()
        .weights
}

fn load_into_reference(weights: &WeightMap) -> Result<(), ModelError> {
    let device = cpu_device();
    import_weights(reference_config().init(&device), weights, &device).map(|_| ())
}

#[test]
fn missing_key_is_named() {
    let mut weights = reference_weights();
    weights.remove("att3.psi.1.running_var");
    let err = load_into_reference(&weights).unwrap_err().to_string();
    assert!(
        err.contains("att3.psi.1.running_var") && err.contains("[16]"),
        "{err}"
    );
}

#[test]
fn renamed_key_is_named_as_missing_and_unexpected() {
    let mut weights = reference_weights();
    let t = weights.remove("enc2.conv3_1.0.weight").unwrap();
    weights.insert("enc2.conv3_1.0.wieght".into(), t.clone());
    let err = load_into_reference(&weights).unwrap_err().to_string();
    assert!(err.contains("missing key enc2.conv3_1.0.weight"), "{err}");

    let mut extra = reference_weights();
    extra.insert("enc2.extra.weight".into(), t);
    let err = load_into_reference(&extra).unwrap_err().to_string();
    assert!(
        err.contains("unexpected") && err.contains("enc2.extra.weight"),
        "{err}"
    );
}

#[test]
fn shape_mismatch_names_key_and_both_shapes() {
    let mut weights = reference_weights();
    weights.insert(
        "dec4.conv1x1.weight".into(),
        HostTensor::new(vec![32, 60, 1, 1], vec![0.0; 32 * 60]),
    );
    let err = load_into_reference(&weights).unwrap_err().to_string();
    assert!(err.contains("dec4.conv1x1.weight"), "{err}");
    assert!(
        err.contains("[32, 60, 1, 1]") && err.contains("[32, 64, 1, 1]"),
        "{err}"
    );
}

#[test]
fn nan_weight_is_refused_by_name() {
    let mut weights = reference_weights();
    weights.get_mut("final_conv.bias").unwrap().values[2] = f32::NAN;
    let err = load_into_reference(&weights).unwrap_err().to_string();
    assert!(
        err.contains("final_conv.bias") && err.contains("NaN"),
        "{err}"
    );
}

#[test]
fn importing_with_the_wrong_widths_names_the_first_bad_key() {
    let options = ImportOptions {
        plan: Some(ChannelPlan::with_width_multiplier(0.5)),
        ..Default::default()
    };
    let err = import_pytorch(&fixture("dlunet_w8.safetensors"), &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dlunet_w8.safetensors"), "{err}");
    assert!(err.contains("shape mismatch for enc1."), "{err}");
}

#[test]
fn non_safetensors_file_is_refused_with_its_path() {
    let err = import_pytorch(&fixture("dlunet_w8.json"), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dlunet_w8.json") && err.contains("not a readable safetensors"),
        "{err}"
    );
}

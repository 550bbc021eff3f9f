//! Save then load gives bit-identical outputs, for every variant and for an uneven channel plan.

use crate::common;

use burn::prelude::*;
use burn::tensor::Distribution;
use raagr2_lab::backend::cpu_device;
use raagr2_lab::model::{
    ChannelPlan, Checkpoint, Head, ModelConfig, Variant, load_checkpoint, save_checkpoint,
};

fn uneven_plan() -> ChannelPlan {
    let mut plan = ChannelPlan::with_width_multiplier(0.25);
    plan.encoders[0].branches = [3, 8, 5, 1];
    plan.encoders[0].out = 7;
    plan.encoders[1].dw_mult = [1, 3];
    plan.encoders[2].branches = [32, 11, 2, 9];
    plan.encoders[3].out = 41;
    plan.decoders[0] = raagr2_lab::model::config::DecoderPlan {
        up: 5,
        att: 1,
        rec: 6,
    };
    plan.decoders[2].att = 3;
    plan.decoders[3].up = 13;
    plan
}

fn assert_round_trip(config: ModelConfig, name: &str) {
    let device = cpu_device();
    let model = config.init(&device);
    let x = Tensor::<4>::random([2, 4, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let before = model
        .forward(x.clone())
        .into_data()
        .try_to_vec_as::<f32>()
        .unwrap();

    let path = common::scratch_dir("roundtrip").join(format!("{name}.safetensors"));
    save_checkpoint(&path, &Checkpoint::from_model(&config, &model)).unwrap();
    let loaded = load_checkpoint(&path).unwrap();
    assert_eq!(loaded.config, config, "config survives the round trip");
    let after = loaded
        .build(&device)
        .unwrap()
        .forward(x)
        .into_data()
        .try_to_vec_as::<f32>()
        .unwrap();

    let identical = before
        .iter()
        .zip(&after)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(identical, "{name}: outputs differ after save/load");
}

#[test]
fn every_variant_round_trips_bit_identically() {
    for variant in [
        Variant::Base,
        Variant::DepthwiseShared,
        Variant::PairedShared,
    ] {
        for head in [Head::Regions3, Head::Reference5] {
            let config = ModelConfig::with_width_multiplier(variant, head, 0.125);
            assert_round_trip(config, &format!("{}-{}", variant.name(), head.name()));
        }
    }
}

#[test]
fn uneven_channel_plan_round_trips_bit_identically() {
    for variant in [Variant::Base, Variant::PairedShared] {
        let config = ModelConfig::new(variant, Head::Regions3, uneven_plan());
        config.validate().unwrap();
        assert_round_trip(config, &format!("uneven-{}", variant.name()));
    }
}

#[test]
fn pytorch_file_without_config_is_refused_with_a_hint() {
    let err = load_checkpoint(&common::fixture("dlunet_w8.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dlunet_w8.safetensors") && err.contains("import"),
        "{err}"
    );
}

#[test]
fn truncated_checkpoint_is_refused_and_the_good_one_survives_a_failed_save() {
    let device = cpu_device();
    let config = ModelConfig::with_width_multiplier(Variant::Base, Head::Regions3, 0.125);
    let model = config.init(&device);
    let dir = common::scratch_dir("truncated");
    let path = dir.join("model.safetensors");
    save_checkpoint(&path, &Checkpoint::from_model(&config, &model)).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_checkpoint(&cut).unwrap_err().to_string();
    assert!(err.contains("cut.safetensors"), "{err}");

    // Saving into a directory path fails without touching anything else.
    let err = save_checkpoint(&dir, &Checkpoint::from_model(&config, &model));
    assert!(err.is_err());
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

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

/// The default checkpoint with its safetensors JSON header passed through `edit` (the 8-byte
/// length prefix follows the new length; tensor offsets are relative to the data, so they hold).
fn with_edited_header(edit: impl Fn(&str) -> String) -> Vec<u8> {
    let bytes = std::fs::read("assets/default_model.safetensors").unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = edit(std::str::from_utf8(&bytes[8..8 + n]).unwrap());
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(&bytes[8 + n..]);
    out
}

#[test]
fn a_config_that_disagrees_with_the_tensors_is_refused_before_building() {
    let dir = common::scratch_dir("checkpoint-config");
    // The config is a JSON string inside the header's metadata, so its quotes are escaped.
    let wide = with_edited_header(|h| h.replacen(r#"\"out\":8,"#, r#"\"out\":99999,"#, 1));
    let path = dir.join("wide.safetensors");
    std::fs::write(&path, &wide).unwrap();
    let started = std::time::Instant::now();
    let e = load_checkpoint(&path).unwrap_err().to_string();
    assert!(
        e.contains("wide.safetensors") && e.contains("99999") && e.contains("tensors hold"),
        "{e}"
    );
    assert!(started.elapsed().as_secs() < 5);
}

#[test]
fn random_header_mutations_of_a_checkpoint_give_errors_not_panics() {
    let dir = common::scratch_dir("checkpoint-fuzz");
    let original = std::fs::read("assets/default_model.safetensors").unwrap();
    let header_end = 8 + u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let mut state = 0x2545f4914f6cdd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let device = cpu_device();
    for round in 0..200 {
        let mut bytes = original.clone();
        for _ in 0..1 + next() % 3 {
            let at = 8 + (next() % (header_end as u64 - 8)) as usize;
            // Digits become other digits half the time, so numbers stay numbers.
            bytes[at] = if bytes[at].is_ascii_digit() && next() % 2 == 0 {
                b'0' + (next() % 10) as u8
            } else {
                next() as u8
            };
        }
        let path = dir.join(format!("m{round}.safetensors"));
        std::fs::write(&path, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| {
            load_checkpoint(&path).map(|c| c.build(&device).map(|_| ()))
        });
        assert!(outcome.is_ok(), "mutation {round} panicked");
    }
}

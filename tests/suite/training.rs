//! Training on the CPU: a few Adam steps on one batch lower the loss (so the step really learns),
//! network slimming shrinks gammas, and distillation pulls a student towards its teacher.

use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::tensor::Distribution;
use raagr2_lab::backend::cpu_device;
use raagr2_lab::model::{Head, ModelConfig, Variant};
use raagr2_lab::train::train_step;

#[test]
fn adam_steps_lower_the_loss_on_a_fixed_batch() {
    for variant in [Variant::Base, Variant::DepthwiseShared] {
        let device = cpu_device().autodiff();
        device.seed(11);
        let mut config = ModelConfig::with_width_multiplier(variant, Head::Regions3, 0.125);
        config.dropout = 0.0;
        let mut model = config.init(&device);
        let mut optimizer = AdamConfig::new().init();
        let x = Tensor::<4>::random([2, 4, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<4>::random([2, 3, 32, 32], Distribution::Bernoulli(0.3), &device);
        let mut losses = Vec::new();
        for _ in 0..5 {
            let (next, loss) = train_step(
                Head::Regions3,
                model,
                &mut optimizer,
                1e-2,
                x.clone(),
                y.clone(),
            );
            model = next;
            losses.push(loss);
        }
        assert!(
            losses[4] < losses[0],
            "{variant:?}: loss did not fall: {losses:?}"
        );
    }
}

/// Mean |gamma| over every batch norm of a model.
fn mean_abs_gamma(model: &raagr2_lab::model::Raagr2Net) -> f32 {
    let weights = raagr2_lab::model::weights::export_weights(model);
    let gammas: Vec<f32> = weights
        .iter()
        .filter(|(k, _)| {
            weights.contains_key(&k.replace(".weight", ".running_var")) && k.ends_with(".weight")
        })
        .flat_map(|(_, t)| t.values.iter().map(|g| g.abs()))
        .collect();
    gammas.iter().sum::<f32>() / gammas.len() as f32
}

#[test]
fn slimming_l1_drives_bn_gammas_towards_zero() {
    let run = |slimming_l1: f64| -> f32 {
        let device = cpu_device().autodiff();
        device.seed(5);
        let config = ModelConfig::with_width_multiplier(Variant::Base, Head::Regions3, 0.125);
        let mut model = config.init(&device);
        let mut optimizer = AdamConfig::new().init();
        let x = Tensor::<4>::random([2, 4, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<4>::random([2, 3, 32, 32], Distribution::Bernoulli(0.3), &device);
        for _ in 0..10 {
            let extras = raagr2_lab::train::StepExtras {
                slimming_l1,
                distillation: None,
            };
            let (next, _) = raagr2_lab::train::train_step_with(
                Head::Regions3,
                model,
                &mut optimizer,
                1e-2,
                x.clone(),
                y.clone(),
                &extras,
            );
            model = next;
        }
        mean_abs_gamma(&model)
    };
    let (plain, slimmed) = (run(0.0), run(0.1));
    assert!(
        slimmed < plain - 0.03,
        "mean |gamma| with the L1 term {slimmed} vs without {plain}"
    );
}

/// Mean |p_student - p_teacher| over a batch (eval mode, no autodiff).
fn disagreement(
    student: &raagr2_lab::model::Raagr2Net,
    teacher: &raagr2_lab::model::Raagr2Net,
    x: Tensor<4>,
) -> f32 {
    use burn::module::Module;
    let s = student.valid().forward(x.clone().inner());
    let t = teacher.forward(x.inner());
    (s - t).abs().mean().into_scalar::<f32>()
}

#[test]
fn distillation_pulls_the_student_towards_the_teacher() {
    use raagr2_lab::train::{Distillation, StepExtras, train_step_with};
    // The teacher: a different random network (its outputs are far from the labels below, so
    // only the teacher term can pull the student towards them).
    let base = cpu_device();
    base.seed(3);
    let teacher_config = ModelConfig::with_width_multiplier(Variant::Base, Head::Regions3, 0.125);
    let mut teacher_weights =
        raagr2_lab::model::Checkpoint::from_model(&teacher_config, &teacher_config.init(&base));
    // Confident, label-unlike outputs: p ~ 0.95 (WT), 0.05 (TC), 0.88 (ET) everywhere.
    teacher_weights
        .weights
        .get_mut("final_conv.bias")
        .unwrap()
        .values = vec![3.0, -3.0, 2.0];
    let teacher = teacher_weights.build(&base).unwrap();
    let device = cpu_device().autodiff();
    let x = Tensor::<4>::random([4, 4, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<4>::random([4, 3, 32, 32], Distribution::Bernoulli(0.3), &device);
    let mut gaps = Vec::new();
    for alpha in [0.0, 1.0] {
        device.seed(12);
        let mut config =
            ModelConfig::with_width_multiplier(Variant::DepthwiseShared, Head::Regions3, 0.125);
        config.dropout = 0.0;
        let mut student = config.init(&device);
        let before = disagreement(&student, &teacher, x.clone());
        let distillation = Distillation {
            teacher: teacher.clone(),
            teacher_head: Head::Regions3,
            alpha,
            temperature: 1.0,
        };
        let extras = StepExtras {
            slimming_l1: 0.0,
            distillation: Some(&distillation),
        };
        let mut optimizer = AdamConfig::new().init();
        for _ in 0..25 {
            let (next, _) = train_step_with(
                Head::Regions3,
                student,
                &mut optimizer,
                1e-2,
                x.clone(),
                y.clone(),
                &extras,
            );
            student = next;
        }
        gaps.push((before, disagreement(&student, &teacher, x.clone())));
    }
    let [(_, ground_truth_only), (start, distilled)] = [gaps[0], gaps[1]];
    eprintln!(
        "gap: start {start:.4}, distilled {distilled:.4}, ground truth only {ground_truth_only:.4}"
    );
    assert!(
        distilled < 0.6 * start && distilled < ground_truth_only - 0.05,
        "teacher-student gap: start {start:.4}, distilled {distilled:.4}, ground truth only \
         {ground_truth_only:.4}"
    );
}

#[test]
fn fine_tuning_by_the_training_recipe_does_not_damage_the_trained_model() {
    // The recovery fine-tune applied to a model that lost nothing must not cost it Dice: at
    // learning rate 1e-4 these 40 steps took these cases' Dice down by 0.03-0.07 per region
    // (and on 128-pixel tumour crops without augmentation, 0.05-0.10 on ten held-out cases).
    use raagr2_lab::data::dataset::synthetic_case;
    use raagr2_lab::train::fine_tune::{
        FINE_TUNE_CROP, FINE_TUNE_LEARNING_RATE, FineTuneData, FineTuneSettings, fine_tune,
    };
    let dense = raagr2_lab::defaults::default_checkpoint();
    let training: Vec<_> = (0..4).map(synthetic_case).collect();
    let held_out: Vec<_> = [10_003, 10_004].map(synthetic_case).to_vec();
    let data = FineTuneData::from_cases(&training, FINE_TUNE_CROP).unwrap();
    let settings = FineTuneSettings {
        epochs: 1,
        learning_rate: FINE_TUNE_LEARNING_RATE,
        max_batches_per_epoch: Some(40),
        seed: 0,
    };
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let tuned = fine_tune(&dense, &data, settings, &cpu_device(), &cancel, |_| {})
        .unwrap()
        .best
        .unwrap();
    let before = crate::common::region_dice(&dense, &held_out);
    let after = crate::common::region_dice(&tuned, &held_out);
    for (r, region) in ["WT", "TC", "ET"].iter().enumerate() {
        assert!(
            after[r] >= before[r] - 0.02,
            "{region}: {:.4} -> {:.4} after fine-tuning ({before:?} -> {after:?})",
            before[r],
            after[r]
        );
    }
}

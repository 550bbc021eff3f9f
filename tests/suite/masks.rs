//! Unstructured pruning and schedules: masks remove exactly their share, survive a save/load
//! and fine-tuning (masked weights stay exactly zero on disk), SNIP scores from one batch, and
//! iterative and layer-wise schedules reach the one-shot result step by step, recording Dice
//! before and after every fine-tune.

use crate::common;

use std::sync::atomic::AtomicBool;

use anyhow::Result;
use raagr2_lab::backend::cpu_device;
use raagr2_lab::data::dataset::{SliceDataset, SliceSelection, synthetic_case_with};
use raagr2_lab::data::synth::{SynthKind, SynthOptions};
use raagr2_lab::metrics::{RegionScores, RegionStats};
use raagr2_lab::model::{Checkpoint, Head, ModelConfig, Variant, load_checkpoint, save_checkpoint};
use raagr2_lab::prune::unstructured::maskable_keys;
use raagr2_lab::prune::{
    PruneMethod, Ratios, Schedule, ScheduleHooks, SnipBatch, StructuredMethod, UnstructuredMethod,
    prune_checkpoint, run_schedule,
};
use raagr2_lab::train::{CheckpointPaths, TrainOptions, TrainState, fit};

fn small_model(variant: Variant, seed: u64) -> Checkpoint {
    let config = ModelConfig::with_width_multiplier(variant, Head::Regions3, 0.125);
    let device = cpu_device();
    device.seed(seed);
    Checkpoint::from_model(&config, &config.init(&device))
}

fn maskable_total(checkpoint: &Checkpoint) -> usize {
    maskable_keys(&checkpoint.weights)
        .iter()
        .map(|k| checkpoint.weights[k].values.len())
        .sum()
}

fn slices(seeds: std::ops::Range<u64>) -> SliceDataset {
    // Realistic cases over BraTS's field of view at 3.75 mm (64x64x41): quick.
    let coarse = SynthOptions::over_brats_view(SynthKind::Realistic, Some(3.75)).unwrap();
    let cases: Vec<_> = seeds.map(|s| synthetic_case_with(s, &coarse)).collect();
    let selection = SliceSelection {
        tumour_free_share: 0.05,
        slice_step: 1,
        seed: 0,
    };
    SliceDataset::from_cases(&cases, 64, selection).unwrap()
}

#[test]
fn masks_remove_their_share_and_round_trip_through_a_checkpoint() {
    let dense = small_model(Variant::DepthwiseShared, 3);
    let total = maskable_total(&dense);
    for method in [UnstructuredMethod::L1, UnstructuredMethod::L1Global] {
        let masked = prune_checkpoint(
            &dense,
            PruneMethod::Unstructured(method),
            &Ratios::Uniform(0.6),
            None,
        )
        .unwrap();
        let removed: usize = masked.masks.values().map(|m| m.keep.len() - m.kept()).sum();
        // Per layer each layer rounds its own share, so allow one weight per layer.
        let slack = if method == UnstructuredMethod::L1 {
            masked.masks.len()
        } else {
            0
        };
        let expected = (total as f64 * 0.6).round() as usize;
        assert!(
            removed.abs_diff(expected) <= slack,
            "{method:?}: {removed} vs {expected}"
        );
        assert!(
            !masked.masks.contains_key("final_conv.weight"),
            "the head is never masked"
        );
        for (key, mask) in &masked.masks {
            let values = &masked.weights[key].values;
            assert!(mask.keep.iter().zip(values).all(|(k, v)| *k || *v == 0.0));
        }

        let dir = common::scratch_dir("masks-roundtrip");
        let path = dir.join("masked.safetensors");
        save_checkpoint(&path, &masked).unwrap();
        let loaded = load_checkpoint(&path).unwrap();
        assert_eq!(loaded.masks, masked.masks);
        assert_eq!(loaded.weights, masked.weights);
        assert!((loaded.mask_sparsity() - masked.mask_sparsity()).abs() < 1e-12);
        loaded
            .build(&cpu_device())
            .expect("a masked model is an ordinary model");
    }
    let refused = prune_checkpoint(
        &dense,
        PruneMethod::Unstructured(UnstructuredMethod::L1),
        &Ratios::Uniform(1.0),
        None,
    );
    assert!(refused.is_err());
    let refused = prune_checkpoint(
        &dense,
        PruneMethod::Unstructured(UnstructuredMethod::Snip),
        &Ratios::Uniform(0.5),
        None,
    );
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("SNIP needs a batch")
    );
}

/// Fine-tunes `checkpoint` for a few batches with `masks_on` deciding whether its masks are kept;
/// returns the raw bytes' view of the best checkpoint's weights (not re-masked by loading).
fn fine_tune_raw(checkpoint: &Checkpoint, masks_on: bool, tag: &str) -> safetensors_owned::Raw {
    let device = cpu_device().autodiff();
    device.seed(1);
    let options = TrainOptions {
        epochs: 1,
        learning_rate: 1e-2,
        batch_size: 4,
        max_batches_per_epoch: Some(3),
        masks: if masks_on {
            checkpoint.masks.clone()
        } else {
            Default::default()
        },
        ..TrainOptions::default()
    };
    let dir = common::scratch_dir(tag);
    let paths = CheckpointPaths::beside(&dir.join("tuned.safetensors"));
    fit(
        &checkpoint.config,
        checkpoint.build(&device).unwrap(),
        &slices(0..2),
        &slices(2..3),
        &options,
        TrainState::default(),
        &paths,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    safetensors_owned::Raw(std::fs::read(&paths.best).unwrap())
}

/// Reading tensors straight from safetensors bytes, bypassing our loader (which re-applies
/// masks and so could hide a training loop that lets masked weights grow back).
mod safetensors_owned {
    pub struct Raw(pub Vec<u8>);

    impl Raw {
        pub fn floats(&self, name: &str) -> Vec<f32> {
            let tensors = safetensors::SafeTensors::deserialize(&self.0).unwrap();
            let view = tensors.tensor(name).unwrap();
            view.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }

        pub fn has(&self, name: &str) -> bool {
            let tensors = safetensors::SafeTensors::deserialize(&self.0).unwrap();
            tensors.tensor(name).is_ok()
        }
    }
}

#[test]
fn masked_weights_stay_zero_through_fine_tuning() {
    let dense = small_model(Variant::Base, 5);
    let masked = prune_checkpoint(
        &dense,
        PruneMethod::Unstructured(UnstructuredMethod::L1Global),
        &Ratios::Uniform(0.5),
        None,
    )
    .unwrap();
    let kept = fine_tune_raw(&masked, true, "masks-kept");
    let free = fine_tune_raw(&masked, false, "masks-free");
    let (mut masked_nonzero_without, mut changed) = (0, 0);
    for (key, mask) in &masked.masks {
        assert!(kept.has(&format!("raagr2.mask.{key}")), "{key}: mask saved");
        let (with, without) = (kept.floats(key), free.floats(key));
        for (i, keep) in mask.keep.iter().enumerate() {
            if *keep {
                changed += usize::from(with[i] != masked.weights[key].values[i]);
            } else {
                assert_eq!(with[i], 0.0, "{key}[{i}] grew back under its mask");
                masked_nonzero_without += usize::from(without[i] != 0.0);
            }
        }
    }
    assert!(
        changed > 1000,
        "fine-tuning moved the kept weights ({changed})"
    );
    // Without the masks the same training revives pruned weights: the check above can fail.
    assert!(
        masked_nonzero_without > 1000,
        "control: {masked_nonzero_without}"
    );
}

#[test]
fn snip_masks_follow_gradient_times_weight_on_one_batch() {
    let dense = small_model(Variant::PairedShared, 9);
    let device = cpu_device().autodiff();
    let data = slices(0..1);
    let (inputs, targets) = data.batch(&[0, 1, 2, 3], &device);
    let batch = SnipBatch {
        inputs,
        targets,
        device,
    };
    let snip = PruneMethod::Unstructured(UnstructuredMethod::Snip);
    let masked = prune_checkpoint(&dense, snip, &Ratios::Uniform(0.5), Some(&batch)).unwrap();
    let magnitude = prune_checkpoint(
        &dense,
        PruneMethod::Unstructured(UnstructuredMethod::L1Global),
        &Ratios::Uniform(0.5),
        None,
    )
    .unwrap();
    let total = maskable_total(&dense);
    let removed: usize = masked.masks.values().map(|m| m.keep.len() - m.kept()).sum();
    assert_eq!(removed, (total as f64 * 0.5).round() as usize);
    assert_ne!(
        masked.masks, magnitude.masks,
        "SNIP ranks by gradient x weight, not |w|"
    );
    // A zero weight has zero saliency, so zeroing the lowest-magnitude weights and running SNIP
    // again on that model keeps them pruned.
    let again = prune_checkpoint(&magnitude, snip, &Ratios::Uniform(0.5), Some(&batch)).unwrap();
    for (key, mask) in &magnitude.masks {
        let kept_again = &again.masks[key].keep;
        assert!(
            mask.keep
                .iter()
                .zip(kept_again)
                .all(|(before, now)| *before || !*now)
        );
    }
}

/// Hooks that count calls: Dice is the fraction of conv weights kept (any deterministic
/// function of the model works for the schedule's bookkeeping), fine-tuning returns the model.
struct CountingHooks {
    evaluations: usize,
    fine_tunes: usize,
}

impl ScheduleHooks<Checkpoint> for CountingHooks {
    fn evaluate(&mut self, checkpoint: &Checkpoint) -> Result<RegionStats> {
        self.evaluations += 1;
        let kept = 1.0 - checkpoint.mask_sparsity();
        Ok(RegionStats::over(&[RegionScores::from_array([kept; 3])]))
    }

    fn fine_tune(&mut self, checkpoint: &Checkpoint, _step: usize) -> Result<Option<Checkpoint>> {
        self.fine_tunes += 1;
        Ok(Some(checkpoint.clone()))
    }
}

#[test]
fn iterative_and_layer_wise_schedules_reach_the_one_shot_sizes_step_by_step() {
    let dense = small_model(Variant::Base, 11);
    let l2 = PruneMethod::Structured(StructuredMethod::L2);
    let ratios = Ratios::Uniform(0.5);
    let one_shot = prune_checkpoint(&dense, l2, &ratios, None).unwrap();
    let groups = one_shot.config.plan.groups().len();
    for (schedule, steps) in [
        (Schedule::Iterative { steps: 3 }, 3),
        (Schedule::LayerWise, groups),
    ] {
        let mut hooks = CountingHooks {
            evaluations: 0,
            fine_tunes: 0,
        };
        let (last, records) =
            run_schedule(&dense, l2, &ratios, schedule, None, &mut hooks).unwrap();
        assert_eq!(records.len(), steps, "{schedule:?}");
        assert_eq!(hooks.fine_tunes, steps);
        assert_eq!(
            hooks.evaluations,
            2 * steps,
            "Dice before and after each fine-tune"
        );
        assert!(records.iter().all(|r| r.dice_fine_tuned.is_some()));
        assert_eq!(
            last.config.plan, one_shot.config.plan,
            "{schedule:?} ends at the same widths"
        );
        let params: Vec<usize> = records.iter().map(|r| r.params).collect();
        assert!(
            params.windows(2).all(|w| w[1] <= w[0]),
            "shrinks step by step: {params:?}"
        );
    }

    let l1 = PruneMethod::Unstructured(UnstructuredMethod::L1Global);
    let mut hooks = CountingHooks {
        evaluations: 0,
        fine_tunes: 0,
    };
    let schedule = Schedule::Iterative { steps: 4 };
    let (last, records) = run_schedule(&dense, l1, &ratios, schedule, None, &mut hooks).unwrap();
    let sparsity: Vec<f64> = records.iter().map(|r| r.dice_pruned.wt).collect();
    let expected = [0.875, 0.75, 0.625, 0.5];
    for (got, want) in sparsity.iter().zip(expected) {
        assert!(
            (got - want).abs() < 1e-3,
            "kept share per step: {sparsity:?}"
        );
    }
    assert!((last.mask_sparsity() - 0.5).abs() < 1e-3);

    let refused = run_schedule(
        &dense,
        l2,
        &Ratios::Global(0.5),
        Schedule::LayerWise,
        None,
        &mut hooks,
    );
    assert!(refused.unwrap_err().to_string().contains("global"));
}

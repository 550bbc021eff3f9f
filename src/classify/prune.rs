//! L1 unstructured pruning of the classifiers with the second document's schedules: one-shot,
//! iterative (10 % of the weights more at each step) and layer-wise (one layer at a time, in
//! forward order), each step followed by fine-tuning through the caller; sparsity measured over
//! the conv and linear weights (biases and batch norm excluded).

use anyhow::{Result, bail};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use serde::Serialize;

use super::model::ClassifierCheckpoint;
use crate::model::WeightMap;
use crate::model::layers::{LayerSite, LayerVisitor, VisitLayers, key};
use crate::prune::unstructured::{UnstructuredMethod, magnitude_scores_of, masks_from_scores};
use crate::prune::{Schedule, ScheduleHooks, ScheduledModel, ScoredStep, run_steps};

/// The share of the weights the classifiers' iterative schedule adds at each step, in percent.
pub const ITERATIVE_PERCENT: u32 = 10;

/// Where one L1 threshold applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// One threshold over every conv and linear weight (torch's `global_unstructured`).
    Global,
    /// Every layer loses the same share.
    PerLayer,
}

impl Scope {
    fn method(self) -> UnstructuredMethod {
        match self {
            Scope::Global => UnstructuredMethod::L1Global,
            Scope::PerLayer => UnstructuredMethod::L1,
        }
    }
}

/// The conv and linear weight keys of a classifier, in forward order.
pub fn weight_layers(checkpoint: &ClassifierCheckpoint) -> Vec<String> {
    let mut model = checkpoint.config.init(&crate::backend::cpu_device());
    let mut lister = WeightLister(Vec::new());
    model.visit_layers("", LayerSite::at(1), &mut lister);
    lister.0
}

struct WeightLister(Vec<String>);

impl LayerVisitor for WeightLister {
    fn conv(&mut self, name: &str, _conv: &mut Conv2d, _site: LayerSite) {
        self.0.push(key(name, "weight"));
    }

    fn norm(&mut self, _name: &str, _norm: &mut BatchNorm, _site: LayerSite) {}

    fn linear(&mut self, name: &str, _linear: &mut Linear) {
        self.0.push(key(name, "weight"));
    }
}

/// Share of exactly-zero values among the weights under `keys` (measured on the weights, not
/// read from the masks).
pub fn weight_sparsity(weights: &WeightMap, keys: &[String]) -> f64 {
    let (zeros, total) = keys.iter().fold((0usize, 0usize), |(z, t), k| {
        let values = &weights[k].values;
        (
            z + values.iter().filter(|v| **v == 0.0).count(),
            t + values.len(),
        )
    });
    zeros as f64 / total.max(1) as f64
}

/// Masks `ratio` of the weights under `keys` by magnitude (keeping what earlier masks removed)
/// and zeroes them.
fn prune_step(
    checkpoint: &mut ClassifierCheckpoint,
    keys: &[String],
    method: UnstructuredMethod,
    ratio: f64,
) -> Result<()> {
    let scores = magnitude_scores_of(&checkpoint.weights, keys);
    checkpoint.masks = masks_from_scores(&scores, method, ratio, &checkpoint.masks)?;
    crate::model::apply_masks(&mut checkpoint.weights, &checkpoint.masks)?;
    Ok(())
}

/// `dense` with `sparsity` of its conv and linear weights removed by L1 magnitude at once, not
/// fine-tuned (the app's live preview).
pub fn magnitude_pruned(
    dense: &ClassifierCheckpoint,
    sparsity: f64,
    scope: Scope,
) -> Result<ClassifierCheckpoint> {
    let mut pruned = dense.clone();
    pruned.metadata.clear();
    prune_step(&mut pruned, &weight_layers(dense), scope.method(), sparsity)?;
    Ok(pruned)
}

/// One pruning step: what it cut, the sparsity it reached, and accuracy before and after its
/// fine-tuning.
#[derive(Debug, Clone, Serialize)]
pub struct PruneStep {
    pub step: usize,
    pub label: String,
    pub sparsity: f64,
    pub top1_pruned: f64,
    pub top1_fine_tuned: Option<f64>,
}

impl ScheduledModel for ClassifierCheckpoint {
    /// Top-1 accuracy.
    type Score = f64;
    type Record = PruneStep;
}

/// The sparsity after each step of `schedule` towards `target` (layer-wise: the target in one
/// more layer each step, so the list holds the target once per layer).
pub fn step_targets(schedule: Schedule, target: f64, layers: usize) -> Vec<f64> {
    match schedule {
        Schedule::OneShot => vec![target],
        Schedule::Iterative { steps } => (1..=steps)
            .map(|s| target * s as f64 / steps as f64)
            .collect(),
        Schedule::Increments { percent } => {
            let increment = f64::from(percent) / 100.0;
            let steps = (target / increment - 1e-9).ceil().max(1.0) as usize;
            (1..=steps)
                .map(|s| (s as f64 * increment).min(target))
                .collect()
        }
        Schedule::LayerWise => vec![target; layers],
    }
}

/// Prunes `dense` to `target` sparsity by L1 magnitude following `schedule`; returns the final
/// checkpoint (masks kept in it) and one record per step.
pub fn run_schedule(
    dense: &ClassifierCheckpoint,
    target: f64,
    schedule: Schedule,
    scope: Scope,
    hooks: &mut dyn ScheduleHooks<ClassifierCheckpoint>,
) -> Result<(ClassifierCheckpoint, Vec<PruneStep>)> {
    if !(0.0..1.0).contains(&target) {
        bail!("sparsity {target} is outside [0, 1)");
    }
    let layers = weight_layers(dense);
    if let Schedule::Iterative { steps: 0 } | Schedule::Increments { percent: 0 } = schedule {
        bail!("an iterative schedule needs at least 1 step of more than 0 %");
    }
    let targets = step_targets(schedule, target, layers.len());
    let mut start = dense.clone();
    start.metadata.clear();
    let cut = |current: &ClassifierCheckpoint, step: usize| -> Result<_> {
        let (keys, method, label) = step_cut(schedule, scope, &layers, &targets, step);
        let mut pruned = current.clone();
        prune_step(&mut pruned, &keys, method, targets[step - 1])?;
        Ok((pruned, label))
    };
    let record = |scored: ScoredStep<ClassifierCheckpoint>| PruneStep {
        step: scored.step,
        label: scored.label,
        sparsity: weight_sparsity(&scored.model.weights, &layers),
        top1_pruned: scored.pruned,
        top1_fine_tuned: scored.fine_tuned,
    };
    run_steps(start, targets.len(), cut, hooks, record)
}

/// What step `step` (1-based) of `schedule` prunes: the weight keys, how, and its label.
fn step_cut(
    schedule: Schedule,
    scope: Scope,
    layers: &[String],
    targets: &[f64],
    step: usize,
) -> (Vec<String>, UnstructuredMethod, String) {
    match schedule {
        Schedule::LayerWise => {
            let layer = layers[step - 1].clone();
            let label = format!("layer {}", layer.trim_end_matches(".weight"));
            (vec![layer], UnstructuredMethod::L1, label)
        }
        Schedule::OneShot => (layers.to_vec(), scope.method(), "one-shot".to_string()),
        Schedule::Iterative { .. } | Schedule::Increments { .. } => {
            let percent = targets[step - 1] * 100.0;
            let label = format!("step {step}/{} ({percent:.0} %)", targets.len());
            (layers.to_vec(), scope.method(), label)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::densenet::DenseNetConfig;
    use crate::classify::model::{ClassifierCheckpoint, ClassifierConfig};

    /// Scores nothing and never fine-tunes: only the masks are exercised.
    struct NoTraining(usize);

    impl ScheduleHooks<ClassifierCheckpoint> for NoTraining {
        fn evaluate(&mut self, _checkpoint: &ClassifierCheckpoint) -> Result<f64> {
            self.0 += 1;
            Ok(0.0)
        }

        fn fine_tune(
            &mut self,
            _checkpoint: &ClassifierCheckpoint,
            _step: usize,
        ) -> Result<Option<ClassifierCheckpoint>> {
            Ok(None)
        }
    }

    fn tiny_densenet() -> ClassifierCheckpoint {
        let config = ClassifierConfig::Densenet(DenseNetConfig {
            growth: 4,
            blocks: vec![2, 2],
            init_features: 8,
            bn_size: 2,
            classes: 5,
        });
        let device = crate::backend::cpu_device();
        device.seed(1);
        ClassifierCheckpoint::from_model(&config, &config.init(&device))
    }

    #[test]
    fn every_schedule_reaches_its_target_sparsity_and_keeps_masks() {
        let dense = tiny_densenet();
        let layers = weight_layers(&dense);
        assert_eq!(
            layers.first().map(String::as_str),
            Some("features.conv0.weight")
        );
        assert_eq!(layers.last().map(String::as_str), Some("classifier.weight"));
        assert!(weight_sparsity(&dense.weights, &layers) < 0.001);
        for schedule in [
            Schedule::OneShot,
            Schedule::Iterative { steps: 3 },
            Schedule::Increments {
                percent: ITERATIVE_PERCENT,
            },
            Schedule::LayerWise,
        ] {
            for scope in [Scope::Global, Scope::PerLayer] {
                for target in [0.5, 0.8] {
                    let mut hooks = NoTraining(0);
                    let (pruned, steps) =
                        run_schedule(&dense, target, schedule, scope, &mut hooks).unwrap();
                    let sparsity = weight_sparsity(&pruned.weights, &layers);
                    assert!(
                        (sparsity - target).abs() < 0.005,
                        "{schedule:?} {scope:?} {target}: {sparsity}"
                    );
                    assert!((pruned.mask_sparsity() - sparsity).abs() < 1e-9);
                    assert_eq!(
                        steps.len(),
                        step_targets(schedule, target, layers.len()).len()
                    );
                    // Sparsity never falls from one step to the next.
                    assert!(
                        steps
                            .windows(2)
                            .all(|w| w[1].sparsity >= w[0].sparsity - 1e-12)
                    );
                }
            }
        }
    }

    #[test]
    fn global_scope_prunes_layers_unevenly_and_per_layer_evenly() {
        let dense = tiny_densenet();
        let layers = weight_layers(&dense);
        let share = |scope| {
            let (pruned, _) =
                run_schedule(&dense, 0.5, Schedule::OneShot, scope, &mut NoTraining(0)).unwrap();
            layers
                .iter()
                .map(|k| weight_sparsity(&pruned.weights, std::slice::from_ref(k)))
                .collect::<Vec<f64>>()
        };
        assert!(
            share(Scope::PerLayer)
                .iter()
                .all(|s| (s - 0.5).abs() < 0.05)
        );
        let global = share(Scope::Global);
        let spread =
            global.iter().cloned().fold(0.0, f64::max) - global.iter().cloned().fold(1.0, f64::min);
        assert!(
            spread > 0.1,
            "one threshold over layers of different scales: {global:?}"
        );
    }

    #[test]
    fn iterative_steps_add_ten_percent_up_to_the_target() {
        let steps = step_targets(
            Schedule::Increments {
                percent: ITERATIVE_PERCENT,
            },
            0.5,
            3,
        );
        let expected = [0.1, 0.2, 0.3, 0.4, 0.5];
        assert_eq!(steps.len(), expected.len());
        for (s, e) in steps.iter().zip(expected) {
            assert!((s - e).abs() < 1e-12, "{steps:?}");
        }
        assert_eq!(
            step_targets(
                Schedule::Increments {
                    percent: ITERATIVE_PERCENT,
                },
                0.8,
                3
            )
            .len(),
            8
        );
        assert_eq!(
            step_targets(
                Schedule::Increments {
                    percent: ITERATIVE_PERCENT,
                },
                0.25,
                3
            )
            .last(),
            Some(&0.25)
        );
        assert_eq!(step_targets(Schedule::LayerWise, 0.5, 3), vec![0.5; 3]);
    }
}

//! The app's embedded classifier demo: a small VGG11-BN trained on the CIFAR-format stand-in,
//! and that stand-in's held-out images, regenerated in memory (no files, no download).

use std::path::Path;

use super::cifar::{self, CifarStandIn};
use super::images::ImageSet;
use super::model::ClassifierCheckpoint;

/// The stand-in the demo model was trained on (`classify stand-in --classes 10
/// --train-per-class 300 --test-per-class 100 --seed 0`).
pub const DEMO_STAND_IN: CifarStandIn = CifarStandIn {
    classes: 10,
    train_per_class: 300,
    test_per_class: 100,
    seed: 0,
};
/// How the embedded model was made (the book's docs/guide/classifiers.md gives the same commands).
pub const DEMO_MODEL_COMMAND: &str = "raagr2-lab classify train --data cifar_standin --arch vgg11-bn \
     --width-divisor 8 --epochs 30 --seed 0 -o classifier_demo.safetensors";
pub const DEMO_MODEL_NAME: &str = "embedded classifier demo";

const DEMO_MODEL_BYTES: &[u8] = include_bytes!("../../assets/classifier_demo.safetensors");

/// The embedded demo model.
pub fn demo_checkpoint() -> ClassifierCheckpoint {
    ClassifierCheckpoint::from_bytes(Path::new(DEMO_MODEL_NAME), DEMO_MODEL_BYTES)
        .expect("the embedded classifier demo is a valid checkpoint (tested)")
}

/// The first `per_class` held-out images of every class, and the class names.
pub fn demo_images(per_class: usize) -> (ImageSet, Vec<String>) {
    let test = cifar::stand_in_test(CifarStandIn {
        test_per_class: per_class.min(DEMO_STAND_IN.test_per_class),
        ..DEMO_STAND_IN
    });
    let names = (0..cifar::FINE_CLASSES)
        .map(cifar::stand_in_class_name)
        .collect();
    (test.images, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_model_loads_and_beats_chance_on_its_held_out_images() {
        let checkpoint = demo_checkpoint();
        let (images, names) = demo_images(10);
        assert_eq!(images.len(), 100);
        assert_eq!(names.len(), checkpoint.config.classes());
        let device = crate::backend::cpu_device();
        let model = checkpoint.build(&device).unwrap();
        let e = crate::classify::train::evaluate(&model, &images, names.len(), 50, &device);
        assert!(e.top1 > 0.8, "demo top-1 {} (chance 0.1)", e.top1);
    }
}

//! The second study: image classifiers (VGG, DenseNet), their data (CIFAR-100, HAM10000),
//! training, evaluation and L1 pruning schedules.

pub mod cifar;
pub mod data;
pub mod demo;
pub mod densenet;
pub mod ham10000;
pub mod images;
pub mod import;
pub mod metrics;
pub mod model;
pub mod prune;
pub mod structured;
pub mod train;
pub mod vgg;

pub use model::{Architecture, Classifier, ClassifierCheckpoint, ClassifierConfig, HeadKind};

//! The second study: image classifiers and their data (CIFAR-100 so far).

pub mod cifar;

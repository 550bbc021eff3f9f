//! The second study: image classifiers and their data (CIFAR-100 and HAM10000 so far).

pub mod cifar;
pub mod ham10000;
pub mod images;

//! raagr2-lab: an interactive pruning lab for RAAGR2-Net brain-tumour segmentation.

pub mod analysis;
pub mod atomic;
pub mod backend;
pub mod baseline;
pub mod bench;
pub mod classify;
pub mod cli;
pub mod data;
pub mod defaults;
pub mod export;
pub mod inference;
pub mod lesson;
pub mod metrics;
pub mod model;
pub mod montage;
pub mod plan_tree;
pub mod plot;
pub mod precision;
pub mod prune;
pub mod render;
pub mod report;
pub mod timing;
pub mod train;
pub mod ui;
pub mod util;
pub mod worker;

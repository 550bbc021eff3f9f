//! The integration tests, one module per area, all compiled into the single `tests/main.rs`
//! binary.

mod app;
mod checkpoint_roundtrip;
mod classifiers;
mod cli;
mod cpu_kernels;
mod docs;
mod explore;
mod lesson;
mod masks;
mod nifti_inputs;
mod parity;
mod pipeline;
mod pruning;
mod score;
mod training;

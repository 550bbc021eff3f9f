//! Every integration test in one binary (each test binary links burn, wgpu and eframe again).
//! The wgpu check is the exception, `tests/wgpu.rs`: it must run on the main thread.

mod common;

mod app;
mod checkpoint_roundtrip;
mod cli;
mod masks;
mod nifti_inputs;
mod parity;
mod pipeline;
mod pruning;
mod score;
mod training;

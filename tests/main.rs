//! Every integration test in one binary (each test binary links burn, wgpu and eframe again):
//! the modules live in `tests/suite/`, with shared helpers in `tests/common/`. The wgpu check is
//! the one exception, `tests/wgpu.rs`: it must run on the main thread, outside libtest.

mod common;
mod suite;

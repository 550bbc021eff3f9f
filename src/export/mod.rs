//! Models taken out of the project: the network as an ONNX graph for deployment runtimes.

pub mod onnx;

pub use onnx::{OnnxPrecision, onnx_bytes};

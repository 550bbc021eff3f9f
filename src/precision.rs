//! The number formats a model is exported and scored in, and the network each one computes:
//! `eval`, `prune`, `sweep` and the study score a precision with the same simulation that the
//! export writes, so a Dice reported for INT8 is the Dice of the INT8 file.

use std::sync::OnceLock;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::dataset::PreparedCase;
use crate::data::dataset::synthetic_case;
use crate::inference::{brain_window, slice_batch};
use crate::model::quantize::{QuantizedNet, WeightRounding};
use crate::model::{Raagr2Net, Segmenter};

/// The number format of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    #[default]
    Fp32,
    /// Half precision: weights stored in f16 (checkpoint, state_dict); the ONNX graph computes
    /// in f16 between its float32 input and output.
    Fp16,
    /// Static INT8 (ONNX only): weights as 8-bit codes with one symmetric scale per output
    /// channel, every stored activation on an 8-bit grid calibrated on tumour slices of
    /// generated cases, written as QuantizeLinear/DequantizeLinear pairs that runtimes fuse
    /// into integer kernels; the logits and the final sigmoid stay float.
    Int8,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Fp16, Precision::Int8];

    /// The spelling on the command line and in the app.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }

    /// The network an export of `model` in this precision computes (folded; fp16: weights
    /// rounded, activations not simulated; int8: calibrated on [`calibration_batches`]).
    pub fn simulate(self, model: &Raagr2Net) -> SimulatedNet {
        match self {
            Precision::Fp32 => SimulatedNet::Float(model.folded()),
            Precision::Fp16 => {
                SimulatedNet::Float(model.with_rounded_weights(WeightRounding::Half))
            }
            Precision::Int8 => {
                let device = model.head.weight.device();
                SimulatedNet::Int8(QuantizedNet::calibrate(
                    model,
                    &calibration_batches(&device),
                ))
            }
        }
    }
}

/// A model as a precision computes it.
#[derive(Debug, Clone)]
pub enum SimulatedNet {
    Float(Raagr2Net),
    Int8(QuantizedNet),
}

impl Segmenter for SimulatedNet {
    fn prepared(&self) -> SimulatedNet {
        match self {
            SimulatedNet::Float(net) => SimulatedNet::Float(net.prepared()),
            SimulatedNet::Int8(net) => SimulatedNet::Int8(net.prepared()),
        }
    }

    fn segment(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            SimulatedNet::Float(net) => net.segment(x),
            SimulatedNet::Int8(net) => net.segment(x),
        }
    }
}

/// Seed of the generated case INT8 activations are calibrated on: apart from the training
/// cases (seeds from 0) and the held-out ones (from 10 000).
pub const CALIBRATION_SEED: u64 = 20_000;
/// Tumour slices calibrated on, and how many go through the network at once.
pub const CALIBRATION_SLICES: usize = 16;
const CALIBRATION_BATCH: usize = 8;

/// The calibration set of static INT8: [`CALIBRATION_SLICES`] tumour slices spread evenly over
/// the generated case [`CALIBRATION_SEED`], in batches, over the brain window whole-volume
/// inference uses. Deterministic: an export and `eval --precision int8` calibrate alike. The
/// case is generated once per process (a sweep calibrates every point).
pub fn calibration_batches(device: &Device) -> Vec<Tensor<4>> {
    static SLICES: OnceLock<Vec<TensorData>> = OnceLock::new();
    SLICES
        .get_or_init(|| {
            let case = synthetic_case(CALIBRATION_SEED);
            let tumour = tumour_slices(&case);
            let picked: Vec<usize> = (0..CALIBRATION_SLICES)
                .filter_map(|k| tumour.get(k * tumour.len() / CALIBRATION_SLICES))
                .copied()
                .collect();
            let window = brain_window(&case);
            let cpu = crate::backend::cpu_device();
            picked
                .chunks(CALIBRATION_BATCH)
                .map(|zs| slice_batch(&case, zs, window, &cpu).into_data())
                .collect()
        })
        .iter()
        .map(|data| Tensor::from_data(data.clone(), device))
        .collect()
}

/// The axial slices of `case` with tumour in its segmentation, ascending.
fn tumour_slices(case: &PreparedCase) -> Vec<usize> {
    let per_slice = case.dims[0] * case.dims[1];
    let Some(regions) = &case.regions else {
        return Vec::new();
    };
    (0..case.dims[2])
        .filter(|&z| {
            regions[z * per_slice..(z + 1) * per_slice]
                .iter()
                .any(|r| *r != 0)
        })
        .collect()
}

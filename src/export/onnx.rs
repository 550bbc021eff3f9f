//! RAAGR2-Net as an ONNX graph, written by this project: the folded inference network (every
//! variant, any channel plan), one float32 input `N x 4 x H x W` and one output `N x C x H x W`
//! of per-region probabilities, dynamic batch and spatial size, opset 17.
//!
//! The nodes are the operations of [`crate::model::graph`], the walk the quantized forward
//! evaluates too: batch norms are folded into the convolutions first, dropout is the identity
//! in inference, the decoder's upsampling is `Resize` (linear, `align_corners`), and the sigmoid
//! of the head is kept, so a runtime's output equals this project's `forward`. In INT8 every
//! stored activation becomes a `QuantizeLinear`/`DequantizeLinear` pair on its calibrated
//! uint8 grid, weights are int8 codes with per-channel scales and biases int32 codes, the
//! pattern ONNX Runtime fuses into integer convolutions.

use anyhow::{Context, Result, bail};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_proto::DataType, tensor_shape_proto, type_proto,
};

use crate::model::graph::{GraphOps, Grid, logits};
use crate::model::quantize::{ActivationGrid, QuantizedNet, quantize_per_channel};
use crate::model::{Checkpoint, Raagr2Net};
use crate::precision::{Precision, calibration_batches};

/// The ONNX operator set the graph is written for (Resize with `align_corners`, opset 13+).
pub const ONNX_OPSET: i64 = 17;
/// The ONNX IR version of that opset's release.
const IR_VERSION: i64 = 8;
/// Names of the graph's input and output, as runtimes show them.
pub const INPUT_NAME: &str = "mri";
pub const OUTPUT_NAME: &str = "probabilities";

/// The checkpoint's network as the bytes of an `.onnx` file in `precision` (INT8 calibrates
/// on [`calibration_batches`], as `eval --precision int8` does).
pub fn onnx_bytes(checkpoint: &Checkpoint, precision: Precision) -> Result<Vec<u8>> {
    let device = crate::backend::cpu_device();
    let model = checkpoint
        .build(&device)
        .context("building the network from the checkpoint")?;
    let (folded, numbers) = match precision {
        Precision::Fp32 => (model.folded(), Numbers::F32),
        Precision::Fp16 => (model.folded(), Numbers::F16),
        Precision::Int8 => {
            let quantized = QuantizedNet::calibrate(&model, &calibration_batches(&device));
            let grids = quantized.grids().to_vec();
            (quantized.net().clone(), Numbers::Int8 { grids })
        }
    };
    graph_bytes(&folded, numbers, checkpoint)
}

/// The bytes of the graph of the folded network `model` in `numbers`.
fn graph_bytes(model: &Raagr2Net, numbers: Numbers, checkpoint: &Checkpoint) -> Result<Vec<u8>> {
    let mut graph = GraphWriter::new(numbers);
    let input = graph.entry();
    let logits = logits(model, &mut graph, input)?;
    let probabilities = graph.node("Sigmoid", &[&logits.name], vec![]);
    graph.exit(&probabilities);
    let classes = checkpoint.config.head.classes();
    let model_proto = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: ONNX_OPSET,
            ..Default::default()
        }],
        producer_name: "raagr2-lab".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "RAAGR2-Net ({}), batch norms folded; input {INPUT_NAME}: N x 4 x H x W float32 \
             (H, W multiples of 16); output {OUTPUT_NAME}: N x {classes} x H x W per-region \
             probabilities (sigmoid applied)",
            checkpoint.config.variant.name()
        ),
        graph: Some(graph.finish(classes)).into(),
        ..Default::default()
    };
    model_proto
        .write_to_bytes()
        .context("encoding the ONNX protobuf")
}

/// How the graph stores numbers.
enum Numbers {
    /// Float32 throughout.
    F32,
    /// Weights and activations in float16: the float32 input is cast to half on entry and the
    /// probabilities back to float32 on exit, so callers feed and read float32 either way.
    F16,
    /// Static INT8 with each stored activation's grid, in walk order.
    Int8 { grids: Vec<ActivationGrid> },
}

/// A value of the graph: its name, and the uint8 grid it was dequantized from (INT8 only).
#[derive(Debug, Clone)]
struct OnnxValue {
    name: String,
    grid: Option<ActivationGrid>,
}

impl OnnxValue {
    fn float(name: String) -> OnnxValue {
        OnnxValue { name, grid: None }
    }
}

/// Builds the node list and the initializers, naming every value uniquely.
struct GraphWriter {
    numbers: Numbers,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next_id: usize,
    /// How many calibrated activations the walk has passed (INT8).
    next_grid: usize,
}

impl GraphWriter {
    fn new(numbers: Numbers) -> GraphWriter {
        GraphWriter {
            numbers,
            nodes: Vec::new(),
            initializers: Vec::new(),
            next_id: 0,
            next_grid: 0,
        }
    }

    /// A new value name: a short stem and a number (names are repeated wherever a value is
    /// used, so short ones keep a small INT8 file small).
    fn fresh(&mut self, stem: &str) -> String {
        self.next_id += 1;
        format!("{stem}{}", self.next_id)
    }

    /// Adds one node of `op` over `inputs` and returns the name of its (single) output.
    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let output = self.fresh("v");
        // Nodes go unnamed (their outputs are named): a third of a small INT8 file would
        // otherwise be names.
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
        output
    }

    /// The float value of node `op` over `inputs`.
    fn float_node(
        &mut self,
        op: &str,
        inputs: &[&OnnxValue],
        attrs: Vec<AttributeProto>,
    ) -> OnnxValue {
        let names: Vec<&str> = inputs.iter().map(|v| v.name.as_str()).collect();
        OnnxValue::float(self.node(op, &names, attrs))
    }

    /// The graph's input, cast to the working precision.
    fn entry(&mut self) -> OnnxValue {
        match self.numbers {
            Numbers::F32 | Numbers::Int8 { .. } => OnnxValue::float(INPUT_NAME.to_string()),
            Numbers::F16 => OnnxValue::float(self.node(
                "Cast",
                &[INPUT_NAME],
                vec![int_attr("to", DataType::FLOAT16 as i64)],
            )),
        }
    }

    /// Names `value` as the graph's output, cast back to float32.
    fn exit(&mut self, value: &str) {
        let (op, attrs) = match self.numbers {
            Numbers::F32 | Numbers::Int8 { .. } => ("Identity", vec![]),
            Numbers::F16 => ("Cast", vec![int_attr("to", DataType::FLOAT as i64)]),
        };
        self.nodes.push(NodeProto {
            input: vec![value.to_string()],
            output: vec![OUTPUT_NAME.to_string()],
            name: OUTPUT_NAME.to_string(),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
    }

    fn finish(self, classes: usize) -> GraphProto {
        let io = |name: &str, channels: i64| ValueInfoProto {
            name: name.to_string(),
            type_: Some(float_tensor_type(channels)).into(),
            ..Default::default()
        };
        GraphProto {
            node: self.nodes,
            name: "raagr2_net".into(),
            initializer: self.initializers,
            input: vec![io(INPUT_NAME, 4)],
            output: vec![io(OUTPUT_NAME, classes as i64)],
            ..Default::default()
        }
    }

    /// An initializer of `data_type` holding `raw_data`.
    fn initializer(
        &mut self,
        stem: &str,
        data_type: DataType,
        dims: &[usize],
        raw_data: Vec<u8>,
    ) -> String {
        let name = self.fresh(stem);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type as i32,
            name: name.clone(),
            raw_data,
            ..Default::default()
        });
        name
    }

    /// A weight as an initializer in the working float precision.
    fn weight(&mut self, stem: &str, tensor_values: &[f32], dims: &[usize]) -> String {
        match self.numbers {
            Numbers::F16 => {
                let raw = tensor_values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect();
                self.initializer(stem, DataType::FLOAT16, dims, raw)
            }
            Numbers::F32 | Numbers::Int8 { .. } => self.float32(stem, tensor_values, dims),
        }
    }

    /// A float32 initializer whatever the precision (scales are float32 in every graph).
    fn float32(&mut self, stem: &str, values: &[f32], dims: &[usize]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(stem, DataType::FLOAT, dims, raw)
    }

    /// `DequantizeLinear(codes, scales)` along axis 0 of per-channel codes (zero points left
    /// out: 0, the default).
    fn dequantize_per_channel(&mut self, codes: String, scales: &[f32]) -> String {
        let scale = self.float32("s", scales, &[scales.len()]);
        self.node(
            "DequantizeLinear",
            &[&codes, &scale],
            vec![int_attr("axis", 0)],
        )
    }

    /// A convolution's weights as INT8 codes with per-output-channel scales, and the
    /// `DequantizeLinear` that turns them back into float32; returns it and the scales.
    fn int8_weight(&mut self, tensor_values: &[f32], dims: &[usize]) -> (String, Vec<f32>) {
        let (codes, scales) = quantize_per_channel(tensor_values, dims[0]);
        let raw = codes.iter().map(|c| *c as u8).collect();
        let name = self.initializer("w", DataType::INT8, dims, raw);
        let dequantized = self.dequantize_per_channel(name, &scales);
        (dequantized, scales)
    }

    /// A bias as int32 codes of `input scale x weight scale` per channel (how integer
    /// convolutions take it), dequantized.
    fn int32_bias(&mut self, bias: &[f32], input_scale: f32, weight_scales: &[f32]) -> String {
        let steps: Vec<f32> = weight_scales.iter().map(|w| w * input_scale).collect();
        let raw = bias
            .iter()
            .zip(&steps)
            .flat_map(|(b, step)| ((b / step).round_ties_even() as i32).to_le_bytes())
            .collect();
        let name = self.initializer("b", DataType::INT32, &[bias.len()], raw);
        self.dequantize_per_channel(name, &steps)
    }

    /// A convolution node with "same" padding for its kernel and `dilation`.
    fn write_conv(&mut self, conv: &Conv2d, x: &OnnxValue, dilation: usize) -> Result<OnnxValue> {
        let dims = conv.weight.dims();
        let weight_values = values(conv.weight.val())?;
        let bias_values = match &conv.bias {
            Some(b) => Some(values(b.val())?),
            None => None,
        };
        let int8 = matches!(self.numbers, Numbers::Int8 { .. });
        let (weight, bias) = match (int8, x.grid) {
            (true, Some(grid)) => {
                let (weight, scales) = self.int8_weight(&weight_values, &dims);
                let bias = bias_values.map(|b| self.int32_bias(&b, grid.scale, &scales));
                (weight, bias)
            }
            _ => {
                let weight = self.weight("w", &weight_values, &dims);
                let bias = bias_values.map(|b| self.weight("b", &b, &[b.len()]));
                (weight, bias)
            }
        };
        let [kh, kw] = conv.kernel_size;
        if conv.stride != [1, 1] || kh != kw {
            bail!("only square stride-1 convolutions occur in this network");
        }
        let pad = (dilation * (kh - 1) / 2) as i64;
        let mut inputs = vec![x.name.as_str(), weight.as_str()];
        if let Some(b) = &bias {
            inputs.push(b);
        }
        let attrs = vec![
            ints_attr("kernel_shape", &[kh as i64, kw as i64]),
            ints_attr("dilations", &[dilation as i64; 2]),
            ints_attr("pads", &[pad; 4]),
            ints_attr("strides", &[1, 1]),
            int_attr("group", conv.groups as i64),
        ];
        Ok(OnnxValue::float(self.node("Conv", &inputs, attrs)))
    }

    /// `QuantizeLinear` then `DequantizeLinear` of `x` on `grid`.
    fn quantize(&mut self, x: &OnnxValue, grid: ActivationGrid) -> OnnxValue {
        let scale = self.float32("s", &[grid.scale], &[]);
        let zero = self.initializer("z", DataType::UINT8, &[], vec![grid.zero_point]);
        let codes = self.node("QuantizeLinear", &[&x.name, &scale, &zero], vec![]);
        let name = self.node("DequantizeLinear", &[&codes, &scale, &zero], vec![]);
        OnnxValue {
            name,
            grid: Some(grid),
        }
    }
}

impl GraphOps for GraphWriter {
    type Value = OnnxValue;
    type Error = anyhow::Error;

    fn conv(&mut self, conv: &Conv2d, x: &OnnxValue, dilation: usize) -> Result<OnnxValue> {
        self.write_conv(conv, x, dilation)
    }

    fn head(&mut self, conv: &Conv2d, x: &OnnxValue) -> Result<OnnxValue> {
        self.write_conv(conv, x, conv.dilation[0])
    }

    fn relu(&mut self, x: &OnnxValue) -> OnnxValue {
        self.float_node("Relu", &[x], vec![])
    }

    fn sigmoid(&mut self, x: &OnnxValue) -> OnnxValue {
        self.float_node("Sigmoid", &[x], vec![])
    }

    fn add(&mut self, a: &OnnxValue, b: &OnnxValue) -> OnnxValue {
        self.float_node("Add", &[a, b], vec![])
    }

    fn mul(&mut self, a: &OnnxValue, b: &OnnxValue) -> OnnxValue {
        self.float_node("Mul", &[a, b], vec![])
    }

    fn concat(&mut self, parts: &[OnnxValue]) -> OnnxValue {
        let refs: Vec<&OnnxValue> = parts.iter().collect();
        self.float_node("Concat", &refs, vec![int_attr("axis", 1)])
    }

    fn max_pool(&mut self, x: &OnnxValue) -> OnnxValue {
        let attrs = vec![
            ints_attr("kernel_shape", &[2, 2]),
            ints_attr("strides", &[2, 2]),
        ];
        self.float_node("MaxPool", &[x], attrs)
    }

    fn upsample(&mut self, x: &OnnxValue) -> OnnxValue {
        let scales = self.float32("r", &[1.0, 1.0, 2.0, 2.0], &[4]);
        let attrs = vec![
            string_attr("mode", "linear"),
            string_attr("coordinate_transformation_mode", "align_corners"),
        ];
        // Inputs: X, roi (absent: an empty name), scales.
        OnnxValue::float(self.node("Resize", &[&x.name, "", &scales], attrs))
    }

    fn activation(&mut self, x: OnnxValue, grid: Grid<'_, OnnxValue>) -> OnnxValue {
        let Numbers::Int8 { grids } = &self.numbers else {
            return x;
        };
        let grid = match grid {
            Grid::Calibrated => {
                self.next_grid += 1;
                grids.get(self.next_grid - 1).copied()
            }
            Grid::SameAs(source) => source.grid,
            Grid::Probability => Some(ActivationGrid::PROBABILITY),
        };
        match grid {
            Some(grid) => self.quantize(&x, grid),
            None => x,
        }
    }
}

/// A tensor's values, row-major, as f32.
fn values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading a weight: {e:?}"))
}

/// `N x channels x H x W` float32, with the batch and spatial sizes left symbolic.
fn float_tensor_type(channels: i64) -> TypeProto {
    use tensor_shape_proto::{Dimension, dimension::Value};
    let symbolic = |name: &str| Dimension {
        value: Some(Value::DimParam(name.into())),
        ..Default::default()
    };
    let fixed = |n: i64| Dimension {
        value: Some(Value::DimValue(n)),
        ..Default::default()
    };
    TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: DataType::FLOAT as i32,
            shape: Some(TensorShapeProto {
                dim: vec![symbolic("N"), fixed(channels), symbolic("H"), symbolic("W")],
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i: value,
        ..Default::default()
    }
}

fn ints_attr(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INTS.into(),
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn string_attr(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::STRING.into(),
        s: value.as_bytes().to_vec(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::backend::cpu_device;
    use crate::model::{Head, ModelConfig, Variant};
    use crate::util::rng::SplitMix64;

    /// Runs an exported graph with tract (a pure-Rust ONNX runtime) on `input` of `shape`.
    fn run_with_tract(bytes: &[u8], input: &[f32], shape: [usize; 4]) -> Vec<f32> {
        // In this function's scope only: tract's prelude has its own `Tensor`.
        use tract_onnx::prelude::*;
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .expect("tract reads the graph")
            .with_input_fact(0, f32::fact(shape).into())
            .expect("input fact")
            .into_optimized()
            .expect("tract optimises the graph")
            .into_runnable()
            .expect("runnable");
        let x = tract_ndarray::Array4::from_shape_vec(shape, input.to_vec()).unwrap();
        let outputs = model
            .run(tvec!(Tensor::from(x).into()))
            .expect("tract runs");
        outputs[0]
            .to_plain_array_view::<f32>()
            .expect("float32 output")
            .iter()
            .copied()
            .collect()
    }

    /// A checkpoint of `variant` with every channel group cut to a random width (a pruned plan)
    /// and norms that have statistics to fold.
    fn random_plan_checkpoint(variant: Variant, seed: u64) -> Checkpoint {
        let base = ModelConfig::with_width_multiplier(variant, Head::Regions3, 0.125);
        let mut rng = SplitMix64::new(seed);
        let widths: Vec<usize> = base
            .plan
            .groups()
            .iter()
            .map(|(_, w)| 1 + (rng.next_u64() as usize) % w)
            .collect();
        let config = ModelConfig::new(
            variant,
            Head::Regions3,
            base.plan.with_group_widths(&widths),
        );
        let device = cpu_device();
        device.seed(seed);
        let mut checkpoint = Checkpoint::from_model(&config, &config.init(&device));
        crate::model::fold::give_norms_statistics(&mut checkpoint);
        checkpoint
    }

    fn project_forward(checkpoint: &Checkpoint, input: &[f32], shape: [usize; 4]) -> Vec<f32> {
        let device = cpu_device();
        let model = checkpoint.build(&device).unwrap();
        let x =
            burn::tensor::Tensor::<4>::from_data(TensorData::new(input.to_vec(), shape), &device);
        model.forward(x).into_data().try_to_vec::<f32>().unwrap()
    }

    fn random_input(shape: [usize; 4], seed: u64) -> Vec<f32> {
        let device = cpu_device();
        device.seed(seed);
        burn::tensor::Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn the_exported_graph_computes_the_projects_forward_for_every_variant_and_random_widths() {
        for (k, variant) in [
            Variant::Base,
            Variant::DepthwiseShared,
            Variant::PairedShared,
        ]
        .into_iter()
        .enumerate()
        {
            let checkpoint = random_plan_checkpoint(variant, 11 + k as u64);
            let bytes = onnx_bytes(&checkpoint, Precision::Fp32).unwrap();
            // Two batch and spatial sizes through the one graph: both are dynamic.
            for shape in [[2, 4, 32, 32], [1, 4, 48, 64]] {
                let input = random_input(shape, 5);
                let ours = project_forward(&checkpoint, &input, shape);
                let theirs = run_with_tract(&bytes, &input, shape);
                let [_, _, h, w] = shape;
                assert_eq!(
                    theirs.len(),
                    shape[0] * 3 * h * w,
                    "{variant:?}: N x 3 x H x W"
                );
                let diff = crate::analysis::max_abs_diff(&ours, &theirs);
                assert!(diff <= 1e-4, "{variant:?} {shape:?}: differs by {diff}");
            }
        }
    }

    #[test]
    fn a_half_precision_graph_is_half_the_size_and_close_to_the_forward() {
        let checkpoint = crate::defaults::default_checkpoint();
        let full = onnx_bytes(&checkpoint, Precision::Fp32).unwrap();
        let half = onnx_bytes(&checkpoint, Precision::Fp16).unwrap();
        let ratio = half.len() as f64 / full.len() as f64;
        assert!((0.45..0.6).contains(&ratio), "fp16 / fp32 size {ratio}");
        let shape = [1, 4, 64, 64];
        let input = random_input(shape, 9);
        let ours = project_forward(&checkpoint, &input, shape);
        let theirs = run_with_tract(&half, &input, shape);
        let diff = crate::analysis::max_abs_diff(&ours, &theirs);
        // Probabilities in [0, 1] through about 60 layers in half precision.
        assert!(diff <= 0.05, "fp16 differs by {diff}");
        assert!(diff > 0.0, "fp16 rounding must show somewhere");
    }

    #[test]
    fn a_static_int8_graph_is_under_a_third_of_the_size_and_computes_the_simulated_forward() {
        // Size on the default model (a tiny random plan is mostly biases and scales).
        let default = crate::defaults::default_checkpoint();
        let full = onnx_bytes(&default, Precision::Fp32).unwrap();
        let int8 = onnx_bytes(&default, Precision::Int8).unwrap();
        let ratio = int8.len() as f64 / full.len() as f64;
        assert!(ratio <= 0.3, "int8 / fp32 size {ratio}");
        // The graph computes what `eval --precision int8` scores, on a real slice batch.
        let device = cpu_device();
        let batch = crate::precision::calibration_batches(&device).remove(1);
        let shape: [usize; 4] = batch.dims();
        let input = batch.clone().into_data().try_to_vec::<f32>().unwrap();
        let simulated =
            crate::precision::Precision::Int8.simulate(&default.build(&device).unwrap());
        let simulated = crate::model::Segmenter::segment(&simulated, batch)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let theirs = run_with_tract(&int8, &input, shape);
        // A value on a rounding boundary may land one 8-bit step apart in another runtime's
        // accumulation order; the probabilities agree closely all the same.
        let mean = mean_abs_diff(&simulated, &theirs);
        let apart = simulated
            .iter()
            .zip(&theirs)
            .filter(|(a, b)| (*a - *b).abs() > 0.05)
            .count() as f32
            / theirs.len() as f32;
        assert!(
            mean <= 1e-3 && apart <= 1e-3,
            "int8 graph vs simulation: mean {mean}, share over 0.05 apart {apart}"
        );
        // The rounding is real: the float forward differs.
        let float = project_forward(&default, &input, shape);
        assert!(mean_abs_diff(&float, &theirs) > 1e-5);
    }

    fn mean_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
    }
}

//! RAAGR2-Net as an ONNX graph, written by this project: the folded inference network (every
//! variant, any channel plan), one float32 input `N x 4 x H x W` and one output `N x C x H x W`
//! of per-region probabilities, dynamic batch and spatial size, opset 17.
//!
//! The graph mirrors the forward of `model::net` step by step: batch norms are folded into the
//! convolutions first (`Raagr2Net::folded`), dropout is the identity in inference, the decoder's
//! upsampling is `Resize` (linear, `align_corners`), and the sigmoid of the head is kept, so a
//! runtime's output equals this project's `forward`.

use anyhow::{Context, Result, bail};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_proto::DataType, tensor_shape_proto, type_proto,
};

use crate::model::config::BRANCH_DILATIONS;
use crate::model::decoder::{AttentionGate, DecoderLevel, RecurrentUnit, Rrcnn, UpConv};
use crate::model::encoder::{DilatedBranch, Encoder, GroupedBranch, ReAspp3, SharedReAspp3};
use crate::model::layers::ConvBn;
use crate::model::quantize::quantize_per_channel;
use crate::model::{Checkpoint, Raagr2Net};

/// The ONNX operator set the graph is written for (Resize with `align_corners`, opset 13+).
pub const ONNX_OPSET: i64 = 17;
/// The ONNX IR version of that opset's release.
const IR_VERSION: i64 = 8;
/// Names of the graph's input and output, as runtimes show them.
pub const INPUT_NAME: &str = "mri";
pub const OUTPUT_NAME: &str = "probabilities";

/// The number format of the exported graph's weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnnxPrecision {
    /// Float32 throughout.
    F32,
    /// Weights and activations in float16: the float32 input is cast to half on entry and the
    /// probabilities back to float32 on exit, so callers feed and read float32 either way.
    F16,
    /// Convolution weights as INT8 initializers with one symmetric scale per output channel,
    /// each dequantized by a `DequantizeLinear` node; activations and biases float32.
    Int8Weights,
}

impl OnnxPrecision {
    fn data_type(self) -> DataType {
        match self {
            OnnxPrecision::F32 | OnnxPrecision::Int8Weights => DataType::FLOAT,
            OnnxPrecision::F16 => DataType::FLOAT16,
        }
    }
}

/// The checkpoint's network as the bytes of an `.onnx` file.
pub fn onnx_bytes(checkpoint: &Checkpoint, precision: OnnxPrecision) -> Result<Vec<u8>> {
    let device = crate::backend::cpu_device();
    let model = checkpoint
        .build(&device)
        .context("building the network from the checkpoint")?
        .folded();
    let mut graph = GraphWriter::new(precision);
    let input = graph.entry();
    let logits = graph.network(&model, &input)?;
    let probabilities = graph.node("Sigmoid", &[&logits], vec![]);
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

/// Builds the node list and the initializers, naming every value uniquely.
struct GraphWriter {
    precision: OnnxPrecision,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next_id: usize,
}

impl GraphWriter {
    fn new(precision: OnnxPrecision) -> GraphWriter {
        GraphWriter {
            precision,
            nodes: Vec::new(),
            initializers: Vec::new(),
            next_id: 0,
        }
    }

    fn fresh(&mut self, stem: &str) -> String {
        self.next_id += 1;
        format!("{stem}_{}", self.next_id)
    }

    /// Adds one node of `op` over `inputs` and returns the name of its (single) output.
    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let output = self.fresh(&op.to_lowercase());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
        output
    }

    /// The graph's input, cast to the working precision.
    fn entry(&mut self) -> String {
        match self.precision {
            OnnxPrecision::F32 | OnnxPrecision::Int8Weights => INPUT_NAME.to_string(),
            OnnxPrecision::F16 => self.node(
                "Cast",
                &[INPUT_NAME],
                vec![int_attr("to", DataType::FLOAT16 as i64)],
            ),
        }
    }

    /// Names `value` as the graph's output, cast back to float32.
    fn exit(&mut self, value: &str) {
        let (op, attrs) = match self.precision {
            OnnxPrecision::F32 | OnnxPrecision::Int8Weights => ("Identity", vec![]),
            OnnxPrecision::F16 => ("Cast", vec![int_attr("to", DataType::FLOAT as i64)]),
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

    /// A weight as an initializer in the working precision.
    fn weight(&mut self, stem: &str, tensor_values: Vec<f32>, dims: &[usize]) -> String {
        let name = self.fresh(stem);
        let raw_data = match self.precision {
            OnnxPrecision::F32 | OnnxPrecision::Int8Weights => {
                tensor_values.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            OnnxPrecision::F16 => tensor_values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        };
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: self.precision.data_type() as i32,
            name: name.clone(),
            raw_data,
            ..Default::default()
        });
        name
    }

    /// A convolution's weights as INT8 codes, per-output-channel scales and zero points, and
    /// the `DequantizeLinear` node that turns them back into float32 weights.
    fn int8_weight(&mut self, tensor_values: &[f32], dims: &[usize]) -> String {
        let (codes, scales) = quantize_per_channel(tensor_values, dims[0]);
        let name = self.fresh("w_int8");
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::INT8 as i32,
            name: name.clone(),
            raw_data: codes.iter().map(|c| *c as u8).collect(),
            ..Default::default()
        });
        let scale = self.float32_constant("w_scale", &scales);
        let zero = self.fresh("w_zero");
        self.initializers.push(TensorProto {
            dims: vec![dims[0] as i64],
            data_type: DataType::INT8 as i32,
            name: zero.clone(),
            raw_data: vec![0; dims[0]],
            ..Default::default()
        });
        self.node(
            "DequantizeLinear",
            &[&name, &scale, &zero],
            vec![int_attr("axis", 0)],
        )
    }

    /// A float32 constant initializer whatever the precision (Resize's scales must be float).
    fn float32_constant(&mut self, stem: &str, values: &[f32]) -> String {
        let name = self.fresh(stem);
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: DataType::FLOAT as i32,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// A convolution with "same" padding for its kernel and `dilation`.
    fn conv_with(&mut self, conv: &Conv2d, x: &str, dilation: usize) -> Result<String> {
        let dims = conv.weight.dims();
        let weight = match self.precision {
            OnnxPrecision::Int8Weights => self.int8_weight(&values(conv.weight.val())?, &dims),
            _ => self.weight("w", values(conv.weight.val())?, &dims),
        };
        let bias = match &conv.bias {
            Some(b) => Some(self.weight("b", values(b.val())?, &b.dims())),
            None => None,
        };
        let [kh, kw] = conv.kernel_size;
        if conv.stride != [1, 1] || kh != kw {
            bail!("only square stride-1 convolutions occur in this network");
        }
        let pad = (dilation * (kh - 1) / 2) as i64;
        let mut inputs = vec![x, weight.as_str()];
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
        Ok(self.node("Conv", &inputs, attrs))
    }

    /// A convolution as the layer itself is configured (its own dilation).
    fn conv(&mut self, conv: &Conv2d, x: &str) -> Result<String> {
        self.conv_with(conv, x, conv.dilation[0])
    }

    fn relu(&mut self, x: &str) -> String {
        self.node("Relu", &[x], vec![])
    }

    fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", &[a, b], vec![])
    }

    fn concat(&mut self, parts: &[String]) -> String {
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        self.node("Concat", &refs, vec![int_attr("axis", 1)])
    }

    /// conv -> (folded BN) -> ReLU.
    fn conv_bn_relu(&mut self, layer: &ConvBn, x: &str) -> Result<String> {
        let y = self.conv(&layer.conv, x)?;
        Ok(self.relu(&y))
    }

    fn network(&mut self, model: &Raagr2Net, input: &str) -> Result<String> {
        let mut skips = Vec::with_capacity(model.encoders.len());
        let mut feature = input.to_string();
        for (i, encoder) in model.encoders.iter().enumerate() {
            if i > 0 {
                feature = self.node(
                    "MaxPool",
                    &[&feature],
                    vec![
                        ints_attr("kernel_shape", &[2, 2]),
                        ints_attr("strides", &[2, 2]),
                    ],
                );
            }
            feature = match encoder {
                Encoder::Base(m) => self.reaspp3(m, &feature)?,
                Encoder::Shared(m) => self.shared_reaspp3(m, &feature)?,
            };
            skips.push(feature.clone());
        }
        let mut deep = skips.pop().context("the network has no encoder level")?;
        for (i, level) in model.decoders.iter().enumerate().rev() {
            deep = self.decoder_level(level, &deep, &skips[i])?;
        }
        self.conv(&model.head, &deep)
    }

    fn reaspp3(&mut self, m: &ReAspp3, x: &str) -> Result<String> {
        let mut parts = Vec::with_capacity(5);
        for branch in &m.grouped {
            parts.push(self.grouped_branch(branch, x)?);
        }
        for branch in &m.dilated {
            parts.push(self.dilated_branch(branch, x)?);
        }
        parts.push(x.to_string());
        let joined = self.concat(&parts);
        self.conv_bn_relu(&m.fuse, &joined)
    }

    fn grouped_branch(&mut self, b: &GroupedBranch, x: &str) -> Result<String> {
        let grouped = self.conv(&b.grouped, x)?;
        let pointwise = self.conv(&b.pointwise, &grouped)?;
        let y1 = self.relu(&pointwise);
        let y2 = self.conv_bn_relu(&b.post, &y1)?;
        Ok(self.add(&y2, &y1))
    }

    fn dilated_branch(&mut self, b: &DilatedBranch, x: &str) -> Result<String> {
        let y1 = self.conv_bn_relu(&b.dilated, x)?;
        let y2 = self.conv_bn_relu(&b.post, &y1)?;
        Ok(self.add(&y2, &y1))
    }

    fn shared_reaspp3(&mut self, m: &SharedReAspp3, x: &str) -> Result<String> {
        let variant = m.variant();
        let mut parts = Vec::with_capacity(5);
        for (i, branch) in m.branches.iter().enumerate() {
            let kernel = &m.kernels[variant.kernel_of_branch(i)];
            let d = self.conv_with(kernel, x, BRANCH_DILATIONS[i])?;
            let pointwise = self.conv_bn_relu(&branch.pointwise, &d)?;
            let projected = self.conv(&branch.proj, &d)?;
            parts.push(self.add(&pointwise, &projected));
        }
        parts.push(x.to_string());
        let joined = self.concat(&parts);
        self.conv_bn_relu(&m.fuse, &joined)
    }

    fn decoder_level(&mut self, level: &DecoderLevel, deep: &str, skip: &str) -> Result<String> {
        let g = self.up_conv(&level.up, deep)?;
        let gated = self.attention_gate(&level.att, &g, skip)?;
        let joined = self.concat(&[gated, g]);
        self.rrcnn(&level.rrcnn, &joined)
    }

    /// Bilinear x2 with align_corners, then conv -> BN -> ReLU.
    fn up_conv(&mut self, up: &UpConv, x: &str) -> Result<String> {
        let scales = self.float32_constant("scales", &[1.0, 1.0, 2.0, 2.0]);
        let attrs = vec![
            string_attr("mode", "linear"),
            string_attr("coordinate_transformation_mode", "align_corners"),
        ];
        // Inputs: X, roi (absent: an empty name), scales.
        let upsampled = self.node("Resize", &[x, "", &scales], attrs);
        let y = self.conv(&up.conv, &upsampled)?;
        Ok(self.relu(&y))
    }

    fn attention_gate(&mut self, att: &AttentionGate, g: &str, skip: &str) -> Result<String> {
        let from_gate = self.conv(&att.w_g.conv, g)?;
        let from_skip = self.conv(&att.w_x.conv, skip)?;
        let sum = self.add(&from_gate, &from_skip);
        let joint = self.relu(&sum);
        let psi_logits = self.conv(&att.psi.conv, &joint)?;
        let psi = self.node("Sigmoid", &[&psi_logits], vec![]);
        Ok(self.node("Mul", &[skip, &psi], vec![]))
    }

    fn recurrent_unit_f(&mut self, unit: &RecurrentUnit, x: &str) -> Result<String> {
        let depthwise = self.conv(&unit.depthwise, x)?;
        let pointwise = self.conv(&unit.pointwise, &depthwise)?;
        Ok(self.relu(&pointwise))
    }

    /// y = f(x); then twice y = f(x + y), as `RecurrentUnit::forward`.
    fn recurrent_unit(&mut self, unit: &RecurrentUnit, x: &str) -> Result<String> {
        let mut y = self.recurrent_unit_f(unit, x)?;
        for _ in 0..crate::model::decoder::RECURRENCE_T {
            let sum = self.add(x, &y);
            y = self.recurrent_unit_f(unit, &sum)?;
        }
        Ok(y)
    }

    /// x0 = 1x1 conv; x0 + R2(R1(x0)) (dropout is the identity in inference).
    fn rrcnn(&mut self, block: &Rrcnn, x: &str) -> Result<String> {
        let x0 = self.conv(&block.conv1x1, x)?;
        let r1 = self.recurrent_unit(&block.rec1, &x0)?;
        let r2 = self.recurrent_unit(&block.rec2, &r1)?;
        Ok(self.add(&x0, &r2))
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
            let bytes = onnx_bytes(&checkpoint, OnnxPrecision::F32).unwrap();
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
        let full = onnx_bytes(&checkpoint, OnnxPrecision::F32).unwrap();
        let half = onnx_bytes(&checkpoint, OnnxPrecision::F16).unwrap();
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
    fn an_int8_weight_graph_is_a_quarter_of_the_size_and_computes_the_simulated_forward() {
        use crate::model::quantize::WeightRounding;
        // Size on the default model (a tiny random plan is mostly biases and scales).
        let default = crate::defaults::default_checkpoint();
        let full = onnx_bytes(&default, OnnxPrecision::F32).unwrap();
        let quarter = onnx_bytes(&default, OnnxPrecision::Int8Weights).unwrap();
        let ratio = quarter.len() as f64 / full.len() as f64;
        assert!(ratio <= 0.3, "int8 / fp32 size {ratio}");
        let checkpoint = random_plan_checkpoint(Variant::Base, 23);
        let int8 = onnx_bytes(&checkpoint, OnnxPrecision::Int8Weights).unwrap();
        let shape = [1, 4, 32, 32];
        let input = random_input(shape, 3);
        let device = cpu_device();
        let simulated = checkpoint
            .build(&device)
            .unwrap()
            .with_rounded_weights(WeightRounding::Int8PerChannel)
            .forward(burn::tensor::Tensor::<4>::from_data(
                TensorData::new(input.clone(), shape),
                &device,
            ))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let theirs = run_with_tract(&int8, &input, shape);
        let diff = crate::analysis::max_abs_diff(&simulated, &theirs);
        assert!(diff <= 1e-4, "int8 graph vs simulated forward: {diff}");
        // The rounding is real: the float forward differs somewhere.
        let float = project_forward(&checkpoint, &input, shape);
        assert!(crate::analysis::max_abs_diff(&float, &theirs) > 1e-6);
    }
}

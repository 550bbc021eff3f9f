//! The channel dependency graph of RAAGR2-Net: for every convolution and batch norm, which
//! prunable channel group (or fixed width) each channel axis is made of, in order. Everything
//! that must be removed together follows from it: concatenation offsets in ReASPP3 and the
//! decoder, residual adds inside branches and RRCNN blocks, grouped and depthwise convs (whose
//! channels follow their input), shared depthwise kernels, and the attention gate's per-channel
//! multiply with its skip. The output head's channels are fixed (never pruned).

use crate::model::config::{INPUT_CHANNELS, ModelConfig, Variant};

/// What a run of channels on one axis belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Group `i` of [`ChannelGraph::groups`]: its channels in order.
    Group(usize),
    /// Channels no pruning touches (the 4 input modalities, the output head).
    Fixed(usize),
}

/// A run of channels: each channel of `span` repeated `mult` times consecutively (a grouped conv
/// with `mult` outputs per input channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub span: Span,
    pub mult: usize,
}

/// Convolution (weight `[out, in/groups, k, k]`, optional bias) or batch norm (four `[c]` tensors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    Conv,
    Norm,
}

/// The channel layout of one layer, named by its PyTorch key prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerChannels {
    pub name: String,
    pub kind: LayerKind,
    /// Output channels (a norm's only axis).
    pub out: Vec<Segment>,
    /// Input channels of a dense conv; `None` for grouped/depthwise convs (one input channel per
    /// group, so nothing to remove on that axis) and for norms.
    pub input: Option<Vec<Segment>>,
}

/// Every layer's channel layout and the prunable groups of a config.
#[derive(Debug, Clone)]
pub struct ChannelGraph {
    /// (name, width) per group, in [`crate::model::ChannelPlan::groups`] order.
    pub groups: Vec<(String, usize)>,
    pub layers: Vec<LayerChannels>,
}

fn seg(span: Span) -> Segment {
    Segment { span, mult: 1 }
}

impl ChannelGraph {
    pub fn of(config: &ModelConfig) -> ChannelGraph {
        let mut builder = Builder {
            groups: config.plan.groups(),
            layers: Vec::new(),
        };
        for level in 0..5 {
            builder.encoder(config, level);
        }
        for level in (0..4).rev() {
            builder.decoder(level);
        }
        let last = builder.group("dec2");
        builder.conv(
            "final_conv",
            vec![seg(Span::Fixed(config.head.classes()))],
            Some(vec![last]),
        );
        ChannelGraph {
            groups: builder.groups,
            layers: builder.layers,
        }
    }

    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|(n, _)| n == name)
    }

    /// Indices kept along an axis of `segments` when group `g` keeps `kept[g]` (sorted).
    pub fn kept_indices(&self, segments: &[Segment], kept: &[Vec<usize>]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut offset = 0;
        for s in segments {
            match s.span {
                Span::Fixed(n) => {
                    out.extend(offset..offset + n * s.mult);
                    offset += n * s.mult;
                }
                Span::Group(g) => {
                    for &c in &kept[g] {
                        out.extend(offset + c * s.mult..offset + (c + 1) * s.mult);
                    }
                    offset += self.groups[g].1 * s.mult;
                }
            }
        }
        out
    }

    /// The full length of an axis made of `segments`.
    pub fn axis_len(&self, segments: &[Segment]) -> usize {
        segments
            .iter()
            .map(|s| {
                s.mult
                    * match s.span {
                        Span::Fixed(n) => n,
                        Span::Group(g) => self.groups[g].1,
                    }
            })
            .sum()
    }
}

struct Builder {
    groups: Vec<(String, usize)>,
    layers: Vec<LayerChannels>,
}

impl Builder {
    fn group(&self, name: &str) -> Segment {
        let g = self
            .groups
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("channel group {name} exists in every plan"));
        seg(Span::Group(g))
    }

    fn conv(&mut self, name: &str, out: Vec<Segment>, input: Option<Vec<Segment>>) {
        self.layers.push(LayerChannels {
            name: name.to_string(),
            kind: LayerKind::Conv,
            out,
            input,
        });
    }

    fn norm(&mut self, name: &str, channels: Segment) {
        self.layers.push(LayerChannels {
            name: name.to_string(),
            kind: LayerKind::Norm,
            out: vec![channels],
            input: None,
        });
    }

    /// A dense conv followed by its batch norm, both on `out`.
    fn conv_bn(&mut self, conv: &str, norm: &str, out: Segment, input: Vec<Segment>) {
        self.conv(conv, vec![out], Some(input));
        self.norm(norm, out);
    }

    /// Encoder level `level` (PyTorch `enc{level+1}`).
    fn encoder(&mut self, config: &ModelConfig, level: usize) {
        let n = level + 1;
        let input = if level == 0 {
            seg(Span::Fixed(INPUT_CHANNELS))
        } else {
            self.group(&format!("enc{level}.out"))
        };
        let branches: Vec<Segment> = (1..=4)
            .map(|b| self.group(&format!("enc{n}.branch{b}")))
            .collect();
        let p = format!("enc{n}");
        match config.variant {
            Variant::Base => {
                self.base_branches(&p, input, &branches, config.plan.encoders[level].dw_mult)
            }
            Variant::DepthwiseShared | Variant::PairedShared => {
                self.shared_branches(&p, config.variant, input, &branches)
            }
        }
        let mut fuse_in = branches.clone();
        fuse_in.push(input);
        let out = self.group(&format!("enc{n}.out"));
        self.conv_bn(
            &format!("{p}.final_conv.0"),
            &format!("{p}.final_conv.1"),
            out,
            fuse_in,
        );
    }

    fn base_branches(
        &mut self,
        p: &str,
        input: Segment,
        branches: &[Segment],
        dw_mult: [usize; 2],
    ) {
        for (i, &b) in branches.iter().enumerate() {
            let k = i + 1;
            if i < 2 {
                // Grouped 3x3 (groups = input width): its outputs follow the input channels.
                let grouped = Segment {
                    span: input.span,
                    mult: dw_mult[i],
                };
                self.conv(&format!("{p}.conv{k}_1.0"), vec![grouped], None);
                self.conv_bn(
                    &format!("{p}.conv{k}_1.1"),
                    &format!("{p}.conv{k}_1.2"),
                    b,
                    vec![grouped],
                );
            } else {
                self.conv_bn(
                    &format!("{p}.conv{k}_1.0"),
                    &format!("{p}.conv{k}_1.1"),
                    b,
                    vec![input],
                );
            }
            // The residual add y1 + y2 ties the 1x1's input and output to the branch group.
            self.conv_bn(
                &format!("{p}.conv{k}_2.0"),
                &format!("{p}.conv{k}_2.1"),
                b,
                vec![b],
            );
        }
    }

    fn shared_branches(&mut self, p: &str, variant: Variant, input: Segment, branches: &[Segment]) {
        let names: &[&str] = if variant == Variant::PairedShared {
            &["dw_near", "dw_far"]
        } else {
            &["dw"]
        };
        // Shared depthwise kernels: one output per input channel, whatever branch uses them.
        for name in names {
            self.conv(&format!("{p}.{name}"), vec![input], None);
        }
        for (i, &b) in branches.iter().enumerate() {
            let q = format!("{p}.branches.{i}");
            self.conv_bn(&format!("{q}.pw.0"), &format!("{q}.pw.1"), b, vec![input]);
            self.conv(&format!("{q}.proj"), vec![b], Some(vec![input]));
        }
    }

    /// Decoder level `level` (PyTorch `up/att/dec{level+2}`).
    fn decoder(&mut self, level: usize) {
        let k = level + 2;
        let skip = self.group(&format!("enc{}.out", level + 1));
        let deep = if level == 3 {
            self.group("enc5.out")
        } else {
            self.group(&format!("dec{}", k + 1))
        };
        let (up, att, dec) = (
            self.group(&format!("up{k}")),
            self.group(&format!("att{k}")),
            self.group(&format!("dec{k}")),
        );
        self.conv_bn(
            &format!("up{k}.up.1"),
            &format!("up{k}.up.2"),
            up,
            vec![deep],
        );
        self.conv_bn(
            &format!("att{k}.W_g.0"),
            &format!("att{k}.W_g.1"),
            att,
            vec![up],
        );
        self.conv_bn(
            &format!("att{k}.W_x.0"),
            &format!("att{k}.W_x.1"),
            att,
            vec![skip],
        );
        // psi has one gate per skip channel (s * psi), so its outputs belong to the skip group.
        self.conv_bn(
            &format!("att{k}.psi.0"),
            &format!("att{k}.psi.1"),
            skip,
            vec![att],
        );
        self.conv(&format!("dec{k}.conv1x1"), vec![dec], Some(vec![skip, up]));
        for r in 1..=2 {
            let q = format!("dec{k}.recblock{r}.conv.conv");
            self.conv(&format!("{q}.0"), vec![dec], None);
            self.conv_bn(&format!("{q}.1"), &format!("{q}.2"), dec, vec![dec]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Head, weights::expected_shapes};

    /// Every key of the model is covered by the graph, with the graph's axis lengths.
    #[test]
    fn graph_covers_every_tensor_with_its_shape() {
        for variant in [
            Variant::Base,
            Variant::DepthwiseShared,
            Variant::PairedShared,
        ] {
            let config = ModelConfig::with_width_multiplier(variant, Head::Regions3, 0.125);
            let model = config.init(&crate::backend::cpu_device());
            let shapes = expected_shapes(&model);
            let graph = ChannelGraph::of(&config);
            let mut covered = 0;
            for layer in &graph.layers {
                let out = graph.axis_len(&layer.out);
                let suffixes: &[&str] = match layer.kind {
                    LayerKind::Conv => &["weight", "bias"],
                    LayerKind::Norm => &["weight", "bias", "running_mean", "running_var"],
                };
                for s in suffixes {
                    let Some(shape) = shapes.get(&format!("{}.{s}", layer.name)) else {
                        assert_eq!(*s, "bias", "{}.{s} missing", layer.name);
                        continue;
                    };
                    covered += 1;
                    assert_eq!(shape[0], out, "{}.{s} out axis", layer.name);
                    if let (Some(input), "weight", LayerKind::Conv) = (&layer.input, *s, layer.kind)
                    {
                        assert_eq!(
                            shape[1],
                            graph.axis_len(input),
                            "{}.weight in axis",
                            layer.name
                        );
                    }
                    if layer.input.is_none() && layer.kind == LayerKind::Conv && *s == "weight" {
                        assert_eq!(shape[1], 1, "{} is depthwise/grouped", layer.name);
                    }
                }
            }
            assert_eq!(
                covered,
                shapes.len(),
                "{variant:?}: every tensor covered once"
            );
        }
    }
}

#!/usr/bin/env python3
"""RAAGR2-Net ("DLUNet") in PyTorch, built from a raagr2-lab channel plan: the module that loads
what ``raagr2-lab export MODEL --pytorch OUT.safetensors`` writes.

The network is built exactly as ``src/model`` builds it (same layers, same order of operations,
same state_dict key names as the reference code): five ReASPP3 encoder levels (dilations 1, 3,
6, 9; branches 1-2 grouped 3x3 -> 1x1, branches 3-4 full dilated 3x3; each branch y1 +
1x1(y1); concat[b1..b4, x] -> 1x1 fuse), 2x2 max-pools between them, four decoder levels
(bilinear x2 upsample with align_corners -> 3x3 conv -> BN -> ReLU; an attention gate with one
gate value per skip channel; an RRCNN block of two recurrent units, t = 2) and a 1x1 head with a
sigmoid. Any channel plan (a pruned model's widths differ per layer) and every variant (base,
depthwise-shared, paired-shared) is built from the JSON under ``raagr2.config`` in the file's
header.

Only torch, numpy and safetensors are needed. Use it from Python::

    from raagr2_torch import load_exported
    config, model = load_exported("pruned.safetensors")   # strict=True; eval mode
    probabilities = model(x)                              # x: N x 4 x H x W, H, W multiples of 16

or from the shell, to run a model on tensors saved with safetensors::

    python3 tools/raagr2_torch.py pruned.safetensors --input x.safetensors --output y.safetensors

(``x`` under the key ``x``; the probabilities are written under ``y``.)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

# --- configuration (mirrors src/model/config.rs) ----------------------------------------------

FULL_ENCODER_WIDTHS = (32, 64, 128, 256, 512)
INPUT_CHANNELS = 4
SPATIAL_MULTIPLE = 16
BRANCH_DILATIONS = (1, 3, 6, 9)
RECURRENCE_T = 2
VARIANTS = ("base", "depthwise-shared", "paired-shared")
CONFIG_METADATA_KEY = "raagr2.config"
MASK_TENSOR_PREFIX = "raagr2.mask."


@dataclass
class EncoderPlan:
    branches: list[int]
    out: int
    dw_mult: list[int]


@dataclass
class DecoderPlan:
    up: int
    att: int
    rec: int


@dataclass
class ModelConfig:
    """Variant, number of outputs and one width per prunable group, as in ModelConfig."""

    variant: str
    outputs: int
    encoders: list[EncoderPlan]
    decoders: list[DecoderPlan]  # decoders[i] is PyTorch level i + 2 (skip from encoders[i])
    dropout: float = 0.2
    source: str = field(default="fresh")

    def encoder_in(self, level: int) -> int:
        return INPUT_CHANNELS if level == 0 else self.encoders[level - 1].out

    def decoder_deep_in(self, level: int) -> int:
        if level + 1 == len(self.decoders):
            return self.encoders[level + 1].out
        return self.decoders[level + 1].rec

    def encoder_widths(self) -> list[int]:
        return [e.out for e in self.encoders]


def rust_round(value: float) -> int:
    """f64::round: halves away from zero (Python's round() rounds halves to even)."""
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


def plan_from_encoder_widths(widths, variant="base", outputs=3, dropout=0.2) -> ModelConfig:
    """The unpruned plan: branches = out, F_int = C/2, decoder width = skip width."""
    encoders, in_width = [], INPUT_CHANNELS
    for out in widths:
        mult = max(out // in_width, 1)
        encoders.append(EncoderPlan([out] * 4, out, [mult, mult]))
        in_width = out
    decoders = [DecoderPlan(c, max(c // 2, 1), c) for c in widths[:4]]
    return ModelConfig(variant, outputs, encoders, decoders, dropout)


def plan_from_width_multiplier(multiplier: float, variant="base", outputs=3) -> ModelConfig:
    widths = [max(rust_round(w * multiplier), 1) for w in FULL_ENCODER_WIDTHS]
    return plan_from_encoder_widths(widths, variant, outputs)


def config_from_json(text: str) -> ModelConfig:
    """A raagr2-lab checkpoint's `raagr2.config` metadata entry."""
    raw = json.loads(text)
    outputs = {"regions3": 3, "reference5": 5}[raw["head"]]
    plan = raw["plan"]
    encoders = [EncoderPlan(list(e["branches"]), e["out"], list(e["dw_mult"])) for e in plan["encoders"]]
    decoders = [DecoderPlan(d["up"], d["att"], d["rec"]) for d in plan["decoders"]]
    return ModelConfig(raw["variant"], outputs, encoders, decoders, raw.get("dropout", 0.2))


def infer_config(state: dict[str, torch.Tensor]) -> ModelConfig:
    """The config of a plain PyTorch state_dict, read off its weight shapes (as infer_plan)."""
    if "enc1.conv1_1.0.weight" in state:
        variant = "base"
    elif "enc1.dw_near.weight" in state:
        variant = "paired-shared"
    elif "enc1.dw.weight" in state:
        variant = "depthwise-shared"
    else:
        raise ValueError("cannot tell the variant from the state_dict's keys")

    def out_of(key: str) -> int:
        return state[key].shape[0]

    encoders, in_width = [], INPUT_CHANNELS
    for level in range(1, 6):
        p = f"enc{level}"
        if variant == "base":
            grouped = [out_of(f"{p}.conv1_1.0.weight"), out_of(f"{p}.conv2_1.0.weight")]
            branches = [out_of(f"{p}.conv{i}_1.{1 if i <= 2 else 0}.weight") for i in range(1, 5)]
            dw_mult = [max(g // in_width, 1) for g in grouped]
        else:
            branches = [out_of(f"{p}.branches.{i}.pw.0.weight") for i in range(4)]
            dw_mult = [1, 1]
        out = out_of(f"{p}.final_conv.0.weight")
        encoders.append(EncoderPlan(branches, out, dw_mult))
        in_width = out
    decoders = [
        DecoderPlan(out_of(f"up{k}.up.1.weight"), out_of(f"att{k}.W_g.0.weight"), out_of(f"dec{k}.conv1x1.weight"))
        for k in range(2, 6)
    ]
    return ModelConfig(variant, out_of("final_conv.weight"), encoders, decoders)


def region_channels(outputs: int) -> list[int]:
    """Output channels of [WT, TC, ET] (Head::region_channels); other heads train on all."""
    if outputs == 5:
        return [4, 2, 3]
    return list(range(outputs))


# --- layers (src/model/layers.rs, encoder.rs, decoder.rs, net.rs) -------------------------------


def conv(cin: int, cout: int, kernel: int, dilation: int = 1, groups: int = 1, bias: bool = True) -> nn.Conv2d:
    """A 3x3 or 1x1 convolution with "same" padding for its dilation."""
    pad = dilation * (kernel - 1) // 2
    return nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, groups=groups, bias=bias)


def conv_bn(cin: int, cout: int, kernel: int = 1, dilation: int = 1, bias: bool = True, relu: bool = True):
    """conv -> BN (-> ReLU): keys `.0` (conv) and `.1` (BN)."""
    layers = [conv(cin, cout, kernel, dilation, bias=bias), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ReASPP3(nn.Module):
    """Base ReASPP3 (rate 3). `conv{1,2}_1`: grouped 3x3 (groups = in) -> 1x1 -> BN -> ReLU;
    `conv{3,4}_1`: dilated 3x3 -> BN -> ReLU; `conv{i}_2`: 1x1 -> BN -> ReLU on y1, branch = y1 + y2;
    `final_conv`: 1x1 -> BN -> ReLU over concat[b1, b2, b3, b4, x]."""

    def __init__(self, cin: int, plan: EncoderPlan):
        super().__init__()
        b = plan.branches
        for i in range(2):
            d, mid = BRANCH_DILATIONS[i], cin * plan.dw_mult[i]
            first = nn.Sequential(
                conv(cin, mid, 3, d, groups=cin), conv(mid, b[i], 1), nn.BatchNorm2d(b[i]), nn.ReLU(inplace=True)
            )
            setattr(self, f"conv{i + 1}_1", first)
            setattr(self, f"conv{i + 1}_2", conv_bn(b[i], b[i]))
        for i in range(2, 4):
            setattr(self, f"conv{i + 1}_1", conv_bn(cin, b[i], 3, BRANCH_DILATIONS[i]))
            setattr(self, f"conv{i + 1}_2", conv_bn(b[i], b[i]))
        self.final_conv = conv_bn(sum(b) + cin, plan.out)

    def forward(self, x):
        parts = []
        for i in range(1, 5):
            y1 = getattr(self, f"conv{i}_1")(x)
            parts.append(getattr(self, f"conv{i}_2")(y1) + y1)
        parts.append(x)
        return self.final_conv(torch.cat(parts, 1))


class SharedBranch(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.pw = conv_bn(cin, cout)
        self.proj = conv(cin, cout, 1, bias=False)

    def forward(self, d):
        return self.pw(d) + self.proj(d)


class SharedReASPP3(nn.Module):
    """The shared-depthwise ReASPP3: one depthwise 3x3 kernel (`dw`, or `dw_near`/`dw_far`)
    applied at all four dilations, a pointwise branch each, bias-free fuse conv."""

    def __init__(self, cin: int, plan: EncoderPlan, variant: str):
        super().__init__()
        self.paired = variant == "paired-shared"
        self.kernel_names = ["dw_near", "dw_far"] if self.paired else ["dw"]
        for name in self.kernel_names:
            setattr(self, name, conv(cin, cin, 3, groups=cin))
        self.branches = nn.ModuleList(SharedBranch(cin, out) for out in plan.branches)
        self.final_conv = conv_bn(sum(plan.branches) + cin, plan.out, bias=False)

    def forward(self, x):
        parts = []
        for i, branch in enumerate(self.branches):
            kernel = getattr(self, self.kernel_names[i // 2 if self.paired else 0])
            d = BRANCH_DILATIONS[i]
            parts.append(branch(F.conv2d(x, kernel.weight, kernel.bias, 1, d, d, x.shape[1])))
        parts.append(x)
        return self.final_conv(torch.cat(parts, 1))


class UpConv(nn.Module):
    """`up.0` bilinear x2 (align_corners) -> `up.1` 3x3 conv -> `up.2` BN -> ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            conv(cin, cout, 3),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.up(x)


class AttentionGate(nn.Module):
    """psi = sigmoid(BN(conv(ReLU(W_g g + W_x s)))) with one gate per skip channel; s * psi."""

    def __init__(self, gate: int, skip: int, inter: int):
        super().__init__()
        self.W_g = conv_bn(gate, inter, relu=False)
        self.W_x = conv_bn(skip, inter, relu=False)
        self.psi = nn.Sequential(conv(inter, skip, 1), nn.BatchNorm2d(skip), nn.Sigmoid())

    def forward(self, g, s):
        return s * self.psi(F.relu(self.W_g(g) + self.W_x(s)))


class ConvUnit(nn.Module):
    """f: depthwise 3x3 -> 1x1 -> BN -> ReLU (keys `conv.0..2`)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Sequential(
            conv(width, width, 3, groups=width), conv(width, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )

    def forward(self, x):
        return self.conv(x)


class RecurrentBlock(nn.Module):
    """y = f(x); then t = 2 times y = f(x + y) (keys `conv.conv.*`)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = ConvUnit(width)

    def forward(self, x):
        y = self.conv(x)
        for _ in range(RECURRENCE_T):
            y = self.conv(x + y)
        return y


class RRCNN(nn.Module):
    """x0 = 1x1 conv(x); x0 + recblock2(recblock1(dropout(x0)))."""

    def __init__(self, cin: int, cout: int, dropout: float):
        super().__init__()
        self.conv1x1 = conv(cin, cout, 1)
        self.recblock1 = RecurrentBlock(cout)
        self.recblock2 = RecurrentBlock(cout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x0 = self.conv1x1(x)
        return x0 + self.recblock2(self.recblock1(self.dropout(x0)))


class DLUNet(nn.Module):
    """RAAGR2-Net: enc1..enc5, (up, att, dec)5..2, final_conv; forward returns probabilities."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        for i, plan in enumerate(config.encoders):
            cin = config.encoder_in(i)
            enc = ReASPP3(cin, plan) if config.variant == "base" else SharedReASPP3(cin, plan, config.variant)
            setattr(self, f"enc{i + 1}", enc)
        for i in reversed(range(len(config.decoders))):
            d, k, skip = config.decoders[i], i + 2, config.encoders[i].out
            setattr(self, f"up{k}", UpConv(config.decoder_deep_in(i), d.up))
            setattr(self, f"att{k}", AttentionGate(d.up, skip, d.att))
            setattr(self, f"dec{k}", RRCNN(skip + d.up, d.rec, config.dropout))
        self.final_conv = conv(config.decoders[0].rec, config.outputs, 1)
        self.pool = nn.MaxPool2d(2, 2)

    def forward_logits(self, x):
        skips, feature = [], x
        for i in range(1, 6):
            if i > 1:
                feature = self.pool(feature)
            feature = getattr(self, f"enc{i}")(feature)
            skips.append(feature)
        deep = skips.pop()
        for k in range(5, 1, -1):
            g = getattr(self, f"up{k}")(deep)
            gated = getattr(self, f"att{k}")(g, skips[k - 2])
            deep = getattr(self, f"dec{k}")(torch.cat([gated, g], 1))
        return self.final_conv(deep)

    def forward(self, x):
        return torch.sigmoid(self.forward_logits(x))


def count_params(model: nn.Module) -> int:
    """Trainable parameters only (BN running statistics are buffers), as the Rust summary."""
    return sum(p.numel() for p in model.parameters())


# --- weights -------------------------------------------------------------------------------------


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = f.metadata() or {}
    return tensors, metadata


def load_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Strict load: every key the model needs with its shape, nothing else except
    `num_batches_tracked` (which the Rust side drops)."""
    state = {k: v.float() for k, v in state.items()}
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    given = {k for k in state if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        raise ValueError(f"state_dict mismatch: missing {missing[:8]}, unexpected {unexpected[:8]}")
    result = model.load_state_dict(state, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    bad = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    assert not bad, bad


def load_checkpoint(path: Path) -> tuple[ModelConfig, DLUNet]:
    """A raagr2-lab checkpoint (config in metadata, masks applied) or a plain state_dict."""
    tensors, metadata = read_safetensors(path)
    masks = {k[len(MASK_TENSOR_PREFIX):]: v for k, v in tensors.items() if k.startswith(MASK_TENSOR_PREFIX)}
    weights = {k: v for k, v in tensors.items() if not k.startswith(MASK_TENSOR_PREFIX)}
    for key, keep in masks.items():
        weights[key] = weights[key] * (keep != 0).to(weights[key].dtype)
    if CONFIG_METADATA_KEY in metadata:
        config = config_from_json(metadata[CONFIG_METADATA_KEY])
        config.source = f"raagr2-lab checkpoint {path}"
    else:
        config = infer_config(weights)
        config.source = f"PyTorch state_dict {path} (config inferred from shapes)"
    model = DLUNet(config)
    load_weights(model, weights)
    return config, model


def load_exported(path) -> tuple[ModelConfig, DLUNet]:
    """What ``export --pytorch`` wrote: the network built from the plan in the header and loaded
    with ``strict=True`` (every key, BatchNorm step counters included), in eval mode."""
    tensors, metadata = read_safetensors(Path(path))
    if CONFIG_METADATA_KEY not in metadata:
        raise ValueError(f"{path}: no {CONFIG_METADATA_KEY} entry in the header; "
                         "write the file with `raagr2-lab export MODEL --pytorch OUT`")
    config = config_from_json(metadata[CONFIG_METADATA_KEY])
    config.source = f"raagr2-lab export {path}"
    model = DLUNet(config)
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) if k in model.state_dict() else v
                           for k, v in tensors.items()}, strict=True)
    return config, model.eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a file written by `raagr2-lab export MODEL --pytorch OUT`")
    parser.add_argument("--input", required=True, help="safetensors file with `x` (N x 4 x H x W)")
    parser.add_argument("--output", required=True, help="where to write `y`, the probabilities")
    args = parser.parse_args(argv)
    try:
        config, model = load_exported(args.model)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    tensors, _ = read_safetensors(Path(args.input))
    with torch.inference_mode():
        y = model(tensors["x"].float())
    save_file({"y": y.contiguous()}, args.output)
    print(json.dumps({"model": config.source, "variant": config.variant,
                      "encoder_widths": config.encoder_widths(), "params": count_params(model),
                      "output": list(y.shape)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""PyTorch twin of raagr2-lab's RAAGR2-Net ("DLUNet") for side-by-side benchmarks.

The network here is built exactly as ``src/model`` builds it (same layers, same order of
operations, same PyTorch state_dict key names as ``src/model/weights.rs`` maps), from the same
channel plan: five ReASPP3 encoder levels (dilations 1, 3, 6, 9; branches 1-2 grouped 3x3 ->
1x1, branches 3-4 full dilated 3x3; each branch y1 + 1x1(y1); concat[b1..b4, x] -> 1x1 fuse),
2x2 max-pools between them, four decoder levels (bilinear x2 upsample with align_corners ->
3x3 conv -> BN -> ReLU; an attention gate with one gate value per skip channel; an RRCNN block
of two recurrent units, t = 2) and a 1x1 head with a sigmoid.

Modes:

* ``--check-parity DIR``: loads ``DIR/dlunet_w8.safetensors`` (a reference state_dict, encoder
  widths 8..128, 5 outputs) strictly, runs ``x`` from ``DIR/dlunet_w8.io.safetensors`` in eval
  mode and compares with its ``y``; also checks parameter counts against the Rust tests.
  Exits non-zero on any failure.
* bench (default): eval-forward latency per batch size under ``torch.inference_mode`` and one
  training step (forward, the project's weighted BCE + Dice loss, backward, Adam), each with the
  first (warm-up) call reported apart from the median/min/max of the timed runs, like
  ``raagr2-lab bench``. ``--checkpoint`` reads a raagr2-lab checkpoint (config JSON in its
  safetensors metadata, optional pruning masks) or a plain PyTorch state_dict in safetensors.

Only torch, numpy and safetensors are needed. Examples::

    python3 tools/torch_bench.py --check-parity tests/fixtures
    python3 tools/torch_bench.py --device cuda --width 1.0 --outputs 5 --size 192 \\
        --forward-batches 1,8 --train-batch 8 --runs 5 --json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
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


# --- loss (src/train/loss.rs) --------------------------------------------------------------------

BORDER_WINDOW = 11
DICE_SMOOTH = 1.0


def border_weights(targets):
    """w = 1 + 2 * border (11x11 mean in (0.005, 0.995)), rescaled to mean 1 per map."""
    pad = BORDER_WINDOW // 2
    avg = F.avg_pool2d(targets, BORDER_WINDOW, stride=1, padding=pad, count_include_pad=False)
    border = ((avg > 0.005) & (avg < 0.995)).to(targets.dtype)
    weights = border * 2.0 + 1.0
    h, w = targets.shape[-2:]
    return weights / (weights.sum(dim=(2, 3), keepdim=True) / (h * w))


def bce_dice_loss(logits, targets):
    """Weighted BCE on logits + (1 - weighted soft Dice with squared weights), a scalar."""
    weights = border_weights(targets)
    softplus_neg = torch.log1p(torch.exp(-logits.abs())) + (-logits).clamp_min(0.0)
    pos_weight = (weights - 1.0) * targets + 1.0
    bce = ((1.0 - targets) * logits + pos_weight * softplus_neg).sum() / weights.sum()
    probs = torch.sigmoid(logits)
    w2 = weights * weights
    intersection = (w2 * probs * targets).sum()
    denominator = (w2 * targets).sum() + (w2 * probs).sum()
    dice = (2.0 * intersection + DICE_SMOOTH) / (denominator + DICE_SMOOTH)
    return bce + (1.0 - dice)


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


# --- parity check --------------------------------------------------------------------------------

FIXTURE_WIDTHS = (8, 16, 32, 64, 128)
FIXTURE_PARAMS = 569_429
FULL_PARAMS = {"base": 8_911_301, "depthwise-shared": 5_046_221, "paired-shared": 5_051_061}
PARITY_TOLERANCE = 1e-4


def check_parity(fixtures: Path) -> bool:
    """Fixture forward and parameter counts; prints one line per check, True when all pass."""
    torch.manual_seed(0)
    ok = True

    def report(name: str, passed: bool, detail: str) -> None:
        nonlocal ok
        ok &= passed
        print(f"[{'ok' if passed else 'FAIL'}] {name}: {detail}")

    meta = json.loads((fixtures / "dlunet_w8.json").read_text())
    config = plan_from_encoder_widths(list(FIXTURE_WIDTHS), "base", outputs=meta["output"][1])
    model = DLUNet(config)
    params = count_params(model)
    report("params w8", params == FIXTURE_PARAMS == meta["params"], f"{params:,} (expected {FIXTURE_PARAMS:,})")
    shapes = {k: list(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    report("key names and shapes", shapes == meta["keys"], f"{len(shapes)} tensors vs {len(meta['keys'])} in the JSON")

    state, _ = read_safetensors(fixtures / "dlunet_w8.safetensors")
    try:
        load_weights(model, state)
        report("strict load", True, f"{len(state)} tensors")
    except ValueError as e:
        report("strict load", False, str(e))
        return False
    inferred = infer_config(state)
    report("inferred plan", inferred.encoders == config.encoders and inferred.decoders == config.decoders, "from shapes")

    io, _ = read_safetensors(fixtures / "dlunet_w8.io.safetensors")
    model.eval()
    with torch.inference_mode():
        y = model(io["x"].float())
    diff = (y - io["y"].float()).abs()
    report(
        "forward",
        y.shape == io["y"].shape and diff.max().item() < PARITY_TOLERANCE,
        f"max |diff| {diff.max().item():.3e}, mean {diff.mean().item():.3e} over {tuple(y.shape)} (tol {PARITY_TOLERANCE:g})",
    )

    for variant, expected in FULL_PARAMS.items():
        n = count_params(DLUNet(plan_from_width_multiplier(1.0, variant, outputs=5)))
        report(f"params full {variant} 5 outputs", n == expected, f"{n:,} (expected {expected:,})")
    quarter = plan_from_width_multiplier(0.25)
    report("--width 0.25 widths", quarter.encoder_widths() == list(FIXTURE_WIDTHS), str(quarter.encoder_widths()))
    return ok


# --- timing --------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def summarize(first: float, samples: list[float], **extra) -> dict:
    return {
        **extra,
        "first_secs": first,
        "median_secs": statistics.median(samples),
        "min_secs": min(samples),
        "max_secs": max(samples),
        "runs": len(samples),
    }


def process_peak_bytes():
    """This process's peak resident size since the last reset (Linux's VmHWM), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"peak_mem_bytes": torch.cuda.max_memory_allocated(device)}
    peak = process_peak_bytes()
    return {} if peak is None else {"peak_mem_bytes": peak}


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        return
    # As the Rust bench: the peak restarts from the current resident size (Linux 4.0+).
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def bench_forward(model: DLUNet, batch: int, size: int, runs: int, device: torch.device, to_host: bool) -> dict:
    """Eval forward on N(0, 1) input: one warm-up call, then `runs` timed calls. With `to_host`
    each call also copies the output to host memory (as the Rust bench's `into_data`)."""
    model.eval()
    x = torch.randn(batch, INPUT_CHANNELS, size, size, device=device)
    call = (lambda: model(x).cpu()) if to_host else (lambda: model(x))
    reset_peak(device)
    with torch.inference_mode():
        first = timed(call, device)
        samples = [timed(call, device) for _ in range(runs)]
    return summarize(first, samples, batch=batch, **peak_memory(device))


def bench_train_step(model: DLUNet, batch: int, size: int, runs: int, lr: float, device: torch.device) -> dict:
    """Forward to region logits, weighted BCE + Dice, backward, Adam step (as train_step)."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-5)  # burn's AdamConfig
    regions = region_channels(model.config.outputs)
    # Like region_logits: the 3-channel head is used as is, the 5-channel one picks WT, TC, ET.
    select = None if regions == list(range(model.config.outputs)) else torch.tensor(regions, device=device)
    x = torch.randn(batch, INPUT_CHANNELS, size, size, device=device)
    y = torch.bernoulli(torch.full((batch, len(regions), size, size), 0.2, device=device))
    losses = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits = model.forward_logits(x)
        if select is not None:
            logits = logits.index_select(1, select)
        loss = bce_dice_loss(logits, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())  # the Rust step also reads its loss back

    reset_peak(device)
    first = timed(step, device)
    samples = [timed(step, device) for _ in range(runs)]
    return summarize(first, samples, batch=batch, loss_first=losses[0], loss_last=losses[-1], **peak_memory(device))


def bench_onnxruntime(model: DLUNet, batches: list[int], size: int, runs: int, threads: int) -> dict:
    """The same eval forward exported to ONNX and run by ONNX Runtime on the CPU (what such a
    network is deployed with): its graph optimiser folds BatchNorm and fuses activations. The
    outputs are checked against PyTorch's before timing."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        return {"skipped": f"onnxruntime is not installed ({e}); pip install onnx onnxruntime"}
    import io
    model = copy.deepcopy(model).cpu().eval()
    x = torch.randn(1, INPUT_CHANNELS, size, size)
    buffer = io.BytesIO()
    try:
        torch.onnx.export(model, (x,), buffer, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    except Exception as e:  # noqa: BLE001 - any exporter failure is reported, not fatal
        return {"skipped": f"ONNX export failed: {e}"}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = model(x).numpy()
    got = session.run(None, {"x": x.numpy()})[0]
    max_diff = float(np.abs(expected - got).max())
    report = {"version": ort.__version__, "threads": options.intra_op_num_threads,
              "max_abs_diff_vs_pytorch": max_diff, "forward": []}
    for batch in batches:
        xb = np.random.randn(batch, INPUT_CHANNELS, size, size).astype(np.float32)
        run = lambda: session.run(None, {"x": xb})  # noqa: E731
        start = time.perf_counter(); run(); first = time.perf_counter() - start
        samples = []
        for _ in range(runs):
            start = time.perf_counter(); run(); samples.append(time.perf_counter() - start)
        report["forward"].append(summarize(first, samples, batch=batch))
    return report


def build_model(args) -> tuple[ModelConfig, DLUNet]:
    if args.checkpoint:
        return load_checkpoint(Path(args.checkpoint))
    config = plan_from_width_multiplier(args.width, args.variant, args.outputs)
    config.source = f"fresh random weights (--width {args.width:g})"
    return config, DLUNet(config)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_bench(args) -> dict:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: PyTorch {torch.__version__} sees no CUDA device")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
        if args.no_tf32:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    config, model = build_model(args)
    params = count_params(model)
    model = model.to(device)
    report = {
        "framework": "pytorch",
        "version": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "model": config.source,
        "variant": config.variant,
        "encoder_widths": config.encoder_widths(),
        "outputs": config.outputs,
        "params": params,
        "input_size": [INPUT_CHANNELS, args.size, args.size],
        "cudnn_benchmark": bool(device.type == "cuda" and torch.backends.cudnn.benchmark),
        "cudnn_allow_tf32": bool(device.type == "cuda" and torch.backends.cudnn.allow_tf32),
        "forward_to_host": args.to_host,
        "seed": args.seed,
        "forward": [],
        "train_step": None,
    }
    for batch in args.forward_batches:
        report["forward"].append(bench_forward(model, batch, args.size, args.runs, device, args.to_host))
        progress(args, f"forward batch {batch}: median {report['forward'][-1]['median_secs']:.4f} s")
    if args.onnx and device.type == "cpu":
        report["onnxruntime"] = bench_onnxruntime(model, args.forward_batches, args.size, args.runs, args.threads)
        progress(args, "onnxruntime: " + json.dumps(report["onnxruntime"].get("skipped") or
                                                      [f["median_secs"] for f in report["onnxruntime"]["forward"]]))
    if args.train_batch > 0:
        train_model = copy.deepcopy(model)
        report["train_step"] = bench_train_step(train_model, args.train_batch, args.size, args.runs, args.lr, device)
        report["train_step"]["lr"] = args.lr
        progress(args, f"train step batch {args.train_batch}: median {report['train_step']['median_secs']:.4f} s")
    return report


def progress(args, line: str) -> None:
    if args.json:
        print(line, file=sys.stderr, flush=True)


def render(report: dict) -> str:
    lines = [
        f"PyTorch {report['version']} on {report['device']} ({report['device_name']}), {report['threads']} threads",
        f"model: {report['variant']}, encoder {'/'.join(map(str, report['encoder_widths']))}, "
        f"{report['outputs']} outputs, {report['params']:,} params ({report['model']})",
        f"input: 4x{report['input_size'][1]}x{report['input_size'][2]}; cudnn.benchmark {report['cudnn_benchmark']}, "
        f"cudnn TF32 {report['cudnn_allow_tf32']}",
        "",
        f"{'what':<22}{'first':>10}{'median':>10}{'min':>10}{'max':>10}{'runs':>6}",
    ]
    rows = [(f"forward b={f['batch']}", f) for f in report["forward"]]
    if report["train_step"]:
        rows.append((f"train step b={report['train_step']['batch']}", report["train_step"]))
    ort_report = report.get("onnxruntime") or {}
    if ort_report.get("skipped"):
        lines.append(f"onnxruntime: {ort_report['skipped']}")
    rows += [(f"onnxruntime fwd b={f['batch']}", f) for f in ort_report.get("forward", [])]
    for name, t in rows:
        lines.append(
            f"{name:<22}{t['first_secs']:>9.4f}s{t['median_secs']:>9.4f}s{t['min_secs']:>9.4f}s{t['max_secs']:>9.4f}s{t['runs']:>6}"
        )
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------------------


def batch_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("batch sizes must be positive integers, e.g. 1,8")
    return values


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check-parity", metavar="FIXTURES_DIR", help="check against tests/fixtures and exit")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier of the 32..512 encoder (0.25: 8..128)")
    p.add_argument("--outputs", type=int, default=3, help="output channels (3: regions3, 5: reference5)")
    p.add_argument("--variant", choices=VARIANTS, default="base")
    p.add_argument("--checkpoint", help="raagr2-lab checkpoint or PyTorch state_dict (.safetensors); overrides --width/--outputs/--variant")
    p.add_argument("--size", type=int, default=192, help="input height and width (multiple of 16)")
    p.add_argument("--forward-batches", type=batch_list, default=[1], help="comma-separated eval batch sizes")
    p.add_argument("--train-batch", type=int, default=8, help="training-step batch size (0 skips it)")
    p.add_argument("--runs", type=int, default=5, help="timed runs after the warm-up call")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-cudnn-benchmark", action="store_true", help="leave torch.backends.cudnn.benchmark off")
    p.add_argument("--no-tf32", action="store_true", help="strict fp32 convolutions on CUDA (PyTorch's default allows TF32)")
    p.add_argument("--to-host", action="store_true", help="copy each forward's output to host memory inside the timer")
    p.add_argument("--onnx", action="store_true", help="on the CPU, also time the forward in ONNX Runtime (needs onnx, onnxruntime)")
    p.add_argument("--json", action="store_true", help="print the report as JSON (progress goes to stderr)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    if args.size < SPATIAL_MULTIPLE or args.size % SPATIAL_MULTIPLE:
        p.error(f"--size must be a positive multiple of {SPATIAL_MULTIPLE}, got {args.size}")
    if args.outputs < 1:
        p.error("--outputs must be at least 1")
    if not (0.0 < args.width <= 4.0):
        p.error("--width must be in (0, 4]")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.check_parity:
        passed = check_parity(Path(args.check_parity))
        print("parity: PASS" if passed else "parity: FAIL")
        return 0 if passed else 1
    report = run_bench(args)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Side-by-side benchmarks of raagr2-lab's RAAGR2-Net against PyTorch (and ONNX Runtime), on
the PyTorch twin of the network in ``raagr2_torch.py`` (same layers, keys and channel plans).

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
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import onnxruntime_bench
from onnxruntime_bench import summarize
from raagr2_torch import (
    INPUT_CHANNELS,
    SPATIAL_MULTIPLE,
    VARIANTS,
    DLUNet,
    ModelConfig,
    count_params,
    infer_config,
    load_checkpoint,
    load_weights,
    plan_from_encoder_widths,
    plan_from_width_multiplier,
    read_safetensors,
    region_channels,
)

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
    """The same eval forward exported to ONNX by PyTorch and timed by the project's ONNX Runtime
    runner (onnxruntime_bench.py), after checking its output against PyTorch's."""
    import importlib.util
    import io
    if importlib.util.find_spec("onnxruntime") is None:
        return {"skipped": "onnxruntime is not installed; pip install onnx onnxruntime"}
    model = copy.deepcopy(model).cpu().eval()
    x = torch.randn(1, INPUT_CHANNELS, size, size)
    buffer = io.BytesIO()
    try:
        torch.onnx.export(model, (x,), buffer, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    except Exception as e:  # noqa: BLE001 - any exporter failure is reported, not fatal
        return {"skipped": f"ONNX export failed: {e}"}
    sess = onnxruntime_bench.session(buffer.getvalue(), threads or torch.get_num_threads())
    with torch.inference_mode():
        expected = model(x).numpy()
    got = sess.run(None, {"x": x.numpy()})[0]
    report = onnxruntime_bench.report(buffer.getvalue(), batches, size, runs, threads or torch.get_num_threads())
    report["max_abs_diff_vs_pytorch"] = float(np.abs(expected - got).max())
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

#!/usr/bin/env python3
"""Markdown tables of what tools/export_table.sh measured (the JSON files in its folder):
per model, parameters, file size per format and precision, held-out Dice per region in each
precision, and the CPU forward latency of this project and of ONNX Runtime on its own
exports. Standard library only."""

import json
import sys
from pathlib import Path


def load(folder: Path, name: str):
    return json.loads((folder / name).read_text())


# The models of the table, dense first (sizes are compared with its fp32 ONNX file).
MODELS = [("dense", "default, dense"), ("pruned50", "default, 50 % L2 cut"),
          ("searched8", "default, budget search (0.015), 8 steps"),
          ("searched", "default, budget search (0.015), 40 steps")]


def size_bytes(report: dict, fmt: str) -> int:
    for written in report["written"]:
        if written["format"] == fmt:
            return written["bytes"]
    raise KeyError(fmt)


def size_mb(report: dict, fmt: str) -> str:
    for written in report["written"]:
        if written["format"] == fmt:
            return f"{written['bytes'] / 1e6:.2f}"
    return "-"


def latency(bench: dict) -> dict:
    """Median batch-1 forward in ms by row label (this project's flex row and each ONNX Runtime
    row), with the CPU threads of the peers."""
    out = {}
    for row in bench["results"]:
        if row.get("skipped"):
            out[row["backend"]] = f"skipped: {row['skipped']}"
        else:
            out[row["backend"]] = f"{row['forward'][0]['median_secs'] * 1e3:.1f} ms"
    return out


def measured(folder: Path):
    """The models of MODELS whose exports are in `folder` (a run may cover a subset)."""
    return [(n, label) for n, label in MODELS if (folder / f"export_{n}_fp32.json").exists()]


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results/export")
    print("| model | params | checkpoint fp32 / fp16 (MB) | ONNX fp32 / fp16 / int8 (MB) "
          "| int8 ONNX: x smaller than dense fp32 ONNX "
          "| PyTorch fp32 (MB) | Dice WT / TC / ET: fp32 | fp16 weights | static int8 |")
    print("|---|---:|---:|---:|---:|---:|---|---|---|")
    dense_onnx = None
    for name, label in measured(folder):
        fp32 = load(folder, f"export_{name}_fp32.json")
        fp16 = load(folder, f"export_{name}_fp16.json")
        int8 = load(folder, f"export_{name}_int8.json")
        bench = load(folder, f"bench_{name}.json")
        model = folder / "models" / f"{name}.safetensors"
        dice = []
        for precision in ["fp32", "fp16", "int8"]:
            mean = load(folder, f"eval_{name}_{precision}.json")["mean"]["dice"]
            dice.append(" / ".join(f"{mean[r]:.3f}" for r in ["WT", "TC", "ET"]))
        if dense_onnx is None:
            dense_onnx = size_bytes(fp32, "ONNX")
        smaller = dense_onnx / size_bytes(int8, "ONNX")
        print(f"| {label} | {bench['params']:,} | {model.stat().st_size / 1e6:.2f} / "
              f"{size_mb(fp16, 'raagr2-lab checkpoint')} | {size_mb(fp32, 'ONNX')} / "
              f"{size_mb(fp16, 'ONNX')} / {size_mb(int8, 'ONNX')} | {smaller:.2f}x | "
              f"{size_mb(fp32, 'PyTorch state_dict')} | {' | '.join(dice)} |")
    print()
    print("| model | input | runtime | forward, batch 1 (median) |")
    print("|---|---|---|---:|")
    for name, label in measured(folder) + [("full_width", "full width, dense (fresh weights)")]:
        bench = load(folder, f"bench_{name}.json")
        size = "x".join(str(d) for d in bench["input"])
        for runtime, value in latency(bench).items():
            print(f"| {label} | {size} | {runtime} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

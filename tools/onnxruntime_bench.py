#!/usr/bin/env python3
"""ONNX Runtime's CPU forward of an ONNX file, timed as ``raagr2-lab bench`` times its own: one
first call reported apart, then the median, min and max of ``--runs`` timed calls per batch size,
on N(0, 1) input of N x 4 x SIZE x SIZE. The one ONNX Runtime runner of the project:
``bench --onnx`` runs it on the graphs ``export --onnx`` writes, and ``torch_bench.py``
(``bench --against-pytorch``) on PyTorch's own export of its twin.

Needs numpy and onnxruntime. Example::

    python3 tools/onnxruntime_bench.py model.onnx --batches 1,8 --size 240 --runs 5 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

INPUT_CHANNELS = 4


def summarize(first: float, samples: list[float], **extra) -> dict:
    """A first call and timed runs as the Rust side's `Timing` (plus `extra` fields)."""
    return {
        **extra,
        "first_secs": first,
        "median_secs": statistics.median(samples),
        "min_secs": min(samples),
        "max_secs": max(samples),
        "runs": len(samples),
    }


def session(model, threads: int):
    """An ONNX Runtime CPU session of `model` (a path or the file's bytes) with every graph
    optimisation on; `threads` intra-op threads (0: ONNX Runtime's default, all cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def time_forward(sess, batches: list[int], size: int, runs: int, seed: int = 0) -> list[dict]:
    """One summary per batch size of `sess`'s forward on random input."""
    rng = np.random.default_rng(seed)
    name = sess.get_inputs()[0].name
    out = []
    for batch in batches:
        x = rng.standard_normal((batch, INPUT_CHANNELS, size, size), dtype=np.float32)
        start = time.perf_counter()
        sess.run(None, {name: x})
        first = time.perf_counter() - start
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            sess.run(None, {name: x})
            samples.append(time.perf_counter() - start)
        out.append(summarize(first, samples, batch=batch))
    return out


def report(model, batches: list[int], size: int, runs: int, threads: int) -> dict:
    """Version, threads and forward timings of `model`, or why there are none."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        return {"skipped": f"onnxruntime is not installed ({e}); pip install onnxruntime"}
    try:
        sess = session(model, threads)
    except Exception as e:  # noqa: BLE001 - a file ONNX Runtime refuses is reported, not fatal
        return {"skipped": f"ONNX Runtime refused the model: {e}"}
    used = threads or sess.get_session_options().intra_op_num_threads
    return {"version": ort.__version__, "threads": used,
            "forward": time_forward(sess, batches, size, runs)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an ONNX file (input N x 4 x H x W float32)")
    parser.add_argument("--batches", default="1", help="comma-separated batch sizes")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    result = report(args.model, batches, args.size, args.runs, args.threads)
    if args.json:
        print(json.dumps(result))
    else:
        for row in result.get("forward", []):
            print(f"batch {row['batch']}: median {row['median_secs'] * 1e3:.1f} ms")
        if "skipped" in result:
            print(result["skipped"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

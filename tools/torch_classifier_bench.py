#!/usr/bin/env python3
"""PyTorch peer of `raagr2-lab classify bench`: the same classifier built from torchvision's own
classes (VGG from `make_layers`, DenseNet) for the project's config JSON, timed the way the
project times it: eval forward per batch size under torch.inference_mode, and one training step
(forward, cross-entropy, backward, SGD with momentum 0.9 and weight decay), the first (warm-up)
call apart from the median/min/max of the timed runs.

Also the one home of "a torchvision model for a project config" (tools/classifier_fixtures.py
imports `build`).

    python3 tools/torch_classifier_bench.py --config '{"family": "vgg", ...}' --side 32 \\
        --forward-batches 1,8 --train-batch 8 --runs 5 --json
"""
import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn
from torchvision import models
from torchvision.models.vgg import make_layers


def build(config):
    """The torchvision network for a project `ClassifierConfig` (its JSON as a dict)."""
    if config["family"] == "densenet":
        return models.DenseNet(growth_rate=config["growth"], block_config=tuple(config["blocks"]),
                               num_init_features=config["init_features"], bn_size=config["bn_size"],
                               num_classes=config["classes"])
    cfg = []
    for stage in config["stages"]:
        cfg += stage + ["M"]
    model = models.VGG(make_layers(cfg, batch_norm=config["batch_norm"]), num_classes=config["classes"],
                       dropout=config["dropout"])
    # torchvision's head is fixed at 512*7*7 -> 4096; other heads keep its layout (0, 3, 6).
    side, hidden = config["pooled_side"], config["hidden"]
    features = config["stages"][-1][-1]
    model.avgpool = nn.AdaptiveAvgPool2d((side, side))
    model.classifier = nn.Sequential(
        nn.Linear(features * side * side, hidden), nn.ReLU(True), nn.Dropout(config["dropout"]),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(config["dropout"]),
        nn.Linear(hidden, config["classes"]),
    )
    return model


def summarize(first, samples, **extra):
    return {"first_secs": first, "median_secs": statistics.median(samples), "min_secs": min(samples),
            "max_secs": max(samples), "runs": len(samples), **extra}


def timed(fn, runs):
    start = time.perf_counter(); fn(); first = time.perf_counter() - start
    samples = []
    for _ in range(runs):
        start = time.perf_counter(); fn(); samples.append(time.perf_counter() - start)
    return first, samples


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True, help="the project's ClassifierConfig JSON")
    p.add_argument("--side", type=int, default=32)
    p.add_argument("--forward-batches", default="1,8")
    p.add_argument("--train-batch", type=int, default=8)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = json.loads(args.config)
    model = build(config)
    report = {"version": torch.__version__, "device_name": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "forward": []}
    model.eval()
    for batch in [int(b) for b in args.forward_batches.split(",") if b]:
        x = torch.randn(batch, 3, args.side, args.side)
        with torch.inference_mode():
            first, samples = timed(lambda: model(x), args.runs)
        report["forward"].append(summarize(first, samples, batch=batch))
    if args.train_batch > 0:
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        x = torch.randn(args.train_batch, 3, args.side, args.side)
        y = torch.randint(0, config["classes"], (args.train_batch,))

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()

        first, samples = timed(step, args.runs)
        report["train_step"] = summarize(first, samples)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

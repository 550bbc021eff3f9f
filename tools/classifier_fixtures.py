#!/usr/bin/env python3
"""Parity fixtures for the classifiers, made from torchvision's own classes at reduced widths.

Writes tests/fixtures/classifiers/<name>.safetensors: the model's state_dict under torchvision's
key names, plus `fixture.input` (images) and `fixture.output` (eval-mode logits), with the
project's config JSON for the same network in the metadata (`config`). Batch norm statistics,
scales and shifts are randomised so that eval-mode normalisation is actually exercised.

Also prints torchvision's parameter counts for the full-size networks the tests pin.

    pip install torch torchvision safetensors
    python3 tools/classifier_fixtures.py
"""
import json
import pathlib

import sys

import torch
from safetensors.torch import save_file
from torch import nn
from torchvision import models

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from torch_classifier_bench import build  # noqa: E402  (the one home of the model builder)

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "classifiers"
VGG11 = [[64], [128], [256, 256], [512, 512], [512, 512]]
VGG16 = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]


def randomise_batch_norms(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0.0, 0.1)


def vgg(stages, divisor, batch_norm, pooled_side, hidden, classes):
    stages = [[w // divisor for w in s] for s in stages]
    config = {"family": "vgg", "stages": stages, "batch_norm": batch_norm,
              "pooled_side": pooled_side, "hidden": hidden, "classes": classes, "dropout": 0.5}
    return build(config), config


def densenet(growth, blocks, init_features, bn_size, classes):
    config = {"family": "densenet", "growth": growth, "blocks": blocks,
              "init_features": init_features, "bn_size": bn_size, "classes": classes}
    return build(config), config


def write(name, model, config, side):
    randomise_batch_norms(model)
    model.eval()
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        y = model(x)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()
               if not k.endswith("num_batches_tracked")}
    tensors["fixture.input"] = x.contiguous()
    tensors["fixture.output"] = y.contiguous()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.safetensors"
    save_file(tensors, str(path), metadata={"config": json.dumps(config)})
    params = sum(p.numel() for p in model.parameters())
    print(f"{path.name}: {params} parameters, output {tuple(y.shape)}")


def main():
    torch.manual_seed(0)
    # ImageNet head at 64x64: the 2x2 feature map is pooled to 7x7 with overlapping bins.
    write("vgg11_imagenet_head", *vgg(VGG11, 8, False, 7, 16, 10), side=64)
    # CIFAR head (global pool) with batch norm, 32x32.
    write("vgg16_bn_cifar_head", *vgg(VGG16, 8, True, 1, 16, 10), side=32)
    write("densenet_small", *densenet(8, [2, 3, 4, 3], 16, 2, 10), side=64)

    count = lambda m: sum(p.numel() for p in m.parameters())
    for name in ["vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "densenet169"]:
        print(f"torchvision {name}: {count(getattr(models, name)())} parameters")
    for stages, bn, name in [(VGG16, False, "vgg16"), (VGG11, True, "vgg11_bn")]:
        print(f"{name} with the CIFAR head, 100 classes: {count(vgg(stages, 1, bn, 1, 512, 100)[0])}")
    print(f"densenet169, 100 classes: {count(models.densenet169(num_classes=100))}")


if __name__ == "__main__":
    main()

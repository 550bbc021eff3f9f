#!/usr/bin/env bash
# The classifier study of the book's classifier results (docs/results/classifiers.md) on the CIFAR-format stand-in, run in the
# current folder: stand-in, VGG11-BN / demo / DenseNet169 training, L1 schedules over three seeds,
# CKA per schedule and between schedules, a pruned VGG16-BN teacher and distilled students,
# channel pruning with speedup. About 75 minutes on a 2-core CPU.
#   B=/path/to/raagr2-lab bash tools/classify_study.sh
set -euo pipefail
B=${B:-raagr2-lab}
mkdir -p cka kd
$B classify stand-in --classes 10 --train-per-class 300 --test-per-class 100 --seed 0 -o cifar_standin
$B classify train --data cifar_standin --arch vgg11-bn --width-divisor 4 --epochs 40 --seed 0 -o vgg11_bn.safetensors --json > vgg11_bn.train.json
$B classify train --data cifar_standin --arch vgg11-bn --width-divisor 8 --epochs 30 --seed 0 -o classifier_demo.safetensors --json > classifier_demo.train.json
$B classify train --data cifar_standin --arch densenet169 --width-divisor 4 --epochs 40 --seed 0 -o densenet169.safetensors --json > densenet169.train.json
$B classify sweep vgg11_bn.safetensors --data cifar_standin --schedules one-shot,iterative,layer-wise \
  --sparsities 0.5,0.8 --seeds 0,1,2 --fine-tune-epochs 2 -o vgg11_bn_l1
for s in one-shot iterative layer-wise; do
  $B classify cka vgg11_bn_l1.$s.0.8.seed0.safetensors --data cifar_standin -o cka/self.$s.csv --json > /dev/null
done
$B classify cka vgg11_bn.safetensors --data cifar_standin -o cka/self.dense.csv --json > /dev/null
$B classify cka vgg11_bn_l1.one-shot.0.8.seed0.safetensors --other vgg11_bn_l1.iterative.0.8.seed0.safetensors --data cifar_standin -o cka/one-shot_vs_iterative.csv --json > /dev/null
$B classify cka vgg11_bn_l1.one-shot.0.8.seed0.safetensors --other vgg11_bn_l1.layer-wise.0.8.seed0.safetensors --data cifar_standin -o cka/one-shot_vs_layer-wise.csv --json > /dev/null
$B classify cka vgg11_bn_l1.iterative.0.8.seed0.safetensors --other vgg11_bn_l1.layer-wise.0.8.seed0.safetensors --data cifar_standin -o cka/iterative_vs_layer-wise.csv --json > /dev/null
$B classify train --data cifar_standin --arch vgg16-bn --width-divisor 4 --epochs 40 --seed 0 -o vgg16_bn.safetensors --json > vgg16_bn.train.json
$B classify prune vgg16_bn.safetensors --data cifar_standin --schedule one-shot --sparsity 0.5 \
  --fine-tune-epochs 2 --seed 0 -o vgg16_bn.one-shot.50.safetensors --json > vgg16_bn.one-shot.50.json
$B classify distill --teacher vgg16_bn.one-shot.50.safetensors --data cifar_standin --arch vgg11-bn \
  --width-divisor 4 --epochs 20 --seeds 0,1,2 --alpha 0.9 --temperature 4 -o kd/vgg11_from_vgg16 --json > kd/summary.json
$B classify prune-channels vgg11_bn.safetensors --data cifar_standin --ratios 0.25,0.5,0.75 --fine-tune-epochs 2 -o vgg11_bn_channels --json > vgg11_bn_channels.json

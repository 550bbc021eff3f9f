#!/usr/bin/env bash
# The GPU check of this project, run on a machine with an NVIDIA card and PyTorch+CUDA.
# Phase 1, alone on the card (timings): bench (wgpu vs PyTorch CUDA in the same run) at full
# width, then at the default model's width. Phase 2, two jobs side by side: the app's GPU
# fine-tune (driven through egui_kittest) and a real `train --device gpu` followed by `eval
# --device gpu` of its checkpoint (evaluate it on the CPU at home to compare).
# Usage: tools/gpu_check.sh BINARY OUT_DIR [TEST_BINARY]
# TEST_BINARY is the tests/main.rs binary; without it the app stage is left out.
# wgpu compiles and autotunes each kernel on first use (minutes at full width with cubecl's
# default "balanced" level on an H200, 2026-11-27), so this script asks for the "minimal"
# level unless CUBECL_AUTOTUNE_LEVEL is set; cubecl keeps its tuning results in
# target/environment/ under the working directory, so later stages reuse earlier ones.
# Each stage has its own time limit and log, so a stage that hangs leaves the others' results.
set -u
BIN=${1:?binary}
OUT=${2:?output folder}
TESTS=${3:-}
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}
WORK=$(mktemp -d)
mkdir -p "$OUT"
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
stage() { # log_name name limit_s command...
  local file="$OUT/$1" name=$2 limit=$3; shift 3
  log "$name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout "$limit" "$@" >>"$file" 2>&1
  log "$name: exit $? after $((SECONDS - t0)) s"
}

log "machine (autotune level $CUBECL_AUTOTUNE_LEVEL)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >>"$OUT/log.txt" 2>&1

# Phase 1. Full-width RAAGR2-Net, 4x192x192: forward at batch 1 and 8, Adam step at batch 8,
# with PyTorch CUDA (its defaults: cuDNN benchmark on, TF32 convolutions allowed).
stage log.txt bench_full "${LIMIT_FULL:-240}" "$BIN" bench --width 1.0 --size 192 --backends gpu \
  --forward-batches 1,8 --train-batch 8 --runs 10 --against-pytorch
# The default model's shape (encoder 8..128): one slice, as the viewer segments it.
stage log.txt bench_default "${LIMIT_DEFAULT:-80}" "$BIN" bench --width 0.25 --size 192 \
  --backends gpu --forward-batches 1 --train-batch 8 --runs 10 --against-pytorch

# Phase 2, side by side (their epoch times share the card and are not benchmarks).
if [ -n "$TESTS" ]; then
  # The app: choose GPU, see the adapter named, fine-tune two epochs, time them.
  stage log_app.txt app_gpu "${LIMIT_APP:-170}" "$TESTS" --ignored --exact --nocapture \
    suite::app::a_gpu_fine_tune_names_the_adapter_and_times_each_epoch &
fi
(
  stage log_train.txt train_gpu "${LIMIT_TRAIN:-130}" "$BIN" train --synthetic 10 --width 0.25 \
    --crop 192 --epochs 3 --batch 8 --lr 1e-3 --slice-step 3 --tumour-free-share 0.15 --augment \
    --val-fraction 0.2 --device gpu --seed 0 -o "$WORK/gpu_model.safetensors"
  cp "$WORK/gpu_model.safetensors" "$OUT/" 2>>"$OUT/log_train.txt"
  stage log_train.txt eval_gpu 40 "$BIN" eval "$WORK/gpu_model.safetensors" --synthetic 3 \
    --synthetic-seed 10000 --device gpu --json-out "$OUT/eval_gpu.json"
) &
wait
log "done"

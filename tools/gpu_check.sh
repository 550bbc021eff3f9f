#!/usr/bin/env bash
# The GPU check of this project, run on a machine with an NVIDIA card and PyTorch+CUDA:
# bench (wgpu vs PyTorch CUDA in the same run), a real `train --device gpu`, and the trained
# model evaluated on the GPU (evaluate it on the CPU at home to compare).
# Usage: tools/gpu_check.sh BINARY OUT_DIR [TEST_BINARY]
# TEST_BINARY (the tests/main.rs binary) adds the app's GPU fine-tune, driven through egui_kittest.
# Seen on an H200 (driver 580): PyTorch alone times the full width in 13-17 s; wgpu's first training
# step compiles and autotunes its kernels (about 40 s at width 0.25, more at full width), so the
# full-width bench needs minutes, not seconds; `train` at width 0.25 spent 42 s on its first
# epoch and 6 s on each later one.
# To shorten the first steps, try CUBECL_AUTOTUNE_LEVEL=minimal (cubecl reads it from the
# environment; it trades some steady-state speed for less tuning), and report which was used.
# Each stage has its own time limit and logs as it goes (all into OUT_DIR/log.txt), so a stage
# that hangs or breaks leaves the others' results.
set -u
BIN=${1:?binary}
OUT=${2:?output folder}
TESTS=${3:-}
LOG="$OUT/log.txt"
WORK=$(mktemp -d)
mkdir -p "$OUT"
log() { echo "== $(date +%T) $*" | tee -a "$LOG"; }
stage() { # name limit_s command...
  local name=$1 limit=$2; shift 2
  log "$name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout "$limit" "$@" >>"$LOG" 2>&1
  log "$name: exit $? after $((SECONDS - t0)) s"
}

log "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >>"$LOG" 2>&1

# Full-width RAAGR2-Net, 4x192x192: forward at batch 1 and 8, Adam step at batch 8, with
# PyTorch CUDA (its defaults: cuDNN benchmark on, TF32 convolutions allowed).
stage bench_full 300 "$BIN" bench --width 1.0 --size 192 --backends gpu --forward-batches 1,8 \
  --train-batch 8 --runs 10 --against-pytorch
# The app: choose GPU, see the adapter named, fine-tune two epochs, time them.
if [ -n "$TESTS" ]; then
  stage app_gpu 240 "$TESTS" --ignored --exact --nocapture \
    suite::app::a_gpu_fine_tune_names_the_adapter_and_times_each_epoch
fi
# The default model's shape (encoder 8..128): one slice, as the viewer segments it.
stage bench_default 120 "$BIN" bench --width 0.25 --size 192 --backends gpu --forward-batches 1 \
  --train-batch 8 --runs 10 --against-pytorch
# PyTorch in strict fp32 (burn computes in fp32 throughout).
stage torch_fp32 40 python3 tools/torch_bench.py --device cuda --width 1.0 --outputs 3 --size 192 \
  --forward-batches 1,8 --train-batch 8 --runs 10 --to-host --no-tf32
# Training on the GPU, then the trained model scored on the GPU (SKIP_TRAIN=1 leaves it out).
[ -n "${SKIP_TRAIN:-}" ] && { log "done"; exit 0; }
stage train_gpu 150 "$BIN" train --synthetic 10 --width 0.25 --crop 192 --epochs 3 --batch 8 \
  --lr 1e-3 --slice-step 3 --tumour-free-share 0.15 --augment --val-fraction 0.2 \
  --device gpu --seed 0 -o "$WORK/gpu_model.safetensors"
cp "$WORK/gpu_model.safetensors" "$OUT/" 2>>"$LOG"
stage eval_gpu 60 "$BIN" eval "$WORK/gpu_model.safetensors" --synthetic 3 --synthetic-seed 10000 \
  --device gpu --json-out "$OUT/eval_gpu.json"
log "done"

#!/usr/bin/env bash
# The export table of the book (docs/results/export.md): the embedded default model dense, with
# 50 % of every channel group removed (L2, no fine-tuning), and pruned by the budget search
# (`prune --auto`, per-group ratios with fine-tuning, every region within 0.015 on validation
# cases), written in each export format and precision: parameters, file sizes, held-out Dice per
# region as each precision computes (`eval --precision`), and CPU forward latency of this
# project beside ONNX Runtime on its own exports (fp32, fp16, static int8);
# then the same latencies at full width (fresh weights: timing only).
#
#   bash tools/export_table.sh [OUT_DIR]        (default: docs/results/export)
#   MODELS="dense pruned50 searched8" bash tools/export_table.sh OUT_DIR   (a subset: the
#   40-step search alone takes about an hour)
#
# Needs a release build and python3 with numpy and onnxruntime; writes JSON per step into
# OUT_DIR and prints the Markdown table (paste it into docs/results/export.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/raagr2-lab}
OUT=${1:-docs/results/export}
SIZE=${SIZE:-240}
RUNS=${RUNS:-5}
THREADS=${THREADS:-$(nproc)}
mkdir -p "$OUT/models"

"$BIN" export assets/default_model.safetensors --checkpoint "$OUT/models/dense.safetensors" --json \
  > "$OUT/export_dense_copy.json"
[ -s "$OUT/models/pruned50.safetensors" ] || "$BIN" prune -o "$OUT/models/pruned50.safetensors" --method l2 \
  --ratio 0.5 --json > "$OUT/prune50.json"
# The searches take about ten minutes (8 steps) and an hour (40, the default) on two cores;
# their models are kept for reruns (the JSON alone is not enough: it is rerun when the model
# is missing).
MODELS=${MODELS:-dense pruned50 searched8 searched}
wants() { [[ " $MODELS " == *" $1 "* ]]; }
wants searched8 && { [ -s "$OUT/models/searched8.safetensors" ] || "$BIN" prune --auto \
  --budget wt=0.015,tc=0.015,et=0.015 --auto-max-steps 8 \
  -o "$OUT/models/searched8.safetensors" --json > "$OUT/prune_searched8.json"; }
wants searched && { [ -s "$OUT/models/searched.safetensors" ] || "$BIN" prune --auto \
  --budget wt=0.015,tc=0.015,et=0.015 \
  -o "$OUT/models/searched.safetensors" --json > "$OUT/prune_searched.json"; }
for name in $MODELS; do
  model="$OUT/models/$name.safetensors"
  "$BIN" export "$model" --onnx "$OUT/models/$name.onnx" --pytorch "$OUT/models/$name.pt.safetensors" \
    --json > "$OUT/export_${name}_fp32.json"
  "$BIN" export "$model" --onnx "$OUT/models/$name.fp16.onnx" \
    --checkpoint "$OUT/models/$name.fp16.safetensors" --precision fp16 --json \
    > "$OUT/export_${name}_fp16.json"
  "$BIN" export "$model" --onnx "$OUT/models/$name.int8.onnx" --precision int8 --json \
    > "$OUT/export_${name}_int8.json"
  for precision in fp32 fp16 int8; do
    [ -s "$OUT/eval_${name}_$precision.json" ] || "$BIN" eval "$model" --precision "$precision" \
      --json > "$OUT/eval_${name}_$precision.json"
  done
  "$BIN" bench "$model" --size "$SIZE" --backends flex --forward-batches 1 --train-batch 0 \
    --runs "$RUNS" --onnx --pytorch-threads "$THREADS" --json > "$OUT/bench_$name.json"
done
"$BIN" bench --width 1.0 --size "$SIZE" --backends flex --forward-batches 1 --train-batch 0 \
  --runs "$RUNS" --onnx --pytorch-threads "$THREADS" --json > "$OUT/bench_full_width.json"
python3 tools/export_table.py "$OUT"

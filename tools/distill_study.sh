#!/usr/bin/env bash
# Distillation from a pruned teacher, over training seeds: for each seed, one student trained
# with the teacher's soft outputs and one without (same seed, data and steps), each scored on
# the held-out realistic cases and compared level by level with the teacher (linear CKA); then
# tools/distill_summary.py prints mean ± sd over the seeds (the commands' own output goes to
# OUT_DIR/runs.log).
# Usage: tools/distill_study.sh TEACHER OUT_DIR [SEED...]   (default seeds: 0 1 2)
# BIN overrides the binary (default: target/release/raagr2-lab, built by cargo build --release).
set -euo pipefail
TEACHER=${1:?teacher checkpoint}
OUT=${2:?output folder}
shift 2
SEEDS=("$@")
[ ${#SEEDS[@]} -eq 0 ] && SEEDS=(0 1 2)
BIN=${BIN:-target/release/raagr2-lab}
mkdir -p "$OUT"
LOG="$OUT/runs.log"
# A student of 85,727 parameters (the default model halved has 146,619), trained briefly on
# the default model's own training cases (realistic synthetic seeds 0-7).
STUDENT=(--synthetic 8 --widths 4,8,12,24,48 --crop 128 --epochs 8 --batch 8 --lr 1e-3
  --tumour-free-share 0.05 --max-batches 40 --val-fraction 0.25)
HELD_OUT=(--synthetic 10 --synthetic-seed 10000)
for seed in "${SEEDS[@]}"; do
  for arm in kd plain; do
    kd=()
    [ "$arm" = kd ] && kd=(--teacher "$TEACHER" --kd-alpha 0.5 --kd-temperature 2)
    model="$OUT/student_$arm.seed$seed.safetensors"
    "$BIN" train "${STUDENT[@]}" --seed "$seed" "${kd[@]}" -o "$model" >> "$LOG"
    "$BIN" eval "$model" "${HELD_OUT[@]}" --json-out "$OUT/student_$arm.seed$seed.eval.json" >> "$LOG"
    "$BIN" cka "$TEACHER" --other "$model" "${HELD_OUT[@]}" --slices 32 --batch 8 \
      -o "$OUT/teacher_vs_student_$arm.seed$seed.csv" >> "$LOG"
  done
done
"$BIN" eval "$TEACHER" "${HELD_OUT[@]}" --json-out "$OUT/teacher.eval.json" >> "$LOG"
python3 "$(dirname "$0")/distill_summary.py" "$OUT" "${SEEDS[@]}"

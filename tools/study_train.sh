#!/usr/bin/env bash
# Trains the compression study's model family on the CPU with one recipe, one data set and one
# seed: the base network, the depthwise-shared and the paired-shared variants at half width
# (encoder 16/32/64/128/256), and a slimming model (the base recipe from scratch with network
# slimming's L1 term on every BN gamma). Resumable: each model continues from its
# `.last.safetensors` (epoch, learning rate, history and split are in the checkpoint), so
# rerunning the script after a stop (Ctrl-C, a killed session) picks up where it stopped; a
# finished model is marked `<name>.done` and skipped.
# Usage: tools/study_train.sh [RUN_DIR] [NAME...]   (default: docs/study/train, every model)
# BIN overrides the binary (default: target/release/raagr2-lab, built by cargo build --release).
set -euo pipefail
RUNS=${1:-docs/study/train}
shift || true
NAMES=("$@")
[ ${#NAMES[@]} -eq 0 ] && NAMES=(base depthwise-shared slimming paired-shared)
BIN=${BIN:-target/release/raagr2-lab}
mkdir -p "$RUNS"

# The default model's recipe (README, "The embedded default model") at half width, with three
# more epochs: 60 realistic cases (54 train, 6 validation), every third tumour slice plus 15 %
# of the tumour-free ones at 192x192, flips and intensity jitter, Adam at 1e-3 cut tenfold after
# an epoch without a better mean validation Dice, stop after three such epochs.
RECIPE=(--synthetic 60 --widths 16,32,64,128,256 --crop 192 --epochs 8 --batch 8 --lr 1e-3
  --slice-step 3 --tumour-free-share 0.15 --augment --val-fraction 0.1 --lr-patience 1
  --early-stop 3 --seed 0)

extra_args() {
  case "$1" in
    base) echo "--variant base" ;;
    depthwise-shared) echo "--variant depthwise-shared" ;;
    paired-shared) echo "--variant paired-shared" ;;
    slimming) echo "--variant base --slimming-l1 1e-4" ;;
    *) echo "unknown study model: $1" >&2; return 1 ;;
  esac
}

for name in "${NAMES[@]}"; do
  read -r -a extra <<< "$(extra_args "$name")"
  best="$RUNS/$name.safetensors"
  last="$RUNS/$name.last.safetensors"
  if [ -f "$RUNS/$name.done" ]; then
    echo "study-train: $name already finished ($best)"
    continue
  fi
  resume=()
  [ -f "$last" ] && resume=(--resume "$last")
  echo "study-train: $name ${resume[*]:-(fresh)}"
  # The report lands under its own name only when the run ends, so a killed run leaves none.
  partial="$RUNS/.$name.report.json.partial"
  "$BIN" train "${RECIPE[@]}" "${extra[@]}" "${resume[@]}" -o "$best" --json \
    > "$partial" 2>> "$RUNS/$name.log"
  # Only a run that ended on its own (all epochs or early stopping) is finished; Ctrl-C
  # ("cancelled") leaves the model to be resumed.
  if grep -q '"stop": *"\(finished\|early-stopped\)"' "$partial"; then
    mv "$partial" "$RUNS/$name.report.json"
    touch "$RUNS/$name.done"
  else
    echo "study-train: $name stopped before the end; rerun to resume" >&2
    exit 1
  fi
done

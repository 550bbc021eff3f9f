#!/usr/bin/env bash
# Runs the compression study on the trained family (tools/study_train.sh) into docs/study/study.*
# Resumable: each point's row is kept in docs/study/study.rows/ as soon as it is measured, so
# running this again after a stop goes on at the next point. Sized for about 3.5 hours on a
# 2-core CPU: five held-out cases (10000-10004), three fine-tuning seeds of 40 steps each.
# BIN overrides the binary (default: target/release/raagr2-lab).
set -euo pipefail
BIN=${BIN:-target/release/raagr2-lab}
T=docs/study/train
"$BIN" study --base "$T/base.safetensors" --slimming "$T/slimming.safetensors" \
  --depthwise-shared "$T/depthwise-shared.safetensors" \
  --paired-shared "$T/paired-shared.safetensors" \
  --synthetic 5 --synthetic-seed 10000 -o docs/study/study "$@"

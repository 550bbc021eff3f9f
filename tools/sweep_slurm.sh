#!/usr/bin/env bash
# A sweep spread over a SLURM job array: one array task per point of a points file.
#
#   raagr2-lab sweep [sweep options] -o sweep.csv --write-points points.json   # prints N points
#   sbatch --array=0-$((N - 1)) tools/sweep_slurm.sh points.json
#   raagr2-lab sweep --merge points.rows -o sweep.csv                          # after the array
#
# Submit from the folder the points file's relative paths (data, -o) refer to. RAAGR2_LAB names
# the binary when it is not on PATH.
#SBATCH --job-name=raagr2-sweep
#SBATCH --cpus-per-task=4
#SBATCH --time=02:00:00
#SBATCH --output=raagr2-sweep-%A_%a.log
set -euo pipefail
points="${1:?usage: sbatch --array=0-N tools/sweep_slurm.sh points.json}"
: "${SLURM_ARRAY_TASK_ID:?run as an array job (sbatch --array=...)}"
exec "${RAAGR2_LAB:-raagr2-lab}" sweep --run-point "$points" --index "$SLURM_ARRAY_TASK_ID"

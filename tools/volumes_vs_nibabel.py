#!/usr/bin/env python3
"""Region volumes as this project reports them beside nibabel's count x voxel volume.

For each case folder given (default: synthetic cases written by `synth` into a scratch folder
on three grids: 1 mm, 2 mm and 0.94 x 0.94 x 3 mm via --resample), runs
`raagr2-lab predict CASE -o LABELS --json`, reads the label map it wrote with nibabel, counts
each region's voxels (WT: labels != 0, TC: NCR + ET, ET, NCR, ED) times prod(header zooms), and
prints both with their difference. Exits non-zero when any difference exceeds 0.01 ml.

    python3 tools/volumes_vs_nibabel.py [CASE_DIR ...]

Needs a release build (target/release/raagr2-lab) and nibabel (pip install nibabel).
"""

import json
import os
import subprocess
import sys
import tempfile

import nibabel
import numpy as np

BIN = os.environ.get("BIN", "target/release/raagr2-lab")
TOLERANCE_ML = 0.01


def regions(labels, enhancing):
    """Boolean masks of the five regions from BraTS labels (ET = 4, or 3 for 2023+ folders)."""
    ncr, ed, et = labels == 1, labels == 2, labels == enhancing
    return {"WT": labels != 0, "TC": ncr | et, "ET": et, "NCR": ncr, "ED": ed}


def compare(case_dir, out_dir, extra=()):
    labels_path = os.path.join(out_dir, os.path.basename(case_dir.rstrip("/")) + "_pred.nii.gz")
    report = json.loads(subprocess.run(
        [BIN, "predict", case_dir, "-o", labels_path, "--json", *extra],
        check=True, capture_output=True, text=True).stdout)
    image = nibabel.load(labels_path)
    labels = np.asarray(image.dataobj).astype(np.int64)
    voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
    enhancing = 3 if (labels == 3).any() and not (labels == 4).any() else 4
    rows = []
    for name, mask in regions(labels, enhancing).items():
        theirs = int(mask.sum()) * voxel_ml
        ours = report["volumes_ml"][name]
        rows.append((name, ours, theirs, abs(ours - theirs)))
    return image.header.get_zooms()[:3], rows


def synthetic_cases(scratch):
    """Three generated cases: 1 mm and 2 mm over BraTS's view, and one at 2 mm resampled."""
    cases = []
    for spacing, seed in [("1", 10000), ("2", 10001)]:
        folder = os.path.join(scratch, f"cases_{spacing}mm")
        subprocess.run([BIN, "synth", "-o", folder, "-n", "1", "--seed", str(seed),
                        "--spacing", spacing, "--json"], check=True, capture_output=True)
        case = os.path.join(folder, sorted(os.listdir(folder))[0])
        cases.append((case, ()))
    cases.append((cases[1][0], ("--resample",)))
    return cases


def main():
    scratch = tempfile.mkdtemp(prefix="volumes_vs_nibabel_")
    cases = [(c, ()) for c in sys.argv[1:]] or synthetic_cases(scratch)
    worst = 0.0
    print(f"nibabel {nibabel.__version__}; {BIN}")
    print("| case | zooms (mm) | region | raagr2-lab (ml) | nibabel count x voxel (ml) | |diff| (ml) |")
    print("|---|---|---|---:|---:|---:|")
    for case, extra in cases:
        zooms, rows = compare(case, scratch, extra)
        label = os.path.basename(case.rstrip("/")) + (" (--resample)" if extra else "")
        zooms = " x ".join(f"{z:g}" for z in zooms)
        for name, ours, theirs, diff in rows:
            print(f"| {label} | {zooms} | {name} | {ours:.3f} | {theirs:.3f} | {diff:.2e} |")
            worst = max(worst, diff)
    print(f"\nlargest difference {worst:.2e} ml (goal: at most {TOLERANCE_ML} ml)")
    sys.exit(0 if worst <= TOLERANCE_ML else 1)


if __name__ == "__main__":
    main()

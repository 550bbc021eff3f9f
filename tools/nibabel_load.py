#!/usr/bin/env python3
"""Times nibabel loading one BraTS case folder: the four modalities and the segmentation (when
present), each decompressed and scaled to a float32 array, as `raagr2-lab bench --load-case`
does with its own reader. The peer of that measurement, run by `bench` in the same invocation.

    python3 tools/nibabel_load.py CASE_DIR [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

SUFFIXES = ("t1", "t1ce", "t2", "flair", "seg", "t1n", "t1c", "t2w", "t2f")


def case_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".nii.gz", ".nii")))
    picked = [p for p in files if p.name.split(".nii")[0].rsplit("_", 1)[-1].rsplit("-", 1)[-1] in SUFFIXES]
    if len(picked) < 4:
        raise SystemExit(f"{folder}: expected a BraTS case folder (four modalities and a seg), found {len(picked)} files")
    return picked


def load(files: list[Path]) -> int:
    voxels = 0
    for path in files:
        data = nib.load(str(path)).get_fdata(dtype=np.float32)
        voxels += data.size
    return voxels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    files = case_files(args.case)
    start = time.perf_counter()
    voxels = load(files)
    first = time.perf_counter() - start
    samples = []
    for _ in range(max(args.runs, 1)):
        start = time.perf_counter()
        load(files)
        samples.append(time.perf_counter() - start)
    report = {
        "framework": "nibabel",
        "version": nib.__version__,
        "files": len(files),
        "voxels": voxels,
        "first_secs": first,
        "median_secs": statistics.median(samples),
        "min_secs": min(samples),
        "max_secs": max(samples),
        "runs": len(samples),
    }
    if args.json:
        json.dump(report, sys.stdout)
    else:
        print(f"nibabel {report['version']}: {len(files)} files, median {report['median_secs']:.3f} s over {len(samples)} runs")


if __name__ == "__main__":
    main()

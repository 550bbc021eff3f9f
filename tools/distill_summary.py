#!/usr/bin/env python3
"""Summarises tools/distill_study.sh: Dice of the students with and without the teacher (mean
over the held-out cases per seed, then mean ± sample sd over seeds, and the mean sd over cases),
and their same-level linear CKA with the teacher (mean ± sd over seeds), as Markdown tables.

Usage: tools/distill_summary.py OUT_DIR SEED..."""
import csv
import json
import statistics
import sys
from pathlib import Path

REGIONS = ("WT", "TC", "ET")


def mean_sd(values):
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return mean, sd


def case_dice(path):
    """Per region: the Dice of every case in an `eval --json-out` report."""
    report = json.loads(Path(path).read_text())
    return {r: [case["dice"][r] for case in report["cases"]] for r in REGIONS}


def same_level_cka(path):
    """The diagonal of a `cka` CSV matrix (each level against the same level)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    columns = rows[0][1:]
    return {row[0]: float(row[1 + columns.index(row[0])]) for row in rows[1:] if row[0] in columns}


def main():
    out, seeds = Path(sys.argv[1]), sys.argv[2:]
    teacher = case_dice(out / "teacher.eval.json")
    print("| model | seeds | Dice WT | Dice TC | Dice ET |")
    print("|---|---|---|---|---|")
    cells = []
    for r in REGIONS:
        mean, sd = mean_sd(teacher[r])
        cells.append(f"{mean:.3f} [{sd:.2f}]")
    print(f"| teacher | | {' | '.join(cells)} |")
    levels = None
    cka_rows = []
    for arm, name in (("kd", "student, distilled"), ("plain", "student, no teacher")):
        per_seed = [case_dice(out / f"student_{arm}.seed{s}.eval.json") for s in seeds]
        cells = []
        for r in REGIONS:
            seed_means = [statistics.fmean(d[r]) for d in per_seed]
            case_sds = [statistics.stdev(d[r]) for d in per_seed]
            mean, sd = mean_sd(seed_means)
            cells.append(f"{mean:.3f} ± {sd:.3f} [{statistics.fmean(case_sds):.2f}]")
        print(f"| {name} | {len(seeds)} | {' | '.join(cells)} |")
        ckas = [same_level_cka(out / f"teacher_vs_student_{arm}.seed{s}.csv") for s in seeds]
        levels = list(ckas[0])
        cka_rows.append((name, [mean_sd([c[level] for c in ckas]) for level in levels]))
    print("\nDice: mean over seeds of the mean over cases ± sd over seeds [mean sd over cases]\n")
    print(f"| same-level CKA with the teacher | {' | '.join(levels)} |")
    print(f"|---|{'---|' * len(levels)}")
    for name, values in cka_rows:
        print(f"| {name} | {' | '.join(f'{m:.2f} ± {s:.2f}' for m, s in values)} |")


if __name__ == "__main__":
    main()

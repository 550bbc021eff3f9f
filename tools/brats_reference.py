"""Reference values from the official BraTS evaluation package for testing `score`.

Builds small BraTS-2023-labelled test pairs (1 NCR, 2 ED, 3 ET; 48x48x32 voxels, 1 mm, uint8,
identity affine), saves each as <name>_pred.nii.gz / <name>_gt.nii.gz, runs the official
package BraTS_evaluation (PyPI "brats-evaluation" 0.0.10, built on panoptica) on every pair and
writes expected.json beside them.

Setup (the package is not needed by the Rust build; only to regenerate the fixtures):
    python3 -m venv /tmp/bratsenv && /tmp/bratsenv/bin/pip install brats-evaluation==0.0.10
Run:
    /tmp/bratsenv/bin/python tools/brats_reference.py [OUT_DIR]   (default tests/fixtures/score)
    add --no-eval to only (re)write the NIfTI pairs.
The committed expected.json also holds a "brats2023_script" block: the BraTS 2023 lesion-wise
script (GitHub rachitsaluja/BraTS-2023-Metrics, metrics.py; not on PyPI, not part of the package
above; needs pandas < 2, so its own interpreter), added with
    python3 -m venv /tmp/b23env && /tmp/b23env/bin/pip install numpy==1.24.3 pandas==1.5.3 \
        scipy==1.11.1 connected-components-3d==3.12.1 nibabel==5.1.0
    ... tools/brats_reference.py tests/fixtures/score --brats2023 /path/to/BraTS-2023-Metrics \
        --brats2023-python /tmp/b23env/bin/python

What is called, exactly as the package's own README does it:
    evaluator = panoptica.Panoptica_Evaluator.load_from_config(str(brats_evaluation.config_path("gli")))
    brats_evaluation.evaluate_single_exam(pred_path, gt_path, name, evaluator)
then the per-pair dicts are put in the package's summary layout {"metrics": [...], "missings": []}
and passed through brats_evaluation.parse_seg_results (the leaderboard parser for every task but
metastases) and brats_evaluation.parse_mets_results (vol_threshold 20, overlap_threshold 0.1, its
CLI defaults) to get the leaderboard numbers. See tools/brats_evaluation_notes.md for the rules.

JSON encoding in expected.json: finite numbers as numbers, NaN as null, +inf as the string "inf".
"""

import argparse
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import warnings

import nibabel as nib
import numpy as np

SHAPE = (48, 48, 32)
# Output key -> panoptica group name in the bundled "gli" config (BraTS 2023+ glioma labels).
REGIONS = {"WT": "wt", "TC": "tc", "ET": "et", "NCR": "netc", "ED": "snfh"}
CONFIG = "gli"
METS_VOL_THRESHOLD = 20.0
METS_OVERLAP_THRESHOLD = 0.1


# ----------------------------------------------------------------------------- volumes


def _ellipsoid_norm(center, radii, noise=None):
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in SHAPE], indexing="ij")
    e = np.sqrt(
        ((x - center[0]) / radii[0]) ** 2
        + ((y - center[1]) / radii[1]) ** 2
        + ((z - center[2]) / radii[2]) ** 2
    )
    if noise is not None:
        e = e + noise
    return e


def tumour(center=(24, 24, 16), radii=(11.0, 9.0, 8.0), noise=None, et=True):
    """Nested ellipsoids: NCR core (e <= 0.3), ET shell (0.3 < e <= 0.6), ED (0.6 < e <= 1).
    With et=False the ET shell is labelled NCR instead (same TC, no ET)."""
    e = _ellipsoid_norm(center, radii, noise)
    lab = np.zeros(SHAPE, np.uint8)
    lab[e <= 1.0] = 2
    lab[e <= 0.6] = 3 if et else 1
    lab[e <= 0.3] = 1
    return lab


def build_pairs():
    """name -> (pred, gt, description)."""
    pairs = {}
    base = tumour()
    pairs["identical"] = (base.copy(), base.copy(), "prediction equals truth")

    shifted = np.roll(base, 3, axis=0)
    pairs["shifted"] = (shifted, base.copy(), "whole tumour shifted by 3 voxels (3 mm) along x")

    pairs["missing_et"] = (
        tumour(et=False),
        base.copy(),
        "truth has ET; prediction labels the ET shell NCR (TC identical, ET empty in prediction)",
    )

    pairs["et_false_positive"] = (
        base.copy(),
        tumour(et=False),
        "truth has no ET (shell is NCR); prediction has the ET shell (ET empty in truth only)",
    )

    ed_only = np.where(tumour() > 0, 2, 0).astype(np.uint8)
    pairs["both_empty_tc_et"] = (
        np.roll(ed_only, 1, axis=1),
        ed_only,
        "only ED in both (TC, ET, NCR empty in both); prediction shifted 1 voxel along y",
    )

    pairs["empty_prediction"] = (
        np.zeros(SHAPE, np.uint8),
        base.copy(),
        "prediction completely empty, truth has the full tumour",
    )

    blob = base.copy()
    blob[2:5, 2:5, 2:5] = 3  # 27-voxel ET blob in the corner, > 20 voxels from the tumour
    pairs["far_fp_blob"] = (
        blob,
        base.copy(),
        "prediction = truth + a 3x3x3 ET blob at voxels 2..4 (corner), far (>20 voxels) from the tumour",
    )

    blob4 = base.copy()
    blob4[2:6, 2:6, 2:6] = 3  # 64-voxel ET blob: now enough surface to move the pooled HD95
    pairs["far_fp_blob_4"] = (
        blob4,
        base.copy(),
        "prediction = truth + a 4x4x4 ET blob at voxels 2..5 (corner), far (>20 voxels) from the tumour",
    )

    a = tumour(center=(13, 24, 16), radii=(7.0, 7.0, 6.0))
    b = tumour(center=(35, 24, 16), radii=(7.0, 7.0, 6.0))
    pairs["two_lesions_one_missed"] = (
        a.copy(),
        np.maximum(a, b),
        "truth has two separate lesions (centres x=13 and x=35); prediction has only the first, exactly",
    )

    rng = np.random.RandomState(20230)
    noise = rng.uniform(-0.12, 0.12, size=SHAPE)
    pairs["noisy_boundary"] = (
        tumour(noise=noise),
        base.copy(),
        "prediction = truth's nested ellipsoids with uniform(-0.12, 0.12) noise added to the "
        "ellipsoid norm per voxel (ragged boundaries, seed 20230)",
    )

    far = tumour(center=(10, 10, 16), radii=(5.0, 5.0, 5.0))
    near = tumour(center=(36, 36, 16), radii=(6.0, 6.0, 5.0))
    pairs["no_overlap"] = (
        far,
        near,
        "prediction and truth are disjoint tumours (no overlapping voxel in any region)",
    )

    pairs["all_empty"] = (
        np.zeros(SHAPE, np.uint8),
        np.zeros(SHAPE, np.uint8),
        "both volumes completely empty",
    )
    return pairs


def save(arr, path):
    img = nib.Nifti1Image(arr.astype(np.uint8), np.eye(4))
    img.header.set_xyzt_units("mm")
    img.set_qform(np.eye(4), code=1)
    img.set_sform(np.eye(4), code=1)
    nib.save(img, path)


# ----------------------------------------------------------------------------- evaluation


def enc(v):
    """JSON-safe scalar: NaN -> None, inf -> "inf", numpy -> python."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    if math.isnan(f):
        return None
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def voxel_sens_spec(pred, gt, labels):
    """Script-computed (NOT from the package): voxel-wise sensitivity TP/(TP+FN) and specificity
    TN/(TN+FP) over the whole 48x48x32 grid; None where the denominator is 0."""
    p = np.isin(pred, labels)
    g = np.isin(gt, labels)
    tp = int(np.sum(p & g))
    fn = int(np.sum(~p & g))
    tn = int(np.sum(~p & ~g))
    fp = int(np.sum(p & ~g))
    sens = tp / (tp + fn) if tp + fn else None
    spec = tn / (tn + fp) if tn + fp else None
    return sens, spec


REGION_LABELS = {"WT": [1, 2, 3], "TC": [1, 3], "ET": [3], "NCR": [1], "ED": [2]}


def directed_hd95(pred, gt, labels):
    """Script-computed (NOT what the package reports): both directed 95th percentiles of the
    surface distances (voxels, same surfaces and distance transform as panoptica's, via its
    private _surface_distance_pair) and their max; None unless both masks are non-empty."""
    from panoptica.metrics._surface_distances import _surface_distance_pair

    p = np.isin(pred, labels)
    g = np.isin(gt, labels)
    if not p.any() or not g.any():
        return None
    sd_gt, sd_pred = _surface_distance_pair(g, p)
    a = float(np.percentile(sd_gt, 95))
    b = float(np.percentile(sd_pred, 95))
    return {
        "gt_to_pred_p95": a,
        "pred_to_gt_p95": b,
        "max_of_directed_p95": max(a, b),
        "pooled_p95": float(np.percentile(np.hstack((sd_gt, sd_pred)), 95)),
        "n_surface_voxels_gt": int(sd_gt.size),
        "n_surface_voxels_pred": int(sd_pred.size),
    }


def evaluate(out_dir, pairs):
    from importlib.metadata import version

    from panoptica import Panoptica_Evaluator
    import pandas as pd
    from brats_evaluation import (
        config_path,
        evaluate_single_exam,
        parse_mets_results,
        parse_seg_results,
    )

    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluator = Panoptica_Evaluator.load_from_config(str(config_path(CONFIG)))
        raw = {}
        for name in pairs:
            raw[name] = evaluate_single_exam(
                prediction_filepath=os.path.join(out_dir, f"{name}_pred.nii.gz"),
                reference_filepath=os.path.join(out_dir, f"{name}_gt.nii.gz"),
                subject_identifier=name,
                evaluator=evaluator,
            )
            if "error" in raw[name]:
                raise RuntimeError(f"{name}: {raw[name]['error']}")

        with tempfile.TemporaryDirectory() as tmp:
            summary = os.path.join(tmp, "summary.json")
            with open(summary, "w") as f:
                json.dump({"metrics": list(raw.values()), "missings": []}, f, default=float)
            seg_csv = os.path.join(tmp, "seg.csv")
            mets_csv = os.path.join(tmp, "mets.csv")
            parse_seg_results(json_path=summary, output_csv_path=seg_csv)
            parse_mets_results(
                json_path=summary,
                vol_threshold=METS_VOL_THRESHOLD,
                overlap_threshold=METS_OVERLAP_THRESHOLD,
                output_csv_path=mets_csv,
            )
            seg = pd.read_csv(seg_csv).set_index("subject_id")
            mets = pd.read_csv(mets_csv).set_index("subject_id")

    out = {}
    for name, (pred, gt, desc) in pairs.items():
        regions = {}
        for key, grp in REGIONS.items():
            r = raw[name][grp]
            s = seg.loc[name]
            m = mets.loc[name]
            sens, spec = voxel_sens_spec(pred, gt, REGION_LABELS[key])
            regions[key] = {
                # global (whole-region) metrics: PanopticaResult.global_bin_*
                "dice": enc(r.get("global_bin_dsc")),
                "hd95": enc(r.get("global_bin_hd95")),
                "hd95_leaderboard": enc(s[f"global_hd95_{grp}"]),
                "nsd": enc(r.get("global_bin_nsd")),
                # the package computes no voxel-wise sensitivity / specificity
                "sensitivity": None,
                "specificity": None,
                # lesion (connected-component instance) detection counts
                "n_ref_lesions": enc(r.get("n_ref_instances")),
                "n_pred_lesions": enc(r.get("n_pred_instances")),
                "tp": enc(r.get("tp")),
                "fp": enc(r.get("fp")),
                "fn": enc(r.get("fn")),
                "lesion_precision": enc(r.get("prec")),
                "lesion_recall": enc(r.get("rec")),
                "lesion_f1": enc(r.get("rq")),
                # lesion-wise = mean over matched (TP) lesions only (parse_seg_results columns)
                "lesionwise_dice": enc(r.get("sq_dsc")),
                "lesionwise_dice_std": enc(r.get("sq_dsc_std")),
                "lesionwise_hd95": enc(r.get("sq_hd95")),
                "lesionwise_hd95_std": enc(r.get("sq_hd95_std")),
                "lesionwise_nsd": enc(r.get("sq_nsd")),
                # penalised lesion-wise from parse_mets_results (FN/FP lesions: Dice 0, HD95 373;
                # lesions < 20 mm^3 left out; NaN when no reference lesion >= 20 mm^3)
                "mets_lesionwise_dice": enc(m[f"lesionwise_dsc_mean_{grp}"]),
                "mets_lesionwise_hd95": enc(m[f"lesionwise_hd95_mean_{grp}"]),
                "mets_lesionwise_nsd": enc(m[f"lesionwise_nsd_mean_{grp}"]),
                "reference_lesions": [
                    {k: enc(v) for k, v in row.items() if k in ("volume", "is_matched", "sq_dsc", "sq_hd95", "sq_nsd")}
                    for row in r.get("reference_instances", [])
                ],
                "voxel_counts": {
                    "pred": int(np.isin(pred, REGION_LABELS[key]).sum()),
                    "gt": int(np.isin(gt, REGION_LABELS[key]).sum()),
                },
                "script_computed_not_package": {
                    "voxel_sensitivity": enc(sens),
                    "voxel_specificity": enc(spec),
                    "hd95_directed_voxels": directed_hd95(pred, gt, REGION_LABELS[key]),
                },
            }
        out[name] = {
            "pred": f"{name}_pred.nii.gz",
            "gt": f"{name}_gt.nii.gz",
            "description": desc,
            "regions": regions,
        }

    return {
        "package": {
            "name": "BraTS_evaluation",
            "version": version("BraTS_evaluation"),
            "panoptica_version": version("panoptica"),
            "config": f"brats_evaluation/configs/config_{CONFIG}.yaml",
            "functions_called": [
                f"panoptica.Panoptica_Evaluator.load_from_config(str(brats_evaluation.config_path('{CONFIG}')))",
                "brats_evaluation.evaluate_single_exam(prediction_filepath, reference_filepath, subject_identifier, evaluator)"
                "  # -> evaluator.evaluate(pred_path, ref_path); PanopticaResult.to_dict(True) per group",
                "brats_evaluation.parse_seg_results(json_path, output_csv_path)  # hd95_leaderboard",
                f"brats_evaluation.parse_mets_results(json_path, vol_threshold={METS_VOL_THRESHOLD}, "
                f"overlap_threshold={METS_OVERLAP_THRESHOLD}, output_csv_path)  # mets_lesionwise_*",
            ],
            "group_map": REGIONS,
        },
        "volume": {"shape": list(SHAPE), "spacing_mm": [1.0, 1.0, 1.0], "dtype": "uint8", "affine": "identity"},
        "encoding": "finite numbers as numbers, NaN as null, +inf as the string \"inf\"",
        "field_notes": {
            "dice": "global_bin_dsc: Dice of the binary region masks; null (NaN) when both are empty; 0 when the masks do not overlap",
            "hd95": "global_bin_hd95: 95th percentile (numpy linear) of BOTH directions' surface distances pooled, in voxels (spacing ignored); \"inf\" when the masks do not overlap or one is empty; null when both empty",
            "hd95_leaderboard": "parse_seg_results' global_hd95: hd95 with inf replaced by 373; null stays null",
            "nsd": "global_bin_nsd: normalised surface Dice at tolerance 0.5 voxel (spacing ignored), i.e. share of surface voxels lying exactly on the other surface",
            "sensitivity/specificity": "not computed by the package (null); script_computed_not_package holds voxel-wise values computed by this script",
            "lesionwise_*": "PanopticaResult sq_*: mean over matched lesion pairs only (26-connected components, one-to-one Hungarian matching on Dice, any overlap matches); unmatched lesions are not penalised; 0 (Dice) / \"inf\" (HD95) when no lesion matched but some exist; null when both empty. Per-lesion HD95/NSD use the NIfTI spacing (1 mm here; NSD tolerance = min spacing = 1 mm)",
            "mets_lesionwise_*": "parse_mets_results: matched reference lesions of volume >= 20 mm^3 contribute their sq values, unmatched ones >= 20 mm^3 contribute Dice 0 / NSD 0 / HD95 373, every unmatched prediction lesion (any size) adds Dice 0 / NSD 0 / HD95 373; smaller reference lesions are left out; null when no reference lesion >= 20 mm^3",
        },
        "pairs": out,
    }


BRATS2023_SNIPPET = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
sys.path.insert(0, sys.argv[1])
import metrics  # BraTS-2023-Metrics/metrics.py (imports its own surface_distance package)
out = {}
for name in sys.argv[3:]:
    df = metrics.get_LesionWiseResults(
        f"{sys.argv[2]}/{name}_pred.nii.gz", f"{sys.argv[2]}/{name}_gt.nii.gz", "BraTS-GLI")
    out[name] = {
        row["Labels"]: {k: float(v) for k, v in row.items() if k != "Labels"}
        for row in df.to_dict("records")
    }
print(json.dumps(out))
"""


def run_brats2023(python, src_dir, rev, out_dir, names):
    """Runs get_LesionWiseResults(pred, gt, "BraTS-GLI") of the BraTS 2023 lesion-wise script
    (GitHub rachitsaluja/BraTS-2023-Metrics, not on PyPI; needs pandas < 2 for
    DataFrame.append, hence its own interpreter) on every pair."""
    import subprocess

    res = subprocess.run(
        [python, "-c", BRATS2023_SNIPPET, os.path.abspath(src_dir), os.path.abspath(out_dir), *names],
        check=True,
        capture_output=True,
        text=True,
    )
    values = json.loads(res.stdout.strip().splitlines()[-1])
    keys = {
        "Legacy_Dice": "dice",
        "Legacy_HD95": "hd95",
        "Sensitivity": "sensitivity",
        "Specificity": "specificity",
        "LesionWise_Score_Dice": "lesionwise_dice",
        "LesionWise_Score_HD95": "lesionwise_hd95",
        "Num_TP": "tp",
        "Num_FP": "fp",
        "Num_FN": "fn",
        "GT_Complete_Volume": "gt_volume_mm3",
    }
    return {
        "source": f"github rachitsaluja/BraTS-2023-Metrics @ {rev}, metrics.get_LesionWiseResults(pred, gt, 'BraTS-GLI')",
        "rules": "WT/TC/ET masks; Dice (both empty -> 1); HD95 = DeepMind surface-distance robust Hausdorff: "
        "surfel-area-weighted 95th percentile per direction (searchsorted, no interpolation), max of the two "
        "directions, in mm from the header zooms; both empty -> 0, one empty -> 374. Lesions: 26-connected "
        "components; truth components merged when they fall in one 26-connected component of the truth dilated "
        "3 times with generate_binary_structure(3, 2) (18-neighbourhood); a prediction component is TP for a "
        "truth lesion if it touches that lesion dilated the same way; per-lesion Dice/HD95 of the lesion vs the "
        "union of its touching prediction components; truth lesions of volume <= 50 mm^3 dropped; "
        "lesion-wise = (sum over kept lesions + 0 (Dice) or 374 (HD95) per FP component) / (kept lesions + FP), "
        "FN lesions contribute Dice 0 / HD95 374; 0/0 -> Dice 1, HD95 0. Sensitivity TP/(TP+FN), specificity "
        "TN/(TN+FP) voxel-wise over the whole volume (both empty -> sensitivity 1).",
        "pairs": {
            name: {
                region: {
                    keys[k]: (int(v) if k.startswith("Num_") else enc(v))
                    for k, v in vals.items()
                    if k in keys
                }
                for region, vals in regions.items()
            }
            for name, regions in values.items()
        },
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?", default="tests/fixtures/score")
    ap.add_argument("--no-eval", action="store_true", help="only write the NIfTI pairs")
    ap.add_argument("--brats2023", metavar="DIR", help="also run the BraTS 2023 lesion-wise script "
                    "(a checkout of rachitsaluja/BraTS-2023-Metrics with metrics.py at its root)")
    ap.add_argument("--brats2023-python", default=sys.executable, metavar="PY",
                    help="interpreter for it (pandas<2, numpy, scipy, connected-components-3d, nibabel)")
    ap.add_argument("--brats2023-rev", default="43c905242b2eecf421d4ab2da7af8ece9777d322",
                    help="revision of that checkout, recorded in expected.json")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    pairs = build_pairs()
    for name, (pred, gt, _) in pairs.items():
        assert pred.shape == SHAPE and gt.shape == SHAPE, name
        save(pred, os.path.join(args.out_dir, f"{name}_pred.nii.gz"))
        save(gt, os.path.join(args.out_dir, f"{name}_gt.nii.gz"))
    if args.no_eval:
        return
    try:
        import brats_evaluation  # noqa: F401
    except ImportError:
        sys.exit("brats_evaluation not installed: pip install brats-evaluation==0.0.10")
    result = evaluate(args.out_dir, pairs)
    if args.brats2023:
        result["brats2023_script"] = run_brats2023(
            args.brats2023_python, args.brats2023, args.brats2023_rev, args.out_dir, list(pairs)
        )
    with open(os.path.join(args.out_dir, "expected.json"), "w") as f:
        json.dump(result, f, indent=1, allow_nan=False)
        f.write("\n")
    for name, p in result["pairs"].items():
        cells = []
        for key in ("WT", "TC", "ET"):
            r = p["regions"][key]
            cells.append(
                f"{key} dice={r['dice']} hd95={r['hd95']} lw_dice={r['lesionwise_dice']} "
                f"lw_hd95={r['lesionwise_hd95']} mets_lw=({r['mets_lesionwise_dice']},{r['mets_lesionwise_hd95']}) "
                f"tp/fp/fn={r['tp']}/{r['fp']}/{r['fn']}"
            )
        if "brats2023_script" in result:
            for key in ("WT", "TC", "ET"):
                r = result["brats2023_script"]["pairs"][name][key]
                cells.append(
                    f"{key} 2023: dice={r['dice']} hd95={r['hd95']} lw_dice={r['lesionwise_dice']} "
                    f"lw_hd95={r['lesionwise_hd95']} tp/fp/fn={r['tp']}/{r['fp']}/{r['fn']} "
                    f"sens={r['sensitivity']} spec={r['specificity']}"
                )
        print(name + "\n  " + "\n  ".join(cells))


if __name__ == "__main__":
    main()

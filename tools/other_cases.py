#!/usr/bin/env python3
"""Independent generator of synthetic BraTS-format brain-tumour MRI cases.

This is an *independent check generator*: it makes test cases "by other means"
than the project's own Rust synthesiser, so that a segmentation model trained on
the Rust cases can be checked for generalisation to data it has never seen the
like of.  It deliberately avoids that generator's recipes:

* anatomy   - the ICBM 2009a template is resampled (trilinear, map_coordinates
              order 1) through a random per-axis scaling + rotation and a few
              Gaussian-bump displacements (no affine + smooth elastic field);
              a radial push around the tumour gives some mass effect;
* tumours   - the core is a union of random ellipsoids or a thresholded,
              smoothed random field around a centre anywhere in the cerebral
              hemispheres (cortex included); oedema is a noise-modulated
              distance shell of 5-30 mm around the core (no reaction-diffusion);
              the enhancing region is a rim, a solid mass, or absent (~15 %);
* intensity - T1 is the template's own T1 (random gamma), the other contrasts
              come from tissue classes with non-textbook relative values;
              tumour texture is Gaussian-filtered white noise, the bias field is
              a degree-2 polynomial, noise is Gaussian (not Rician), and every
              modality gets a random overall scale;
* mimics    - in about half the cases small bright round extra-axial lesions
              and straight-ish bright vessel tubes on T1ce only, and in about
              half the cases small FLAIR/T2-bright white-matter patches
              (ischaemic-like); none of them is labelled.

Output per case (folder DIR/Other_<seed>/): Other_<seed>_{t1,t1ce,t2,flair}.nii.gz
(int16) and Other_<seed>_seg.nii.gz (uint8: 0 background, 1 necrotic /
non-enhancing core, 2 oedema, 4 enhancing), on the BraTS grid 240x240x155 at
1 mm, voxel axes i -> patient left, j -> posterior, k -> superior, with
sform = qform = [[-1,0,0,0],[0,-1,0,239],[0,0,1,0]] (codes 1).  Images are
exactly 0 outside the brain.  Case n of a run uses seed S+n and is fully
determined by it.

Usage:
    python3 tools/other_cases.py --out DIR --count N --seed S [--verify] [--preview PNG]
"""

import argparse
import os
import struct
import sys
import time
import zlib

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

GRID = (240, 240, 155)
# Output voxel (i, j, k) <-> offset d (RAS mm) from the grid centre:
# d_x = CI - i, d_y = CJ - j, d_z = k - CK.
CI, CJ, CK = 119.5, 119.5, 77.0
BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
TOP_K = 152  # highest slice the top of the brain may reach
MNI_ORIGIN = np.array([-98.0, -134.0, -72.0])  # template voxel (0,0,0) in MNI mm
ANATOMY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "anatomy")
MODALITIES = ("t1", "t1ce", "t2", "flair")

# Relative intensities (white matter = 1).  Physically ordered but not the
# usual textbook set: CSF dark on T1/FLAIR and bright on T2, oedema bright on
# T2/FLAIR, enhancing tissue bright on T1ce, necrosis dark on T1/T1ce and bright on T2.
T2_TISSUE = {"csf": 3.0, "gm": 1.5, "wm": 1.0}
FLAIR_TISSUE = {"csf": 0.22, "gm": 1.3, "wm": 1.0}
TUMOUR = {  # modality -> (oedema, necrosis, non-enhancing core, enhancing)
    "t1": (0.64, 0.32, 0.56, 0.62),
    "t1ce": (0.64, 0.28, 0.54, None),  # enhancing value drawn per case
    "t2": (2.5, 2.8, 2.4, 1.7),
    "flair": (1.95, None, 1.75, 1.45),  # necrosis value drawn per case
}

_TEMPLATE = None


def load_template():
    """Load the ICBM 2009a T1, GM and WM maps once; return a dict of float32 arrays.

    Keys: t1 (raw 0..255), gm, wm (fractions 0..1), mask (1 inside the brain,
    0 outside) and centre (template-voxel centre of the brain bounding box).
    """
    global _TEMPLATE
    if _TEMPLATE is None:
        def read(name):
            path = os.path.join(ANATOMY, f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz")
            return np.asarray(nib.load(path).dataobj).astype(np.float32)

        t1 = read("t1")
        mask = (t1 > 0).astype(np.float32)
        idx = np.argwhere(mask > 0)
        centre = (idx.min(0) + idx.max(0)) / 2.0
        _TEMPLATE = {"t1": t1, "gm": read("gm") / 255.0 * mask, "wm": read("wm") / 255.0 * mask,
                     "mask": mask, "centre": centre}
    return _TEMPLATE


def rotation(ax, ay, az):
    """Rotation matrix from angles (radians) about the x, y and z axes."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_rotation(rng):
    """Uniformly random 3-D rotation matrix (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def smooth_noise(rng, shape, sigma):
    """Gaussian-filtered white noise, normalised to zero mean and unit std (float32)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    field -= field.mean()
    field /= field.std() + 1e-6
    return field


class Deformation:
    """Random anatomy deformation: output offset u (mm) -> template voxel position.

    p(u) = centre + A (u' ) + sum_n a_n exp(-|u' - m_n|^2 / 2 s_n^2), where
    A = diag(1/scale) R^T undoes a per-axis scaling and rotation, and u' is u
    after the tumour's radial push (mass effect), if one is set.
    """

    def __init__(self, rng):
        tpl = load_template()
        self.scale = np.array([rng.uniform(0.9, 1.08), rng.uniform(0.9, 1.08), rng.uniform(0.88, 1.02)])
        self.angles = np.deg2rad([rng.uniform(-6, 6), rng.uniform(-6, 6), rng.uniform(-10, 10)])
        rot = rotation(*self.angles)
        self.inverse = (np.diag(1.0 / self.scale) @ rot.T).astype(np.float32)
        self.centre = tpl["centre"].astype(np.float32)
        nb = rng.integers(3, 7)
        self.bumps = []
        for _ in range(nb):
            direction = rng.standard_normal(3)
            direction /= np.linalg.norm(direction)
            self.bumps.append((rng.uniform(-55, 55, 3), rng.uniform(12, 25),
                               direction * rng.uniform(1.5, 4.0)))
        self.push = None  # (centre u, sigma, strength)

    def set_push(self, centre, sigma, strength):
        """Enable a radial push of tissue away from `centre` (u-space mm)."""
        self.push = (np.asarray(centre, np.float32), float(sigma), float(strength))

    def __call__(self, ux, uy, uz):
        """Template voxel coordinates (3 float32 arrays) for u-space points."""
        if self.push is not None:
            c, sig, k = self.push
            rx, ry, rz = ux - c[0], uy - c[1], uz - c[2]
            f = 1.0 - k * np.exp(-(rx * rx + ry * ry + rz * rz) / (2 * sig * sig))
            ux, uy, uz = c[0] + rx * f, c[1] + ry * f, c[2] + rz * f
        a = self.inverse
        p = [self.centre[r] + a[r, 0] * ux + a[r, 1] * uy + a[r, 2] * uz for r in range(3)]
        for m, s, amp in self.bumps:
            g = np.exp(-((ux - m[0]) ** 2 + (uy - m[1]) ** 2 + (uz - m[2]) ** 2) / (2 * s * s))
            for r in range(3):
                p[r] = p[r] + amp[r] * g
        return [q.astype(np.float32) for q in p]


def sample(volume, coords):
    """Trilinear resampling of a template volume at template-voxel coordinates."""
    return ndimage.map_coordinates(volume, coords, order=1, mode="constant", cval=0.0,
                                   prefilter=False).astype(np.float32)


def plan_anatomy(rng, deform):
    """Coarse (2 mm) pass: centre the deformed brain and collect tumour-site candidates.

    Returns (shift t so that d = u + t, coarse-grid info dict).
    """
    tpl = load_template()
    axis = np.arange(-130.0, 130.1, 2.0, dtype=np.float32)
    ux, uy, uz = np.meshgrid(axis, axis, axis, indexing="ij")
    p = deform(ux, uy, uz)
    mask = sample(tpl["mask"], p) >= 0.5
    pts = np.argwhere(mask)
    umin, umax = axis[pts.min(0)], axis[pts.max(0)]
    t = -(umin + umax) / 2.0
    if umax[2] - umin[2] > 2 * (TOP_K - CK) - 1:  # too tall: top at TOP_K, cut the bottom
        t[2] = (TOP_K - CK) - umax[2]
    info = {"axis": axis, "mask": mask, "p": p, "umin": umin, "umax": umax,
            "gm": sample(tpl["gm"], p), "wm": sample(tpl["wm"], p),
            "depth": ndimage.distance_transform_edt(mask, sampling=2.0)}
    return t.astype(np.float32), info


def choose_tumour_site(rng, info, t, core_radius):
    """Pick a tumour centre (u-space mm) in the cerebral hemispheres from the coarse grid."""
    axis = info["axis"]
    mni = [info["p"][r] + MNI_ORIGIN[r] for r in range(3)]
    cerebrum = (mni[2] > 0) | ((mni[2] > -30) & (mni[1] > -40) & (np.abs(mni[0]) > 22))
    cerebrum &= np.abs(mni[0]) > 7
    tissue = info["gm"] + info["wm"]
    k_out = CK + axis[None, None, :] + t[2]
    for depth_min in (max(6.0, 0.55 * core_radius), 6.0, 3.0):
        ok = info["mask"] & cerebrum & (tissue > 0.85) & (info["depth"] >= depth_min)
        ok &= (k_out > 12) & (k_out < GRID[2] - 12)
        cand = np.argwhere(ok)
        if len(cand):
            break
    pick = cand[rng.integers(len(cand))]
    return axis[pick] + rng.uniform(-1, 1, 3).astype(np.float32)


def brain_box(info, t, margin=12):
    """Output-index box (slices) that holds the deformed brain (plus a margin)."""
    dmin, dmax = info["umin"] + t, info["umax"] + t
    lo = [int(np.floor(CI - dmax[0])) - margin, int(np.floor(CJ - dmax[1])) - margin,
          int(np.floor(CK + dmin[2])) - margin]
    hi = [int(np.ceil(CI - dmin[0])) + margin + 1, int(np.ceil(CJ - dmin[1])) + margin + 1,
          int(np.ceil(CK + dmax[2])) + margin + 1]
    return tuple(slice(max(0, a), min(n, b)) for a, b, n in zip(lo, hi, GRID))


def recentre(info, t, mask, box):
    """Shift t so the exact brain bounding box is centred (top at most TOP_K).

    Updates info['umin'/'umax'] to the measured u-space extent.  Returns
    (new t, whether the shift was large enough to require resampling again).
    """
    idx = np.argwhere(mask) + np.array([s.start for s in box])
    lo, hi = idx.min(0).astype(np.float32), idx.max(0).astype(np.float32)
    info["umin"] = np.array([CI - hi[0] - t[0], CJ - hi[1] - t[1], lo[2] - CK - t[2]], np.float32)
    info["umax"] = np.array([CI - lo[0] - t[0], CJ - lo[1] - t[1], hi[2] - CK - t[2]], np.float32)
    delta = np.array([(lo[0] + hi[0]) / 2 - CI, (lo[1] + hi[1]) / 2 - CJ, CK - (lo[2] + hi[2]) / 2], np.float32)
    if hi[2] - lo[2] > 2 * (TOP_K - CK) - 1 or hi[2] >= GRID[2] - 1:
        delta[2] = min(delta[2], TOP_K - hi[2])
    clipped = hi[2] >= GRID[2] - 1 or any(a == 0 or b == n - 1 for a, b, n in zip(lo[:2], hi[:2], GRID))
    moved = clipped or bool(np.any(np.abs(delta) >= 0.75))
    return (t + delta).astype(np.float32), moved


def resample_anatomy(deform, t, box):
    """Full-resolution resampling of T1, GM, WM and mask over the output box.

    Returns a dict of float32 arrays (box shape): t1 (0..255), gm, wm, csf, mask (bool).
    """
    tpl = load_template()
    i = np.arange(box[0].start, box[0].stop, dtype=np.float32)
    j = np.arange(box[1].start, box[1].stop, dtype=np.float32)
    k = np.arange(box[2].start, box[2].stop, dtype=np.float32)
    ux = (CI - i - t[0])[:, None, None]
    uy = (CJ - j - t[1])[None, :, None]
    uz = (k - CK - t[2])[None, None, :]
    shape = (len(i), len(j), len(k))
    ux, uy, uz = (np.broadcast_to(a, shape) for a in (ux, uy, uz))
    p = deform(ux, uy, uz)
    mask = sample(tpl["mask"], p) >= 0.5
    out = {"mask": mask}
    for name in ("t1", "gm", "wm"):
        out[name] = sample(tpl[name], p) * mask
    out["csf"] = np.clip(1.0 - out["gm"] - out["wm"], 0.0, 1.0) * mask
    return out


def quantile_threshold(values, count):
    """Value v such that about `count` entries of `values` are <= v."""
    count = int(np.clip(count, 1, values.size))
    return np.partition(values, count - 1)[count - 1]


def grow_tumour(rng, anat, centre_idx, vol_whole, core_frac, kind):
    """Build the label map of one tumour in the output box.

    The core is a union of random ellipsoids or a thresholded smoothed random
    field; oedema is a noise-modulated distance shell around it; sub-regions
    depend on `kind` ('ring', 'solid' or 'nonenhancing').  Returns
    (seg uint8 box array, local box slices, dict with soft fields for intensities).
    """
    shape = anat["mask"].shape
    vol_core = vol_whole * core_frac
    rc = (3 * vol_core / (4 * np.pi)) ** (1 / 3)
    rw = (3 * vol_whole / (4 * np.pi)) ** (1 / 3)
    half = int(1.5 * rw + 34)
    loc = tuple(slice(max(0, c - half), min(n, c + half + 1)) for c, n in zip(centre_idx, shape))
    lshape = tuple(s.stop - s.start for s in loc)
    allowed = anat["mask"][loc] & (anat["csf"][loc] < 0.5)
    wm = anat["wm"][loc]
    x = [np.arange(s.start, s.stop, dtype=np.float32) - c for s, c in zip(loc, centre_idx)]
    x = [x[0][:, None, None], x[1][None, :, None], x[2][None, None, :]]

    # Core implicit function G (smaller = more inside).
    if rng.random() < 0.6:
        g = np.full(lshape, np.inf, np.float32)
        for n in range(rng.integers(2, 6)):
            off = np.zeros(3) if n == 0 else rng.normal(0, 0.35 * rc, 3)
            if np.linalg.norm(off) > 0.6 * rc:
                off *= 0.6 * rc / np.linalg.norm(off)
            radii = rc * rng.uniform(0.55, 1.15, 3)
            rot = random_rotation(rng)
            q = 0.0
            for a in range(3):
                comp = sum(rot[b, a] * (x[b] - off[b]) for b in range(3))
                q = q + (comp / radii[a]) ** 2
            g = np.minimum(g, np.sqrt(q).astype(np.float32))
        g *= np.exp(0.12 * smooth_noise(rng, lshape, 3.0))
    else:
        r = np.sqrt(x[0] ** 2 + x[1] ** 2 + x[2] ** 2)
        g = (r / rc - 0.55 * smooth_noise(rng, lshape, max(3.0, 0.45 * rc))).astype(np.float32)
    g = np.where(allowed, g, np.inf).astype(np.float32)
    core = g <= quantile_threshold(g.ravel(), vol_core)
    lab, n = ndimage.label(core)
    if n > 1:
        sizes = ndimage.sum_labels(core, lab, np.arange(1, n + 1))
        core = lab == (1 + int(np.argmax(sizes)))

    # Oedema: distance shell with a noisy, mildly white-matter-preferring reach.
    d_core = ndimage.distance_transform_edt(~core).astype(np.float32)
    reach = np.clip(np.exp(0.45 * smooth_noise(rng, lshape, 5.0)) * (0.55 + 0.45 * wm), 0.3, 1.5)
    ratio = np.where(allowed & ~core, d_core / reach, np.inf).astype(np.float32)
    r0 = quantile_threshold(ratio.ravel(), max(1.0, vol_whole - core.sum()))
    r0 = float(np.clip(r0, 5.0, 20.0))
    whole = core | (ratio <= r0)
    lab, n = ndimage.label(whole)
    keep = np.unique(lab[core])
    whole = np.isin(lab, keep[keep > 0])

    # Sub-regions of the core.
    enh = np.zeros(lshape, bool)
    if kind == "ring":
        d_in = ndimage.distance_transform_edt(core).astype(np.float32)
        rim = rng.uniform(1.5, 4.5) * np.clip(1 + 0.35 * smooth_noise(rng, lshape, 3.0), 0.4, 2.0)
        enh = core & (d_in <= rim)
    elif kind == "solid":
        enh = core & (smooth_noise(rng, lshape, 2.5) < 0.9)
    seg = np.zeros(lshape, np.uint8)
    seg[whole] = 2
    seg[core] = 1
    seg[enh] = 4
    strength = np.clip(0.65 + 0.3 * np.exp(-d_core / 12.0) + 0.1 * smooth_noise(rng, lshape, 4.0), 0.45, 1.0)
    soft = {lbl: ndimage.gaussian_filter((seg == lbl).astype(np.float32), 0.7) for lbl in (1, 2, 4)}
    return seg, loc, {"soft": soft, "strength": strength, "r0": r0}


def add_lookalikes(rng, anat, seg_full, n_tries=40):
    """Unlabelled tumour mimics.  Returns weight maps (box shape) per mimic kind.

    'round'  : small bright round extra-axial-like lesions near the brain surface (T1ce);
    'vessel' : straight-ish bright tubes (T1ce);
    'ischaemic' : small irregular white-matter patches (FLAIR/T2 bright).
    Each kind is drawn with probability 1/2 (round and vessel share one draw).
    """
    shape = anat["mask"].shape
    mask = anat["mask"]
    tumour_zone = ndimage.binary_dilation(seg_full > 0, iterations=6)
    depth = ndimage.distance_transform_edt(mask[::2, ::2, ::2], sampling=2.0)
    maps = {"round": np.zeros(shape, np.float32), "vessel": np.zeros(shape, np.float32),
            "ischaemic": np.zeros(shape, np.float32)}
    notes = []

    def pick(cond):
        cand = np.argwhere(cond)
        if not len(cand):
            return None
        c = cand[rng.integers(len(cand))] * 2 + rng.integers(0, 2, 3)
        return np.minimum(c, np.array(shape) - 1)

    def blob(centre, radii, jitter):
        half = int(np.ceil(max(radii))) + 3
        sl = tuple(slice(max(0, c - half), min(n, c + half + 1)) for c, n in zip(centre, shape))
        xx = np.meshgrid(*[np.arange(s.start, s.stop) - c for s, c in zip(sl, centre)], indexing="ij")
        rot = random_rotation(rng)
        q = sum((sum(rot[b, a] * xx[b] for b in range(3)) / radii[a]) ** 2 for a in range(3))
        r = np.sqrt(q) * max(radii)
        if jitter:  # irregular outline
            r = r * np.exp(0.15 * ndimage.gaussian_filter(rng.standard_normal(r.shape), 1.0) / 0.2)
        w = np.clip(max(radii) + 0.5 - r, 0, 1).astype(np.float32) * mask[sl]
        return sl, w

    if rng.random() < 0.5:
        for _ in range(rng.integers(1, 4)):  # round T1ce lesions near the surface
            for _ in range(n_tries):
                c = pick((depth > 0) & (depth <= 4))
                if c is None:
                    break
                sl, w = blob(c, [rng.uniform(2.5, 6.0)] * 3, False)
                if not (tumour_zone[sl] & (w > 0)).any():
                    maps["round"][sl] = np.maximum(maps["round"][sl], w)
                    notes.append("round")
                    break
        for _ in range(rng.integers(1, 4)):  # vessels
            for _ in range(n_tries):
                c = pick(depth > 4)
                if c is None:
                    break
                d = rng.standard_normal(3)
                d /= np.linalg.norm(d)
                b = np.cross(d, rng.standard_normal(3))
                b /= np.linalg.norm(b)
                length, radius = rng.uniform(25, 60), rng.uniform(0.8, 1.5)
                s = np.arange(-length / 2, length / 2, 0.4)
                bend = rng.uniform(-0.25, 0.25) * (s ** 2) / length
                pts = c[None, :] + s[:, None] * d[None, :] + bend[:, None] * b[None, :]
                lo = np.maximum(np.floor(pts.min(0) - radius - 2).astype(int), 0)
                hi = np.minimum(np.ceil(pts.max(0) + radius + 3).astype(int), shape)
                if np.any(hi - lo < 3):
                    continue
                sl = tuple(slice(a, z) for a, z in zip(lo, hi))
                xx = np.stack(np.meshgrid(*[np.arange(a, z) for a, z in zip(lo, hi)], indexing="ij"), -1)
                dist, _ = cKDTree(pts).query(xx.reshape(-1, 3))
                w = np.clip(radius + 0.5 - dist.reshape(xx.shape[:3]), 0, 1).astype(np.float32)
                w *= mask[sl] & ~tumour_zone[sl]
                if w.sum() > 10:
                    maps["vessel"][sl] = np.maximum(maps["vessel"][sl], w)
                    notes.append("vessel")
                    break
    if rng.random() < 0.5:
        for _ in range(rng.integers(2, 7)):  # ischaemic-like FLAIR patches in white matter
            wm2 = anat["wm"][::2, ::2, ::2]
            for _ in range(n_tries):
                c = pick((wm2 > 0.6) & (depth > 8))
                if c is None:
                    break
                sl, w = blob(c, rng.uniform(1.5, 5.0, 3), True)
                if not (tumour_zone[sl] & (w > 0)).any():
                    maps["ischaemic"][sl] = np.maximum(maps["ischaemic"][sl], w)
                    notes.append("ischaemic")
                    break
    return maps, notes


def bias_field(rng, shape, offset):
    """Smooth multiplicative bias: exp of a random degree-2 polynomial over the grid."""
    c = [(np.arange(o, o + n, dtype=np.float32) - g / 2) / (g / 2) for o, n, g in zip(offset, shape, GRID)]
    x, y, z = c[0][:, None, None], c[1][None, :, None], c[2][None, None, :]
    lin = rng.normal(0, 0.09, 3)
    quad = rng.normal(0, 0.05, 6)
    poly = (lin[0] * x + lin[1] * y + lin[2] * z + quad[0] * x * x + quad[1] * y * y + quad[2] * z * z
            + quad[3] * x * y + quad[4] * x * z + quad[5] * y * z)
    return np.exp(poly).astype(np.float32)


def synthesise_intensities(rng, anat, seg, loc, tum, kind, mimics):
    """Four contrasts (float32, white matter ~ 1 before scaling) over the output box."""
    mask = anat["mask"]
    shape = mask.shape
    gm, wm, csf = anat["gm"], anat["wm"], anat["csf"]
    t1_norm = anat["t1"] / 222.0  # template WM ~ 222
    base = {
        "t1": np.power(t1_norm, rng.uniform(0.85, 1.2)),
        "t1ce": np.power(t1_norm, rng.uniform(0.9, 1.3)),
        "t2": T2_TISSUE["csf"] * csf + T2_TISSUE["gm"] * gm + T2_TISSUE["wm"] * wm,
        "flair": FLAIR_TISSUE["csf"] * csf + FLAIR_TISSUE["gm"] * gm + FLAIR_TISSUE["wm"] * wm,
    }
    tex_tissue = smooth_noise(rng, shape, 1.0)
    enh_val = rng.uniform(1.45, 1.9)
    nec_flair = rng.uniform(0.6, 1.3)
    lshape = seg.shape
    tex_a = smooth_noise(rng, lshape, rng.uniform(1.2, 2.5))
    tex_b = 0.6 * tex_a + 0.8 * smooth_noise(rng, lshape, rng.uniform(1.2, 2.5))
    tex_amp = rng.uniform(0.07, 0.14)
    enh_tex = 1 + 0.15 * smooth_noise(rng, lshape, 1.5)
    a1, a2, a4 = tum["soft"][1], tum["soft"][2], tum["soft"][4]
    out = {}
    for mi, mod in enumerate(MODALITIES):
        img = base[mod] * (1 + rng.uniform(0.015, 0.035) * tex_tissue)
        # mimics (before tumour; they never overlap it)
        if mod == "t1ce":
            img += (rng.uniform(1.6, 2.1) - img) * mimics["round"]
            img += (rng.uniform(1.4, 2.0) - img) * mimics["vessel"]
        isch = {"t1": 0.88, "t1ce": 0.88, "t2": rng.uniform(1.5, 1.9), "flair": rng.uniform(1.6, 1.9)}[mod]
        img += (isch - img) * mimics["ischaemic"]
        # tumour
        v_oed, v_nec, v_ne, v_enh = TUMOUR[mod]
        v_enh = enh_val if v_enh is None else v_enh
        v_nec = nec_flair if v_nec is None else v_nec
        v1 = v_nec if kind == "ring" else v_ne
        tex = 1 + tex_amp * (tex_a if mi < 2 else tex_b)
        loc_img = img[loc]
        oed = loc_img + (v_oed - loc_img) * tum["strength"]
        enh_tissue = v_enh * tex * (enh_tex if mod == "t1ce" else 1.0)
        img[loc] = loc_img * (1 - a1 - a2 - a4) + a2 * oed * tex + a1 * v1 * tex + a4 * enh_tissue
        out[mod] = img
    return out


def finalise(rng, images, mask, box):
    """Bias field, Gaussian noise, random scale; int16 with exact zeros outside the brain."""
    offset = [s.start for s in box]
    levels = {"t1": (300, 2500), "t1ce": (300, 1500), "t2": (250, 1000), "flair": (300, 1500)}
    result = {}
    for mod in MODALITIES:
        img = images[mod] * bias_field(rng, mask.shape, offset)
        img = img + rng.uniform(0.015, 0.04) * rng.standard_normal(mask.shape).astype(np.float32)
        img = img * rng.uniform(*levels[mod])
        img = np.where(mask, np.clip(np.rint(img), 1, 32767), 0).astype(np.int16)
        full = np.zeros(GRID, np.int16)
        full[box] = img
        result[mod] = full
    return result


def save_nifti(array, path):
    """Write an array on the BraTS grid with the BraTS sform/qform (codes 1)."""
    img = nib.Nifti1Image(array, BRATS_AFFINE)
    img.header.set_data_dtype(array.dtype)
    img.header.set_xyzt_units("mm")
    img.set_sform(BRATS_AFFINE, code=1)
    img.set_qform(BRATS_AFFINE, code=1)
    nib.save(img, path)


def make_case(seed, out_dir):
    """Generate and write one case; return a summary dict."""
    t0 = time.time()
    rng = np.random.default_rng(seed)
    name = f"Other_{seed}"
    kind = rng.choice(["ring", "solid", "nonenhancing"], p=[0.55, 0.30, 0.15])
    vol_whole = float(np.exp(rng.uniform(np.log(5000), np.log(150000))))
    core_frac = rng.uniform(0.35, 0.8) if kind == "nonenhancing" else rng.uniform(0.15, 0.6)
    rc = (3 * vol_whole * core_frac / (4 * np.pi)) ** (1 / 3)

    deform = Deformation(rng)
    t, info = plan_anatomy(rng, deform)
    centre_u = choose_tumour_site(rng, info, t, rc)
    deform.set_push(centre_u, 1.2 * rc + 4, 0.12 + 0.28 * min(1.0, vol_whole * core_frac / 60000))
    info["umin0"] = info["umin"].copy()
    for _ in range(4):  # re-centre on the exact full-resolution brain (mass effect included)
        box = brain_box(info, t)
        anat = resample_anatomy(deform, t, box)
        t, moved = recentre(info, t, anat["mask"], box)
        if not moved:
            break
    d = centre_u + t
    centre_idx = [int(round(CI - d[0])) - box[0].start, int(round(CJ - d[1])) - box[1].start,
                  int(round(CK + d[2])) - box[2].start]
    seg_loc, loc, tum = grow_tumour(rng, anat, centre_idx, vol_whole, core_frac, kind)
    seg_box = np.zeros(anat["mask"].shape, np.uint8)
    seg_box[loc] = seg_loc
    mimics, notes = add_lookalikes(rng, anat, seg_box)
    images = synthesise_intensities(rng, anat, seg_loc, loc, tum, kind, mimics)
    final = finalise(rng, images, anat["mask"], box)
    seg = np.zeros(GRID, np.uint8)
    seg[box] = seg_box

    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    for mod in MODALITIES:
        save_nifti(final[mod], os.path.join(case_dir, f"{name}_{mod}.nii.gz"))
    save_nifti(seg, os.path.join(case_dir, f"{name}_seg.nii.gz"))
    counts = {lbl: int((seg == lbl).sum()) for lbl in (1, 2, 4)}
    top_cut = max(0.0, -(CK + info["umin0"][2] + t[2]))
    return {"name": name, "dir": case_dir, "kind": str(kind), "counts": counts,
            "target_ml": vol_whole / 1000, "centre": [c + s.start for c, s in zip(centre_idx, box)],
            "bottom_cut_mm": top_cut, "mimics": notes, "seconds": time.time() - t0}


def verify_case(case_dir):
    """Reload a written case and check shapes, dtypes, affines, labels and skull-stripping."""
    name = os.path.basename(case_dir)
    seg_img = nib.load(os.path.join(case_dir, f"{name}_seg.nii.gz"))
    seg = np.asarray(seg_img.dataobj)
    problems = []
    brain = None
    for suffix in MODALITIES + ("seg",):
        img = nib.load(os.path.join(case_dir, f"{name}_{suffix}.nii.gz"))
        hdr = img.header
        if img.shape != GRID:
            problems.append(f"{suffix}: shape {img.shape}")
        want = np.uint8 if suffix == "seg" else np.int16
        if hdr.get_data_dtype() != want:
            problems.append(f"{suffix}: dtype {hdr.get_data_dtype()}")
        if not (np.allclose(hdr.get_sform(), BRATS_AFFINE) and np.allclose(hdr.get_qform(), BRATS_AFFINE)
                and int(hdr["sform_code"]) == 1 and int(hdr["qform_code"]) == 1):
            problems.append(f"{suffix}: affine/codes")
        if suffix != "seg":
            data = np.asarray(img.dataobj)
            nz = data != 0
            brain = nz if brain is None else brain
            if (nz != brain).any():
                problems.append(f"{suffix}: non-zero support differs from t1")
    if not set(np.unique(seg)) <= {0, 1, 2, 4}:
        problems.append(f"labels {np.unique(seg)}")
    if (seg > 0).any() and (~brain[seg > 0]).any():
        problems.append("label outside brain")
    whole, core, enh = seg > 0, (seg == 1) | (seg == 4), seg == 4
    if not ((enh <= core).all() and (core <= whole).all()):
        problems.append("regions do not nest")
    idx = np.argwhere(brain)
    centre = (idx.min(0) + idx.max(0)) / 2.0
    return problems, centre, idx.min(0), idx.max(0)


def png_write(path, rgb):
    """Minimal PNG writer for an (h, w, 3) uint8 array (no PIL needed)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def render_preview(case_dir, path):
    """Axial slice through the tumour (radiological view) of each modality + FLAIR with seg overlay,
    and below it a coronal and sagittal T1ce/FLAIR strip."""
    name = os.path.basename(case_dir)
    vols = {m: np.asarray(nib.load(os.path.join(case_dir, f"{name}_{m}.nii.gz")).dataobj).astype(np.float32)
            for m in MODALITIES}
    seg = np.asarray(nib.load(os.path.join(case_dir, f"{name}_seg.nii.gz")).dataobj)
    ci, cj, ck = (np.argwhere(seg > 0).mean(0).round().astype(int) if (seg > 0).any() else (120, 120, 77))
    colours = {1: (255, 60, 60), 2: (60, 220, 60), 4: (255, 230, 40)}

    def grey(sl, vol):
        hi = np.percentile(vol[vol > 0], 99.5) if (vol > 0).any() else 1
        return np.repeat(np.clip(sl / hi * 255, 0, 255).astype(np.uint8)[..., None], 3, -1)

    def overlay(rgb, sl_seg):
        out = rgb.copy()
        for lbl, col in colours.items():
            m = sl_seg == lbl
            out[m] = (0.45 * out[m] + 0.55 * np.array(col)).astype(np.uint8)
        return out

    # axial: rows = j (anterior at top), cols = i (patient left on image right)
    ax = [grey(vols[m][:, :, ck].T, vols[m]) for m in MODALITIES]
    ax.append(overlay(grey(vols["flair"][:, :, ck].T, vols["flair"]), seg[:, :, ck].T))
    row1 = np.concatenate(ax, 1)
    # coronal (rows = k flipped, cols = i) and sagittal (rows = k flipped, cols = j)
    def cor(v): return v[:, cj, :].T[::-1]
    def sag(v): return v[ci, :, :].T[::-1]
    pad = lambda a: np.pad(a, ((0, 240 - a.shape[0]), (0, 0), (0, 0)))
    row2 = [pad(grey(cor(vols["t1ce"]), vols["t1ce"])), pad(overlay(grey(cor(vols["flair"]), vols["flair"]), cor(seg))),
            pad(grey(sag(vols["t1"]), vols["t1"])), pad(grey(sag(vols["t2"]), vols["t2"])),
            pad(overlay(grey(sag(vols["flair"]), vols["flair"]), sag(seg)))]
    png_write(path, np.ascontiguousarray(np.concatenate([row1, np.concatenate(row2, 1)], 0)))


def main(argv=None):
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (case folders go inside)")
    ap.add_argument("--count", type=int, default=1, help="number of cases")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first case; case n uses seed+n")
    ap.add_argument("--verify", action="store_true", help="reload every case and check it")
    ap.add_argument("--preview", metavar="PNG", help="render the first case to this PNG")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    load_template()
    failures = 0
    for n in range(args.count):
        s = make_case(args.seed + n, args.out)
        c = s["counts"]
        wt = c[1] + c[2] + c[4]
        print(f"{s['name']}: {s['seconds']:.1f} s  kind={s['kind']:<12} "
              f"ncr/net(1)={c[1]:>6} ed(2)={c[2]:>6} et(4)={c[4]:>6}  WT={wt / 1000:.1f} ml "
              f"(target {s['target_ml']:.1f})  centre={s['centre']}  bottom cut={s['bottom_cut_mm']:.0f} mm  "
              f"mimics={','.join(sorted(set(s['mimics']))) or '-'}", flush=True)
        if args.verify:
            problems, centre, lo, hi = verify_case(s["dir"])
            print(f"    verify: {'OK' if not problems else problems}  brain bbox {lo.tolist()}..{hi.tolist()} "
                  f"centre {centre.tolist()}", flush=True)
            failures += bool(problems)
        if n == 0 and args.preview:
            render_preview(s["dir"], args.preview)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

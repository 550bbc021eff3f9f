#!/usr/bin/env python3
"""Third, independent generator of synthetic BraTS-format brain-tumour MRI cases.

Used only to check that trained models generalise ("far" cases): never tune on it.
It shares nothing generative with the project's Rust synthesiser (docs/data.md,
"Realistic synthetic cases") nor with tools/other_cases.py; only the ICBM 2009a
template files and the BraTS output conventions are common.  Per aspect:

* anatomy   - Rust: random affine + smooth elastic field; other_cases: per-axis
              scale/rotation + a few Gaussian-bump displacements + a Gaussian
              radial push.  Here: a global * per-axis anisotropic scale, a head
              tilt (pitch up to 10 deg, roll 7, yaw 5), a low-frequency Fourier
              displacement field (10 random plane waves, wavelengths >= 80 mm,
              kept invertible), and mass effect as an incompressible point-source
              inflation (r0^3 = r^3 - c^3 exp(-(r/L)^2)) around the tumour.
* tumour    - Rust: Fisher-Kolmogorov growth from a deep-WM seed; other_cases:
              union of ellipsoids or a thresholded random field.  Here: the core
              is a union of 1-3 star-shaped lobes whose radius is exp(random real
              spherical-harmonic series, degree <= 5), sometimes with 1-2 small
              satellite nodules; sites are deep white matter, the grey/white
              junction, the midline (corpus callosum) or the deep grey nuclei;
              core 1.5-60 ml, whole tumour capped at 125 ml.
* oedema    - Rust: diffusion along WM decaying over 5-28 mm; other_cases:
              noise-modulated distance shell.  Here: geodesic (Dijkstra) distance
              from the core through tissue, 1/speed with grey matter 3-7x slower
              than white, a per-case preferred direction (asymmetric, up to 1.8x
              faster one way), cut at a per-case extent of 4-30 mm (2-10 mm in
              low-grade-like cases) and kept to white matter away from the core,
              so it runs finger-like into gyral white matter and spares cortex.
* sub-regions - enhancement is patchy/nodular (35 %), a one-sided crescent
              rim around an off-centre cyst with mural nodules (25 %), solid
              (20 %) or absent (20 %, low-grade-like); necrosis is a cyst
              (very dark T1ce, very bright T2, darkish FLAIR), often off-centre.
* contrasts - neither template T1 nor tissue-class intensity tables: every
              tissue/lesion class has proton density, T1 and T2 (ms), jittered
              per case, and each modality is computed from a sequence equation
              with per-case parameters (T1: spin echo or spoiled gradient echo;
              T1ce: gradient echo or spin echo with gadolinium T1 shortening,
              r1 = 4 /mM/s, per-case dose so enhancement runs from weak to
              strong; T2: spin echo; FLAIR: inversion recovery with a per-case
              TI that nulls CSF only approximately); partial volume mixes the
              signals, not the intensities.  Output levels and a gamma window
              are random per case and modality.
* artefacts - Rust: Rician noise, smooth bias, Gaussian in-plane PSF and
              through-plane blur; other_cases: Gaussian noise and a degree-2
              polynomial bias.  Here: thick-slice acquisition (3-5 mm slices
              with gaps, box slice profile, linearly interpolated back to 1 mm;
              T2 and FLAIR always, T1 sometimes, axial or coronal), k-space
              truncation (Gibbs ringing; 60-90 % of phase-encode lines),
              motion/pulsation ghosting (phase errors on random or periodic
              phase-encode lines), a bias field that is exp of a sum of 3-5
              broad Gaussians (coil elements), and magnitude noise that is
              Rician (1 coil, SNR 7-30) or non-central chi (4 or 8 coils,
              SNR 15-45) with a spatially varying (g-factor) sigma.
* mimics    - Rust: vessels, dura, choroid plexus, periventricular caps, small
              WM hyperintensities; other_cases: small round T1ce-bright
              extra-axial lesions, vessel tubes, ischaemic FLAIR patches.
              Here (none labelled): lacunar infarcts (CSF-like cavities with a
              FLAIR-bright gliotic rim) in deep grey or white matter,
              cavernoma-like "popcorn" lesions (T1/T2-bright lobules with a
              dark haemosiderin rim, darkest on gradient echo), and a
              meningioma-like dural-based enhancing dome with a dural tail.

Output per case (folder DIR/Far_<seed>/): Far_<seed>_{t1,t1ce,t2,flair}.nii.gz
(int16) and Far_<seed>_seg.nii.gz (uint8: 0 background, 1 necrotic /
non-enhancing core, 2 oedema, 4 enhancing), on the BraTS grid 240x240x155 at
1 mm, voxel axes i -> patient left, j -> posterior, k -> superior, with
sform = qform = [[-1,0,0,0],[0,-1,0,239],[0,0,1,0]] (codes 1).  Images are
exactly 0 outside the brain and >= 1 inside.  Case n of a run uses seed S+n and
is fully determined by it.

Usage:
    python3 tools/far_cases.py --out DIR --count N --seed S [--verify] [--preview PNG]
"""

import argparse
import os
import struct
import sys
import time
import zlib

import nibabel as nib
import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph
from scipy.special import sph_harm_y

GRID = (240, 240, 155)
# Output voxel (i, j, k) <-> offset d (RAS mm) from the grid centre:
# d_x = CI - i, d_y = CJ - j, d_z = k - CK.
CI, CJ, CK = 119.5, 119.5, 77.0
BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
TOP_K = 151  # highest slice the top of the brain may reach
MNI_ORIGIN = np.array([-98.0, -134.0, -72.0], np.float32)  # template voxel (0,0,0) in MNI mm
ANATOMY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "anatomy")
MODALITIES = ("t1", "t1ce", "t2", "flair")
R1_GD = 4.0e-3  # gadolinium T1 relaxivity, 1/(ms mM)

_TEMPLATE = None


def load_template():
    """ICBM 2009a T1 mask, GM and WM fractions (float32, template voxels) and brain centre."""
    global _TEMPLATE
    if _TEMPLATE is None:
        def read(name):
            path = os.path.join(ANATOMY, f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz")
            return np.asarray(nib.load(path).dataobj).astype(np.float32)

        mask = (read("t1") > 0).astype(np.float32)
        gm = read("gm") / 255.0 * mask
        wm = read("wm") / 255.0 * mask
        idx = np.argwhere(mask > 0)
        _TEMPLATE = {"mask": mask, "gm": gm, "wm": wm,
                     "centre": ((idx.min(0) + idx.max(0)) / 2.0).astype(np.float32)}
    return _TEMPLATE


def sample(volume, coords):
    """Trilinear sample of a template volume at template-voxel coordinates (0 outside)."""
    return ndimage.map_coordinates(volume, coords, order=1, mode="constant", cval=0.0,
                                   prefilter=False).astype(np.float32)


def smooth_noise(rng, shape, sigma):
    """Gaussian-smoothed white noise, zero mean, unit std (float32)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="reflect")
    f -= f.mean()
    f /= f.std() + 1e-6
    return f


def log_uniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def euler(pitch, roll, yaw):
    """Rotation matrix: pitch about x (left-right), roll about y (AP), yaw about z."""
    cx, sx, cy, sy, cz, sz = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


# --------------------------------------------------------------------------- anatomy

class Warp:
    """Output offset u (mm, RAS, brain-centred) -> template voxel coordinates.

    u -> (mass effect: incompressible source inflation) u0 -> q = S^-1 R^T u0
    -> p = centre + q + D(q), D a sum of low-frequency plane waves.
    """

    def __init__(self, rng):
        tpl = load_template()
        glob = rng.uniform(0.92, 1.07)
        self.scale = glob * rng.uniform(0.95, 1.05, 3)
        self.angles = np.deg2rad([rng.uniform(-10, 10), rng.uniform(-7, 7), rng.uniform(-5, 5)])
        rot = euler(*self.angles)
        self.inverse = (np.diag(1.0 / self.scale) @ rot.T).astype(np.float32)
        self.centre = tpl["centre"]
        # Fourier displacement field: D_r(q) = sum_n a_nr cos(2 pi k_n . q / L + phi_n).
        box = 200.0
        waves = []
        while len(waves) < 10:
            k = rng.integers(-2, 3, 3)
            if 0 < np.linalg.norm(k) <= 2.5:
                waves.append(k)
        self.k = np.array(waves, np.float32) * (2 * np.pi / box)
        self.phase = rng.uniform(0, 2 * np.pi, len(waves)).astype(np.float32)
        amp = rng.standard_normal((len(waves), 3))
        rms = rng.uniform(1.5, 4.0)
        amp *= rms / np.sqrt((amp ** 2).sum() / 2 + 1e-9)
        # Lipschitz bound of D below 0.4 keeps the map invertible (no folding).
        lip = float((np.linalg.norm(amp, axis=1) * np.linalg.norm(self.k, axis=1)).sum())
        if lip > 0.4:
            amp *= 0.4 / lip
        self.amp = amp.astype(np.float32)
        self.mass = None  # (centre u, c, decay length)

    def set_mass(self, centre, c, decay):
        self.mass = (np.asarray(centre, np.float32), float(c), float(decay))

    def __call__(self, ux, uy, uz):
        if self.mass is not None:
            m, c, lam = self.mass
            rx, ry, rz = ux - m[0], uy - m[1], uz - m[2]
            r = np.sqrt(rx * rx + ry * ry + rz * rz) + 1e-6
            r0 = np.cbrt(np.maximum(r ** 3 - c ** 3 * np.exp(-(r / lam) ** 2), 0.0))
            f = (r0 / r).astype(np.float32)
            ux, uy, uz = m[0] + rx * f, m[1] + ry * f, m[2] + rz * f
        a = self.inverse
        q = [a[r, 0] * ux + a[r, 1] * uy + a[r, 2] * uz for r in range(3)]
        p = [self.centre[r] + q[r] for r in range(3)]
        for n in range(len(self.k)):
            kx, ky, kz = self.k[n]
            w = np.cos(kx * q[0] + ky * q[1] + kz * q[2] + self.phase[n])
            for r in range(3):
                p[r] = p[r] + self.amp[n, r] * w
        return [np.asarray(v, np.float32) for v in p]


def coarse_pass(warp, step=3.0):
    """Sample the warped template on a coarse u-grid; return extent and site-finding maps."""
    tpl = load_template()
    axis = np.arange(-132.0, 132.1, step, dtype=np.float32)
    ux, uy, uz = np.meshgrid(axis, axis, axis, indexing="ij")
    p = warp(ux, uy, uz)
    mask = sample(tpl["mask"], p) >= 0.5
    pts = np.argwhere(mask)
    return {"axis": axis, "step": step, "mask": mask, "p": p,
            "umin": axis[pts.min(0)] - step, "umax": axis[pts.max(0)] + step,
            "gm": sample(tpl["gm"], p), "wm": sample(tpl["wm"], p)}


def place_brain(info, jitter):
    """Shift t (d = u + t): centre the brain in-plane (plus `jitter` mm), top at most TOP_K."""
    umin, umax = info["umin"], info["umax"]
    t = -(umin + umax) / 2.0
    t[:2] += jitter
    if (umax[2] - umin[2]) > 2 * (TOP_K - CK) - 2:
        t[2] = (TOP_K - CK) - umax[2]
    return t.astype(np.float32)


def choose_site(rng, info, t, rc):
    """Tumour centre (u mm) from one of four site classes; returns (centre, class name)."""
    axis, step = info["axis"], info["step"]
    mni = [info["p"][r] + MNI_ORIGIN[r] for r in range(3)]
    gm, wm, mask = info["gm"], info["wm"], info["mask"]
    csf = np.clip(1 - gm - wm, 0, 1) * mask
    depth = ndimage.distance_transform_edt(mask, sampling=step)
    x, y, z = np.abs(mni[0]), mni[1], mni[2]
    cerebrum = (z > -5) | ((z > -38) & (y > -38) & (x > 24))
    cerebrum &= ~((y < -45) & (z < 5))
    k_out = CK + axis[None, None, :] + t[2]
    base = mask & cerebrum & (csf < 0.3) & (k_out > 18) & (k_out < GRID[2] - 16)
    classes = {
        "deep-wm": base & (wm > 0.85) & (depth >= max(10.0, 0.6 * rc)) & (x > 12),
        "gw-junction": base & (gm > 0.3) & (gm < 0.65) & (wm > 0.3) & (depth >= 6.0),
        "midline": base & (x < 14) & (z > 5) & (z < 42) & (wm > 0.55) & (depth >= 8.0),
        "deep-grey": base & (x > 8) & (x < 30) & (y > -32) & (y < 22) & (z > -6) & (z < 18)
        & (gm > 0.45) & (csf < 0.2),
    }
    names = list(classes)
    order = [names[rng.choice(4, p=[0.4, 0.3, 0.15, 0.15])]] + names
    for name in order:
        cand = np.argwhere(classes[name])
        if len(cand):
            pick = cand[rng.integers(len(cand))]
            return axis[pick] + rng.uniform(-step / 2, step / 2, 3).astype(np.float32), name
    raise RuntimeError("no tumour site found")


def output_box(info, t, margin=6):
    """Output-index slices holding the warped brain (plus a margin), clipped to the grid."""
    dmin, dmax = info["umin"] + t, info["umax"] + t
    lo = [int(np.floor(CI - dmax[0])) - margin, int(np.floor(CJ - dmax[1])) - margin,
          int(np.floor(CK + dmin[2])) - margin]
    hi = [int(np.ceil(CI - dmin[0])) + margin + 1, int(np.ceil(CJ - dmin[1])) + margin + 1,
          int(np.ceil(CK + dmax[2])) + margin + 1]
    return tuple(slice(max(0, a), min(n, b)) for a, b, n in zip(lo, hi, GRID))


def resample(warp, t, box):
    """Full-resolution tissue fractions over the output box (float32) + mask + MNI coordinates."""
    tpl = load_template()
    i = np.arange(box[0].start, box[0].stop, dtype=np.float32)
    j = np.arange(box[1].start, box[1].stop, dtype=np.float32)
    k = np.arange(box[2].start, box[2].stop, dtype=np.float32)
    shape = (len(i), len(j), len(k))
    ux = np.broadcast_to((CI - i - t[0])[:, None, None], shape)
    uy = np.broadcast_to((CJ - j - t[1])[None, :, None], shape)
    uz = np.broadcast_to((k - CK - t[2])[None, None, :], shape)
    p = warp(ux, uy, uz)
    mask = sample(tpl["mask"], p) >= 0.5
    gm = sample(tpl["gm"], p) * mask
    wm = sample(tpl["wm"], p) * mask
    tot = gm + wm
    over = tot > 1.0
    gm[over] /= tot[over]
    wm[over] /= tot[over]
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * mask
    mni = [(p[r][::2, ::2, ::2] + MNI_ORIGIN[r]).astype(np.float32) for r in range(3)]
    return {"mask": mask, "gm": gm, "wm": wm, "csf": csf, "mni2": mni}


# --------------------------------------------------------------------------- tumour

def sphere_field(rng, lmax, std, slope=1.3):
    """Random real spherical-harmonic series on a (theta, phi) grid, area-weighted std `std`."""
    th = np.linspace(0, np.pi, 91)
    ph = np.linspace(0, 2 * np.pi, 181)
    TH, PH = np.meshgrid(th, ph, indexing="ij")
    f = np.zeros(TH.shape)
    for l in range(1, lmax + 1):
        w = l ** -slope
        for m in range(0, l + 1):
            y = sph_harm_y(l, m, TH, PH)
            f += w * rng.standard_normal() * y.real
            if m > 0:
                f += w * rng.standard_normal() * y.imag
    wt = np.sin(TH)
    mean = (f * wt).sum() / wt.sum()
    sd = np.sqrt((((f - mean) ** 2) * wt).sum() / wt.sum())
    return ((f - mean) / (sd + 1e-9) * std).astype(np.float32)


def eval_sphere(field, dx, dy, dz):
    """Evaluate a sphere_field at the directions of (dx, dy, dz)."""
    r = np.sqrt(dx * dx + dy * dy + dz * dz) + 1e-6
    th = np.arccos(np.clip(dz / r, -1, 1))
    ph = np.mod(np.arctan2(dy, dx), 2 * np.pi)
    coords = [th * (90 / np.pi), ph * (180 / (2 * np.pi))]
    return ndimage.map_coordinates(field, coords, order=1, mode="nearest").astype(np.float32), r


def local_box(centre, half, shape):
    return tuple(slice(max(0, c - half), min(n, c + half + 1)) for c, n in zip(centre, shape))


def star_body(rng, grids, centre, radius, lmax, std):
    """Normalised star-shaped implicit function |x - c| / (radius exp(f(dir))) (<=1 inside)."""
    f = sphere_field(rng, lmax, std)
    val, r = eval_sphere(f, grids[0] - centre[0], grids[1] - centre[1], grids[2] - centre[2])
    return (r / (radius * np.exp(val))).astype(np.float32)


def quantile_cut(values, count):
    count = int(np.clip(count, 1, values.size))
    return np.partition(values.ravel(), count - 1)[count - 1]


def geodesic_distance(wm, gm, allowed, sources, gm_speed, direction, aniso, limit):
    """Dijkstra distance (mm) on a 2 mm grid from `sources`, travelling through tissue.

    Speed is wm + gm_speed * gm; CSF/outside voxels are blocked.  Moving along
    `direction` is up to (1 + aniso) times faster.  Returns a float32 1 mm array
    (same shape as the inputs), 1e3 where unreachable.
    """
    shape = wm.shape
    cs = tuple(n // 2 for n in shape)
    def pool(a):
        a = a[:2 * cs[0], :2 * cs[1], :2 * cs[2]].astype(np.float32)
        return a.reshape(cs[0], 2, cs[1], 2, cs[2], 2).mean((1, 3, 5))
    w2, g2, a2, s2 = pool(wm), pool(gm), pool(allowed), pool(sources)
    valid = (a2 >= 0.5) | (s2 > 0)
    speed = np.where(valid, np.maximum(w2 + gm_speed * g2, 0.08), 1.0)
    cost = (1.0 / speed).astype(np.float32)
    index = -np.ones(cs, np.int64)
    n_nodes = int(valid.sum())
    index[valid] = np.arange(n_nodes)
    rows, cols, wts = [], [], []
    offsets = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) > (0, 0, 0)]
    for off in offsets:
        sa = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(off, cs))
        sb = tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(off, cs))
        both = valid[sa] & valid[sb]
        ia, ib = index[sa][both], index[sb][both]
        step = 2.0 * np.sqrt(sum(o * o for o in off))
        c = 0.5 * (cost[sa][both] + cost[sb][both]) * step
        cosang = float(np.dot(np.array(off, float) / np.linalg.norm(off), direction))
        rows += [ia, ib]
        cols += [ib, ia]
        wts += [c / (1 + aniso * max(0.0, cosang)), c / (1 + aniso * max(0.0, -cosang))]
    g = sparse.csr_matrix((np.concatenate(wts), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n_nodes, n_nodes))
    src = index[(s2 > 0.3) & valid]
    if len(src) == 0:
        src = index[(s2 > 0) & valid]
    dist = csgraph.dijkstra(g, directed=True, indices=src, min_only=True, limit=limit)
    d2 = np.full(cs, 1e3, np.float32)
    d2[valid] = np.where(np.isfinite(dist), dist, 1e3)
    # back to 1 mm (coarse voxel n covers fine voxels 2n, 2n+1; centre at 2n + 0.5)
    coords = [((np.arange(n, dtype=np.float32) - 0.5) / 2.0) for n in shape]
    grid = np.meshgrid(*coords, indexing="ij", sparse=True)
    full = ndimage.map_coordinates(d2, [np.broadcast_to(g_, shape) for g_ in grid], order=1, mode="nearest")
    return full.astype(np.float32)


def make_tumour(rng, anat, centre, kind, vol_core, extent):
    """Label map (uint8, local box) and soft class fractions of one tumour.

    The core (star-shaped lobes, satellites, cyst, enhancement) is built in a
    small box around the centre, the oedema in a larger one (`loc`).  Returns
    (seg, loc slices, fractions dict, oedema strength array, notes dict).
    """
    shape = anat["mask"].shape
    rc = (3 * vol_core / (4 * np.pi)) ** (1 / 3)
    loc = local_box(centre, int(2.4 * rc + 1.9 * extent + 10), shape)
    cbox = local_box(centre, int(2.4 * rc + 8), shape)
    lshape = tuple(s.stop - s.start for s in loc)
    cshape = tuple(s.stop - s.start for s in cbox)
    inner = tuple(slice(c.start - l.start, c.stop - l.start) for c, l in zip(cbox, loc))
    mask, wm, gm, csf = (anat[k][loc] for k in ("mask", "wm", "gm", "csf"))
    allowed = mask & (csf < 0.5)
    c_allowed, c_wm = allowed[inner], wm[inner]
    grids = np.meshgrid(*[np.arange(s.start, s.stop, dtype=np.float32) - c for s, c in zip(cbox, centre)],
                        indexing="ij", sparse=True)
    grids = [np.broadcast_to(g, cshape) for g in grids]

    # Core: union of star-shaped lobes.
    n_lobes = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    g = None
    for n in range(n_lobes):
        if n == 0:
            c, rad = np.zeros(3), 1.0
        else:
            v = rng.standard_normal(3)
            c, rad = v / np.linalg.norm(v) * rc * rng.uniform(0.35, 0.7), rng.uniform(0.45, 0.8)
        body = star_body(rng, grids, c, rad * rc, 5, rng.uniform(0.15, 0.4))
        g = body if g is None else np.minimum(g, body)
    g *= np.exp(0.05 * smooth_noise(rng, cshape, 1.5))
    g = np.where(c_allowed, g, np.inf)
    core = g <= quantile_cut(g, vol_core)
    lab, n_comp = ndimage.label(core)
    if n_comp > 1:
        core = lab == (1 + int(np.argmax(ndimage.sum_labels(core, lab, np.arange(1, n_comp + 1)))))
    main_core = core.copy()

    # Satellite nodules in white matter.
    n_sat = int(rng.choice([0, 1, 2], p=[0.7, 0.2, 0.1]))
    satellites = np.zeros(cshape, bool)
    placed = 0
    near_core = ndimage.binary_dilation(core, iterations=2)
    for _ in range(n_sat * 8):
        if placed == n_sat:
            break
        v = rng.standard_normal(3)
        c = v / np.linalg.norm(v) * (rc * rng.uniform(1.3, 2.0) + 3)
        ci = [int(round(cc)) + ce - s.start for cc, ce, s in zip(c, centre, cbox)]
        if not all(0 <= a < b for a, b in zip(ci, cshape)) or c_wm[tuple(ci)] < 0.6:
            continue
        body = star_body(rng, grids, c, rng.uniform(2.0, 4.5), 3, 0.2)
        sat = (body <= 1.0) & c_allowed & ~near_core
        if sat.sum() > 15:
            satellites |= sat
            placed += 1
    core |= satellites

    # Necrotic cyst (off-centre) and enhancement pattern.
    cm = np.array(ndimage.center_of_mass(main_core))
    d_in = ndimage.distance_transform_edt(main_core).astype(np.float32)
    ax = [np.arange(m, dtype=np.float32) for m in cshape]
    want_cyst = {"crescent": 1.0, "patchy": 0.5, "solid": 0.15, "none": 0.25}[kind]
    cyst = np.zeros(cshape, bool)
    if rng.random() < want_cyst and rc > 5:
        v = rng.standard_normal(3)
        cc = cm + v / np.linalg.norm(v) * rc * rng.uniform(0.1, 0.45)
        radii = rc * rng.uniform(0.4, 0.75, 3)
        q = ((ax[0][:, None, None] - cc[0]) / radii[0]) ** 2 + ((ax[1][None, :, None] - cc[1]) / radii[1]) ** 2 \
            + ((ax[2][None, None, :] - cc[2]) / radii[2]) ** 2
        cyst = main_core & (q <= 1.0) & (d_in >= rng.uniform(1.5, 4.5))
        if cyst.sum() < 20:
            cyst[:] = False
    solid_core = core & ~cyst
    enh = np.zeros(cshape, bool)
    if kind == "patchy":  # nodules and spots, more of them near the surface
        field = smooth_noise(rng, cshape, rng.uniform(1.5, 2.5)) + 1.2 * ((d_in < 4) & main_core)
        cut = quantile_cut(np.where(solid_core, -field, np.inf), solid_core.sum() * rng.uniform(0.25, 0.5))
        enh = solid_core & (-field <= cut)
    elif kind == "crescent":  # one-sided rim around the cyst plus mural nodules
        v = rng.standard_normal(3)
        v /= np.linalg.norm(v)
        lx = [ax[0][:, None, None] - cm[0], ax[1][None, :, None] - cm[1], ax[2][None, None, :] - cm[2]]
        rr = np.sqrt(lx[0] ** 2 + lx[1] ** 2 + lx[2] ** 2) + 1e-6
        side = (lx[0] * v[0] + lx[1] * v[1] + lx[2] * v[2]) / rr > np.cos(np.deg2rad(rng.uniform(70, 140)))
        shell = ndimage.binary_dilation(cyst, iterations=int(rng.integers(2, 4))) if cyst.any() else cyst
        enh = solid_core & ((d_in <= rng.uniform(2.0, 5.0)) | shell) & side
        for _ in range(int(rng.integers(1, 3))):
            pts = np.argwhere(solid_core & shell) if cyst.any() else np.argwhere(solid_core)
            if len(pts):
                p0 = pts[rng.integers(len(pts))]
                rad = rng.uniform(2.0, 4.0)
                d2 = ((ax[0][:, None, None] - p0[0]) ** 2 + (ax[1][None, :, None] - p0[1]) ** 2
                      + (ax[2][None, None, :] - p0[2]) ** 2)
                enh |= solid_core & (d2 <= rad * rad)
        enh |= satellites
    elif kind == "solid":  # mostly enhancing, a few non-enhancing specks
        enh = solid_core & (smooth_noise(rng, cshape, 1.5) < 1.1)
    elif kind == "none":
        pass

    def embed(a):
        out = np.zeros(lshape, a.dtype)
        out[inner] = a
        return out

    core, cyst, enh = embed(core), embed(cyst), embed(enh)
    ne = core & ~enh  # label 1: cyst + non-enhancing core

    # Oedema: geodesic distance through tissue, kept to white matter away from the core.
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    aniso = rng.uniform(0.0, 0.8)
    gm_speed = rng.uniform(0.14, 0.33)
    dist = geodesic_distance(wm, gm, allowed, core, gm_speed, direction, aniso, limit=1.6 * extent + 6)
    reach = np.clip(1 + 0.25 * smooth_noise(rng, lshape, 4.0), 0.6, 1.4)
    ratio = dist / reach
    cand = allowed & ~core & ((wm >= 0.35) | (dist <= 3.0))
    oed = cand & (ratio <= extent)
    cap = 125000 - int(core.sum())
    if oed.sum() > cap:
        oed = cand & (ratio <= quantile_cut(np.where(cand, ratio, np.inf), cap))
    whole = core | oed
    lab, _ = ndimage.label(whole, structure=np.ones((3, 3, 3)))
    keep = np.unique(lab[core])
    whole = np.isin(lab, keep[keep > 0])
    oed = whole & ~core

    seg = np.zeros(lshape, np.uint8)
    seg[oed] = 2
    seg[ne] = 1
    seg[enh] = 4
    strength = np.clip(1.05 - 0.5 * np.clip(ratio / max(extent, 1.0), 0, 1.5) ** 1.5, 0.45, 1.0)
    strength = strength * (0.88 + 0.12 * np.clip(smooth_noise(rng, lshape, 3.0), -1.5, 1.5))
    strength = ndimage.gaussian_filter(np.where(oed | core, strength, 0.0).astype(np.float32), 0.8)
    frac = {name: ndimage.gaussian_filter(m.astype(np.float32), 0.6)
            for name, m in (("ne", ne & ~cyst), ("cyst", cyst), ("enh", enh))}
    tot = frac["ne"] + frac["cyst"] + frac["enh"]
    over = tot > 1
    for f in frac.values():
        f[over] /= tot[over]
    notes = {"lobes": n_lobes, "satellites": placed, "cyst_ml": round(float(cyst.sum()) / 1000.0, 1)}
    return seg, loc, frac, strength, notes


# --------------------------------------------------------------------------- mimics

def add_mimics(rng, anat, seg_box):
    """Unlabelled look-alikes as a list of (slices, fraction array, params dict)."""
    shape = anat["mask"].shape
    mask = anat["mask"]
    zone = ndimage.binary_dilation(seg_box[::2, ::2, ::2] > 0, iterations=5)
    depth2 = ndimage.distance_transform_edt(mask[::2, ::2, ::2], sampling=2.0)
    tissue2 = (anat["wm"] + anat["gm"])[::2, ::2, ::2]
    wm2 = anat["wm"][::2, ::2, ::2]
    x, y, z = (np.abs(anat["mni2"][0]), anat["mni2"][1], anat["mni2"][2])
    cerebrum = (z > -5) & ~zone
    items, notes = [], []

    def pick(cond):
        cand = np.argwhere(cond)
        if not len(cand):
            return None
        c = cand[rng.integers(len(cand))] * 2 + rng.integers(0, 2, 3)
        return np.minimum(c, np.array(shape) - 1)

    def ball(centre, half):
        sl = local_box(centre, half, shape)
        g = np.meshgrid(*[np.arange(s.start, s.stop, dtype=np.float32) - c for s, c in zip(sl, centre)],
                        indexing="ij", sparse=True)
        return sl, g

    if rng.random() < 0.5:  # lacunar infarcts: CSF-like cavity, FLAIR-bright gliotic rim
        deep = (x > 8) & (x < 30) & (y > -32) & (y < 22) & (z > -6) & (z < 18) & (tissue2 > 0.85)
        for _ in range(int(rng.integers(1, 5))):
            c = pick(cerebrum & ((deep & (rng.random() < 0.6)) | ((wm2 > 0.85) & (depth2 > 12))) & (tissue2 > 0.85))
            if c is None:
                break
            radii = rng.uniform(1.5, 4.0, 3)
            sl, g = ball(c, 7)
            r = np.sqrt(sum((gg / rr) ** 2 for gg, rr in zip(g, radii))) * radii.mean()
            cav = np.clip(radii.mean() + 0.5 - r, 0, 1).astype(np.float32) * mask[sl]
            rim = np.clip(radii.mean() + 1.7 - r, 0, 1).astype(np.float32) * mask[sl] - cav
            items.append((sl, np.clip(rim, 0, 1), {"PD": 0.82, "T1": rng.uniform(1000, 1250),
                                                   "T2": rng.uniform(120, 160), "C": 0.0}))
            items.append((sl, cav, {"PD": 0.98, "T1": rng.uniform(3200, 4000), "T2": rng.uniform(1000, 1800),
                                    "C": 0.0}))
            notes.append("lacune")
    if rng.random() < 0.35:  # cavernoma: popcorn lobules with a haemosiderin rim
        for _ in range(int(rng.integers(1, 3))):
            c = pick(cerebrum & (tissue2 > 0.8) & (depth2 > 6))
            if c is None:
                break
            sl, g = ball(c, 9)
            inner = np.zeros(tuple(s.stop - s.start for s in sl), np.float32)
            lob_t1 = np.zeros_like(inner)
            for _ in range(int(rng.integers(3, 7))):
                o = rng.normal(0, 1.6, 3)
                rr = rng.uniform(1.0, 2.6)
                d = np.sqrt(sum((gg - oo) ** 2 for gg, oo in zip(g, o)))
                w = np.clip(rr + 0.5 - d, 0, 1)
                lob_t1 = np.where(w > inner, rng.uniform(350, 900), lob_t1)
                inner = np.maximum(inner, w)
            shell = np.clip(ndimage.gaussian_filter(inner, 1.0) * 3.0, 0, 1) - inner
            shell = np.clip(shell, 0, 1) * mask[sl]
            inner = inner * mask[sl]
            items.append((sl, shell, {"PD": 0.55, "T1": 900.0, "T2": rng.uniform(12, 30), "C": 0.0}))
            items.append((sl, inner, {"PD": 0.85, "T1": np.maximum(lob_t1, 300.0), "T2": rng.uniform(150, 400),
                                      "C": 0.05}))
            notes.append("cavernoma")
    if rng.random() < 0.25:  # meningioma-like dural-based dome with a dural tail
        c = pick(cerebrum & (z > 10) & (depth2 > 0) & (depth2 <= 2.5))
        if c is not None:
            rad = rng.uniform(6, 14)
            sl, g = ball(c, int(2.6 * rad) + 3)
            d_surf = ndimage.distance_transform_edt(mask[sl]).astype(np.float32)
            dist = np.sqrt(g[0] ** 2 + g[1] ** 2 + g[2] ** 2)
            # dome: ball of radius rad around the surface point, flattened against the surface
            dome = np.clip(rad + 0.5 - dist * (1 + 0.25 * np.clip(d_surf / rad, 0, 1)), 0, 1) * mask[sl]
            tail = ((d_surf <= 1.6) & (dist < 2.3 * rad)).astype(np.float32) * mask[sl]
            tail = np.clip(tail * (1.0 - dist / (2.3 * rad)) * 1.6, 0, 0.9) * (1 - dome)
            cval = rng.uniform(0.5, 1.1)
            items.append((sl, tail, {"PD": 0.8, "T1": 1100.0, "T2": 100.0, "C": 0.8 * cval}))
            items.append((sl, dome.astype(np.float32), {"PD": 0.8, "T1": rng.uniform(1000, 1250),
                                                        "T2": rng.uniform(85, 115), "C": cval}))
            notes.append("meningioma")
    return items, notes


# --------------------------------------------------------------------------- signal

def draw_protocol(rng):
    """Per-case sequence parameters (ms, degrees) and tissue relaxation parameters."""
    prot = {}
    if rng.random() < 0.6:
        prot["t1"] = {"seq": "se", "TR": rng.uniform(400, 650), "TE": rng.uniform(8, 15)}
    else:
        prot["t1"] = {"seq": "gre", "TR": rng.uniform(10, 25), "TE": rng.uniform(3, 6), "FA": rng.uniform(15, 30)}
    if rng.random() < 0.65:
        prot["t1ce"] = {"seq": "gre", "TR": rng.uniform(6, 25), "TE": rng.uniform(2.5, 5), "FA": rng.uniform(8, 25)}
    else:
        prot["t1ce"] = {"seq": "se", "TR": rng.uniform(400, 650), "TE": rng.uniform(8, 15)}
    prot["t1ce"]["gd"] = True
    prot["t2"] = {"seq": "se", "TR": rng.uniform(3000, 6500), "TE": rng.uniform(80, 120)}
    tis = {
        "wm": {"PD": rng.uniform(0.66, 0.72), "T1": rng.uniform(780, 920), "T2": rng.uniform(72, 88), "C": 0.004},
        "gm": {"PD": rng.uniform(0.78, 0.84), "T1": rng.uniform(1200, 1480), "T2": rng.uniform(88, 108), "C": 0.012},
        "csf": {"PD": 1.0, "T1": rng.uniform(3900, 4400), "T2": rng.uniform(1400, 2200), "C": 0.0},
        "ne": {"PD": rng.uniform(0.82, 0.9), "T1": rng.uniform(1650, 2200), "T2": rng.uniform(140, 220), "C": 0.01},
        "enh": {"PD": rng.uniform(0.8, 0.88), "T1": rng.uniform(1200, 1500), "T2": rng.uniform(100, 140),
                "C": log_uniform(rng, 0.12, 0.8)},
        "cyst": {"PD": rng.uniform(0.93, 0.99), "T1": rng.uniform(2600, 3800), "T2": rng.uniform(600, 1500), "C": 0.0},
    }
    oedema = {"T1": rng.uniform(1.3, 1.8), "T2": rng.uniform(1.6, 2.7), "PD": rng.uniform(1.06, 1.18)}
    # FLAIR inversion time set (imperfectly) to null this case's CSF
    tr, t1c = rng.uniform(8000, 11000), tis["csf"]["T1"]
    prot["flair"] = {"seq": "ir", "TR": tr, "TE": rng.uniform(85, 140),
                     "TI": t1c * np.log(2 / (1 + np.exp(-tr / t1c))) * rng.uniform(0.96, 1.03)}
    return prot, tis, oedema


def signal(seq, PD, T1, T2, C=0.0):
    """Magnitude signal of one sequence for relaxation parameters (arrays or scalars)."""
    if seq.get("gd"):
        T1 = 1.0 / (1.0 / T1 + R1_GD * C)
    kind = seq["seq"]
    if kind == "se":
        return PD * (1 - np.exp(-seq["TR"] / T1)) * np.exp(-seq["TE"] / T2)
    if kind == "gre":
        a = np.deg2rad(seq["FA"])
        e1 = np.exp(-seq["TR"] / T1)
        return PD * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1) * np.exp(-seq["TE"] / (0.6 * T2))
    return PD * np.abs(1 - 2 * np.exp(-seq["TI"] / T1) + np.exp(-seq["TR"] / T1)) * np.exp(-seq["TE"] / T2)


def synthesise(rng, anat, prot, tis, oedema, tumour, mimics):
    """Noise-free signal per modality (float32, box shape)."""
    seg, loc, frac, strength, _ = tumour
    gm, wm, csf = anat["gm"], anat["wm"], anat["csf"]
    shape = gm.shape
    lshape = seg.shape
    tex_tissue = smooth_noise(rng, shape, 1.0)
    tex_tum = np.clip(smooth_noise(rng, lshape, rng.uniform(1.0, 2.0)), -2.5, 2.5)
    tex_enh = np.clip(1 + 0.35 * smooth_noise(rng, lshape, 1.5), 0.35, 1.8)
    tex_amp = rng.uniform(0.03, 0.07)
    lwm, lgm, lcsf = wm[loc], gm[loc], csf[loc]
    out = {}
    for mod in MODALITIES:
        seq = prot[mod]
        s = {k: float(signal(seq, **tis[k])) for k in tis}
        img = (wm * s["wm"] + gm * s["gm"] + csf * s["csf"]) * (1 + 0.018 * tex_tissue)
        # tumour box: oedema raises T1, T2 and PD of the tissue it soaks; the core replaces tissue
        k_ = strength
        def soaked(t, share):
            p = tis[t]
            return signal(seq, p["PD"] * (1 + share * k_ * (oedema["PD"] - 1)),
                          p["T1"] * (1 + share * k_ * (oedema["T1"] - 1)),
                          p["T2"] * (1 + share * k_ * (oedema["T2"] - 1)), p["C"])
        tissue = (lwm * soaked("wm", 1.0) + lgm * soaked("gm", 0.6) + lcsf * s["csf"]) \
            * (1 + 0.018 * tex_tissue[loc])
        core_f = frac["ne"] + frac["cyst"] + frac["enh"]
        t_ne = signal(seq, tis["ne"]["PD"] * (1 + tex_amp * tex_tum), tis["ne"]["T1"],
                      tis["ne"]["T2"] * (1 + 0.8 * tex_amp * tex_tum), tis["ne"]["C"])
        t_enh = signal(seq, tis["enh"]["PD"] * (1 + tex_amp * tex_tum), tis["enh"]["T1"], tis["enh"]["T2"],
                       tis["enh"]["C"] * tex_enh)
        t_cyst = s["cyst"] * (1 + 0.3 * tex_amp * tex_tum)
        img[loc] = (1 - core_f) * tissue + frac["ne"] * t_ne + frac["enh"] * t_enh + frac["cyst"] * t_cyst
        for sl, f, p in mimics:
            img[sl] = img[sl] * (1 - f) + f * signal(seq, p["PD"], p["T1"], p["T2"], p["C"])
        out[mod] = img.astype(np.float32)
    return out


# --------------------------------------------------------------------------- artefacts

def thick_slices(rng, img, axis):
    """Acquire thick slices (box profile, gaps) along `axis` and interpolate back to 1 mm."""
    th = rng.uniform(3.0, 5.0)
    spacing = th + rng.uniform(0.0, 1.0)
    n = img.shape[axis]
    half = int(np.ceil(th / 2)) + 1
    t = np.arange(-half, half + 1, dtype=np.float64)
    kern = np.clip(np.minimum(t + 0.5, th / 2) - np.maximum(t - 0.5, -th / 2), 0, None)
    kern /= kern.sum()
    prof = ndimage.convolve1d(img, kern, axis=axis, mode="nearest")
    z0 = rng.uniform(0, spacing)
    centres = np.arange(z0 - spacing, n + spacing, spacing)
    i0 = np.clip(np.floor(centres).astype(int), 0, n - 1)
    i1 = np.clip(i0 + 1, 0, n - 1)
    w = (centres - np.floor(centres)).astype(np.float32)
    shp = [1, 1, 1]
    shp[axis] = -1
    acq = np.take(prof, i0, axis=axis) * (1 - w).reshape(shp) + np.take(prof, i1, axis=axis) * w.reshape(shp)
    z = np.arange(n, dtype=np.float64)
    s = np.clip(np.searchsorted(centres, z) - 1, 0, len(centres) - 2)
    f = ((z - centres[s]) / spacing).astype(np.float32)
    return np.take(acq, s, axis=axis) * (1 - f).reshape(shp) + np.take(acq, s + 1, axis=axis) * f.reshape(shp)


def kspace(rng, img, box, ghost):
    """Per axial slice: k-space truncation (Gibbs) and motion/pulsation ghosting along phase encode."""
    full = np.zeros((GRID[0], GRID[1], img.shape[2]), np.float32)
    full[box[0], box[1]] = img
    k = np.fft.fft2(full, axes=(0, 1))
    pe = 1 if rng.random() < 0.7 else 0
    ro = 1 - pe
    keep_pe, keep_ro = rng.uniform(0.6, 0.9), rng.uniform(0.75, 1.0)
    f_pe = np.fft.fftfreq(GRID[pe]).astype(np.float32)  # cycles per mm
    f_ro = np.fft.fftfreq(GRID[ro]).astype(np.float32)
    w_pe = (np.abs(f_pe) <= keep_pe / 2).astype(np.complex64)
    w_ro = (np.abs(f_ro) <= keep_ro / 2).astype(np.complex64)
    kind = "-"
    if ghost:
        if rng.random() < 0.35:  # pulsation: periodic amplitude/phase error every n-th line
            period = int(rng.integers(2, 6))
            eps = rng.uniform(0.08, 0.25)
            err = np.ones(GRID[pe], np.complex64)
            err[::period] = (1 - eps) * np.exp(1j * rng.uniform(0.3, 1.2))
            kind = f"pulsation/{period}"
        else:  # bulk motion: random lines acquired with the head shifted
            shift = rng.uniform(1.5, 5.0) * rng.choice([-1, 1])
            moved = rng.random(GRID[pe]) < rng.uniform(0.04, 0.2)
            err = np.where(moved, np.exp(-2j * np.pi * f_pe * shift), 1.0).astype(np.complex64)
            kind = "motion"
        w_pe = w_pe * err
    if pe == 1:
        k *= w_ro[:, None, None] * w_pe[None, :, None]
    else:
        k *= w_pe[:, None, None] * w_ro[None, :, None]
    res = np.abs(np.fft.ifft2(k, axes=(0, 1))).astype(np.float32)
    return res[box[0], box[1]], {"pe": "ij"[pe], "keep": round(keep_pe, 2), "ghost": kind}


def separable_gauss(box, centre, sigma):
    g = [np.exp(-((np.arange(s.start, s.stop, dtype=np.float32) - c) ** 2) / (2 * sigma * sigma))
         for s, c in zip(box, centre)]
    return g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :]


def bias_field(rng, box, brain_centre):
    """exp of a sum of 3-5 broad Gaussians centred near the head surface (coil elements)."""
    field = np.zeros(tuple(s.stop - s.start for s in box), np.float32)
    for _ in range(int(rng.integers(3, 6))):
        v = rng.standard_normal(3)
        v /= np.linalg.norm(v)
        c = np.asarray(brain_centre) + v * np.array([75, 90, 70]) * rng.uniform(0.6, 1.1)
        field += rng.uniform(-0.25, 0.25) * separable_gauss(box, c, rng.uniform(50, 110))
    return np.exp(np.clip(field - np.median(field), -0.3, 0.3))


def add_noise(rng, img, sigma, coils, gmap):
    """Rician (1 coil) or non-central chi (sum of squares over `coils`) magnitude noise."""
    s = sigma * gmap
    re = img + s * rng.standard_normal(img.shape, dtype=np.float32)
    if coils == 1:
        im = s * rng.standard_normal(img.shape, dtype=np.float32)
        return np.sqrt(re * re + im * im)
    rest = (2.0 * rng.standard_gamma((2 * coils - 1) / 2.0, size=img.shape)).astype(np.float32)
    return np.sqrt(re * re + (s * s) * rest)


# --------------------------------------------------------------------------- case

def save_nifti(array, path):
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
    name = f"Far_{seed}"
    kind = str(rng.choice(["patchy", "crescent", "solid", "none"], p=[0.35, 0.25, 0.2, 0.2]))
    vol_core = log_uniform(rng, 2000, 60000) if kind == "none" else log_uniform(rng, 1500, 50000)
    extent = rng.uniform(2, 10) if kind == "none" else rng.uniform(4, 30)
    rc = (3 * vol_core / (4 * np.pi)) ** (1 / 3)

    warp = Warp(rng)
    info = coarse_pass(warp)
    jitter = rng.uniform(-3, 3, 2)
    t = place_brain(info, jitter)
    centre_u, site = choose_site(rng, info, t, rc)
    warp.set_mass(centre_u, rc * rng.uniform(0.4, 0.8), rng.uniform(40, 70))
    info = coarse_pass(warp)
    t = place_brain(info, jitter)  # mass effect included
    box = output_box(info, t)
    anat = resample(warp, t, box)
    d = centre_u + t
    centre = [int(round(CI - d[0])) - box[0].start, int(round(CJ - d[1])) - box[1].start,
              int(round(CK + d[2])) - box[2].start]
    tumour = make_tumour(rng, anat, centre, kind, vol_core, extent)
    seg_loc, loc = tumour[0], tumour[1]
    seg_box = np.zeros(anat["mask"].shape, np.uint8)
    seg_box[loc] = seg_loc
    mimics, mimic_notes = add_mimics(rng, anat, seg_box)
    prot, tis, oedema = draw_protocol(rng)
    clean = synthesise(rng, anat, prot, tis, oedema, tumour, mimics)

    # Acquisition: thick slices, k-space effects, coil bias, noise, then scanner scaling.
    mask = anat["mask"]
    bc = [(s.start + s.stop) / 2.0 for s in box]
    ghost_case = rng.random() < 0.6
    coils = int(rng.choice([1, 4, 8], p=[0.5, 0.25, 0.25]))
    snr = log_uniform(rng, 7, 30) if coils == 1 else log_uniform(rng, 15, 45)
    g_amp = rng.uniform(0.0, 0.7)
    gmap = 1 + g_amp * separable_gauss(box, bc, rng.uniform(35, 60))
    levels = {"t1": (400, 3000), "t1ce": (400, 4500), "t2": (400, 6000), "flair": (300, 2000)}
    final, acq = {}, {}
    wm_core = (anat["wm"] > 0.9) & (seg_box == 0)
    for mod in MODALITIES:
        img = clean[mod]
        thick = mod in ("t2", "flair") or (mod == "t1" and rng.random() < 0.3)
        note = {}
        if thick:
            axis = 2 if rng.random() < 0.8 else 1
            img = thick_slices(rng, img, axis)
            note["thick"] = "ax" if axis == 2 else "cor"
        img, kinfo = kspace(rng, img, box, ghost_case and rng.random() < 0.7)
        note.update(kinfo)
        img = img * bias_field(rng, box, bc)
        ref_wm = float(np.median(img[wm_core])) if wm_core.any() else float(np.median(img[mask]))
        img = add_noise(rng, img, ref_wm / (snr * rng.uniform(0.75, 1.3)), coils, gmap)
        ref = float(np.percentile(img[mask], 99.5))
        img = log_uniform(rng, *levels[mod]) * np.power(np.maximum(img / ref, 0), rng.uniform(0.85, 1.15))
        img = np.where(mask, np.clip(np.rint(img), 1, 32767), 0).astype(np.int16)
        full = np.zeros(GRID, np.int16)
        full[box] = img
        final[mod] = full
        acq[mod] = note
    seg = np.zeros(GRID, np.uint8)
    seg[box] = seg_box

    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    for mod in MODALITIES:
        save_nifti(final[mod], os.path.join(case_dir, f"{name}_{mod}.nii.gz"))
    save_nifti(seg, os.path.join(case_dir, f"{name}_seg.nii.gz"))
    counts = {lbl: int((seg == lbl).sum()) for lbl in (1, 2, 4)}
    return {"name": name, "dir": case_dir, "kind": kind, "site": site, "counts": counts,
            "core_ml": vol_core / 1000, "extent": extent, "tumour": tumour[4], "mimics": mimic_notes,
            "coils": coils, "snr": snr, "t1": prot["t1"]["seq"], "t1ce": prot["t1ce"]["seq"],
            "gd": tis["enh"]["C"], "acq": acq, "seconds": time.time() - t0}


# --------------------------------------------------------------------------- checks / preview

def verify_case(case_dir):
    """Reload a written case; return a list of problems (empty when fine)."""
    name = os.path.basename(case_dir)
    problems, brain = [], None
    seg = None
    for suffix in MODALITIES + ("seg",):
        img = nib.load(os.path.join(case_dir, f"{name}_{suffix}.nii.gz"))
        hdr = img.header
        data = np.asarray(img.dataobj)
        if img.shape != GRID:
            problems.append(f"{suffix}: shape {img.shape}")
        want = np.uint8 if suffix == "seg" else np.int16
        if hdr.get_data_dtype() != want or data.dtype != want:
            problems.append(f"{suffix}: dtype {hdr.get_data_dtype()}")
        if not (np.allclose(hdr.get_sform(), BRATS_AFFINE) and np.allclose(hdr.get_qform(), BRATS_AFFINE)
                and int(hdr["sform_code"]) == 1 and int(hdr["qform_code"]) == 1):
            problems.append(f"{suffix}: affine/codes")
        if suffix == "seg":
            seg = data
        else:
            nz = data > 0
            if (data < 0).any():
                problems.append(f"{suffix}: negative values")
            if brain is None:
                brain = nz
            elif (nz != brain).any():
                problems.append(f"{suffix}: support differs from t1")
    if not set(np.unique(seg).tolist()) <= {0, 1, 2, 4}:
        problems.append(f"labels {np.unique(seg)}")
    if (seg > 0).any() and (~brain[seg > 0]).any():
        problems.append("label outside brain")
    if not (seg > 0).any():
        problems.append("no tumour")
    return problems


def png_write(path, rgb):
    """Minimal PNG writer (8-bit RGB) using zlib only."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def render_preview(case_dir, path):
    """Axial slice with the most tumour: T1, T1ce, T2, FLAIR, labels over FLAIR (radiological
    view); below, the coronal slice through the tumour centre in the same order."""
    name = os.path.basename(case_dir)
    vols = {m: np.asarray(nib.load(os.path.join(case_dir, f"{name}_{m}.nii.gz")).dataobj).astype(np.float32)
            for m in MODALITIES}
    seg = np.asarray(nib.load(os.path.join(case_dir, f"{name}_seg.nii.gz")).dataobj)
    ck = int(np.argmax((seg > 0).sum((0, 1))))
    cj = int(np.argmax((seg[:, :, ck] > 0).sum(0))) if (seg > 0).any() else 120
    colours = {1: (255, 60, 60), 2: (60, 220, 60), 4: (255, 230, 40)}

    def grey(sl, vol):
        hi = np.percentile(vol[vol > 0], 99.5) if (vol > 0).any() else 1.0
        return np.repeat(np.clip(sl / hi * 255, 0, 255).astype(np.uint8)[..., None], 3, -1)

    def overlay(rgb, lab):
        out = rgb.copy()
        for lbl, col in colours.items():
            m = lab == lbl
            out[m] = (0.45 * out[m] + 0.55 * np.array(col)).astype(np.uint8)
        return out

    row1 = [grey(vols[m][:, :, ck].T, vols[m]) for m in MODALITIES]
    row1.append(overlay(grey(vols["flair"][:, :, ck].T, vols["flair"]), seg[:, :, ck].T))
    cor = lambda v: v[:, cj, :].T[::-1]
    pad = lambda a: np.pad(a, ((0, 240 - a.shape[0]), (0, 0), (0, 0)))
    row2 = [pad(grey(cor(vols[m]), vols[m])) for m in MODALITIES]
    row2.append(pad(overlay(grey(cor(vols["flair"]), vols["flair"]), cor(seg))))
    png_write(path, np.ascontiguousarray(np.concatenate([np.concatenate(row1, 1), np.concatenate(row2, 1)], 0)))


def main(argv=None):
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
        print(f"{s['name']}: {s['seconds']:.1f} s  kind={s['kind']:<8} site={s['site']:<11} "
              f"ncr/net(1)={c[1]:>6} ed(2)={c[2]:>6} et(4)={c[4]:>6}  WT={wt / 1000:.1f} ml "
              f"(core target {s['core_ml']:.1f} ml, oedema {s['extent']:.0f} mm)  {s['tumour']}  "
              f"T1={s['t1']} T1ce={s['t1ce']} Gd={s['gd']:.2f} mM  coils={s['coils']} SNR={s['snr']:.0f}  "
              f"mimics={','.join(sorted(set(s['mimics']))) or '-'}", flush=True)
        print("    acquisition: " + "  ".join(
            f"{m}[{'thick ' + a['thick'] + ' ' if 'thick' in a else ''}pe={a['pe']} keep={a['keep']} ghost={a['ghost']}]"
            for m, a in s["acq"].items()), flush=True)
        if args.verify:
            problems = verify_case(s["dir"])
            print(f"    verify: {'OK' if not problems else problems}", flush=True)
            failures += bool(problems)
        if n == 0 and args.preview:
            render_preview(s["dir"], args.preview)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

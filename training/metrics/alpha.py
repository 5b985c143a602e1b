"""Alpha-matte errors with the video-matting community's scaling (RVM's evaluation):

    MAD ×1e3 (mean |a - g|), MSE ×1e3 (mean (a - g)²),
    Grad /1e3 (sum of squared differences of Gaussian-gradient magnitudes, σ = 1.4, each
    matte min-max normalised first), Conn /1e3 (connectivity error, threshold step 0.1,
    differences below 0.15 ignored), dtSSD ×1e2 (per frame pair
    sqrt(mean(((a_t - a_t-1) - (g_t - g_t-1))²))), and MESSDdt ×1e4 (per-pixel mean of
    |e_t(p) - e_t+1(p + v(p))| with e = (a - g)², v = flow of the ground-truth matte, as
    MaGGIe reports it; Erofeev et al. 2015 define it).

Alphas are read by dtype (`to_alpha`: float [0, 1], uint8 0..255, uint16 0..65535). With a
trimap (uint8 0/128/255, models/trimap.py), MAD, MSE, Grad and Conn cover only its unknown
pixels, as image-matting benchmarks (DIM,
Composition-1k) do; MAD/MSE are then means over those pixels. Video averages are over
frames (MAD/MSE/Grad/Conn) and over frame pairs (dtSSD, MESSDdt): RVM's sheet counts a 0
for the first frame's dtSSD, we leave it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from vidmatte.models.errors import InputError


def to_alpha(x) -> np.ndarray:
    """float32 H×W alpha in [0, 1] from uint8/uint16/float/bool (first channel if H×W×C)."""
    a = np.asarray(x)
    if a.ndim == 3:
        a = a[..., 0]
    if a.dtype == bool:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    return np.clip(a.astype(np.float32), 0.0, 1.0)


@lru_cache(maxsize=4)
def _gauss_filters(sigma: float, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """First-derivative-of-Gaussian kernels (x, y), L2-normalised, as the DIM/RVM code."""
    half = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * epsilon))))
    r = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(r**2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    dg = -r * g / sigma**2
    fx = np.outer(g, dg)  # rows: smoothing, columns: derivative along x
    fx /= np.sqrt((fx**2).sum())
    return fx.astype(np.float32), np.ascontiguousarray(fx.T).astype(np.float32)


def _grad_mag(a: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    fx, fy = _gauss_filters(sigma)
    gx = cv2.filter2D(a, cv2.CV_32F, fx, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(a, cv2.CV_32F, fy, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx**2 + gy**2)


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def grad_error(pred, gt, mask: np.ndarray | None = None, sigma: float = 1.4) -> float:
    """Gradient error /1e3."""
    p, g = _minmax(to_alpha(pred)), _minmax(to_alpha(gt))
    d = (_grad_mag(p, sigma) - _grad_mag(g, sigma)) ** 2
    return float((d[mask] if mask is not None else d).sum() / 1e3)


def conn_error(pred, gt, mask: np.ndarray | None = None, step: float = 0.1) -> float:
    """Connectivity error /1e3 (largest 4-connected component of both mattes >= threshold)."""
    import cv2

    p, g = to_alpha(pred), to_alpha(gt)
    steps = np.arange(0, 1 + step, step)
    round_down = -np.ones_like(g)
    for i in range(1, len(steps)):
        both = ((g >= steps[i]) & (p >= steps[i])).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(both, connectivity=4)
        omega = np.zeros(g.shape, bool)
        if n > 1:
            omega = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        sel = (round_down == -1) & ~omega
        round_down[sel] = steps[i - 1]
    round_down[round_down == -1] = 1
    gd, pd = g - round_down, p - round_down
    g_phi = 1 - gd * (gd >= 0.15)
    p_phi = 1 - pd * (pd >= 0.15)
    d = np.abs(g_phi - p_phi)
    return float((d[mask] if mask is not None else d).sum() / 1e3)


def _unknown(trimap) -> np.ndarray:
    """The unknown pixels of a uint8 0/128/255 trimap (tolerant to lossy files)."""
    from vidmatte.models.trimap import trimap_to_classes

    t = np.asarray(trimap)
    return trimap_to_classes(t[..., 0] if t.ndim == 3 else t) == 1


def alpha_metrics(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None = None) -> dict:
    """MAD ×1e3, MSE ×1e3, Grad /1e3, Conn /1e3 of one matte (over the unknown region if a
    trimap is given)."""
    p, g = to_alpha(pred), to_alpha(gt)
    if p.shape != g.shape:
        raise InputError(f"prediction {p.shape} and ground truth {g.shape} differ in size")
    mask = None
    if trimap is not None:
        mask = _unknown(trimap)
        if mask.shape != g.shape:
            raise InputError(f"trimap {mask.shape} and ground truth {g.shape} differ in size")
    d = p - g
    dm = d[mask] if mask is not None else d
    n = max(dm.size, 1)
    return {
        "MAD": float(np.abs(dm).sum() / n * 1e3),
        "MSE": float((dm**2).sum() / n * 1e3),
        "Grad": grad_error(p, g, mask),
        "Conn": conn_error(p, g, mask),
    }


def dtssd(pred_t, pred_tm1, gt_t, gt_tm1) -> float:
    """dtSSD ×1e2 for one frame pair."""
    d = (to_alpha(pred_t) - to_alpha(pred_tm1)) - (to_alpha(gt_t) - to_alpha(gt_tm1))
    return float(np.sqrt((d**2).sum() / d.size) * 1e2)


def messddt(pred_t, pred_t1, gt_t, gt_t1, flow: np.ndarray | None = None) -> float:
    """MESSDdt ×1e4 for one pair: motion-compensated change of the squared error.

    flow: t -> t+1 in pixels (H×W×2); None computes OpenCV DIS on the ground-truth mattes
    (the motion of the true matte, weight-free and deterministic).
    """
    from vidmatte.models.flow import dis_flow, valid_numpy, warp_numpy

    pt, pt1, gtt, gt1 = (to_alpha(x) for x in (pred_t, pred_t1, gt_t, gt_t1))
    if flow is None:
        flow = dis_flow(np.rint(gtt * 255).astype(np.uint8), np.rint(gt1 * 255).astype(np.uint8))
    e_t = (pt - gtt) ** 2
    e_t1 = warp_numpy((pt1 - gt1) ** 2, flow)
    ok = valid_numpy(flow)
    return float(np.abs(e_t - e_t1)[ok].sum() / max(int(ok.sum()), 1) * 1e4)


def video_alpha_metrics(
    preds: Sequence,
    gts: Sequence,
    trimaps: Sequence | None = None,
    flows: Sequence[np.ndarray] | None = None,
) -> dict[str, float]:
    """Per-frame metrics averaged over frames, plus dtSSD and MESSDdt over frame pairs.

    flows[i] (optional): motion i -> i+1 for MESSDdt; default DIS on the ground truth.
    """
    if len(preds) != len(gts):
        raise InputError(f"{len(preds)} predicted frames but {len(gts)} ground-truth frames")
    if not preds:
        raise InputError("no frames to evaluate")
    per = [
        alpha_metrics(p, g, None if trimaps is None else trimaps[i])
        for i, (p, g) in enumerate(zip(preds, gts, strict=True))
    ]
    out = {k: float(np.mean([m[k] for m in per])) for k in per[0]}
    pairs = range(len(preds) - 1)
    out["dtSSD"] = (
        float(np.mean([dtssd(preds[i + 1], preds[i], gts[i + 1], gts[i]) for i in pairs]))
        if len(preds) > 1
        else 0.0
    )
    out["MESSDdt"] = (
        float(
            np.mean(
                [
                    messddt(
                        preds[i],
                        preds[i + 1],
                        gts[i],
                        gts[i + 1],
                        None if flows is None else flows[i],
                    )
                    for i in pairs
                ]
            )
        )
        if len(preds) > 1
        else 0.0
    )
    return out


def evaluation_trimap(alpha: np.ndarray) -> np.ndarray:
    """A 3-level trimap from a GT alpha for scoring a matter: fg = alpha >= 0.95, bg = alpha
    == 0 eroded by a 5x5 square, the rest unknown (uint8 0/128/255). Composition-1k's stored
    trimap for c1k_spring has no foreground (0/128 only), for which closed-form matting has
    the trivial answer alpha = 0; the pipeline's band rule (models/trimap.py) erodes
    away every thin solid part of a plant. This is Deep Image Matting's rule, unchanged."""
    import cv2

    from vidmatte.models.trimap import BG, FG, UNKNOWN

    a = to_alpha(alpha)
    bg = cv2.erode((a <= 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    tri = np.full(a.shape, UNKNOWN, np.uint8)
    tri[a >= 0.95], tri[bg] = FG, BG
    return tri

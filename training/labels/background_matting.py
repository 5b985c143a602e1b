"""`vidmatte-train background-matting`: near-ground-truth human alpha from known backgrounds.

No human-matting dataset can be downloaded here, but many clips have a static camera or a
plain backdrop. With the background B known, matting is far better conditioned than from
a trimap alone: the compositing equation I = αF + (1 - α)B leaves one unknown colour per
pixel instead of two. This module turns such clips into matting triplets
(image, alpha, foreground) for IndexNet and for scoring the matters:

1. **Plate** (`recover_plate`): the temporal median of each pixel over the sampled frames
   where no person covers it (the teacher's person masks, generously dilated, plus a second
   pass that also excludes whatever differs from the first plate). A pixel seen uncovered
   in too few frames, or whose uncovered samples disagree (moving background, flicker), is
   not trusted; on a plain backdrop such holes are filled by smooth interpolation where
   the plate around them has no texture. Each frame's exposure is matched to the plate
   (a per-channel gain and offset fitted far from the people) before anything is compared.
2. **Alpha and foreground with B known** (`solve_known_background`): the closed-form
   matting energy (Levin et al., models/matters/classical.py's Laplacian) plus a data term
   that pulls α towards its compositing estimate α̂ = (I - B)·(F̂ - B) / |F̂ - B|², weighted
   by how well the estimate is conditioned, |F̂ - B|² (a foreground colour close to the
   background says nothing). F̂ is a smooth foreground: colours of the sure foreground and
   of the band pixels that differ most from the plate, propagated outwards (normalised
   convolution). Re-estimating F̂ from the solved α and solving again was tried and made
   the synthetic check worse (SAD 14.3 against 10.9 at half size), so there is one solve;
   the final F comes from blur fusion (Forte & Pitié 2021) with B known. Everything far from a person is background; the solve covers only the band where
   the image differs from the plate near a person, by conjugate gradients warm-started at
   α̂ (the data term makes the system well conditioned, so no factorisation is needed).
3. **Filter** (`QualityReport`): a frame-person is kept only when its re-composite error
   (αF̂ + (1 - α)B against I, F̂ smooth, over the band) is low, the plate is trusted under
   its whole band, the ring around it matches the plate (no missed limb, shadow or camera
   shake), little of its band is camouflaged (F̂ ≈ B), and its matte agrees with the
   teacher's mask. People whose regions touch are skipped (their split is a guess).
4. **Triplets**: `OUT/<clip>/{image,alpha,fg}/<clip>_<frame>_p<k>.png`, one crop per kept
   person, the layout `[data] matting` reads (training/data/datasets.py), plus
   `OUT/<clip>/report.json` (every decision with its numbers) and
   `OUT/preview_<clip>.png` (image | alpha | foreground on a checkerboard | re-composite
   error, rejected items marked), made to be looked at.

The procedure is validated on a synthetic composite with a true alpha (`synthetic_check`,
`--check`): the Composition-1k item's foreground over a real video frame, the plate taken
from that clip's temporal median (so plate noise is real), SAD/MSE against the ground
truth, next to closed-form matting given the evaluation trimap.

Held-out clips (training/configs/validation.toml, `matting`) are labelled like any other,
since their triplets are the evaluation set; IndexNet training refuses them
(training/indexnet_training.py). Resumable: a clip whose report.json says complete is
skipped, every file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np

from vidmatte.models.errors import InputError, UsageError

VIDEO_EXTS = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"}


@dataclass
class BackgroundMattingConfig:
    """Every knob of the procedure (module docstring); defaults are the shipped recipe."""

    max_side: int = 960  # working resolution (long side)
    plate_frames: int = 80  # frames sampled for the plate
    every: int = 0  # label every N-th frame (0: `per_clip` frames spread evenly)
    per_clip: int = 16
    cover_factor: float = 0.10  # person masks dilated by factor·sqrt(area) + 6 px for the plate
    min_seen: float = 0.05  # a plate pixel needs this fraction of the plate frames uncovered
    max_spread: float = 0.05  # median |sample - median| of a trusted plate pixel
    fill_texture: float = 0.012  # plain backdrop: local plate std below this may be filled
    near_factor: float = 0.12  # a person's region: mask dilated by factor·sqrt(area) + 6 px
    # sure foreground: the teacher's mask eroded by factor·sqrt(area) + hair_reach px. Thin:
    # texture that matches the plate (white sequins on white) would otherwise punch holes
    interior_factor: float = 0.02
    feet: float = 0.06  # fraction of the person's height treated as floor contact (below)
    hair_reach: int = 6  # px: background this close to a clear difference stays unknown
    data_weight: float = 2.0  # data term weight against the Laplacian
    conf_scale: float = 0.12  # |F̂ - B| at which the data term has half its weight
    prior_weight: float = 0.5  # pull towards the teacher's mask where F̂ ≈ B
    contrast_power: float = 4.0  # F̂ weights band pixels by (|I - B| / max)^power
    # Filter thresholds (per frame-person).
    max_recomposite: float = 0.040  # mean |αF̂ + (1-α)B - I| where 0 < α < 1 (or 4·noise)
    max_ring_outliers: float = 0.05  # ring pixels that differ from the plate
    max_untrusted: float = 0.25  # see-through band pixels on an untrusted plate
    max_camouflage: float = 0.15  # band pixels with |F̂ - B| < conf_scale / 2
    min_mask_iou: float = 0.70  # (α > 0.5) against the teacher's mask
    min_area: int = 4000  # px at working resolution
    margin: float = 0.10  # crop margin, fraction of the box side
    touch_px: int = 8  # people whose masks come this close are not split (skipped)


# --------------------------------------------------------------------------- foreground


def _box_blur(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.blur(x, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def estimate_foreground(
    image: np.ndarray,
    alpha: np.ndarray,
    background: np.ndarray | None = None,
    radii: tuple[int, ...] = (45, 3),
) -> np.ndarray:
    """Foreground colours F (float32 H×W×3 in [0, 1]) by blur fusion (Forte & Pitié 2021).

    image float [0, 1] H×W×3, alpha float H×W. Each pass blurs F weighted by α (and B by
    1 - α) and corrects both towards the compositing equation. With `background` known the
    correction is the least-squares F for a smooth prior F̂:
    F = (α(I - (1 - α)B) + μF̂) / (α² + μ).
    """
    a = np.clip(alpha, 0, 1).astype(np.float32)[..., None]
    img = image.astype(np.float32)
    fg, bg = img.copy(), img.copy() if background is None else background.astype(np.float32)
    mu = 0.02
    for r in radii:
        wa = _box_blur(a[..., 0], r)[..., None]
        f_hat = _box_blur(fg * a, r) / (wa + 1e-5)
        if background is None:
            b_hat = _box_blur(bg * (1 - a), r) / (1 - wa + 1e-5)
            resid = img - a * f_hat - (1 - a) * b_hat
            fg = np.clip(f_hat + a * resid, 0, 1)
            bg = np.clip(b_hat + (1 - a) * resid, 0, 1)
        else:
            fg = np.clip((a * (img - (1 - a) * bg) + mu * f_hat) / (a * a + mu), 0, 1)
    return fg


def _smooth_fill(values: np.ndarray, weight: np.ndarray, radii=(3, 9, 27, 81)) -> np.ndarray:
    """Normalised-convolution fill: each pixel from the weighted mean of growing windows."""
    out = np.zeros_like(values)
    done = np.zeros(weight.shape, bool)
    wv = values * weight[..., None] if values.ndim == 3 else values * weight
    for r in radii:
        w = _box_blur(weight, r)
        v = _box_blur(wv, r)
        ok = (w > 1e-3) & ~done
        out[ok] = (v[ok].T / w[ok]).T if values.ndim == 3 else v[ok] / w[ok]
        done |= ok
    if not done.all():
        mean = wv.reshape(-1, *values.shape[2:]).sum(0) / max(float(weight.sum()), 1e-6)
        out[~done] = mean
    return out


# --------------------------------------------------------------------------- plate


@dataclass
class Plate:
    """A clip's background: rgb float32 H×W×3 in [0, 1], where to trust it, and how."""

    rgb: np.ndarray
    trusted: np.ndarray  # bool H×W
    source: np.ndarray  # uint8: 0 untrusted, 1 temporal median, 2 plain-backdrop fill
    spread: np.ndarray  # float32: median |sample - plate| of the uncovered samples
    seen: np.ndarray  # float32: fraction of plate frames that showed the pixel

    def stats(self) -> dict[str, float]:
        n = self.source.size
        return {
            "median": round(float((self.source == 1).sum() / n), 4),
            "filled": round(float((self.source == 2).sum() / n), 4),
            "untrusted": round(float((self.source == 0).sum() / n), 4),
            "spread_p50": round(float(np.median(self.spread[self.source == 1])), 4)
            if (self.source == 1).any()
            else 0.0,
        }


def cover_mask(masks: np.ndarray, factor: float) -> np.ndarray:
    """Union of person masks (N×H×W prob/bool), each dilated by factor·sqrt(area) + 6 px."""
    h, w = masks.shape[1:] if masks.ndim == 3 else masks.shape
    out = np.zeros((h, w), bool)
    for m in masks if masks.ndim == 3 else masks[None]:
        b = m > 0.5
        area = int(b.sum())
        if area == 0:
            continue
        r = int(factor * np.sqrt(area)) + 6
        out |= cv2.distanceTransform((~b).astype(np.uint8), cv2.DIST_L2, 5) <= r
    return out


def match_exposure(image: np.ndarray, plate: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The plate with a per-channel gain and offset fitted to `image` over `where`.

    Robust: fitted twice, the second time without pixels that differ by more than 0.08
    (anything that moved). Where too few pixels are given, the plate is returned as is.
    """
    sel = where.copy()
    if sel.sum() < 500:
        return plate
    out = plate.copy()
    for _ in range(2):
        for c in range(3):
            x, y = plate[..., c][sel], image[..., c][sel]
            A = np.stack([x, np.ones_like(x)], 1)
            g, o = np.linalg.lstsq(A, y, rcond=None)[0]
            g = float(np.clip(g, 0.7, 1.4))
            out[..., c] = np.clip(plate[..., c] * g + o, 0, 1)
        diff = np.abs(image - out).max(-1)
        sel = where & (diff < 0.08)
        if sel.sum() < 500:
            break
    return out


def _nan_median(v: np.ndarray) -> np.ndarray:
    """Median over axis 0 ignoring NaN (lower median), by one sort: NaNs sort last."""
    count = (~np.isnan(v)).sum(0)
    srt = np.sort(v, axis=0)
    k = np.maximum(count - 1, 0) // 2
    out = np.take_along_axis(srt, k[None], axis=0)[0]
    out[count == 0] = np.nan
    return out


def _masked_median(stack: np.ndarray, cover: np.ndarray, rows: int = 64):
    """Per-pixel median and spread of the uncovered samples (NaN where never uncovered)."""
    n, h, w, _ = stack.shape
    med = np.full((h, w, 3), np.nan, np.float32)
    spread = np.full((h, w), np.nan, np.float32)
    for y in range(0, h, rows):
        v = stack[:, y : y + rows].astype(np.float32) / 255.0
        v[cover[:, y : y + rows]] = np.nan
        m = _nan_median(v)
        with np.errstate(invalid="ignore"):
            s = _nan_median(np.abs(v - m[None]).max(-1))
        med[y : y + rows], spread[y : y + rows] = m, s
    return med, spread


def recover_plate(
    frames: list[np.ndarray], masks: list[np.ndarray], cfg: BackgroundMattingConfig
) -> Plate:
    """The clip's background plate from sampled frames and their person masks (N×H×W each)."""
    stack = np.stack(frames)
    n = len(frames)
    cover = np.stack([cover_mask(m, cfg.cover_factor) for m in masks])
    med, _ = _masked_median(stack, cover)
    # Second pass: also exclude whatever differs from the first plate (missed people,
    # moving objects), and match each frame's exposure before the median.
    first = np.where(np.isnan(med), 0, med)
    adj = np.empty_like(stack)
    for i in range(n):
        img = stack[i].astype(np.float32) / 255.0
        far = ~cover[i] & ~np.isnan(med[..., 0])
        p = match_exposure(img, first, far)
        # bring the frame to the plate's exposure (invert the fitted map per channel)
        diff = np.abs(img - p).max(-1)
        moved = cv2.dilate((diff > 0.10).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        cover[i] |= moved
        corr = np.clip(img + (first - p), 0, 1)
        adj[i] = np.clip(corr * 255 + 0.5, 0, 255).astype(np.uint8)
    med, spread = _masked_median(adj, cover)
    seen = (~cover).mean(0).astype(np.float32)
    has = ~np.isnan(med[..., 0])
    trusted = has & (seen >= cfg.min_seen) & (np.nan_to_num(spread, nan=1.0) <= cfg.max_spread)
    rgb = np.where(trusted[..., None], np.nan_to_num(med), 0).astype(np.float32)
    source = trusted.astype(np.uint8)
    if not trusted.all() and trusted.any():
        # Plain backdrop: fill holes smoothly where the trusted plate around them is flat.
        wt = trusted.astype(np.float32)
        filled = _smooth_fill(rgb, wt)
        r = 15
        mean = _box_blur(rgb * wt[..., None], r) / (_box_blur(wt, r)[..., None] + 1e-6)
        sq = _box_blur(rgb * rgb * wt[..., None], r) / (_box_blur(wt, r)[..., None] + 1e-6)
        local_std = np.sqrt(np.maximum(sq - mean * mean, 0)).max(-1)
        # texture near a hole: the largest local std within 2r of it
        tex = cv2.dilate(np.where(trusted, local_std, 0).astype(np.float32), np.ones((61, 61)))
        fill = ~trusted & (tex <= cfg.fill_texture)
        rgb[fill] = filled[fill]
        source[fill] = 2
        trusted = trusted | fill
    return Plate(
        rgb=rgb,
        trusted=trusted,
        source=source,
        spread=np.nan_to_num(spread, nan=1.0),
        seen=seen,
    )


# --------------------------------------------------------------------------- solve


@dataclass
class KnownBackgroundSolve:
    alpha: np.ndarray  # float32 H×W, all people together
    fg: np.ndarray  # float32 H×W×3 (smooth where alpha is 0)
    fg_smooth: np.ndarray  # F̂, the prior the re-composite error is measured with
    band: np.ndarray  # bool H×W: the pixels solved for
    background: np.ndarray  # the exposure-matched plate


def _conjugate_gradient(A, b, x0, iters: int = 250, tol: float = 1e-4) -> np.ndarray:
    """Jacobi-preconditioned CG on an SPD sparse system (scipy's, with our stopping rule)."""
    from scipy.sparse.linalg import LinearOperator, cg

    d = A.diagonal()
    m = LinearOperator(A.shape, matvec=lambda v: v / np.maximum(d, 1e-12))
    x, _ = cg(A, b, x0=x0, rtol=tol, maxiter=iters, M=m)
    return x


def _floor(prior: np.ndarray, feet: float) -> np.ndarray:
    """Pixels in the bottom `feet` fraction of the mask's height and below it (per column
    range of the mask's lower part)."""
    rows = np.nonzero((prior > 0.5).any(1))[0]
    out = np.zeros(prior.shape, bool)
    if rows.size == 0 or feet <= 0:
        return out
    top, bottom = rows[0], rows[-1]
    out[int(bottom - feet * (bottom - top)) :] = True
    return out


def _shadow(image: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """Pixels (…×3) that look like the plate in shadow: I = k·B, 0.4 < k < 0.97, per channel."""
    ratio = image / np.maximum(plate, 1e-3)
    lo, hi = ratio.min(-1), ratio.max(-1)
    return (plate.min(-1) > 0.08) & (lo > 0.4) & (hi < 0.97) & (hi - lo < 0.08)


def solve_known_background(
    image: np.ndarray,
    plate: np.ndarray,
    prior: np.ndarray,
    near: np.ndarray,
    cfg: BackgroundMattingConfig,
    *,
    noise: float = 0.01,
) -> KnownBackgroundSolve:
    """α and F of everything in `near` that is not the background (module docstring, 2).

    image, plate: float32 H×W×3 in [0, 1] (plate already exposure-matched); prior: float
    H×W, the teacher's person probability (union of people); near: bool, where people may
    be (alpha is 0 outside); noise: the plate-vs-image noise level (RGB distance).
    """
    import scipy.sparse as sp

    from vidmatte.models.matters.classical import band_system

    img = image.astype(np.float64)
    bgd = plate.astype(np.float64)
    h, w = near.shape
    diff = np.sqrt(((img - bgd) ** 2).sum(-1))
    t_low = max(0.04, 3 * noise)
    clear = diff > t_low
    # Background: everything not near a person, and near-person pixels that match the plate
    # and lie beyond `hair_reach` of any clear difference.
    reach = cv2.distanceTransform((~clear).astype(np.uint8), cv2.DIST_L2, 5) > cfg.hair_reach
    sure_bg = ~near | (~clear & reach)
    # The floor by the feet: shadows and reflections differ from the plate but are not the
    # person. Below the top `1 - feet` of each person's mask, what the mask does not cover
    # is background.
    sure_bg |= _floor(prior, cfg.feet) & (prior < 0.3)
    # Sure foreground: deep inside the teacher's mask, where the image differs from B.
    pm = (prior > 0.5) & near
    area = max(int(pm.sum()), 1)
    r_in = int(cfg.interior_factor * np.sqrt(area)) + cfg.hair_reach
    deep = cv2.distanceTransform(pm.astype(np.uint8), cv2.DIST_L2, 5) > r_in
    # (colour is not asked for: a body's interior is foreground even where it matches B)
    sure_fg = deep & near
    sure_bg &= ~sure_fg
    alpha = sure_fg.astype(np.float64)
    band = ~sure_bg & ~sure_fg
    if not band.any():
        f = estimate_foreground(image, alpha.astype(np.float32), plate)
        return KnownBackgroundSolve(alpha.astype(np.float32), f, f, band, plate.astype(np.float32))
    # F̂: colours of the sure foreground and, in the band, of the pixels that differ most
    # from the plate (the purest foreground nearby: a strand's core, not its fringe),
    # propagated outwards.
    wf = sure_fg.astype(np.float64)
    if cfg.contrast_power > 0:
        dn = diff / max(float(diff[band].max(initial=0)), 1e-6)
        wf = np.maximum(wf, np.where(band & clear, dn, 0.0) ** cfg.contrast_power)
    f_hat = _smooth_fill(img, wf, radii=(4, 12, 36, 108))
    f_hat[sure_fg] = img[sure_fg]
    # The closed-form system over the band's bounding box (plus one window) only.
    ys, xs = np.nonzero(band)
    y0, y1 = max(0, ys.min() - 2), min(h, ys.max() + 3)
    x0, x1 = max(0, xs.min() - 2), min(w, xs.max() + 3)
    crop = (slice(y0, y1), slice(x0, x1))
    bc = band[crop]
    l_uu, rhs, u = band_system(img[crop], ~bc, alpha[crop])
    ic, bc_rgb, prc = img[crop].reshape(-1, 3)[u], bgd[crop].reshape(-1, 3)[u], prior[crop]
    prc = prc.ravel()[u].astype(np.float64)
    fc = f_hat[crop].reshape(-1, 3)[u]
    dfb = fc - bc_rgb
    den = (dfb**2).sum(-1)
    proj = ((ic - bc_rgb) * dfb).sum(-1) / np.maximum(den, 1e-6)
    # noise floor: a projection below what plate noise explains is 0
    a_hat = np.clip(proj - 1.5 * noise / np.sqrt(np.maximum(den, 1e-6)), 0, 1)
    conf = den / (den + cfg.conf_scale**2)
    # Cast shadows outside the person: the plate darkened by a common factor in every
    # channel. They are background (alpha 0) with full confidence.
    shadow = _shadow(ic, bc_rgb) & (prc < 0.3)
    a_hat[shadow], conf[shadow] = 0.0, 1.0
    # where F̂ ≈ B the data says nothing: the teacher's mask takes over as the target
    pw = cfg.prior_weight * (1.0 - conf)
    target = (conf * a_hat + pw * prc) / (conf + pw + 1e-9)
    lam = cfg.data_weight * (conf + pw)
    system = (l_uu + sp.diags(lam + 1e-9)).tocsr()  # (l_uu: csc, ridge 0)
    a_u = np.clip(_conjugate_gradient(system, rhs + lam * target, target), 0, 1)
    sub = alpha[crop].reshape(-1)
    sub[u] = a_u
    alpha[crop] = sub.reshape(bc.shape)
    alpha[alpha < 0.004] = 0.0
    alpha[alpha > 0.996] = 1.0
    a32 = alpha.astype(np.float32)
    fg = estimate_foreground(image, a32, plate, radii=(45, 3))
    return KnownBackgroundSolve(
        alpha=a32,
        fg=fg,
        fg_smooth=f_hat.astype(np.float32),
        band=band,
        background=plate.astype(np.float32),
    )


# --------------------------------------------------------------------------- filter


@dataclass
class QualityReport:
    """The filter's numbers for one frame-person, and whether it is kept (and why not)."""

    frame: int
    person: int
    area: int
    recomposite: float
    ring_outliers: float
    untrusted: float
    camouflage: float
    mask_iou: float
    touching: bool = False
    kept: bool = False
    reasons: list[str] = field(default_factory=list)


def quality(
    solve: KnownBackgroundSolve,
    image: np.ndarray,
    person_alpha: np.ndarray,
    person_mask: np.ndarray,
    region: np.ndarray,
    trusted: np.ndarray,
    cfg: BackgroundMattingConfig,
    frame: int,
    person: int,
    noise: float,
    others: np.ndarray | None = None,
) -> QualityReport:
    a = person_alpha
    band = solve.band & region
    a3 = a[..., None]
    comp = a3 * solve.fg_smooth + (1 - a3) * solve.background
    err = np.abs(comp - image).mean(-1)
    # the matting region: solved pixels that are neither background nor solid foreground
    sel = band & (a > 0.02) & (a < 0.98)
    recomposite = float(err[sel].mean()) if sel.any() else 0.0
    # ring: just outside the person's region, where everything should match the plate
    # (other people's regions are not this person's ring; cast shadows are not outliers)
    ring = (cv2.dilate(region.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0) & ~region
    if others is not None:
        ring &= ~others
    # the floor by the feet is declared background by the solve (shadows, reflections)
    ring &= ~_floor(person_mask.astype(np.float32), cfg.feet)
    d = np.sqrt(((image - solve.background) ** 2).sum(-1))
    out = (d > max(0.08, 5 * noise)) & ~_shadow(image, solve.background)
    ring_out = float(out[ring].mean()) if ring.any() else 1.0
    # the plate matters where the background shows through: not under solid foreground
    see = band & (a < 0.98) & region
    untrusted = float((~trusted[see]).mean()) if see.any() else 0.0
    dfb = np.sqrt(((solve.fg_smooth - solve.background) ** 2).sum(-1))
    camo = float((dfb[band] < cfg.conf_scale / 2).mean()) if band.any() else 0.0
    m = a > 0.5
    inter, union = float((m & person_mask).sum()), float((m | person_mask).sum())
    iou = inter / union if union else 0.0
    r = QualityReport(
        frame=frame,
        person=person,
        area=int(m.sum()),
        recomposite=round(recomposite, 5),
        ring_outliers=round(ring_out, 5),
        untrusted=round(untrusted, 5),
        camouflage=round(camo, 4),
        mask_iou=round(iou, 4),
    )
    r.reasons = decide(r, noise, cfg)
    r.kept = not r.reasons
    return r


def decide(r: QualityReport, noise: float, cfg: BackgroundMattingConfig) -> list[str]:
    """Why a frame-person is rejected under `cfg`'s thresholds (empty: kept)."""
    checks = [
        (r.area >= cfg.min_area, "small"),
        (r.recomposite <= max(cfg.max_recomposite, 4 * noise), "recomposite"),
        (r.ring_outliers <= cfg.max_ring_outliers, "ring"),
        (r.untrusted <= cfg.max_untrusted, "plate"),
        (r.camouflage <= cfg.max_camouflage, "camouflage"),
        (r.mask_iou >= cfg.min_mask_iou, "mask"),
        (not r.touching, "touching"),
    ]
    return [name for ok, name in checks if not ok]


# --------------------------------------------------------------------------- synthetic check


def synthetic_check(
    shared: Path,
    clip: str = "data/videos/hybrik_taiji.mp4",
    scale: float = 1.0,
    cfg: BackgroundMattingConfig | None = None,
) -> dict:
    """SAD/MSE of the known-background solve on a composite with a true alpha.

    Foreground: Composition-1k 'spring' (its F by blur fusion from image + alpha). Background:
    a frame of `clip` resized to the item, and the plate the solver is given is the same
    clip's temporal median (a different estimate than the frame itself, so plate error and
    codec noise are real). Next to it: closed-form matting of the same composite given the
    evaluation trimap (training/metrics: `evaluation_trimap`), the trimap-only reference.
    The "teacher mask" is the true alpha > 0.5 blurred and thresholded (a segmenter's blob).
    """
    from vidmatte.matting.io.video import open_video
    from vidmatte.models.matters.classical import closed_form_alpha
    from vidmatte.training.eval.matting_eval import read_spring
    from vidmatte.training.metrics import alpha_metrics, evaluation_trimap

    cfg = cfg or BackgroundMattingConfig()
    img, gt = read_spring(shared)
    if scale != 1.0:
        size = (round(img.shape[1] * scale), round(img.shape[0] * scale))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        gt = cv2.resize(gt, size, interpolation=cv2.INTER_AREA)
    h, w = gt.shape
    f = estimate_foreground(img.astype(np.float32) / 255, gt)
    frames = []
    with open_video(shared / clip) as reader:
        n = reader.info.frame_count or 300
        for fr in reader.frames(0, n):
            frames.append(cv2.resize(fr.rgb, (w, h), interpolation=cv2.INTER_AREA))
    sample = [frames[i] for i in np.linspace(0, len(frames) - 1, 40).astype(int)]
    plate = np.median(np.stack(sample), 0).astype(np.float32) / 255
    # The background is a real frame (its own codec noise, its own small changes against
    # the plate) with the clip's person, who differs from any plate, replaced by the plate.
    frame = frames[len(frames) // 3].astype(np.float32) / 255
    person = cv2.dilate((np.abs(frame - plate).max(-1) > 0.06).astype(np.uint8),
                        np.ones((31, 31), np.uint8)) > 0  # fmt: skip
    frame[person] = plate[person]
    comp = gt[..., None] * f + (1 - gt[..., None]) * frame
    comp8 = np.clip(comp * 255 + 0.5, 0, 255).astype(np.uint8)
    compf = comp8.astype(np.float32) / 255
    # The segmenter stand-ins: where the object may be (its alpha > 0.5, blurred, grown),
    # and its solid part (alpha >= 0.95, blurred), the analogue of a person's body.
    sigma = 6 * max(scale, 0.25)
    blob = cv2.GaussianBlur((gt > 0.5).astype(np.float32), (0, 0), sigma) > 0.5
    solid = cv2.GaussianBlur((gt >= 0.95).astype(np.float32), (0, 0), sigma) > 0.5
    near = cover_mask(blob[None].astype(np.float32), cfg.near_factor)
    far = ~cover_mask(blob[None].astype(np.float32), 2 * cfg.near_factor)
    matched = match_exposure(compf, plate, far)
    noise = _noise(compf, matched, far)
    t0 = time.perf_counter()
    s = solve_known_background(compf, matched, solid.astype(np.float32), near, cfg, noise=noise)
    secs = time.perf_counter() - t0
    tri = evaluation_trimap(gt)
    t1 = time.perf_counter()
    cf = closed_form_alpha(comp8, tri)
    cf_secs = time.perf_counter() - t1
    known = alpha_metrics(s.alpha, gt, tri)
    ref = alpha_metrics(cf, gt, tri)
    sad = lambda a: float(np.abs(a - gt).sum() / 1000)  # noqa: E731
    mse = lambda a: float(((a - gt) ** 2).mean())  # noqa: E731
    return {
        "size": [w, h],
        "clip": clip,
        "known_background": {
            "SAD": round(sad(s.alpha), 2),
            "MSE": round(mse(s.alpha), 5),
            "MSE_unknown_x1e3": round(known["MSE"], 2),
            "seconds": round(secs, 2),
        },
        "closed_form_trimap": {
            "SAD": round(sad(cf), 2),
            "MSE": round(mse(cf), 5),
            "MSE_unknown_x1e3": round(ref["MSE"], 2),
            "seconds": round(cf_secs, 2),
        },
        "fg_error": round(float(np.abs(s.fg - f)[gt > 0.1].mean()), 4),
    }


def _noise(image: np.ndarray, plate: np.ndarray, where: np.ndarray) -> float:
    """Robust RGB-distance noise level between image and plate over `where`."""
    if where.sum() < 100:
        return 0.02
    d = np.sqrt(((image - plate) ** 2).sum(-1))[where]
    return float(np.clip(np.median(d) * 1.2, 0.004, 0.05))


# --------------------------------------------------------------------------- clips


def _read_frames(path: Path, wanted: set[int], max_side: int) -> dict[int, np.ndarray]:
    """Only the frames `wanted` (by index), resized to `max_side`: memory stays small."""
    from vidmatte.matting.io.video import open_video

    out: dict[int, np.ndarray] = {}
    last = max(wanted)
    with open_video(path) as reader:
        for fr in reader.frames(0, last + 1):
            if fr.index not in wanted:
                continue
            rgb = fr.rgb
            s = max_side / max(rgb.shape[:2])
            if s < 1:
                size = (round(rgb.shape[1] * s), round(rgb.shape[0] * s))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            out[fr.index] = rgb
    return out


def _frame_count(path: Path) -> tuple[int, float]:
    from vidmatte.matting.io.video import open_video

    with open_video(path) as reader:
        n, fps = reader.info.frame_count, reader.info.fps
        if not n:
            n = sum(1 for _ in reader.frames(0, None))
    if not n:
        raise InputError(f"{path}: no frames")
    return n, fps


def _people(teacher, rgb: np.ndarray) -> np.ndarray:
    inst = teacher(rgb)
    if len(inst) == 0:
        return np.zeros((0, *rgb.shape[:2]), np.float32)
    keep = (inst.labels == 0).numpy()
    return inst.masks.float().numpy()[keep]


def main_parts(alpha: np.ndarray, min_share: float = 0.05) -> np.ndarray:
    """Alpha with disconnected specks removed: components of alpha > 0.02 smaller than
    `min_share` of the largest are background (plate errors, not the person)."""
    n, lab, stats, _ = cv2.connectedComponentsWithStats((alpha > 0.02).astype(np.uint8), 8)
    if n <= 2:
        return alpha
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= min_share * areas.max()])
    return np.where(keep[lab], alpha, 0.0).astype(alpha.dtype)


def _grow(mask: np.ndarray, r: int) -> np.ndarray:
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5) <= r


def _owners(people: np.ndarray, near: np.ndarray) -> np.ndarray:
    """Per pixel, the index of the person whose mask is nearest (-1 outside `near`)."""
    dist = np.stack(
        [cv2.distanceTransform((m <= 0.5).astype(np.uint8), cv2.DIST_L2, 5) for m in people]
    )
    return np.where(near, dist.argmin(0), -1)


def _crop_box(a: np.ndarray, margin: float, pad: int) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(a > 0.01)
    h, w = a.shape
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    my, mx = int(margin * (y1 - y0)) + pad, int(margin * (x1 - x0)) + pad
    return max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx)


def label_clip(
    path: Path,
    out: Path,
    teacher,
    cfg: BackgroundMattingConfig,
    *,
    progress=None,
) -> dict:
    """Plate, solve, filter and write the triplets of one clip; returns its report."""
    from vidmatte.training.data.teacher_dataset import write_image, write_json

    name = path.stem
    folder = out / name
    report_path = folder / "report.json"
    if report_path.is_file():
        old = json.loads(report_path.read_text())
        if old.get("complete"):
            return old
    t0 = time.monotonic()
    n, fps = _frame_count(path)
    plate_idx = np.unique(np.linspace(0, n - 1, min(n, cfg.plate_frames)).astype(int))
    if cfg.every:
        label_idx = np.arange(0, n, cfg.every)
    else:
        label_idx = np.unique(np.linspace(0, n - 1, min(n, cfg.per_clip) + 2).astype(int)[1:-1])
    frames = _read_frames(path, {int(i) for i in plate_idx} | {int(i) for i in label_idx},
                          cfg.max_side)  # fmt: skip
    plate_idx = np.array([i for i in plate_idx if int(i) in frames], int)
    label_idx = np.array([i for i in label_idx if int(i) in frames], int)
    masks: dict[int, np.ndarray] = {}
    for i in sorted(set(plate_idx) | set(label_idx)):
        masks[int(i)] = _people(teacher, frames[i])
    plate = recover_plate([frames[i] for i in plate_idx], [masks[int(i)] for i in plate_idx], cfg)
    items, kept = [], 0
    for j, fi in enumerate(label_idx):
        fi = int(fi)
        people = masks[fi]
        img = frames[fi].astype(np.float32) / 255
        if len(people) == 0:
            continue
        union_prior = people.max(0)
        regions = [cover_mask(m[None], cfg.near_factor) for m in people]
        near = np.logical_or.reduce(regions)
        far = ~cover_mask(people, 2 * cfg.near_factor) & plate.trusted
        matched = match_exposure(img, plate.rgb, far)
        noise = _noise(img, matched, far)
        s = solve_known_background(img, matched, union_prior, near, cfg, noise=noise)
        owner = _owners(people, near)
        # people whose masks come within `touch_px` of each other: their split is a guess
        close = [_grow(m > 0.5, cfg.touch_px) for m in people]
        contact = np.sum(close, axis=0) > 1
        for k, m in enumerate(people):
            own = owner == k
            pa = main_parts(np.where(own, s.alpha, 0.0).astype(np.float32))
            others = near & ~own
            rep = quality(s, img, pa, m > 0.5, own, plate.trusted, cfg, fi, k + 1, noise, others)
            if (contact & close[k] & (s.alpha > 0.02)).any():
                rep.touching = True
                rep.reasons = decide(rep, noise, cfg)
                rep.kept = False
            stem = f"{name}_{fi:06d}_p{k + 1}"
            item = {"stem": stem, "noise": round(noise, 4), **asdict(rep)}
            # every solved item is written: kept ones where training reads them, the others
            # under rejected/ (so `--refilter` can move them with other thresholds)
            if (pa > 0.01).any():
                y0, y1, x0, x1 = _crop_box(pa, cfg.margin, 8)
                dest = folder if rep.kept else folder / "rejected"
                write_image(dest / "image" / f"{stem}.png", frames[fi][y0:y1, x0:x1], rgb=True)
                fg8 = np.clip(s.fg[y0:y1, x0:x1] * 255 + 0.5, 0, 255).astype(np.uint8)
                write_image(dest / "fg" / f"{stem}.png", fg8, rgb=True)
                a8 = np.clip(pa[y0:y1, x0:x1] * 255 + 0.5, 0, 255).astype(np.uint8)
                write_image(dest / "alpha" / f"{stem}.png", a8)
                item["box"] = [int(y0), int(y1), int(x0), int(x1)]
                kept += int(rep.kept)
            items.append(item)
            if len(items) <= 40 or rep.kept:
                _remember_preview(folder, stem, frames[fi], pa, s, rep)
        if progress is not None:
            progress(name, j + 1, len(label_idx), kept)
    write_image(folder / "plate.jpg", np.clip(plate.rgb * 255 + 0.5, 0, 255).astype(np.uint8),
                rgb=True)  # fmt: skip
    report = {
        "clip": str(path),
        "frames": n,
        "fps": fps,
        "working_size": list(next(iter(frames.values())).shape[1::-1]),
        "plate": plate.stats(),
        "config": asdict(cfg),
        "items": items,
        "kept": kept,
        "seconds": round(time.monotonic() - t0, 1),
        "complete": True,
    }
    write_preview(folder, out / f"preview_{name}.png")
    write_json(report_path, report)
    return report


# --------------------------------------------------------------------------- preview

_PREVIEW_H = 200


def _checker(h: int, w: int, s: int = 12) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    return np.where(((y // s + x // s) % 2)[..., None] == 0, 0.85, 0.6).astype(np.float32)


def _remember_preview(folder: Path, stem: str, frame, alpha, solve, rep: QualityReport) -> None:
    """A row of the preview sheet for one item (kept small, written under .preview/)."""
    from vidmatte.training.data.teacher_dataset import write_image

    if not (alpha > 0.01).any():
        return
    y0, y1, x0, x1 = _crop_box(alpha, 0.05, 4)
    img = frame[y0:y1, x0:x1].astype(np.float32) / 255
    a = alpha[y0:y1, x0:x1]
    f = solve.fg[y0:y1, x0:x1]
    on_check = a[..., None] * f + (1 - a[..., None]) * _checker(*a.shape)
    comp = (
        a[..., None] * solve.fg_smooth[y0:y1, x0:x1]
        + (1 - a[..., None]) * solve.background[y0:y1, x0:x1]
    )
    err = np.clip(np.abs(comp - img).mean(-1) * 10, 0, 1)
    tiles = [img, np.repeat(a[..., None], 3, -1), on_check, np.repeat(err[..., None], 3, -1)]
    s = _PREVIEW_H / a.shape[0]
    size = (max(1, round(a.shape[1] * s)), _PREVIEW_H)
    row = np.concatenate([cv2.resize(t, size, interpolation=cv2.INTER_AREA) for t in tiles], 1)
    row = np.clip(row * 255, 0, 255).astype(np.uint8)
    label = f"{rep.frame}:p{rep.person} rc={rep.recomposite:.3f} ring={rep.ring_outliers:.3f}"
    label += " KEPT" if rep.kept else " x " + ",".join(rep.reasons)
    colour = (0, 160, 0) if rep.kept else (220, 0, 0)
    cv2.putText(row, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    write_image(folder / ".preview" / f"{stem}.png", row, rgb=True)


def write_preview(folder: Path, path: Path, columns: int = 3, max_rows: int = 14) -> None:
    """The clip's preview sheet: kept rows first, then rejected ones, on a grid."""
    from vidmatte.training.data.teacher_dataset import write_image

    rows = sorted((folder / ".preview").glob("*.png")) if (folder / ".preview").is_dir() else []
    if not rows:
        return
    ims = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in rows]
    kept = [i for i, im in enumerate(ims) if (rows[i].stem in _kept_stems(folder))]
    order = kept + [i for i in range(len(ims)) if i not in kept]
    ims = [ims[i] for i in order][: columns * max_rows]
    width = max(im.shape[1] for im in ims)
    ims = [np.pad(im, ((0, 2), (0, width - im.shape[1] + 2), (0, 0))) for im in ims]
    while len(ims) % columns:
        ims.append(np.zeros_like(ims[0]))
    grid = np.concatenate(
        [np.concatenate(ims[r : r + columns], 1) for r in range(0, len(ims), columns)], 0
    )
    write_image(path, grid, rgb=True)


def _kept_stems(folder: Path) -> set[str]:
    return (
        {p.stem for p in (folder / "alpha").glob("*.png")} if (folder / "alpha").is_dir() else set()
    )


def refilter(folder: Path, cfg: BackgroundMattingConfig) -> int:
    """Re-apply `cfg`'s thresholds to a labelled clip (no solve): moves its triplets between
    kept and rejected/, rewrites report.json; returns how many are kept."""
    from vidmatte.training.data.teacher_dataset import write_json

    report = json.loads((folder / "report.json").read_text())
    kept = 0
    names = {f.name for f in fields(QualityReport)}
    for item in report["items"]:
        rep = QualityReport(**{k: v for k, v in item.items() if k in names})
        reasons = decide(rep, item.get("noise", 0.0), cfg)
        item["reasons"], item["kept"] = reasons, not reasons
        src, dst = (folder / "rejected", folder) if not reasons else (folder, folder / "rejected")
        for sub in ("image", "fg", "alpha"):
            f = src / sub / f"{item['stem']}.png"
            if f.is_file():
                (dst / sub).mkdir(parents=True, exist_ok=True)
                f.replace(dst / sub / f.name)
        kept += int(not reasons)
    report["kept"] = kept
    report["refiltered"] = asdict(cfg)
    write_json(folder / "report.json", report)
    return kept


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", help="static-camera / plain-backdrop clips or folders")
    parser.add_argument("--out", help="triplet folder to write (OUT/<clip>/{image,alpha,fg})")
    parser.add_argument("--teacher-dir", help="teacher files (default: $VIDMATTE_TEACHER_DIR)")
    parser.add_argument("--per-clip", type=int, default=16, help="frames labelled per clip")
    parser.add_argument("--every", type=int, default=0, help="label every N-th frame instead")
    parser.add_argument("--max-side", type=int, default=960, help="working resolution")
    parser.add_argument(
        "--check", action="store_true", help="validate on a synthetic composite with a true alpha"
    )
    parser.add_argument(
        "--refilter",
        action="store_true",
        help="re-apply the filter's thresholds to the clips already labelled in --out",
    )
    parser.add_argument("--quiet", action="store_true")


def _clips(inputs: list[str]) -> list[Path]:
    out = []
    for raw in inputs:
        p = Path(raw).expanduser()
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_EXTS)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such clip or folder")
    return out


def run(args: argparse.Namespace) -> int:
    from vidmatte.models.shared import find_shared

    if args.check:
        shared = find_shared()
        if shared is None:
            raise InputError("--check needs ../shared (the Composition-1k item and a clip)")
        print(json.dumps(synthetic_check(shared), indent=1))
        return 0
    if args.refilter:
        if not args.out:
            raise UsageError("--refilter needs --out DIR")
        cfg = BackgroundMattingConfig()
        total = sum(refilter(r.parent, cfg) for r in sorted(Path(args.out).glob("*/report.json")))
        print(f"{total} triplets kept in {args.out}")
        return 0
    if not args.inputs or not args.out:
        raise UsageError("give clips and --out DIR (or --check)")
    if args.per_clip < 1 or args.every < 0 or args.max_side < 64:
        raise UsageError("--per-clip must be >= 1, --every >= 0, --max-side >= 64")
    from vidmatte.models.teachers.base import find_teacher_dir, load_teacher

    folder = find_teacher_dir(args.teacher_dir)
    if folder is None:
        raise UsageError("background matting needs the teacher's person masks: --teacher-dir DIR")
    teacher = load_teacher(folder, threads=2)
    cfg = BackgroundMattingConfig(per_clip=args.per_clip, every=args.every, max_side=args.max_side)
    out = Path(args.out)

    def progress(name: str, done: int, total: int, kept: int) -> None:
        if not args.quiet:
            print(f"\r{name}: {done}/{total} frames, {kept} kept", end="", file=sys.stderr)

    total = 0
    for clip in _clips(args.inputs):
        rep = label_clip(clip, out, teacher, cfg, progress=progress)
        total += rep["kept"]
        if not args.quiet:
            print(f"\r{clip.stem}: {rep['kept']} triplets, plate {rep['plate']}", file=sys.stderr)
    print(f"{total} triplets in {out}")
    return 0

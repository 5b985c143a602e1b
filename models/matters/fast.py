"""The fast matter for CPUs: closed-form matting on a coarse grid, guided upsampling.

Closed-form matting (matters/classical.py) assumes alpha is locally an affine function of
colour, α ≈ aᵀI + b in every small window. That is what makes this shortcut close to the
full solve: the band is solved at 1/s of the resolution (s = 1..4, chosen so the coarse
band holds about `target_unknowns` pixels), the affine coefficients (a, b) are fitted to
the coarse alpha per window (a colour guided filter's regression, He et al.), averaged,
upsampled bilinearly, and applied to the full-resolution colours: α = āᵀI + b̄ (the fast
guided filter, He & Sun 2015). Full-resolution edges and strands come back from the image
itself; the expensive part (a sparse solve) shrinks by s². Known trimap pixels are copied
exactly, as in every matter; all work stays inside each person's band box.

Decision (issue 19's candidates, measured in the README's Matting table): a guided filter
of the trimap alone is as fast but clearly worse than closed-form on hair; IndexNet at
reduced resolution costs far more than the 30 ms budget on two cores. The coarse solve
with guided upsampling keeps closed-form's answer within the error bound at a fraction of
its cost. People run one after another: each costs a few milliseconds, below what threads
would win (the pipeline parallelises across people where it pays, issue 20).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vidmatte.models.matters.base import check_inputs
from vidmatte.models.matters.classical import closed_form_alpha, solve_dirichlet

__all__ = ["FastMatter", "fast_alpha"]


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def affine_coefficients(
    image: np.ndarray, alpha: np.ndarray, radius: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (a: H×W×3, b: H×W) of the windowed fit α ≈ aᵀI + b, window-averaged.

    image float32 H×W×3 in [0, 1], alpha float32 H×W. eps regularises a (a larger eps
    means a flatter, smoother alpha).
    """
    mi = _box(image, radius)
    mp = _box(alpha, radius)
    mip = _box(image * alpha[..., None], radius) - mi * mp[..., None]
    # 3×3 colour covariance per pixel (symmetric: 6 channels)
    rr = _box(image[..., 0] * image[..., 0], radius) - mi[..., 0] * mi[..., 0] + eps
    rg = _box(image[..., 0] * image[..., 1], radius) - mi[..., 0] * mi[..., 1]
    rb = _box(image[..., 0] * image[..., 2], radius) - mi[..., 0] * mi[..., 2]
    gg = _box(image[..., 1] * image[..., 1], radius) - mi[..., 1] * mi[..., 1] + eps
    gb = _box(image[..., 1] * image[..., 2], radius) - mi[..., 1] * mi[..., 2]
    bb = _box(image[..., 2] * image[..., 2], radius) - mi[..., 2] * mi[..., 2] + eps
    # closed-form inverse of the symmetric 3×3 (adjugate / determinant), vectorised
    i_rr = gg * bb - gb * gb
    i_rg = gb * rb - rg * bb
    i_rb = rg * gb - gg * rb
    i_gg = rr * bb - rb * rb
    i_gb = rb * rg - rr * gb
    i_bb = rr * gg - rg * rg
    det = rr * i_rr + rg * i_rg + rb * i_rb
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    c0, c1, c2 = mip[..., 0], mip[..., 1], mip[..., 2]
    a = np.stack(
        [
            (i_rr * c0 + i_rg * c1 + i_rb * c2) / det,
            (i_rg * c0 + i_gg * c1 + i_gb * c2) / det,
            (i_rb * c0 + i_gb * c1 + i_bb * c2) / det,
        ],
        -1,
    ).astype(np.float32)
    b = (mp - (a * mi).sum(-1)).astype(np.float32)
    return _box(a, radius), _box(b, radius)


def _scale_for(unknowns: int, target: int, max_scale: int) -> int:
    return int(min(max_scale, max(1, math.ceil(math.sqrt(unknowns / max(target, 1))))))


def fast_alpha(
    image: np.ndarray,
    trimap: np.ndarray,
    *,
    target_unknowns: int = 1500,
    max_scale: int = 4,
    radius: int = 1,
    eps: float = 1e-4,
) -> np.ndarray:
    """Alpha for one trimap (uint8 H×W×3 RGB, uint8 H×W 0/128/255) -> float32 H×W in [0, 1].

    Exactly 0 / 1 where the trimap is 0 / 255. The band's box is solved at 1/s resolution
    (s from `target_unknowns`), then guided-upsampled (module docstring).
    """
    unknown = (trimap != 0) & (trimap != 255)
    alpha = (trimap == 255).astype(np.float32)
    n = int(unknown.sum())
    if n == 0:
        return alpha
    s = _scale_for(n, target_unknowns, max_scale)
    if s == 1:
        return closed_form_alpha(image, trimap)
    h, w = trimap.shape
    ys, xs = np.nonzero(unknown.any(1))[0], np.nonzero(unknown.any(0))[0]
    pad = 2 * s * (radius + 2)
    y0, y1 = max(0, ys[0] - pad), min(h, ys[-1] + 1 + pad)
    x0, x1 = max(0, xs[0] - pad), min(w, xs[-1] + 1 + pad)
    # pad the crop (edge values) to a multiple of s so the coarse grid lines up with pixels
    ph, pw = (-(y1 - y0)) % s, (-(x1 - x0)) % s
    img = np.pad(image[y0:y1, x0:x1], ((0, ph), (0, pw), (0, 0)), mode="edge")
    tri = np.pad(trimap[y0:y1, x0:x1], ((0, ph), (0, pw)), mode="edge")
    ch, cw = img.shape[0] // s, img.shape[1] // s
    small = cv2.resize(img, (cw, ch), interpolation=cv2.INTER_AREA)
    fg = cv2.resize((tri == 255).astype(np.float32), (cw, ch), interpolation=cv2.INTER_AREA)
    bg = cv2.resize((tri == 0).astype(np.float32), (cw, ch), interpolation=cv2.INTER_AREA)
    # a coarse pixel is known only when every fine pixel under it is
    ctri = np.full((ch, cw), 128, np.uint8)
    ctri[fg >= 0.999] = 255
    ctri[bg >= 0.999] = 0
    # one exact sparse solve of the whole coarse band (a few thousand unknowns)
    sf = small.astype(np.float32) / 255.0
    known = ctri != 128
    coarse = solve_dirichlet(sf.astype(np.float64), known, (ctri == 255).astype(np.float64))
    coarse = coarse.astype(np.float32)
    a, b = affine_coefficients(sf, coarse, radius, eps)
    size = (img.shape[1], img.shape[0])
    a_up = cv2.resize(a, size, interpolation=cv2.INTER_LINEAR)[: y1 - y0, : x1 - x0]
    b_up = cv2.resize(b, size, interpolation=cv2.INTER_LINEAR)[: y1 - y0, : x1 - x0]
    band = unknown[y0:y1, x0:x1]
    full = image[y0:y1, x0:x1][band].astype(np.float32) / 255.0
    est = (a_up[band] * full).sum(-1) + b_up[band]
    crop = alpha[y0:y1, x0:x1]
    crop[band] = np.clip(est, 0.0, 1.0)
    return alpha


class FastMatter:
    """Coarse closed-form + guided upsampling on each person's band (module docstring)."""

    name = "fast"

    def __init__(
        self,
        *,
        target_unknowns: int = 1500,
        max_scale: int = 4,
        radius: int = 1,
        eps: float = 1e-4,
    ) -> None:
        self.target_unknowns, self.max_scale = target_unknowns, max_scale
        self.radius, self.eps = radius, eps

    def __call__(self, image: np.ndarray, trimaps: np.ndarray) -> np.ndarray:
        trimaps = check_inputs(image, trimaps)
        out = np.empty(trimaps.shape, np.float32)
        for i in range(len(trimaps)):
            out[i] = fast_alpha(
                image,
                trimaps[i],
                target_unknowns=self.target_unknowns,
                max_scale=self.max_scale,
                radius=self.radius,
                eps=self.eps,
            )
        return out

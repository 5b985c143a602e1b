"""Trimaps from instance masks (pseudo labels, the "SOLO + matting" baseline) and from alpha.

Band rule (paper V-B: "dilate and erode the edge of the binary mask for each instance"):
the unknown band of an instance reaches `r = band_width(mask)` pixels on each side of the
mask edge (dilate by r, erode by r, so the band is about 2r wide), with

    r = clamp(round(BAND_FACTOR * sqrt(mask area)), BAND_MIN, BAND_MAX)

so the band scales with the person's size: a full-body person of 720 px height at 720p
(area ~ 1.2e5 px) gets r ≈ 14, a dancer of 45k px r ≈ 8, a small one far away keeps
r ≥ 2 and a close-up stays ≤ 40. The image border is not an edge: a person cut by the frame keeps foreground there.

Touching people: instance i's foreground excludes every other instance's dilated mask
(`dilate(m_j, r_j)`), so no person's foreground lies inside another person's mask or
band, and the contact zone between two people is unknown in both their trimaps.
Dilation and erosion use Euclidean distance transforms on each instance's padded box.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BAND_FACTOR = 0.04
BAND_MIN = 2
BAND_MAX = 40

BG, UNKNOWN, FG = 0, 128, 255


def band_width(mask: np.ndarray) -> int:
    """Band radius in pixels for one mask (bool, or probability thresholded at 0.5); 0 if empty."""
    area = int(np.count_nonzero(_binary(mask)))
    if area == 0:
        return 0
    return int(min(BAND_MAX, max(BAND_MIN, round(BAND_FACTOR * math.sqrt(area)))))


def _binary(mask) -> np.ndarray:
    m = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask)
    return m if m.dtype == np.bool_ else m > (0.5 if m.dtype.kind == "f" else 127)


def _box(m: np.ndarray, pad: int) -> tuple[int, int, int, int] | None:
    rows, cols = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
    if rows.size == 0:
        return None
    h, w = m.shape
    return (
        max(0, int(cols[0]) - pad),
        max(0, int(rows[0]) - pad),
        min(w, int(cols[-1]) + 1 + pad),
        min(h, int(rows[-1]) + 1 + pad),
    )


def _erode_dilate(m: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """(eroded, dilated) of bool `m` by a Euclidean disc of radius r."""
    u8 = m.astype(np.uint8)
    inside = cv2.distanceTransform(u8, cv2.DIST_L2, cv2.DIST_MASK_5)
    outside = cv2.distanceTransform(1 - u8, cv2.DIST_L2, cv2.DIST_MASK_5)
    return inside > r, outside <= r


def masks_to_trimaps(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) float/bool masks -> uint8 (N, H, W) trimaps of 0/128/255 (rules above)."""
    binary = np.stack([_binary(m) for m in masks]) if len(masks) else np.zeros((0, 1, 1), bool)
    n = binary.shape[0]
    if n == 0:
        return np.zeros(np.asarray(masks).shape, np.uint8)
    h, w = binary.shape[1:]
    fg = np.zeros((n, h, w), bool)
    dil = np.zeros((n, h, w), bool)
    for i in range(n):
        r = band_width(binary[i])
        box = _box(binary[i], r + 2)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        e, d = _erode_dilate(binary[i, y0:y1, x0:x1], r)
        fg[i, y0:y1, x0:x1] = e
        dil[i, y0:y1, x0:x1] = d
    out = np.zeros((n, h, w), np.uint8)
    if n > 1:
        total = dil.sum(0, dtype=np.uint8)
    for i in range(n):
        f = fg[i] & (total - dil[i] == 0) if n > 1 else fg[i]
        out[i][dil[i]] = UNKNOWN
        out[i][f] = FG
    return out


def probs_to_trimaps(probs) -> np.ndarray:
    """(N, 3, H, W) softmax (bg, unknown, fg), numpy or Tensor -> uint8 (N, H, W) by argmax."""
    if hasattr(probs, "detach"):
        idx = probs.detach().argmax(1).to("cpu").numpy()
    else:
        idx = np.asarray(probs).argmax(1)
    lut = np.array([BG, UNKNOWN, FG], np.uint8)
    return lut[idx]


def trimap_from_alpha(alpha: np.ndarray, band: int | None = None) -> np.ndarray:
    """Ground-truth trimap from an alpha matte (uint8 0..255 or float 0..1), H×W -> uint8.

    Foreground = alpha ≥ 0.99 eroded by `band`; background = alpha ≤ 0.01 eroded by `band`
    (i.e. outside the dilated alpha > 0.01 region); the rest, which contains every partly
    transparent pixel, is unknown. band=None uses `band_width(alpha > 0.5)`.
    """
    a = np.asarray(alpha)
    if a.ndim == 3:
        a = a[..., 0]
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    if band is None:
        band = max(BAND_MIN, band_width(a > 0.5))
    solid = a >= 0.99
    some = a > 0.01
    fg, _ = _erode_dilate(solid, band)
    _, near = _erode_dilate(some, band)
    out = np.full(a.shape, UNKNOWN, np.uint8)
    out[~near] = BG
    out[fg] = FG
    return out


def trimaps_to_probs(trimaps: np.ndarray):
    """uint8 (N, H, W) 0/128/255 -> float Tensor (N, 3, H, W) one-hot (bg, unknown, fg)."""
    import torch

    t = torch.from_numpy(np.asarray(trimaps))
    idx = (t > 64).long() + (t > 192).long()
    return torch.nn.functional.one_hot(idx, 3).permute(0, 3, 1, 2).float()


def instances_with_trimaps(instances):
    """Instances from a mask-only source (a teacher) with trimaps from the band rule.

    This is the paper's "SOLO + matting" baseline as an instance source: teacher masks
    -> dilate/erode trimaps -> matting. Trimaps are one-hot probabilities.
    """
    from dataclasses import replace

    masks = instances.masks.detach().float().cpu().numpy()
    tri = trimaps_to_probs(masks_to_trimaps(masks)).to(instances.masks.device)
    return replace(instances, trimaps=tri)

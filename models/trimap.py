"""Trimaps: the one home of every trimap encoding, every conversion and the band rule.

A trimap says, per pixel, background / unknown / foreground. Five encodings exist, each at
its own stage boundary, and nothing else converts between them (no function here or
elsewhere guesses an encoding from the values: callers convert explicitly):

    trimap   uint8 (H, W) or (N, H, W), BG / UNKNOWN / FG = 0 / 128 / 255. Files
             (`--save-trimaps`, datasets), the matters' input, `PersonFrame.trimap`, the GUI.
             Pseudo-label files may also hold IGNORE_LEVEL (64) where the whole-video
             teacher is unsure (`with_ignore`); matters read it as unknown.
    classes  uint8 or long {0, 1, 2} (the index into CLASS_NAMES), IGNORE = 255 where a
             training target has no label (padding, uncertain pixels). Training targets,
             losses, metrics.
    probs    float (N, 3, h, w) softmax over (bg, unknown, fg). The trimap network's output
             and `Instances.trimap_crops`; a mask-only source's trimaps as one-hot probs.
    unit     float {0, 0.5, 1}. IndexNet's 4th input channel.
    masks    float [0, 1] (or bool, or uint8 0/255) instance masks; the band rule below
             turns them into trimaps (whole frames, or per person window).

    masks   --masks_to_trimaps / masks_to_trimap_windows-->  trimap
    alpha   --trimap_from_alpha-->  trimap
    trimap  --trimap_to_classes-->  classes  --classes_to_trimap-->  trimap
    probs   --probs_to_trimaps-->   trimap   --trimaps_to_probs-->   probs (one-hot)
    probs   --probs_to_classes-->   classes  --classes_to_unit-->    unit
    trimap  --trimap_to_unit-->     unit     (tensors, on the matter's device)
    trimap  --known_alpha / unknown_region-->  what a matter copies / computes

`trimap_to_classes` reads < 64 as background and >= 192 as foreground (IGNORE_LEVEL as
IGNORE), so trimaps that went through lossy files still read right; the matters treat
every value that is neither 0 nor 255 as unknown (`unknown_region`).

Band rule (paper V-B: "dilate and erode the edge of the binary mask for each instance"):
the unknown band of an instance reaches `r = band_width(mask)` pixels on each side of the
mask edge (dilate by r, erode by r, so the band is about 2r wide), with

    r = clamp(round(BAND_FACTOR * sqrt(mask area)), BAND_MIN, BAND_MAX)

so the band scales with the person's size: a full-body person of 720 px height at 720p
(area ~ 1.2e5 px) gets r ≈ 14, a dancer of 45k px r ≈ 8, a small one far away keeps
r ≥ 2 and a close-up stays ≤ 40. The image border is not an edge: a person cut by the
frame keeps foreground there.

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

#: The class order everywhere: index in `classes`, channel in `probs`.
CLASS_NAMES = ("background", "unknown", "foreground")
#: The `trimap` value of each class, in CLASS_NAMES order.
LEVELS = (0, 128, 255)
BG, UNKNOWN, FG = LEVELS
#: The `classes` value of an unlabelled target pixel (losses skip it, metrics leave it out).
IGNORE = 255
#: The `trimap` value of a pixel the teacher is unsure of (pseudo-labels of the whole-video
#: teacher, models/teachers/video.py): `trimap_to_classes` reads it as IGNORE; matters and
#: any reader that only tells 0 and 255 apart take it as unknown (a safe reading).
IGNORE_LEVEL = 64

_CLASSES_LUT = np.full(256, 1, np.uint8)  # trimap value -> class (tolerant to lossy files)
_CLASSES_LUT[:64] = 0
_CLASSES_LUT[192:] = 2
_CLASSES_LUT[IGNORE_LEVEL] = IGNORE
_LEVELS_LUT = np.full(256, UNKNOWN, np.uint8)  # class -> trimap value; IGNORE: unknown
_LEVELS_LUT[:3] = LEVELS


def trimap_to_classes(trimap: np.ndarray) -> np.ndarray:
    """uint8 trimap (0/128/255; < 64 bg, >= 192 fg, else unknown) -> uint8 classes {0,1,2};
    IGNORE_LEVEL (64, uncertain pseudo-label pixels) -> IGNORE."""
    t = np.asarray(trimap)
    if t.dtype != np.uint8:
        raise TypeError(f"a trimap is uint8 0/128/255, got {t.dtype}")
    return _CLASSES_LUT[t]


def classes_to_trimap(classes: np.ndarray) -> np.ndarray:
    """Classes {0,1,2} (IGNORE becomes unknown: nothing is known there) -> uint8 trimap."""
    return _LEVELS_LUT[np.asarray(classes, np.uint8)]


def classes_to_unit(classes: np.ndarray) -> np.ndarray:
    """Classes {0,1,2} -> float32 {0, 0.5, 1}, IndexNet's trimap channel (no IGNORE here)."""
    return np.asarray(classes, np.float32) / 2.0


def trimap_to_unit(trimap):
    """uint8 trimap Tensor (any shape) -> float Tensor {0, 0.5, 1} on the same device."""
    import torch

    t = trimap.float()
    return torch.where((t > BG) & (t < FG), torch.full_like(t, 0.5), t / 255.0)


def unit_unknown(unit):
    """Float mask (same shape) of the unknown pixels of a {0, 0.5, 1} trimap Tensor."""
    t = unit.float()
    return ((t > 0.25) & (t < 0.75)).float()


def probs_to_classes(probs) -> np.ndarray:
    """(N, 3, H, W) probabilities or logits (numpy or Tensor) -> uint8 (N, H, W) classes."""
    if hasattr(probs, "detach"):
        return probs.detach().argmax(1).to("cpu").numpy().astype(np.uint8)
    return np.asarray(probs).argmax(1).astype(np.uint8)


def known_alpha(trimaps: np.ndarray) -> np.ndarray:
    """float32 alpha of the known pixels of uint8 trimaps: 1 at FG, 0 elsewhere."""
    return (trimaps == FG).astype(np.float32)


def unknown_region(trimaps: np.ndarray) -> np.ndarray:
    """bool: what a matter computes, every pixel of a uint8 trimap that is neither BG nor FG."""
    return (trimaps != BG) & (trimaps != FG)


def band_width(mask: np.ndarray) -> int:
    """Band radius in pixels for one mask (bool, or probability thresholded at 0.5); 0 if empty."""
    area = int(np.count_nonzero(_binary(mask)))
    if area == 0:
        return 0
    return int(min(BAND_MAX, max(BAND_MIN, round(BAND_FACTOR * math.sqrt(area)))))


def _binary(mask) -> np.ndarray:
    """bool masks as they are; float [0, 1] > 0.5; uint8 (0/255 PNGs) > 127."""
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


def masks_to_trimap_windows(
    crops, windows, image_size: tuple[int, int]
) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """`masks_to_trimaps` for windowed masks (models/instances.py), never at full frame.

    crops: N masks (float/bool, numpy or Tensor), crop i covering windows[i] = (x0, y0, x1,
    y1) of an image of `image_size` (H, W), < 0.5 outside it. Returns per instance
    (window, uint8 trimap inside it), background outside: the same values as
    `masks_to_trimaps` of the full-frame masks, because the rule already works on each
    mask's box padded by r + 2 (that box is the returned window).
    """
    h, w = image_size
    boxes, ero, dil = [], [], []
    for crop, win in zip(crops, windows, strict=True):
        b = _binary(crop)
        wx0, wy0 = int(win[0]), int(win[1])
        r = band_width(b)
        tight = _box(b, 0)
        if tight is None:
            boxes.append((0, 0, 0, 0))
            ero.append(np.zeros((0, 0), bool))
            dil.append(np.zeros((0, 0), bool))
            continue
        tx0, ty0, tx1, ty1 = tight
        pad = r + 2
        x0, y0 = max(0, wx0 + tx0 - pad), max(0, wy0 + ty0 - pad)
        x1, y1 = min(w, wx0 + tx1 + pad), min(h, wy0 + ty1 + pad)
        canvas = np.zeros((y1 - y0, x1 - x0), bool)
        oy, ox = wy0 + ty0 - y0, wx0 + tx0 - x0
        canvas[oy : oy + ty1 - ty0, ox : ox + tx1 - tx0] = b[ty0:ty1, tx0:tx1]
        e, d = _erode_dilate(canvas, r)
        boxes.append((x0, y0, x1, y1))
        ero.append(e)
        dil.append(d)
    out = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        fg = ero[i].copy()
        for j, (u0, v0, u1, v1) in enumerate(boxes):
            ix0, iy0, ix1, iy1 = max(x0, u0), max(y0, v0), min(x1, u1), min(y1, v1)
            if j == i or ix0 >= ix1 or iy0 >= iy1:
                continue
            # no person's foreground inside another's dilated mask (the touching rule)
            fg[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] &= ~dil[j][
                iy0 - v0 : iy1 - v0, ix0 - u0 : ix1 - u0
            ]
        t = np.zeros(fg.shape, np.uint8)
        t[dil[i]] = UNKNOWN
        t[fg] = FG
        out.append(((x0, y0, x1, y1), t))
    return out


def with_ignore(trimaps: np.ndarray, uncertain: np.ndarray) -> np.ndarray:
    """uint8 trimaps with IGNORE_LEVEL where `uncertain` (bool, same shape) and the trimap is
    known (bg or fg): the teacher's doubt is not taught; the unknown band stays unknown."""
    out = np.array(trimaps, np.uint8, copy=True)
    out[np.asarray(uncertain, bool) & (out != UNKNOWN)] = IGNORE_LEVEL
    return out


def probs_to_trimaps(probs) -> np.ndarray:
    """(N, 3, H, W) softmax (bg, unknown, fg), numpy or Tensor -> uint8 (N, H, W) by argmax."""
    if hasattr(probs, "detach"):
        idx = probs.detach().argmax(1).to("cpu").numpy()
    else:
        idx = np.asarray(probs).argmax(1)
    return np.asarray(LEVELS, np.uint8)[idx]


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
    """uint8 (N, H, W) trimaps -> float Tensor (N, 3, H, W) one-hot (bg, unknown, fg)."""
    import torch

    idx = torch.from_numpy(trimap_to_classes(trimaps)).long()
    return torch.nn.functional.one_hot(idx, 3).permute(0, 3, 1, 2).float()


def instances_with_trimaps(instances):
    """Instances from a mask-only source (a teacher) with trimaps from the band rule.

    This is the paper's "SOLO + matting" baseline as an instance source: teacher masks
    -> dilate/erode trimaps -> matting. Trimaps are one-hot probabilities.
    """
    from vidmatte.models.instances import Instances

    full = instances.masks
    tri = trimaps_to_probs(masks_to_trimaps(full.detach().float().cpu().numpy()))
    i = instances
    return Instances(i.scores, i.labels, full, i.boxes, i.centres, tri.to(full.device))

"""Mask and trimap agreement: J (region IoU), boundary F (DAVIS), trimap IoU per class.

Conventions (DAVIS): a prediction and a ground truth that are both empty agree perfectly
(J = F = 1). Trimap IoU reports NaN for a class absent from both maps, and the mean is over
the classes present, so a frame without foreground does not score a free 1.0;
`TrimapIoU` accumulates intersections and unions over many frames (dataset-level IoU, as
semantic segmentation reports mIoU).

Encodings (models/trimap.py): trimap metrics take `classes` maps {0, 1, 2}; convert uint8
0/128/255 trimaps with `trimap_to_classes` first. Masks are bool, float [0, 1] or uint8 /
uint16 images (read by dtype, never guessed from the values).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vidmatte.models.errors import InputError
from vidmatte.models.trimap import CLASS_NAMES


def _check_same(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape[:2] != gt.shape[:2]:
        raise InputError(f"prediction {pred.shape[:2]} and ground truth {gt.shape[:2]} differ")


def to_binary(x: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """bool mask: alpha > threshold, with alpha read by dtype as `to_alpha` reads it (bool;
    uint8 0..255; uint16 0..65535; float [0, 1]; other integers are 0/1 labels)."""
    from vidmatte.training.metrics.alpha import to_alpha

    x = np.asarray(x)
    if x.dtype == bool:
        return x[..., 0] if x.ndim == 3 else x
    return to_alpha(x) > threshold


def alpha_to_classes(alpha: np.ndarray, eps: float = 0.02) -> np.ndarray:
    """Trimap classes implied by an alpha matte (read as `to_alpha` reads it): 0 where
    alpha <= eps, 2 where >= 1 - eps, else 1 (no band: what the matte itself says)."""
    from vidmatte.training.metrics.alpha import to_alpha

    a = to_alpha(alpha)
    out = np.ones(a.shape, np.uint8)
    out[a <= eps] = 0
    out[a >= 1 - eps] = 2
    return out


def check_classes(x: np.ndarray) -> np.ndarray:
    """A class map {0, 1, 2} as uint8 (first channel if H×W×C); InputError otherwise."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., 0]
    if x.dtype == bool or not np.issubdtype(x.dtype, np.integer):
        raise InputError(f"trimap metrics take class maps {{0, 1, 2}}, got {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > 2):
        raise InputError(
            "trimap metrics take class maps {0, 1, 2}; convert 0/128/255 trimaps with "
            "vidmatte.models.trimap.trimap_to_classes"
        )
    return x.astype(np.uint8)


def mask_j(pred, gt) -> float:
    """Region similarity J: IoU of pred > 0.5 and gt > 0.5 (both empty -> 1)."""
    p, g = to_binary(pred), to_binary(gt)
    _check_same(p, g)
    union = np.count_nonzero(p | g)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(p & g) / union)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary: a pixel whose right, bottom or bottom-right neighbour differs.

    Same rule as DAVIS's seg2bmap at equal resolution.
    """
    m = mask.astype(bool)
    e = np.zeros_like(m)
    s = np.zeros_like(m)
    se = np.zeros_like(m)
    e[:, :-1] = m[:, 1:]
    s[:-1, :] = m[1:, :]
    se[:-1, :-1] = m[1:, 1:]
    b = (m ^ e) | (m ^ s) | (m ^ se)
    b[-1, :] = m[-1, :] ^ e[-1, :]
    b[:, -1] = m[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def boundary_f(pred, gt, bound_th: float = 0.008) -> float:
    """DAVIS boundary F: precision/recall of boundary pixels matched within a tolerance.

    bound_th >= 1 is a radius in pixels; below 1 a fraction of the image diagonal
    (DAVIS default 0.008 -> 8 px at 854×480). Both without boundary -> 1, one without -> 0.
    """
    import cv2

    p, g = to_binary(pred), to_binary(gt)
    _check_same(p, g)
    h, w = g.shape
    r = int(bound_th) if bound_th >= 1 else int(np.ceil(bound_th * np.hypot(h, w)))
    bp, bg = _boundary(p), _boundary(g)
    n_p, n_g = np.count_nonzero(bp), np.count_nonzero(bg)
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    bg_d = cv2.dilate(bg.astype(np.uint8), disk).astype(bool)
    bp_d = cv2.dilate(bp.astype(np.uint8), disk).astype(bool)
    precision = np.count_nonzero(bp & bg_d) / n_p
    recall = np.count_nonzero(bg & bp_d) / n_g
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def _trimap_counts(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    p, g = check_classes(pred), check_classes(gt)
    _check_same(p, g)
    inter = np.array([np.count_nonzero((p == c) & (g == c)) for c in range(3)], np.int64)
    union = np.array([np.count_nonzero((p == c) | (g == c)) for c in range(3)], np.int64)
    return inter, union


def _iou_dict(inter: np.ndarray, union: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for c, name in enumerate(CLASS_NAMES):
        out[name] = float(inter[c] / union[c]) if union[c] else float("nan")
    vals = [v for v in out.values() if not np.isnan(v)]
    out["mean"] = float(np.mean(vals)) if vals else float("nan")
    return out


def trimap_iou(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """IoU per trimap class (background, unknown, foreground) and their mean.

    Inputs: class maps {0, 1, 2} (`trimap_to_classes` converts 0/128/255 trimaps). A class
    absent from both maps is NaN and left out of the mean.
    """
    return _iou_dict(*_trimap_counts(pred, gt))


@dataclass
class TrimapIoU:
    """Dataset-level trimap IoU: sum intersections and unions over frames, then divide."""

    inter: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))
    union: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))

    def update(self, pred, gt) -> dict[str, float]:
        i, u = _trimap_counts(pred, gt)
        self.inter += i
        self.union += u
        return _iou_dict(i, u)

    def compute(self) -> dict[str, float]:
        return _iou_dict(self.inter, self.union)

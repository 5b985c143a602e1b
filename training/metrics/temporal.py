"""Temporal consistency (TC), the paper's flow-warped IoU between neighbouring predictions.

Paper (Eq. 5-6, after Lai et al.'s warping error, with IoU in place of MSE): warp one
prediction onto its neighbour with optical flow and take the IoU; per sequence the
intersections and unions are summed over all frame pairs, per class, and the class IoUs
averaged (mIoU); reported in %. Here flows[i] is the flow frame i -> i+1 (the convention of
vidmatte.models.flow) and preds[i+1] is pulled back onto frame i (nearest sampling, so no
class is invented); pixels whose source falls outside the frame are left out.

Predictions are class maps (integers {0, 1, 2}: trimap classes, or 0/1 labels), or masks
(bool, or float alpha/probability in [0, 1] thresholded at 0.5, so TC of mattes = TC of
their masks). uint8 images are not guessed at: convert 0/128/255 trimaps with
`models.trimap.trimap_to_classes` and 0/255 mask images with `metrics.to_binary`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidmatte.models.errors import InputError


def _labels(x) -> np.ndarray:
    from vidmatte.training.metrics.masks import check_classes

    a = np.asarray(x)
    if a.ndim == 3:
        a = a[..., 0]
    if a.dtype == bool:
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        return (a > 0.5).astype(np.uint8)
    return check_classes(a)


def _pair_counts(pred_t, pred_t1, flow) -> tuple[np.ndarray, np.ndarray]:
    from vidmatte.models.flow import valid_numpy, warp_numpy

    a, b = _labels(pred_t), _labels(pred_t1)
    if a.shape != b.shape or flow.shape[:2] != a.shape:
        raise InputError(f"TC needs equal sizes: {a.shape}, {b.shape} and flow {flow.shape[:2]}")
    wb = warp_numpy(b, flow, nearest=True)
    ok = valid_numpy(flow)
    a, wb = a[ok], wb[ok]
    classes = np.union1d(np.unique(a), np.unique(wb))
    inter = np.zeros(3, np.int64)
    union = np.zeros(3, np.int64)
    for c in classes:
        inter[c] = np.count_nonzero((a == c) & (wb == c))
        union[c] = np.count_nonzero((a == c) | (wb == c))
    return inter, union


def _miou(inter: np.ndarray, union: np.ndarray) -> float:
    present = union > 0
    if not present.any():
        return 100.0
    return float(np.mean(inter[present] / union[present]) * 100.0)


def temporal_consistency_pairs(
    preds: Sequence[np.ndarray], flows: Sequence[np.ndarray]
) -> list[float]:
    """TC (%) of each neighbouring pair (i, i+1): for plots and per-frame jitter hunting."""
    _check(preds, flows)
    return [_miou(*_pair_counts(preds[i], preds[i + 1], flows[i])) for i in range(len(flows))]


def temporal_consistency(preds: Sequence[np.ndarray], flows: Sequence[np.ndarray]) -> float:
    """TC of one sequence in % (Eq. 6): class IoUs of all pairs' summed counts, averaged."""
    _check(preds, flows)
    inter = np.zeros(3, np.int64)
    union = np.zeros(3, np.int64)
    for i in range(len(flows)):
        a, b = _pair_counts(preds[i], preds[i + 1], flows[i])
        inter += a
        union += b
    return _miou(inter, union)


def _check(preds, flows) -> None:
    if len(preds) < 2:
        raise InputError("temporal consistency needs at least two frames")
    if len(flows) != len(preds) - 1:
        raise InputError(f"{len(preds)} frames need {len(preds) - 1} flows, got {len(flows)}")


def sequence_flows(frames: Sequence[np.ndarray], method: str = "dis") -> list[np.ndarray]:
    """Flows i -> i+1 between neighbouring RGB frames (for TC)."""
    from vidmatte.models.flow import estimate_flow

    return [estimate_flow(frames[i], frames[i + 1], method) for i in range(len(frames) - 1)]

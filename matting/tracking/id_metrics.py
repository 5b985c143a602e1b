"""Identity metrics: ID switches, fragmentations, IDF1. Tests, bench/ and training/ share them.

Formats (both arguments alike, frame index -> per-frame mapping):

    pred = {frame: {key: predicted_track_id or None, ...}, ...}
    gt   = {frame: {key: ground_truth_id, ...}, ...}

A key names one object in one frame (an instance index, a ground-truth mask index, ...);
the same key in `pred[f]` and `gt[f]` means the prediction and the ground truth object are
the same thing (matched beforehand, e.g. by mask IoU with `match_by_iou`). A key only in
`pred` is a false positive, only in `gt` a miss; a None prediction counts as a miss.

With `gt=None`, `pred` is keyed by ground-truth id: {frame: {gt_id: pred_id}} (the usual
form of synthetic tests, where the truth is known per instance).

ID switch (CLEAR MOT, Bernardin & Stiefelhagen 2008): a ground-truth object is matched to a
different predicted id than at its previous matched frame; frames where it is unmatched do
not reset that memory. Fragmentation: a ground-truth track's matching is interrupted
(matched, then missed, then matched again). IDF1 (Ristani et al. 2016): F1 of detections
under the best one-to-one map between predicted and ground-truth identities.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

PerFrame = Mapping[int, Mapping[Hashable, int | None]]


@dataclass
class IdMetrics:
    id_switches: int
    fragmentations: int
    idf1: float  # in [0, 1]
    id_precision: float
    id_recall: float
    gt_ids: int
    pred_ids: int


def _pairs(pred: PerFrame, gt: PerFrame | None) -> list[tuple[int, Hashable | None, int | None]]:
    """(frame, gt_id or None, pred_id or None) per object, frames in order."""
    out: list[tuple[int, Hashable | None, int | None]] = []
    if gt is None:
        for f in sorted(pred):
            out.extend((f, g, p) for g, p in pred[f].items())
        return out
    for f in sorted(set(pred) | set(gt)):
        pf, gf = pred.get(f, {}), gt.get(f, {})
        for key in set(pf) | set(gf):
            out.append((f, gf.get(key), pf.get(key)))
    return out


def count_id_switches(pred: PerFrame, gt: PerFrame | None = None) -> int:
    """Number of ID switches (CLEAR MOT); see the module docstring for the formats."""
    last: dict[Hashable, int] = {}
    switches = 0
    for _, g, p in _pairs(pred, gt):
        if g is None or p is None:
            continue
        if g in last and last[g] != p:
            switches += 1
        last[g] = p
    return switches


def count_fragmentations(pred: PerFrame, gt: PerFrame | None = None) -> int:
    """Interruptions of tracked ground-truth trajectories (matched, missed, matched)."""
    frames: dict[Hashable, list[tuple[int, bool]]] = {}
    for f, g, p in _pairs(pred, gt):
        if g is not None:
            frames.setdefault(g, []).append((f, p is not None))
    frags = 0
    for seq in frames.values():
        seq.sort()
        state = None  # None: never tracked, True: tracked, False: missed after tracking
        for _, tracked in seq:
            if tracked and state is False:
                frags += 1
            if tracked:
                state = True
            elif state:
                state = False
    return frags


def id_metrics(pred: PerFrame, gt: PerFrame | None = None) -> IdMetrics:
    """All identity metrics in one pass over the data (IDF1 needs a Hungarian map)."""
    from scipy.optimize import linear_sum_assignment

    pairs = _pairs(pred, gt)
    g_ids = sorted({g for _, g, _ in pairs if g is not None}, key=repr)
    p_ids = sorted({p for _, _, p in pairs if p is not None})
    gi = {g: i for i, g in enumerate(g_ids)}
    pi = {p: i for i, p in enumerate(p_ids)}
    co = torch.zeros(len(g_ids), len(p_ids))
    for _, g, p in pairs:
        if g is not None and p is not None:
            co[gi[g], pi[p]] += 1
    n_gt = sum(1 for _, g, _ in pairs if g is not None)
    n_pred = sum(1 for _, _, p in pairs if p is not None)
    idtp = 0.0
    if co.numel():
        rows, cols = linear_sum_assignment(-co.numpy())
        idtp = float(co[rows, cols].sum())
    idp = idtp / n_pred if n_pred else 1.0
    idr = idtp / n_gt if n_gt else 1.0
    idf1 = 2 * idtp / (n_pred + n_gt) if n_pred + n_gt else 1.0
    return IdMetrics(
        id_switches=count_id_switches(pred, gt),
        fragmentations=count_fragmentations(pred, gt),
        idf1=idf1,
        id_precision=idp,
        id_recall=idr,
        gt_ids=len(g_ids),
        pred_ids=len(p_ids),
    )


def match_by_iou(pred_masks: Tensor, gt_masks: Tensor, min_iou: float = 0.5) -> dict[int, int]:
    """One-to-one map gt index -> pred index by mask IoU (Hungarian), pairs below min_iou dropped.

    Masks are (N, H, W) / (M, H, W), probabilities or bool (thresholded at 0.5). Use it to
    build the `pred`/`gt` per-frame mappings from real predictions: key = gt index.
    """
    from scipy.optimize import linear_sum_assignment

    if pred_masks.shape[0] == 0 or gt_masks.shape[0] == 0:
        return {}
    a = (pred_masks > 0.5).flatten(1).float()
    b = (gt_masks > 0.5).flatten(1).float()
    inter = b @ a.T
    union = b.sum(1)[:, None] + a.sum(1)[None, :] - inter
    iou = inter / union.clamp_min(1.0)
    rows, cols = linear_sum_assignment(-iou.numpy())
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou}

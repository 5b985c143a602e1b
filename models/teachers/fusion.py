"""Weighted box fusion (Solovyev et al., 2021) of person boxes from several detectors/views.

Why fusion rather than NMS: NMS keeps one box and throws the others' evidence away, so a
person seen by one augmentation only survives at that box's score, and a false positive of
one view is as strong as a person every view agrees on. WBF averages the coordinates of the
boxes of one person (weighted by score) and scores the cluster by how many views found it:

    fused score = sum of member scores / number of views

so a person found in 6 of 8 views at 0.8 scores 0.6, a one-view false positive at 0.9
scores 0.11. Clustering is greedy in score order against each cluster's running fused box,
with at most one box per view in a cluster (two boxes of one view are two people).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FusedBox:
    box: np.ndarray  # (4,) xyxy
    score: float  # sum of member scores / n_views
    members: list[tuple[int, int]] = field(default_factory=list)  # (view, index in view)
    member_scores: list[float] = field(default_factory=list)

    @property
    def votes(self) -> int:
        return len(self.members)


def iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros(0, np.float32)
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    a = (box[2] - box[0]) * (box[3] - box[1])
    b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(a + b - inter, 1e-6)


def weighted_box_fusion(
    views: list[tuple[np.ndarray, np.ndarray]],
    iou_threshold: float = 0.55,
    view_weights: list[float] | None = None,
) -> list[FusedBox]:
    """views: per view (boxes (N,4) xyxy in one frame's pixels, scores (N,)) -> fused boxes,
    sorted by fused score (descending). `view_weights` scale each view's scores (default 1)."""
    n_views = len(views)
    weights = view_weights or [1.0] * n_views
    total_w = float(sum(weights)) or 1.0
    items = [
        (float(s) * weights[v], v, i, b)
        for v, (boxes, scores) in enumerate(views)
        for i, (b, s) in enumerate(zip(boxes, scores, strict=True))
    ]
    items.sort(key=lambda t: -t[0])
    clusters: list[dict] = []
    for s, v, i, b in items:
        fused = np.array([c["sum"] / c["w"] for c in clusters]).reshape(-1, 4)
        ious = iou_one(np.asarray(b, np.float64), fused)
        best = -1
        for k in np.argsort(-ious):
            if ious[k] < iou_threshold:
                break
            if v not in clusters[k]["views"]:
                best = int(k)
                break
        if best < 0:
            clusters.append(
                {
                    "sum": np.asarray(b, np.float64) * s,
                    "w": s,
                    "views": {v},
                    "m": [(v, i)],
                    "s": [s],
                }
            )
        else:
            c = clusters[best]
            c["sum"] = c["sum"] + np.asarray(b, np.float64) * s
            c["w"] += s
            c["views"].add(v)
            c["m"].append((v, i))
            c["s"].append(s)
    out = [
        FusedBox(
            box=(c["sum"] / max(c["w"], 1e-9)).astype(np.float32),
            score=float(sum(c["s"]) / total_w),
            members=c["m"],
            member_scores=c["s"],
        )
        for c in clusters
    ]
    out.sort(key=lambda f: -f.score)
    return out

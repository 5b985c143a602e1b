"""Test-time augmentation for any teacher (paper, section V-B): flips × scales, merged.

Each person's masks are matched across augmentations by box IoU (Hungarian) and averaged:
a soft per-pixel majority vote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidmatte.models.instances import Instances
from vidmatte.models.teachers.base import Teacher


@dataclass(frozen=True)
class TTAConfig:
    """Flip × scales. Each augmentation runs the base teacher once (cost ×len(scales)×2).

    For the offline teacher, scales mostly change the resampling (YOLOX letterboxes to 416²
    and the pose model crops to 256² anyway); the flip is the stronger augmentation.
    """

    scales: tuple[float, ...] = (1.0, 0.75)
    flip: bool = True
    #: boxes of one person in two augmentations overlap at least this much
    match_iou: float = 0.5
    #: keep a person found in at least this fraction of the augmentations
    min_votes: float = 0.5


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,4) × (M,4) xyxy -> (N,M) IoU."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    ab = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(aa[:, None] + ab[None, :] - inter, 1e-6)


def merge_augmented(
    results: Sequence[Instances], match_iou: float = 0.5, min_votes: float = 0.5
) -> Instances:
    """Merge per-augmentation Instances (already mapped back to the original frame).

    Clusters are grown augmentation by augmentation with Hungarian matching on box IoU
    against each cluster's running mean box. A person is kept if found in at least
    `min_votes` of the augmentations; its mask is the mean probability over *all*
    augmentations (0 where it was not found), i.e. a soft per-pixel majority vote, and
    its score the mean score likewise.
    """
    import torch
    from scipy.optimize import linear_sum_assignment

    from vidmatte.models.instances import boxes_and_centres

    h, w = results[0].image_size
    n_aug = len(results)
    clusters: list[dict] = []
    for res in results:
        boxes = res.boxes.detach().cpu().numpy()
        cboxes = np.array([c["box_sum"] / c["count"] for c in clusters]).reshape(-1, 4)
        iou = box_iou(boxes, cboxes)
        matched: dict[int, int] = {}
        if iou.size:
            rows, cols = linear_sum_assignment(-iou)
            matched = {
                int(r): int(c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= match_iou
            }
        for i in range(len(res)):
            m = res.masks[i].detach().float().cpu()
            if i in matched:
                c = clusters[matched[i]]
                c["mask"] += m
                c["score"] += float(res.scores[i])
                c["box_sum"] += boxes[i]
                c["count"] += 1
            else:
                clusters.append(
                    {
                        "mask": m.clone(),
                        "score": float(res.scores[i]),
                        "box_sum": boxes[i].copy(),
                        "count": 1,
                    }
                )
    keep = [c for c in clusters if c["count"] >= min_votes * n_aug]
    if not keep:
        return Instances.empty(h, w)
    keep.sort(key=lambda c: -c["score"])
    masks = torch.stack([c["mask"] / n_aug for c in keep])
    _, centres = boxes_and_centres(masks)
    nonempty = (masks > 0.5).flatten(1).any(1)
    if not bool(nonempty.any()):
        return Instances.empty(h, w)
    det_boxes = torch.from_numpy(
        np.stack([c["box_sum"] / c["count"] for c in keep]).astype(np.float32)
    )
    out = Instances(
        scores=torch.tensor([c["score"] / n_aug for c in keep], dtype=torch.float32),
        labels=torch.zeros(len(keep), dtype=torch.long),
        masks=masks,
        boxes=det_boxes,
        centres=centres,
    )
    return out.select(nonempty)


class TTATeacher:
    """Wrap any teacher with flip × scale test-time augmentation (paper, section V-B)."""

    def __init__(self, base: Teacher, config: TTAConfig | None = None) -> None:
        self.base = base
        self.config = config or TTAConfig()
        self.name = f"{base.name}+tta"

    def augmentations(self) -> list[tuple[float, bool]]:
        flips = (False, True) if self.config.flip else (False,)
        return [(s, f) for s in self.config.scales for f in flips]

    def __call__(self, rgb: np.ndarray) -> Instances:
        import cv2
        import torch
        import torch.nn.functional as F

        h, w = rgb.shape[:2]
        results = []
        for scale, flip in self.augmentations():
            img = rgb
            if scale != 1.0:
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
                img = cv2.resize(rgb, size, interpolation=interp)
            if flip:
                img = np.ascontiguousarray(img[:, ::-1])
            res = self.base(img)
            iw = img.shape[1]
            masks, boxes = res.masks.float(), res.boxes.float().clone()
            if flip:
                masks = masks.flip(-1)
                boxes[:, [0, 2]] = iw - boxes[:, [2, 0]]
            if scale != 1.0 and len(res):
                masks = F.interpolate(
                    masks[None], size=(h, w), mode="bilinear", align_corners=False
                )[0]
                boxes = boxes * torch.tensor([w / iw, h / img.shape[0]] * 2)
            elif scale != 1.0:
                masks = masks.new_zeros(0, h, w)
            results.append(
                Instances(
                    scores=res.scores,
                    labels=res.labels,
                    masks=masks,
                    boxes=boxes,
                    centres=res.centres,
                )
            )
        return merge_augmented(results, self.config.match_iou, self.config.min_votes)

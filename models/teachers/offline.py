"""The offline person teacher: detector boxes + per-box pose segmentation ("V3").

Recipe and measurements: shared/weights MANIFEST section 5 (lucia IoU 0.88-0.93; the three
dancers separated). Boxes come from YOLOX-Nano (or D2Go, or both merged for recall in
crowds); each box is segmented by `pose_landmark_lite` (two passes); pixels claimed by more
than one person (prob > 0.5) go to the person whose 2-D skeleton is nearest. Plain argmax of
the probabilities let one dancer's ROI take another's face and leg, so skeleton distance
decides. Distance transforms are computed only inside the bounding box of the contested
pixels and at reduced resolution (`skeleton_scale`), which keeps the cost at a few ms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from vidmatte.models.instances import Instances
from vidmatte.models.teachers.pose_segmenter import POSE_BONES, PoseMask, PoseSegmenter
from vidmatte.models.teachers.yolox import nms


@dataclass
class OfflineTeacherConfig:
    score_threshold: float = 0.5
    #: boxes from two detectors are merged with NMS at this IoU
    merge_iou: float = 0.5
    #: minimum box side in pixels; smaller people are too small to segment
    min_box: float = 12.0
    #: resolution factor for skeleton distance transforms (1 = full resolution)
    skeleton_scale: float = 0.5
    #: bone thickness in pixels at full resolution when rasterising skeletons
    bone_thickness: int = 3


class OfflineTeacher:
    """`teacher(rgb uint8 H×W×3) -> Instances` of persons (labels 0), masks at full res."""

    def __init__(
        self,
        detectors: list,
        segmenter: PoseSegmenter,
        config: OfflineTeacherConfig | None = None,
    ) -> None:
        self.detectors = detectors
        self.segmenter = segmenter
        self.config = config or OfflineTeacherConfig()
        self.name = "+".join(d.name for d in detectors) + "+" + segmenter.name + "_v3"

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        all_b, all_s = [], []
        for det in self.detectors:
            b, s = det(rgb)
            all_b.append(b)
            all_s.append(s)
        boxes, scores = np.concatenate(all_b), np.concatenate(all_s)
        sel = (scores > self.config.score_threshold) & (
            np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= self.config.min_box
        )
        boxes, scores = boxes[sel], scores[sel]
        if len(self.detectors) > 1 and len(boxes):
            keep = nms(boxes, scores, self.config.merge_iou)
            boxes, scores = boxes[keep], scores[keep]
        return boxes, scores

    def __call__(self, rgb: np.ndarray) -> Instances:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError("teacher expects uint8 H×W×3 RGB")
        h, w = rgb.shape[:2]
        boxes, scores = self.detect(rgb)
        if len(boxes) == 0:
            return Instances.empty(h, w)
        poses = [self.segmenter.segment(rgb, b) for b in boxes]
        # Masks live on the union of the people's windows (plus the margin the overlap rule
        # looks around contested pixels), not on the whole frame: the same values, at the
        # cost of the people's boxes (the pipeline's Instances are windowed anyway).
        live = [p.window for p in poses if p.window[2] > p.window[0] and p.window[3] > p.window[1]]
        if not live:
            return Instances.empty(h, w)
        m = _OVERLAP_PAD
        ux0, uy0 = max(0, min(v[0] for v in live) - m), max(0, min(v[1] for v in live) - m)
        ux1, uy1 = min(w, max(v[2] for v in live) + m), min(h, max(v[3] for v in live) + m)
        shift = np.array([ux0, uy0], np.float32)  # exact: integers off float32 pixels
        local = [replace(p, landmarks=p.landmarks - shift) for p in poses]
        masks = np.zeros((len(poses), uy1 - uy0, ux1 - ux0), np.float32)
        wins = []
        for i, p in enumerate(poses):
            x0, y0, x1, y1 = p.window
            wins.append((x0 - ux0, y0 - uy0, max(x0, x1) - ux0, max(y0, y1) - uy0))
            masks[i, y0 - uy0 : y1 - uy0, x0 - ux0 : x1 - ux0] = p.prob
        resolve_overlaps(masks, local, self.config)
        crops = [_window(masks[i], wins[i]).copy() for i in range(len(poses))]
        keep = [i for i, c in enumerate(crops) if c.max(initial=0) > 0.5]
        if not keep:
            return Instances.empty(h, w)
        windows = torch.tensor([poses[i].window for i in keep], dtype=torch.long)
        return Instances(
            torch.from_numpy(scores[keep].astype(np.float32)),
            torch.zeros(len(keep), dtype=torch.long),
            [torch.from_numpy(crops[i]) for i in keep],
            torch.from_numpy(boxes[keep].astype(np.float32)),
            _crop_centres([crops[i] for i in keep], [poses[i].window for i in keep]),
            windows=windows,
            image_size=(h, w),
        )


#: pixels kept around the union of the windows: resolve_overlaps looks 4 px around the
#: contested pixels, which must never be cut by the canvas where the frame goes on
_OVERLAP_PAD = 8


def _crop_centres(crops: list[np.ndarray], windows) -> torch.Tensor:
    """Mass centres of masks > 0.5 (image pixels), each crop covering its window."""
    out = np.zeros((len(crops), 2), np.float32)
    for i, (c, (x0, y0, _, _)) in enumerate(zip(crops, windows, strict=True)):
        mom = cv2.moments((c > 0.5).astype(np.uint8), binaryImage=True)
        if mom["m00"] > 0:
            out[i] = (x0 + mom["m10"] / mom["m00"], y0 + mom["m01"] / mom["m00"])
    return torch.from_numpy(out)


def _window(mask: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = window
    return mask[y0:y1, x0:x1]


def skeleton_distance(
    pose: PoseMask, window: tuple[int, int, int, int], scale: float, thickness: int
) -> np.ndarray:
    """Distance (in scaled pixels) from each pixel of `window` to the person's skeleton."""
    x0, y0, x1, y1 = window
    sw, sh = max(1, int(round((x1 - x0) * scale))), max(1, int(round((y1 - y0) * scale)))
    canvas = np.full((sh, sw), 255, np.uint8)
    pts = ((pose.landmarks - (x0, y0)) * scale * 16).round().astype(np.int32)  # 4-bit subpixel
    t = max(1, int(round(thickness * scale)))
    for a, b in POSE_BONES:
        cv2.line(canvas, tuple(pts[a]), tuple(pts[b]), 0, t, cv2.LINE_8, shift=4)
    return cv2.distanceTransform(canvas, cv2.DIST_L2, 3)


def resolve_overlaps(masks: np.ndarray, poses: list[PoseMask], cfg: OfflineTeacherConfig) -> None:
    """In place: a pixel claimed (> 0.5) by several people stays only with the nearest skeleton.

    The losers' probability there becomes 0. Only the bounding box of the contested pixels
    is examined, at `cfg.skeleton_scale` resolution.
    """
    n = len(poses)
    if n < 2:
        return
    claims = masks > 0.5
    count = claims.sum(0, dtype=np.uint8)
    contested = count > 1
    ys, xs = np.nonzero(contested.any(1))[0], np.nonzero(contested.any(0))[0]
    if ys.size == 0:
        return
    h, w = contested.shape
    pad = 4
    x0, x1 = max(0, xs[0] - pad), min(w, xs[-1] + 1 + pad)
    y0, y1 = max(0, ys[0] - pad), min(h, ys[-1] + 1 + pad)
    window = (int(x0), int(y0), int(x1), int(y1))
    sub_claims = claims[:, y0:y1, x0:x1]
    involved = [i for i in range(n) if (sub_claims[i] & contested[y0:y1, x0:x1]).any()]
    dist = np.full((n, y1 - y0, x1 - x0), np.inf, np.float32)
    for i in involved:
        d = skeleton_distance(poses[i], window, cfg.skeleton_scale, cfg.bone_thickness)
        dist[i] = cv2.resize(d, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    dist[~sub_claims] = np.inf
    winner = dist.argmin(0)
    sub_contested = contested[y0:y1, x0:x1]
    for i in involved:
        lose = sub_contested & (winner != i)
        masks[i, y0:y1, x0:x1][lose] = 0.0

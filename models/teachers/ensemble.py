"""The per-frame ensemble teacher: many views and detectors, fused, masks under each view.

Why: the per-frame teacher (one YOLOX-Nano pass, upright pose ROI) loses a dancer who spins,
jumps, lies on the floor or turns upside down (issue 17: best-track J 0.51, 31 % of frames
missed on DAVIS dance/sport footage). Each piece below targets one of those holes:

* Boxes from YOLOX-Nano under several views — identity, horizontal flip and the frame
  turned by 90°, 180° and 270° (a lying or upside-down body is upright in one of them) —
  plus D2Go (better recall on small people) on the identity view, mapped back to the frame
  and fused by weighted box fusion (fusion.py). A person is kept when one view is sure
  (max member score >= `score_threshold`) or the views agree (fused score >= `vote_threshold`).
* MediaPipe's own pose detector (pose_detector.py) on the frame: it predicts each body's
  alignment, so the pose landmark model gets a rotated ROI natively.
* Masks per fused box from pose_landmark_lite (both passes, as the per-frame teacher):
  the first pass is tried from the upright box ROI, from the box's best view's rotation and
  from a matching pose detection; the one with the highest pose presence seeds the second
  pass. The final ROI also runs on the mirrored frame (flip TTA) and the probabilities are
  averaged, so a pixel's probability is the views' vote. Overlaps are resolved by the
  skeleton rule (offline.resolve_overlaps).

`EnsembleTeacher.light()` is the cheap setting used on the unlabelled neighbours of the
video pass (the identity YOLOX view, pose-detector ROIs, no D2Go, no mask flip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from vidmatte.models.instances import Instances
from vidmatte.models.teachers.fusion import weighted_box_fusion
from vidmatte.models.teachers.offline import OfflineTeacherConfig, resolve_overlaps
from vidmatte.models.teachers.pose_detector import PoseDetection, PoseDetector
from vidmatte.models.teachers.pose_segmenter import PoseMask, PoseSegmenter, Roi, roi_from_box

#: A view of the frame: (horizontal flip, quarter turns counter-clockwise as np.rot90).
View = tuple[bool, int]
FULL_VIEWS: tuple[View, ...] = ((False, 0), (True, 0), (False, 1), (False, 2), (False, 3))
LIGHT_VIEWS: tuple[View, ...] = ((False, 0),)


@dataclass(frozen=True)
class EnsembleConfig:
    yolox_views: tuple[View, ...] = FULL_VIEWS
    #: D2Go on the identity view (5x YOLOX's cost on a CPU; better recall on small people)
    d2go: bool = True
    pose_detector: bool = True
    #: run the final ROI on the mirrored frame as well and average the masks
    mask_flip: bool = True
    #: per-view detector threshold (low: fusion collects the evidence)
    view_threshold: float = 0.3
    #: keep a fused person when one member is at least this sure ...
    score_threshold: float = 0.5
    #: ... or when the views agree this much (WBF score: summed scores / views)
    vote_threshold: float = 0.3
    fusion_iou: float = 0.55
    #: rotated views count this much in the vote (they find what the upright ones miss)
    rotated_weight: float = 0.5
    #: minimum box side in pixels
    min_box: float = 12.0
    #: a box found by one view only, this much inside a box more views agree on, is a part
    #: of that person (a limb, the upper body in a rotated view), not a second person
    part_contain: float = 0.8
    #: a fused person whose mask has no pixel > 0.5 or whose pose presence is below this is
    #: dropped (a box on something that is not a body)
    min_presence: float = 0.2
    overlaps: OfflineTeacherConfig = field(default_factory=OfflineTeacherConfig)


def _drop_parts(boxes: list, contain: float) -> list:
    """Remove single-view boxes lying inside a box with more votes (see `part_contain`)."""
    keep = []
    for i, (b, s, votes, k) in enumerate(boxes):
        area = max(1e-6, float((b[2] - b[0]) * (b[3] - b[1])))
        part = False
        for j, (b2, _s2, votes2, _) in enumerate(boxes):
            if j == i or votes2 <= votes or votes > 1:
                continue
            iw = max(0.0, min(b[2], b2[2]) - max(b[0], b2[0]))
            ih = max(0.0, min(b[3], b2[3]) - max(b[1], b2[1]))
            if iw * ih / area >= contain:
                part = True
                break
        if not part:
            keep.append((b, s, votes, k))
    return keep


def rotate_view(rgb: np.ndarray, view: View) -> np.ndarray:
    flip, k = view
    img = rgb[:, ::-1] if flip else rgb
    return np.ascontiguousarray(np.rot90(img, k)) if k % 4 else np.ascontiguousarray(img)


def boxes_to_frame(boxes: np.ndarray, view: View, h: int, w: int) -> np.ndarray:
    """xyxy boxes found in a view (flip, then k quarter turns CCW) -> the original frame.

    Continuous coordinates: rot90 by k maps (x, y) to (y, W - x) for k = 1, (W - x, H - y)
    for k = 2 and (H - y, x) for k = 3 (H, W of the unrotated image); inverted here.
    """
    flip, k = view
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    k %= 4
    if k == 1:  # x = W - y', y = x'
        out = np.stack([w - y1, x0, w - y0, x1], 1)
    elif k == 2:
        out = np.stack([w - x1, h - y1, w - x0, h - y0], 1)
    elif k == 3:  # x = y', y = H - x'
        out = np.stack([y0, h - x1, y1, h - x0], 1)
    else:
        out = b.copy()
    if flip:
        out = np.stack([w - out[:, 2], out[:, 1], w - out[:, 0], out[:, 3]], 1)
    return out.astype(np.float32)


@dataclass
class Person:
    """One person of one frame, as the ensemble found it (before the video pass)."""

    box: np.ndarray  # (4,) xyxy detector box
    score: float
    pose: PoseMask  # window, probability inside it, landmarks
    votes: int  # views/detectors that found the box


class EnsembleTeacher:
    """`teacher(rgb) -> Instances` (the Teacher protocol); `people(rgb)` keeps the details."""

    def __init__(
        self,
        yolox,
        segmenter: PoseSegmenter,
        d2go=None,
        pose_detector: PoseDetector | None = None,
        config: EnsembleConfig | None = None,
    ) -> None:
        self.yolox = yolox
        self.d2go = d2go
        self.pose_detector = pose_detector
        self.segmenter = segmenter
        self.config = config or EnsembleConfig()
        views = len(self.config.yolox_views)
        parts = [f"yolox×{views}"]
        if self.d2go is not None and self.config.d2go:
            parts.append("d2go")
        if self.pose_detector is not None and self.config.pose_detector:
            parts.append("posedet")
        self.name = "ensemble(" + "+".join(parts) + ")+" + segmenter.name

    def with_config(self, config: EnsembleConfig) -> EnsembleTeacher:
        """The same models (shared sessions) under another setting."""
        return EnsembleTeacher(self.yolox, self.segmenter, self.d2go, self.pose_detector, config)

    def light(self) -> EnsembleTeacher:
        from dataclasses import replace

        return self.with_config(
            replace(self.config, yolox_views=LIGHT_VIEWS, d2go=False, mask_flip=False)
        )

    # ------------------------------------------------------------------ boxes

    def _views(self, rgb: np.ndarray) -> tuple[list, list[float], list[View]]:
        cfg = self.config
        h, w = rgb.shape[:2]
        views, weights, kinds = [], [], []
        for view in cfg.yolox_views:
            b, s = self.yolox(rotate_view(rgb, view))
            keep = s >= cfg.view_threshold
            views.append((boxes_to_frame(b[keep], view, h, w), s[keep]))
            weights.append(cfg.rotated_weight if view[1] % 4 else 1.0)
            kinds.append(view)
        if self.d2go is not None and cfg.d2go:
            b, s = self.d2go(rgb)
            keep = s >= cfg.view_threshold
            views.append((b[keep].astype(np.float32), s[keep]))
            weights.append(1.0)
            kinds.append((False, 0))
        return views, weights, kinds

    def detect(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float, int, int]]:
        """Fused person boxes: (box, score, votes, quarter turns of the best member's view)."""
        cfg = self.config
        views, weights, kinds = self._views(rgb)
        fused = weighted_box_fusion(views, cfg.fusion_iou, weights)
        out = []
        for f in fused:
            best_member = int(np.argmax(f.member_scores))
            v, i = f.members[best_member]
            raw_max = float(views[v][1][i])
            score = max(raw_max if raw_max >= cfg.score_threshold else 0.0, f.score)
            if raw_max < cfg.score_threshold and f.score < cfg.vote_threshold:
                continue
            bw, bh = f.box[2] - f.box[0], f.box[3] - f.box[1]
            if min(bw, bh) < cfg.min_box:
                continue
            out.append((f.box, float(min(1.0, score)), f.votes, kinds[v][1] % 4))
        return _drop_parts(out, cfg.part_contain)

    # ------------------------------------------------------------------ masks

    @staticmethod
    def _matching_pose(box: np.ndarray, poses: list[PoseDetection]) -> PoseDetection | None:
        """A pose detection whose hip centre lies in the box and whose scale fits it."""
        best, best_d = None, math.inf
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(box[2] - box[0], box[3] - box[1])
        for p in poses:
            hx, hy = p.keypoints[0]
            if not (box[0] <= hx <= box[2] and box[1] <= hy <= box[3]):
                continue
            r = p.roi()
            if not (0.5 * side <= r.side <= 3.0 * side):
                continue
            d = math.hypot(hx - cx, hy - cy)
            if d < best_d:
                best, best_d = p, d
        return best

    def people(self, rgb: np.ndarray) -> list[Person]:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError("teacher expects uint8 H×W×3 RGB")
        cfg = self.config
        boxes = self.detect(rgb)
        if not boxes:
            return []
        poses = (
            self.pose_detector(rgb) if self.pose_detector is not None and cfg.pose_detector else []
        )
        out: list[Person] = []
        for box, score, votes, k in boxes:
            cands: list[Roi] = []
            if k:
                r = roi_from_box(box)
                cands.append(Roi(r.cx, r.cy, r.side, _wrap(k * math.pi / 2)))
            p = self._matching_pose(box, poses)
            if p is not None:
                cands.append(p.roi())
            pm = self.segmenter.segment(rgb, box, cands, flip_tta=cfg.mask_flip)
            if pm.presence < cfg.min_presence or pm.prob.size == 0 or pm.prob.max() <= 0.5:
                continue
            out.append(Person(np.asarray(box, np.float32), score, pm, votes))
        return drop_duplicates(out, h=rgb.shape[0], w=rgb.shape[1])

    def full_masks(self, people: list[Person], h: int, w: int) -> np.ndarray:
        """(N, H, W) float32 probabilities, overlaps resolved by the skeleton rule."""
        masks = np.zeros((len(people), h, w), np.float32)
        for i, p in enumerate(people):
            x0, y0, x1, y1 = p.pose.window
            masks[i, y0:y1, x0:x1] = p.pose.prob
        resolve_overlaps(masks, [p.pose for p in people], self.config.overlaps)
        return masks

    def __call__(self, rgb: np.ndarray) -> Instances:
        h, w = rgb.shape[:2]
        people = self.people(rgb)
        if not people:
            return Instances.empty(h, w)
        masks = self.full_masks(people, h, w)
        keep = [i for i in range(len(people)) if masks[i].max(initial=0) > 0.5]
        if not keep:
            return Instances.empty(h, w)
        return instances_from(masks[keep], [people[i] for i in keep])


#: torso landmarks (shoulders, hips) of BlazePose: where two boxes on one body agree
TORSO = (11, 12, 23, 24)


def drop_duplicates(
    people: list[Person], h: int, w: int, contain: float = 0.7, torso: float = 0.25
) -> list[Person]:
    """Two fused boxes on one body (a full-body and an upper-body box that fusion kept
    apart) give nearly the same person twice; its pixels would then be split between them.
    A person is a duplicate of a stronger one when most of its mask (> 0.5) lies inside the
    other's (`contain`) *and* their torsos coincide (mean torso-landmark distance below
    `torso` × the larger box side), so two real people who overlap are both kept."""
    order = sorted(range(len(people)), key=lambda i: -people[i].score)
    kept: list[int] = []
    full: dict[int, np.ndarray] = {}

    def mask(i: int) -> np.ndarray:
        if i not in full:
            m = np.zeros((h, w), bool)
            x0, y0, x1, y1 = people[i].pose.window
            m[y0:y1, x0:x1] = people[i].pose.prob > 0.5
            full[i] = m
        return full[i]

    for i in order:
        dup = False
        for k in kept:
            a, b = mask(i), mask(k)
            inter = np.count_nonzero(a & b)
            small = max(1, min(np.count_nonzero(a), np.count_nonzero(b)))
            if inter / small < contain:
                continue
            li, lk = people[i].pose.landmarks[list(TORSO)], people[k].pose.landmarks[list(TORSO)]
            bi, bk = people[i].box, people[k].box
            side = max(bi[2] - bi[0], bi[3] - bi[1], bk[2] - bk[0], bk[3] - bk[1], 1.0)
            if float(np.linalg.norm(li - lk, axis=1).mean()) < torso * side:
                dup = True
                break
        if not dup:
            kept.append(i)
    return [people[i] for i in sorted(kept)]


def instances_from(masks: np.ndarray, people: list[Person]) -> Instances:
    from vidmatte.models.instances import boxes_and_centres

    mt = torch.from_numpy(np.ascontiguousarray(masks, np.float32))
    _, centres = boxes_and_centres(mt)
    return Instances(
        scores=torch.tensor([p.score for p in people], dtype=torch.float32),
        labels=torch.zeros(len(people), dtype=torch.long),
        masks=mt,
        boxes=torch.from_numpy(np.stack([p.box for p in people]).astype(np.float32)),
        centres=centres,
    )


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def mask_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,H,W) × (M,H,W) bool -> (N,M) IoU."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None] - inter
    return (inter / np.maximum(union, 1)).astype(np.float32)


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N,H,W) float -> (N,h,w) (size = (w, h)), area-averaged."""
    if len(masks) == 0:
        return np.zeros((0, size[1], size[0]), np.float32)
    return np.stack([cv2.resize(m, size, interpolation=cv2.INTER_AREA) for m in masks])

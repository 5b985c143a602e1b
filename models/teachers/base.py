"""Teachers: COCO-trained person instance sources that label unlabelled video (paper V-B).

A teacher maps one uint8 RGB frame to `Instances` of persons (labels 0, masks as
probabilities at full resolution, trimaps None). Implementations:

* `OfflineTeacher` (models/teachers/offline.py): YOLOX-Nano boxes (+ optional D2Go boxes
  for recall in crowds) + MediaPipe pose_landmark_lite segmentation per box, recipe "V3".
* `Solov2Teacher` (models/teachers/solov2.py): the official SOLOv2 COCO checkpoint through
  the trimap network's binary mode, for users who have that file.

Teacher files live outside the project (research licences): `--teacher-dir` or
`$VIDMATTE_TEACHER_DIR`, either the shared/weights layout (`coco_person_detection/…`,
`person_segmentation/…`) or the same file names flat in one folder. They are never copied.

`TTATeacher` adds the paper's test-time augmentation: horizontal flip × scales, each
person's masks matched across augmentations by box IoU and averaged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from vidmatte.models.errors import WeightsError
from vidmatte.models.instances import Instances

ENV_TEACHER_DIR = "VIDMATTE_TEACHER_DIR"
YOLOX_FILE = "coco_person_detection/yolox_nano_coco_416.onnx"
POSE_FILE = "person_segmentation/pose_landmark_lite.tflite"
D2GO_FILE = "coco_person_detection/d2go_faster_rcnn_fbnetv3a_dsmask_C4_int8_torchscript.pt"
DETECTORS = ("yolox", "d2go", "yolox+d2go", "solov2")

_MISSING = (
    f"teacher files not found: need {YOLOX_FILE} and {POSE_FILE} "
    f"under --teacher-dir or ${ENV_TEACHER_DIR}"
)


@runtime_checkable
class Teacher(Protocol):
    name: str

    def __call__(self, rgb: np.ndarray) -> Instances:
        """uint8 H×W×3 RGB -> persons (labels 0), masks probabilities at full resolution."""
        ...


def find_teacher_dir(explicit: str | Path | None = None) -> Path | None:
    """explicit -> $VIDMATTE_TEACHER_DIR -> None (no silent fallback to ../shared)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_TEACHER_DIR)
    return Path(env).expanduser() if env else None


def teacher_file(teacher_dir: Path, rel: str) -> Path | None:
    """`rel` in the shared/weights layout, or its bare file name flat in `teacher_dir`."""
    for cand in (teacher_dir / rel, teacher_dir / Path(rel).name):
        if cand.is_file():
            return cand
    return None


def load_teacher(
    teacher_dir: str | Path | None = None,
    *,
    detector: str = "yolox",
    tta: bool = False,
    score_threshold: float = 0.5,
    threads: int | None = None,
) -> Teacher:
    """Build a teacher from the files in `teacher_dir` (see module docstring).

    detector: "yolox" (default), "d2go", "yolox+d2go" (boxes merged, best recall), or
    "solov2" (teacher_dir is then the SOLOv2 checkpoint file, or a folder holding one .pth).
    """
    if detector not in DETECTORS:
        raise WeightsError(f"unknown teacher detector {detector!r}: choose from {DETECTORS}")
    root = find_teacher_dir(teacher_dir)
    if detector == "solov2":
        from vidmatte.models.teachers.solov2 import load_solov2_teacher

        if root is None:
            raise WeightsError(
                f"SOLOv2 teacher needs a checkpoint: --teacher-dir FILE or ${ENV_TEACHER_DIR}"
            )
        base: Teacher = load_solov2_teacher(root, score_threshold=score_threshold)
    else:
        base = _load_offline(root, detector, score_threshold, threads)
    return TTATeacher(base) if tta else base


def _load_offline(
    root: Path | None, detector: str, score_threshold: float, threads: int | None
) -> Teacher:
    from vidmatte.models.teachers.offline import OfflineTeacher, OfflineTeacherConfig
    from vidmatte.models.teachers.pose_segmenter import PoseSegmenter

    if root is None or not root.is_dir():
        raise WeightsError(_MISSING)
    pose = teacher_file(root, POSE_FILE)
    yolox = teacher_file(root, YOLOX_FILE)
    d2go = teacher_file(root, D2GO_FILE)
    need_yolox = "yolox" in detector
    if pose is None or (need_yolox and yolox is None):
        raise WeightsError(_MISSING)
    if "d2go" in detector and d2go is None:
        raise WeightsError(f"teacher file not found: need {D2GO_FILE} under {root}")
    threads = threads or min(4, os.cpu_count() or 1)
    dets = []
    if need_yolox:
        from vidmatte.models.teachers.yolox import YoloxDetector

        dets.append(YoloxDetector(yolox, score_threshold=score_threshold, threads=threads))
    if "d2go" in detector:
        from vidmatte.models.teachers.d2go import D2GoDetector

        dets.append(D2GoDetector(d2go, score_threshold=score_threshold))
    return OfflineTeacher(
        dets,
        PoseSegmenter(pose, threads=threads),
        OfflineTeacherConfig(score_threshold=score_threshold),
    )


# ---------------------------------------------------------------------------------------
# Test-time augmentation


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

"""Teachers: COCO-trained person instance sources that label unlabelled video (paper V-B).

A teacher maps one uint8 RGB frame to `Instances` of persons (labels 0, masks as
probabilities at full resolution, trimaps None). Implementations:

* `OfflineTeacher` (models/teachers/offline.py): YOLOX-Nano boxes (+ optional D2Go boxes
  for recall in crowds) + MediaPipe pose_landmark_lite segmentation per box, recipe "V3".
* `Solov2Teacher` (models/teachers/solov2.py): the official SOLOv2 COCO checkpoint through
  the trimap network's binary mode, for users who have that file.
* `EnsembleTeacher` (models/teachers/ensemble.py, `load_ensemble`): YOLOX-Nano under flips
  and 90/180/270° turns + D2Go + MediaPipe's pose detector, fused (fusion.py), masks under
  rotated ROIs and a mirrored pass. With the video pass (video.py) it is the whole-video
  teacher of `vidmatte-train pseudo-label` (default since issue 17).

Teacher files live outside the project (research licences): `--teacher-dir` or
`$VIDMATTE_TEACHER_DIR`, either the shared/weights layout (`coco_person_detection/…`,
`person_segmentation/…`) or the same file names flat in one folder. They are never copied.

`TTATeacher` adds the paper's test-time augmentation: horizontal flip × scales, each
person's masks matched across augmentations by box IoU and averaged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from vidmatte.models.errors import WeightsError
from vidmatte.models.instances import Instances

ENV_TEACHER_DIR = "VIDMATTE_TEACHER_DIR"
YOLOX_FILE = "coco_person_detection/yolox_nano_coco_416.onnx"
POSE_FILE = "person_segmentation/pose_landmark_lite.tflite"
D2GO_FILE = "coco_person_detection/d2go_faster_rcnn_fbnetv3a_dsmask_C4_int8_torchscript.pt"
POSE_DETECTOR_FILE = "person_segmentation/pose_detection.tflite"
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
    if not tta:
        return base
    from vidmatte.models.teachers.tta import TTATeacher

    return TTATeacher(base)


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


def load_ensemble(
    teacher_dir: str | Path | None = None,
    *,
    d2go: bool = True,
    threads: int | None = None,
    config=None,
):
    """The per-frame ensemble teacher (models/teachers/ensemble.py) from `teacher_dir`.

    Needs YOLOX-Nano and pose_landmark_lite; D2Go and the pose detector are used when their
    files are there (`d2go=False` skips D2Go: its TorchScript load takes seconds).
    """
    from vidmatte.models.teachers.ensemble import EnsembleConfig, EnsembleTeacher
    from vidmatte.models.teachers.pose_detector import PoseDetector
    from vidmatte.models.teachers.pose_segmenter import PoseSegmenter
    from vidmatte.models.teachers.yolox import YoloxDetector

    root = find_teacher_dir(teacher_dir)
    if root is None or not root.is_dir():
        raise WeightsError(_MISSING)
    pose, yolox = teacher_file(root, POSE_FILE), teacher_file(root, YOLOX_FILE)
    if pose is None or yolox is None:
        raise WeightsError(_MISSING)
    threads = threads or min(4, os.cpu_count() or 1)
    det = None
    d2go_file = teacher_file(root, D2GO_FILE) if d2go else None
    if d2go_file is not None:
        from vidmatte.models.teachers.d2go import D2GoDetector

        det = D2GoDetector(d2go_file, score_threshold=0.3)
    pd_file = teacher_file(root, POSE_DETECTOR_FILE)
    pdet = PoseDetector(pd_file, threads=threads) if pd_file is not None else None
    cfg = config or EnsembleConfig()
    return EnsembleTeacher(
        YoloxDetector(yolox, score_threshold=cfg.view_threshold, threads=threads),
        PoseSegmenter(pose, threads=threads),
        d2go=det,
        pose_detector=pdet,
        config=cfg,
    )

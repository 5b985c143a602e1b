"""MediaPipe BlazePose `pose_detection.tflite`: a rotation-aware person detector (TFLite).

Why it is in the ensemble: it is trained to predict the body's alignment (hip centre and a
full-body scale/rotation point), so it gives the pose landmark model a *rotated* ROI for a
person lying down, cartwheeling or upside down, where YOLOX/D2Go give only an axis-aligned
box and the landmark model's upright first pass fails. As a multi-person box detector it is
weak (shared/weights MANIFEST 1.13), so its boxes only add recall in fusion; its rotation
is what matters.

I/O (MANIFEST 1.13): input 1×224×224×3 float RGB in [-1, 1], letterboxed (centred, zero
border); outputs `Identity` [1, 2254, 12] regressors (box cx, cy, w, h, then 4 keypoints
x, y; all /224 relative to the anchor centre) and `Identity_1` [1, 2254, 1] logits. SSD
anchors of pose_detection_cpu.pbtxt: strides 8, 16, 32, 32, 32 on 224², fixed size, offset
0.5: 28²×2 + 14²×2 + 7²×6 = 2254. Keypoint 0 = hip centre, 1 = full-body scale/rotation
point; the landmark ROI is centre kp0, side 2·|kp1 − kp0|·1.25, rotation 90° − atan2(−dy, dx)
(`roi_from_aux` applies the same rule to the landmark model's own auxiliary points).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidmatte.models.errors import WeightsError
from vidmatte.models.teachers.pose_segmenter import Roi, quiet_stderr, roi_from_aux
from vidmatte.models.teachers.yolox import nms

INPUT = 224


def ssd_anchors() -> np.ndarray:
    """(2254, 2) anchor centres in [0, 1], the order the model's outputs use."""
    out = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        n = INPUT // stride
        gy, gx = np.mgrid[0:n, 0:n]
        c = np.stack([(gx.ravel() + 0.5) / n, (gy.ravel() + 0.5) / n], 1)
        out.append(np.repeat(c, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


@dataclass
class PoseDetection:
    """One body: `box` is the full-body square around the alignment circle (image pixels)."""

    box: np.ndarray  # (4,) xyxy
    score: float
    keypoints: np.ndarray  # (4, 2) image pixels: hip centre, scale point, shoulders, upper

    def roi(self) -> Roi:
        return roi_from_aux(self.keypoints[0], self.keypoints[1])


class PoseDetector:
    """`__call__(rgb) -> list[PoseDetection]` (score > threshold, NMS IoU 0.3)."""

    name = "pose_detection"

    def __init__(
        self, path: str | Path, score_threshold: float = 0.5, nms_iou: float = 0.3, threads: int = 2
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            with quiet_stderr():
                self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except Exception as e:
            raise WeightsError(f"cannot load pose detector {path}: {e}") from e
        ins = self.interpreter.get_input_details()
        outs = {d["name"]: d for d in self.interpreter.get_output_details()}
        if list(ins[0]["shape"]) != [1, INPUT, INPUT, 3] or "Identity_1" not in outs:
            raise WeightsError(f"{path} is not MediaPipe pose_detection")
        self._in = ins[0]["index"]
        self._reg = outs["Identity"]["index"]
        self._logit = outs["Identity_1"]["index"]
        self.anchors = ssd_anchors()
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou

    def __call__(self, rgb: np.ndarray) -> list[PoseDetection]:
        h, w = rgb.shape[:2]
        s = INPUT / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        oy, ox = (INPUT - nh) // 2, (INPUT - nw) // 2
        x = np.zeros((INPUT, INPUT, 3), np.float32)
        small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        x[oy : oy + nh, ox : ox + nw] = small.astype(np.float32) * (2.0 / 255.0) - 1.0
        it = self.interpreter
        it.set_tensor(self._in, x[None])
        it.invoke()
        reg = it.get_tensor(self._reg)[0]
        logit = it.get_tensor(self._logit)[0, :, 0]
        score = 1.0 / (1.0 + np.exp(-np.clip(logit.astype(np.float64), -100.0, 100.0)))
        sel = np.nonzero(score > self.score_threshold)[0]
        if sel.size == 0:
            return []
        a = self.anchors[sel]
        kp = reg[sel, 4:12].reshape(-1, 4, 2) / INPUT + a[:, None, :]
        kp_px = (kp * INPUT - (ox, oy)) / s  # letterbox -> image pixels
        r = np.linalg.norm(kp_px[:, 1] - kp_px[:, 0], axis=1) * 1.25
        boxes = np.concatenate([kp_px[:, 0] - r[:, None], kp_px[:, 0] + r[:, None]], 1)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        keep = nms(boxes, score[sel], self.nms_iou)
        return [
            PoseDetection(
                boxes[i].astype(np.float32), float(score[sel][i]), kp_px[i].astype(np.float32)
            )
            for i in keep
        ]

"""MediaPipe BlazePose `pose_landmark_lite` as a per-box person segmenter (TFLite).

The model segments the one person of a rotated square ROI (256² float RGB in [0, 1]) and
returns 39 landmarks (33 body + 2 auxiliary ROI points) in crop pixels. Recipe "V3" of
shared/weights MANIFEST section 5:

1. ROI from the detector box: square centred on the box, side 1.25·max(w, h), no rotation.
2. A second pass with the ROI rebuilt from auxiliary landmarks 33 (centre) and 34 (scale),
   as MediaPipe's tracking mode does: side = 2·|p34 − p33|·1.25, rotation so that p33→p34
   points up. The second pass centres the person and follows a tilted body.
3. Warp the mask logits back into the box expanded by 8 % only (a window, not the whole
   frame: cheaper, and the ROI may cover a neighbour outside the box).

One interpreter per segmenter, reused for every ROI.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidmatte.models.errors import WeightsError

CROP = 256
ROI_SCALE = 1.25
BOX_MARGIN = 0.08

#: BlazePose bones (33 landmarks), as MediaPipe's POSE_CONNECTIONS.
POSE_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12),
    (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18),
    (16, 20), (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27),
    (26, 28), (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)  # fmt: skip


@dataclass
class Roi:
    """A rotated square in image pixels; rotation (radians) turns the crop's up onto the body's."""

    cx: float
    cy: float
    side: float
    rotation: float = 0.0

    def crop_to_image(self) -> np.ndarray:
        """2×3 affine: crop pixel (u, v) in [0, 256) -> image pixel (x, y)."""
        a = self.side / CROP
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        half = CROP / 2
        return np.array(
            [
                [a * c, -a * s, self.cx - a * (c * half - s * half)],
                [a * s, a * c, self.cy - a * (s * half + c * half)],
            ],
            np.float64,
        )


@dataclass
class PoseMask:
    """One person's segmentation inside a window of the image, plus the 2-D skeleton."""

    window: tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels (exclusive end)
    prob: np.ndarray  # (y1-y0, x1-x0) float32 sigmoid probability
    landmarks: np.ndarray  # (33, 2) float32 image pixels
    visibility: np.ndarray  # (33,) float32 in [0, 1]
    presence: float  # pose presence score in [0, 1]


@contextlib.contextmanager
def quiet_stderr():
    """Silence C-level writes to fd 2 for a moment (native libraries' banner lines)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def roi_from_box(box: np.ndarray | list[float]) -> Roi:
    x0, y0, x1, y1 = (float(v) for v in box)
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, ROI_SCALE * max(x1 - x0, y1 - y0), 0.0)


def roi_from_aux(centre: np.ndarray, scale_point: np.ndarray) -> Roi:
    """MediaPipe's AlignmentPointsRects (target angle 90°) + RectTransformation (×1.25)."""
    dx, dy = float(scale_point[0] - centre[0]), float(scale_point[1] - centre[1])
    side = 2.0 * math.hypot(dx, dy) * ROI_SCALE
    rotation = math.pi / 2 - math.atan2(-dy, dx)
    rotation = (rotation + math.pi) % (2 * math.pi) - math.pi
    return Roi(float(centre[0]), float(centre[1]), side, rotation)


class PoseSegmenter:
    """`segment(rgb, box) -> PoseMask` for one detected person (two passes, recipe V3)."""

    name = "pose_landmark_lite"

    def __init__(self, path: str | Path, threads: int = 2, two_pass: bool = True) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            with quiet_stderr():  # TFLite prints an INFO line about XNNPACK on fd 2
                self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except Exception as e:
            raise WeightsError(f"cannot load pose segmenter {path}: {e}") from e
        ins = self.interpreter.get_input_details()
        outs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        if list(ins[0]["shape"]) != [1, CROP, CROP, 3] or "Identity_2" not in outs:
            raise WeightsError(f"{path} is not MediaPipe pose_landmark_lite")
        self._in = ins[0]["index"]
        self._landmarks = outs["Identity"]
        self._presence = outs["Identity_1"]
        self._seg = outs["Identity_2"]
        self.two_pass = two_pass

    def _run(self, rgb: np.ndarray, roi: Roi) -> tuple[np.ndarray, np.ndarray, float]:
        m = roi.crop_to_image()
        inv = cv2.invertAffineTransform(m)
        crop = cv2.warpAffine(
            rgb, inv, (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        x = crop[None].astype(np.float32) * (1.0 / 255.0)
        it = self.interpreter
        it.set_tensor(self._in, x)
        it.invoke()
        lm = it.get_tensor(self._landmarks).reshape(39, 5).copy()
        logits = it.get_tensor(self._seg)[0, :, :, 0].copy()
        presence = float(it.get_tensor(self._presence).ravel()[0])  # already a probability
        pts = lm[:, :2].astype(np.float64) @ m[:, :2].T + m[:, 2]
        lm[:, :2] = pts
        return lm, logits, presence

    def segment(
        self,
        rgb: np.ndarray,
        box: np.ndarray | list[float],
        candidates: list[Roi] | None = None,
        flip_tta: bool = False,
    ) -> PoseMask:
        """One person's mask inside `box` (expanded by 8 %), two passes (recipe V3).

        `candidates`: extra first-pass ROIs (e.g. rotated by a detector's view or by the pose
        detector's alignment); the first pass whose pose presence is highest seeds the second
        pass, so an upside-down or lying body gets a rotated ROI natively. `flip_tta`: the
        final ROI is also run on the mirrored frame and the two probabilities averaged.
        """
        h, w = rgb.shape[:2]
        best = None
        for roi in [roi_from_box(box), *(candidates or [])]:
            lm, logits, presence = self._run(rgb, roi)
            if best is None or presence > best[3] + 1e-3:
                best = (roi, lm, logits, presence)
        roi, lm, logits, presence = best
        if self.two_pass:
            second = roi_from_aux(lm[33, :2], lm[34, :2])
            if second.side >= 16:  # a degenerate second ROI keeps the first pass
                roi = second
                lm, logits, presence = self._run(rgb, roi)
        x0, y0, x1, y1 = (float(v) for v in box)
        mx, my = BOX_MARGIN * (x1 - x0), BOX_MARGIN * (y1 - y0)
        wx0, wy0 = max(0, int(math.floor(x0 - mx))), max(0, int(math.floor(y0 - my)))
        wx1, wy1 = min(w, int(math.ceil(x1 + mx))), min(h, int(math.ceil(y1 + my)))
        if wx1 <= wx0 or wy1 <= wy0:
            prob = np.zeros((0, 0), np.float32)
        else:
            prob = self._window_prob(logits, roi, (wx0, wy0, wx1, wy1))
            if flip_tta:
                mirror = Roi(w - 1 - roi.cx, roi.cy, roi.side, -roi.rotation)
                _, flogits, _ = self._run(np.ascontiguousarray(rgb[:, ::-1]), mirror)
                fprob = self._window_prob(flogits, mirror, (w - wx1, wy0, w - wx0, wy1))
                prob = 0.5 * (prob + fprob[:, ::-1])
        return PoseMask(
            window=(wx0, wy0, wx1, wy1),
            prob=prob,
            landmarks=lm[:33, :2].astype(np.float32),
            visibility=_sigmoid(lm[:33, 3]).astype(np.float32),
            presence=presence,
        )

    @staticmethod
    def _window_prob(logits: np.ndarray, roi: Roi, window: tuple[int, int, int, int]) -> np.ndarray:
        """The crop's mask logits warped back into `window` of the image, as probabilities."""
        wx0, wy0, wx1, wy1 = window
        m = roi.crop_to_image()
        m[:, 2] -= (wx0, wy0)
        back = cv2.warpAffine(
            logits,
            m,
            (wx1 - wx0, wy1 - wy0),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=-30.0,
        )
        return _sigmoid(back).astype(np.float32)

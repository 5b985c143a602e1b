"""YOLOX-Nano (COCO, 416², ONNX) as a person box detector for the offline teacher.

The file is the official Megvii release converted to ONNX (shared/weights MANIFEST 1.11).
Its input is BGR 0..255 without mean/std (the "legacy" normalised input gives nothing),
letterboxed to 416² (pad bottom/right with 114); the output rows are
(dx, dy, log w, log h, obj, 80 class probs) over 52²+26²+13² anchors, already sigmoided.
One onnxruntime session is created per detector and reused for every frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vidmatte.models.errors import WeightsError

INPUT_SIZE = 416
STRIDES = (8, 16, 32)


def _grids(size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    xy, st = [], []
    for s in STRIDES:
        n = size // s
        gy, gx = np.mgrid[0:n, 0:n]
        xy.append(np.stack([gx.ravel(), gy.ravel()], 1))
        st.append(np.full((n * n, 1), s))
    return np.concatenate(xy).astype(np.float32), np.concatenate(st).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS on xyxy boxes; returns kept indices sorted by score (descending)."""
    order = np.argsort(-scores)
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        x0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        ov = inter / np.maximum(area[i] + area[rest] - inter, 1e-6)
        order = rest[ov <= iou]
    return np.asarray(keep, dtype=np.int64)


class YoloxDetector:
    """Person boxes from one RGB frame: `__call__(rgb) -> (boxes (N,4) xyxy, scores (N,))`."""

    name = "yolox_nano_coco_416"

    def __init__(
        self,
        path: str | Path,
        score_threshold: float = 0.5,
        nms_iou: float = 0.45,
        threads: int = 2,
    ) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # no busy-waiting between ops: on a shared CPU spinning threads cost 2x (measured)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own types for corrupt files
            raise WeightsError(f"cannot load YOLOX detector {path}: {e}") from e
        inp = self.session.get_inputs()[0]
        out = self.session.get_outputs()[0]
        if list(inp.shape[1:]) != [3, INPUT_SIZE, INPUT_SIZE] or out.shape[-1] != 85:
            raise WeightsError(f"{path} is not a COCO YOLOX-{INPUT_SIZE} model")
        self.input_name = inp.name
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self._grid, self._stride = _grids()

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = rgb.shape[:2]
        r = min(INPUT_SIZE / h, INPUT_SIZE / w)
        nh, nw = int(round(h * r)), int(round(w * r))
        canvas = np.full((INPUT_SIZE, INPUT_SIZE, 3), 114, np.uint8)
        canvas[:nh, :nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)[..., ::-1]
        x = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        out = self.session.run(None, {self.input_name: x})[0][0]
        scores = out[:, 4] * out[:, 5]  # obj * P(person)
        sel = scores > self.score_threshold
        if not sel.any():
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        o, s = out[sel], scores[sel]
        xy = (o[:, :2] + self._grid[sel]) * self._stride[sel]
        wh = np.exp(o[:, 2:4]) * self._stride[sel]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1) / r
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        keep = nms(boxes, s, self.nms_iou)
        return boxes[keep].astype(np.float32), s[keep].astype(np.float32)

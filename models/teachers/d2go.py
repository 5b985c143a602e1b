"""D2Go COCO Faster R-CNN (int8 TorchScript) as an optional second person detector.

Why it is here: YOLOX-Nano misses small people in crowds; D2Go finds 17-18 people on the
street clip where YOLOX finds 6-7 (shared/weights MANIFEST 1.12).

Loading decision (documented exception): this third-party artifact exists only as a
TorchScript archive, so it is opened with `torch.jit.load` from the user's teacher folder
(never copied into the project). TorchScript is not pickle; it runs the exporter's
serialized graph with torch + torchvision ops only. Its input is **BGR** 0..1 (the wrapper
multiplies by 255 and resizes the short side to 320 internally); COCO category 1 = person.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from vidmatte.models.errors import WeightsError
from vidmatte.models.teachers.pose_segmenter import quiet_stderr


class D2GoDetector:
    """Person boxes from one RGB frame: `__call__(rgb) -> (boxes (N,4) xyxy, scores (N,))`."""

    name = "d2go_faster_rcnn_fbnetv3a_dsmask_C4_int8"

    def __init__(self, path: str | Path, score_threshold: float = 0.5) -> None:
        import torch
        import torchvision  # noqa: F401  registers torchvision::nms / roi_align for the graph

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as e:
            raise WeightsError(f"cannot load D2Go detector {path}: {e}") from e
        self.score_threshold = score_threshold

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        bgr = np.ascontiguousarray(rgb[..., ::-1])
        x = torch.from_numpy(bgr).permute(2, 0, 1).float() / 255
        with torch.inference_mode(), warnings.catch_warnings(), quiet_stderr():
            warnings.simplefilter("ignore")  # deprecation notes of quantized ops, per call
            _, outs = self.model([x])
        out = outs[0]
        keep = (out["labels"] == 1) & (out["scores"] > self.score_threshold)
        boxes = out["boxes"][keep].float().numpy().astype(np.float32)
        scores = out["scores"][keep].float().numpy().astype(np.float32)
        order = np.argsort(-scores)
        return boxes[order], scores[order]

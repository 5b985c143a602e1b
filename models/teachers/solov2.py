"""The official SOLOv2 COCO checkpoint as a teacher, through the trimap network's binary mode.

For users who have the AdelaiDet/SOLO COCO checkpoint (it is not in ../shared: over the
4 MiB fetch limit). `vidmatte.models.trimapnet.official.load_adelaidet_solov2(path) -> TrimapNet`
(another module) loads it with `torch.load(weights_only=True)`; its eval forward takes
B×3×H×W float RGB in [0, 1] and returns list[Instances]. This wrapper keeps persons only.
Imported lazily so that the teacher interface works without that module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidmatte.models.errors import WeightsError
from vidmatte.models.instances import Instances


class Solov2Teacher:
    """`teacher(rgb) -> Instances` of persons from a SOLOv2 `TrimapNet` in binary mode."""

    name = "solov2_coco"

    def __init__(self, net, score_threshold: float = 0.5, device: str = "cpu") -> None:
        self.net = net.eval().to(device)
        self.device = device
        self.score_threshold = score_threshold

    def __call__(self, rgb: np.ndarray) -> Instances:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device)
        x = x.permute(2, 0, 1)[None].float() / 255.0
        with torch.inference_mode():
            # detect() runs at the short side the weights were trained for (800 for COCO
            # SOLOv2) and returns masks at the frame's size; plain forward as a fallback.
            detect = getattr(self.net, "detect", None)
            res: Instances = (detect(x) if detect is not None else self.net(x))[0]
        keep = (res.labels == 0) & (res.scores >= self.score_threshold)
        # a teacher gives masks; trimaps come from the band rule (models/trimap.py)
        return res.select(keep).to("cpu").without_trimaps()


def find_checkpoint(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        cands = sorted(path.glob("*.pth")) + sorted(path.glob("*.pt"))
        cands = [c for c in cands if "solo" in c.name.lower()] or cands
        if len(cands) == 1:
            return cands[0]
        if len(cands) > 1:
            raise WeightsError(f"several checkpoints in {path}: pass the SOLOv2 file itself")
    raise WeightsError(f"SOLOv2 checkpoint not found: {path}")


def load_solov2_teacher(
    path: str | Path, score_threshold: float = 0.5, device: str = "cpu"
) -> Solov2Teacher:
    try:
        from vidmatte.models.trimapnet.official import load_adelaidet_solov2
    except ImportError as e:
        raise WeightsError("SOLOv2 import is not available in this build") from e
    net = load_adelaidet_solov2(find_checkpoint(Path(path)))
    return Solov2Teacher(net, score_threshold=score_threshold, device=device)

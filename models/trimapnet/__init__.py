"""TrimapNet: SOLOv2 with a 3-class trimap per instance; `model.py` composes the parts.

config (defaults) · backbones · fpn · heads + mask_branch · targets · loss · postprocess
(point NMS, Matrix NMS) · model · official (AdelaiDet SOLOv2 import).
"""

from vidmatte.models.trimapnet.config import PostprocessConfig, TrimapNetConfig
from vidmatte.models.trimapnet.model import TrimapNet, build_trimapnet

__all__ = ["PostprocessConfig", "TrimapNet", "TrimapNetConfig", "build_trimapnet"]

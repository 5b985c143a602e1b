"""TrimapNet settings: architecture, head sizes per backbone, post-processing; defaults here.

`TrimapNetConfig` is what a model folder's config.json stores under "arch"; every default
of the network lives in this file (AdelaiDet style: one place for defaults).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from vidmatte.models.trimapnet.loss import LossWeights

ARCHITECTURE = "trimapnet"
SIZE_DIVISIBILITY = 32
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip

#: Per-backbone head sizes when the config leaves them None. ResNets get the official
#: SOLOv2 sizes; MobileNetV2 a light head (the official one would cost ~8x the backbone).
_HEAD_DEFAULTS = {
    "mobilenet_v2": dict(
        fpn_channels=128, ins_channels=128, num_instance_convs=3, mask_channels=64, num_masks=128
    ),
    "resnet": dict(
        fpn_channels=256, ins_channels=512, num_instance_convs=4, mask_channels=128, num_masks=256
    ),
    # YOLOX-Nano (COCO init, issue 18): a head as light as the 0.9 M-parameter trunk
    "yolox_nano": dict(
        fpn_channels=64,
        ins_channels=64,
        num_instance_convs=2,
        mask_channels=32,
        num_masks=32,
        neck="lite",
    ),
}

#: Input convention of each backbone's initialisation when the config leaves it None:
#: torchvision (RGB, ImageNet mean/std) or YOLOX (BGR on 0..255, no normalisation).
_INPUT_DEFAULTS = {
    "yolox_nano": dict(colour_order="BGR", pixel_mean=(0.0, 0.0, 0.0), pixel_std=(1.0, 1.0, 1.0)),
    "torchvision": dict(
        colour_order="RGB", pixel_mean=IMAGENET_MEAN_RGB, pixel_std=IMAGENET_STD_RGB
    ),
}


@dataclass
class PostprocessConfig:
    """Inference settings (official SOLOv2 values except update_thr and max_per_img)."""

    score_thr: float = 0.1
    mask_thr: float = 0.5
    update_thr: float = 0.1  # score after Matrix NMS; official 0.05
    max_per_img: int = 20
    nms_pre: int = 500
    nms_sigma: float = 2.0
    nms_kernel: str = "gaussian"
    # the score from which the pipeline counts an instance as a person (its --min-score
    # default for these weights): Matrix-NMS-decayed SOLO scores sit lower than a
    # detector's, so each model folder carries its own, set by `vidmatte-train calibrate`
    person_thr: float = 0.5


@dataclass
class TrimapNetConfig:
    backbone: str = "mobilenet_v2"
    mode: str = "trimap"  # or "binary"
    num_classes: int | None = None  # None: 1 (persons) in trimap mode, 80 (COCO) in binary
    input_short_side: int = 512
    fpn_channels: int | None = None  # None: per-backbone default (_HEAD_DEFAULTS)
    neck: str | None = None  # "fpn" (detectron2's) or "lite" (lite_fpn.py); None: per backbone
    ins_channels: int | None = None
    num_instance_convs: int | None = None
    mask_channels: int | None = None
    num_masks: int | None = None
    num_grids: tuple[int, ...] = (40, 36, 24, 16, 12)
    strides: tuple[int, ...] = (8, 8, 16, 32, 32)
    scale_ranges: tuple[tuple[float, float], ...] = (
        (1, 96),
        (48, 192),
        (96, 384),
        (192, 768),
        (384, 2048),
    )
    sigma: float = 0.2
    prior_prob: float = 0.01
    frozen_bn: bool = True
    stride_in_1x1: bool = False  # True for detectron2 MSRA ResNets (official checkpoints)
    # channel order the weights expect ("BGR" for detectron2, YOLOX); None: per backbone
    colour_order: str | None = None
    pixel_mean: tuple[float, ...] | None = None  # on the 0..255 scale, in colour_order
    pixel_std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None
    loss: LossWeights = field(default_factory=LossWeights)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)

    def __post_init__(self) -> None:
        if self.mode not in ("trimap", "binary"):
            raise ValueError(f"mode must be 'trimap' or 'binary', not {self.mode!r}")
        if self.num_classes is None:
            self.num_classes = 1 if self.mode == "trimap" else 80
        key = self.backbone if self.backbone in _HEAD_DEFAULTS else "resnet"
        for name, value in _HEAD_DEFAULTS[key].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.neck is None:
            self.neck = "fpn"
        if self.neck not in ("fpn", "lite"):
            raise ValueError(f"neck must be 'fpn' or 'lite', not {self.neck!r}")
        inp = _INPUT_DEFAULTS.get(self.backbone, _INPUT_DEFAULTS["torchvision"])
        for name, value in inp.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.num_grids = tuple(int(g) for g in self.num_grids)
        self.strides = tuple(int(s) for s in self.strides)
        self.scale_ranges = tuple((float(a), float(b)) for a, b in self.scale_ranges)
        self.pixel_mean = tuple(float(v) for v in self.pixel_mean)
        self.pixel_std = tuple(float(v) for v in self.pixel_std)
        if self.colour_order not in ("RGB", "BGR"):
            raise ValueError(f"colour_order must be RGB or BGR, not {self.colour_order!r}")
        if self.class_names is None:
            if self.num_classes == 1:
                self.class_names = ("person",)
            elif self.num_classes == len(COCO_CLASSES):
                self.class_names = COCO_CLASSES
            else:
                self.class_names = tuple(f"class_{i}" for i in range(self.num_classes))
        self.class_names = tuple(self.class_names)
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if isinstance(self.loss, dict):
            self.loss = LossWeights(**self.loss)
        if isinstance(self.postprocess, dict):
            self.postprocess = PostprocessConfig(**self.postprocess)
        if not (len(self.num_grids) == len(self.strides) == len(self.scale_ranges) == 5):
            raise ValueError("num_grids, strides and scale_ranges need one entry per level (5)")

    @property
    def mask_classes(self) -> int:
        return 3 if self.mode == "trimap" else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrimapNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config entries {unknown}")
        return cls(**d)

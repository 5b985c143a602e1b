"""Backbones for the trimap network: torchvision MobileNetV2, ResNet-18/34/50/101, and
YOLOX-Nano's CSPDarknet + PAFPN with its COCO weights (yolox.py, from ONNX by name).

Each backbone returns the four feature maps C2..C5 (strides 4, 8, 16, 32) that the FPN
needs, and reports their channel counts in `out_channels`.

Decisions worth knowing:
- BatchNorm is frozen by default (torchvision's FrozenBatchNorm2d, as detectron2 does):
  batches of a few large frames give useless batch statistics, and the MobileNetV2 weights
  we ship from (../shared, section 1.2 of its MANIFEST) have BN folded into a bias, so the
  real running statistics are gone anyway.
- MobileNetV2 uses ReLU in place of ReLU6 (the quantized ImageNet model it comes from was
  trained that way) and stops at features[17] (320 channels): the 1x1 -> 1280 expansion
  only serves the ImageNet classifier.
- `stride_in_1x1` puts a bottleneck's stride in its first 1x1 conv, as detectron2's MSRA
  ResNets (and thus official SOLOv2 checkpoints) do; torchvision puts it in the 3x3.
- `yolox_nano` returns [dark2 (stride 4), PAFPN P3, P4, P5]; it has no BN (folded by the
  export) and its COCO initialisation is the ONNX detector itself (onnx_init.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from torch import Tensor, nn

from vidmatte.models.errors import WeightsError

BACKBONES = ("mobilenet_v2", "resnet18", "resnet34", "resnet50", "resnet101", "yolox_nano")
MOBILENET_NPZ = "imagenet_backbone/mobilenet_v2_imagenet_qnnpack_dequant.npz"
YOLOX_NANO_ONNX = "coco_person_detection/yolox_nano_coco_416.onnx"


def _norm_layer(frozen_bn: bool):
    if frozen_bn:
        from torchvision.ops.misc import FrozenBatchNorm2d

        return FrozenBatchNorm2d
    return nn.BatchNorm2d


class MobileNetV2Backbone(nn.Module):
    """torchvision MobileNetV2 trunk; taps after blocks 3, 6, 13, 17 (strides 4..32)."""

    TAPS = (3, 6, 13, 17)

    def __init__(self, frozen_bn: bool = True):
        super().__init__()
        from torchvision.models import mobilenet_v2

        net = mobilenet_v2(weights=None, norm_layer=_norm_layer(frozen_bn))
        _relu6_to_relu(net)
        self.features = net.features[: self.TAPS[-1] + 1]
        self.out_channels = (24, 32, 96, 320)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.TAPS:
                outs.append(x)
        return outs

    def load_imagenet_npz(self, path: Path) -> int:
        """Load the dequantized torchvision ImageNet weights (.npz, BN folded into a bias;
        models/weights/checkpoints.read_mobilenet_v2_npz). Returns the number of arrays used."""
        from vidmatte.models.weights.checkpoints import read_mobilenet_v2_npz
        from vidmatte.models.weights.state_dict import load_state_strict

        n = len(self.features)
        state = {k: v for k, v in read_mobilenet_v2_npz(path).items() if int(k.split(".")[1]) < n}
        load_state_strict(self, {**self.state_dict(), **state}, path)
        return 2 * sum(1 for k in state if k.endswith(".weight") and state[k].dim() == 4)


class ResNetBackbone(nn.Module):
    """torchvision ResNet trunk without pooling/fc; `body` keeps torchvision's names."""

    def __init__(self, depth: int = 50, frozen_bn: bool = True, stride_in_1x1: bool = False):
        super().__init__()
        import torchvision.models as tvm

        builders = {18: tvm.resnet18, 34: tvm.resnet34, 50: tvm.resnet50, 101: tvm.resnet101}
        if depth not in builders:
            raise ValueError(f"unsupported ResNet depth {depth}")
        net = builders[depth](weights=None, norm_layer=_norm_layer(frozen_bn))
        net.avgpool = nn.Identity()
        net.fc = nn.Identity()
        self.body = net
        if stride_in_1x1 and depth >= 50:
            for layer in (net.layer2, net.layer3, net.layer4):
                first = layer[0]
                first.conv1.stride = (2, 2)
                first.conv2.stride = (1, 1)
        w = 64 if depth < 50 else 256
        self.out_channels = (w, 2 * w, 4 * w, 8 * w)

    def forward(self, x: Tensor) -> list[Tensor]:
        b = self.body
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        c2 = b.layer1(x)
        c3 = b.layer2(c2)
        c4 = b.layer3(c3)
        c5 = b.layer4(c4)
        return [c2, c3, c4, c5]


def freeze_stages(backbone: nn.Module, stages: int) -> int:
    """Stop gradients through the stem and the first `stages - 1` stages (detectron2's
    FREEZE_AT): 1 = stem, 2 = stem + stride-4 stage, ... The early layers hold generic
    ImageNet edges and cost the most backward time at full resolution, so freezing them
    makes short CPU schedules much cheaper at little cost in accuracy. Returns the number
    of frozen parameter tensors."""
    if stages <= 0:
        return 0
    from vidmatte.models.trimapnet.yolox import YOLOXNanoBackbone

    if isinstance(backbone, YOLOXNanoBackbone):  # stem, dark2..dark5, 6 = + PAFPN
        modules = backbone.stage_modules(stages)
    elif isinstance(backbone, MobileNetV2Backbone):
        # stem = features[0]; stages end at the taps (3, 6, 13, 17)
        ends = (0, *backbone.TAPS)
        modules = list(backbone.features[: ends[min(stages, len(ends)) - 1] + 1])
    elif isinstance(backbone, ResNetBackbone):
        b = backbone.body
        parts = [[b.conv1, b.bn1], [b.layer1], [b.layer2], [b.layer3], [b.layer4]]
        modules = [m for part in parts[:stages] for m in part]
    else:
        raise ValueError(f"cannot freeze stages of {type(backbone).__name__}")
    n = 0
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)
            n += 1
    return n


def _relu6_to_relu(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU6):
            setattr(module, name, nn.ReLU(inplace=True))
        else:
            _relu6_to_relu(child)


def build_backbone(name: str, *, frozen_bn: bool = True, stride_in_1x1: bool = False) -> nn.Module:
    if name == "mobilenet_v2":
        return MobileNetV2Backbone(frozen_bn=frozen_bn)
    if name.startswith("resnet") and name in BACKBONES:
        return ResNetBackbone(int(name[6:]), frozen_bn=frozen_bn, stride_in_1x1=stride_in_1x1)
    if name == "yolox_nano":
        from vidmatte.models.trimapnet.yolox import YOLOXNanoBackbone

        return YOLOXNanoBackbone()
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


def default_backbone_weights(name: str) -> Path | None:
    """The pretrained initialisation found in ../shared for this backbone, if any
    (ImageNet for MobileNetV2, COCO YOLOX-Nano ONNX for yolox_nano)."""
    from vidmatte.models.shared import shared_weights

    root = shared_weights()
    if root is None:
        return None
    if name in ("mobilenet_v2", "yolox_nano"):
        p = root / (MOBILENET_NPZ if name == "mobilenet_v2" else YOLOX_NANO_ONNX)
        return p if p.is_file() else None
    return None  # no ResNet ImageNet file fits the 4 MiB fetch limit (MANIFEST section 0)


def load_backbone_weights(backbone: nn.Module, path: Path) -> None:
    """Initialise from an .npz (MobileNetV2 recipe) or a torchvision .pth state dict.

    A .pth is read by the one checkpoint reader (models/weights/checkpoints.py); keys may carry torchvision's
    full-model names (`features.*`, `layer1.*`, `conv1.*`); the classifier is ignored.
    """
    path = Path(path)
    if path.suffix == ".onnx":
        from vidmatte.models.trimapnet.onnx_init import load_onnx_initializers
        from vidmatte.models.trimapnet.yolox import YOLOXNanoBackbone

        if not isinstance(backbone, YOLOXNanoBackbone):
            raise WeightsError(f"{path}: .onnx initialisation exists only for yolox_nano")
        load_onnx_initializers(backbone, path, prefix="backbone.")
        return
    if path.suffix == ".npz":
        if not isinstance(backbone, MobileNetV2Backbone):
            raise WeightsError(f"{path}: .npz initialisation exists only for mobilenet_v2")
        backbone.load_imagenet_npz(path)
        return
    from vidmatte.models.weights.checkpoints import load_third_party_checkpoint
    from vidmatte.models.weights.state_dict import load_state_strict

    state = load_third_party_checkpoint(path)
    if isinstance(backbone, ResNetBackbone):
        state = {f"body.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    else:
        state = {k: v for k, v in state.items() if k.startswith("features.")}
        n = len(backbone.features)
        state = {k: v for k, v in state.items() if int(k.split(".")[1]) < n}
    own = backbone.state_dict()
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked") or k in own}
    counters = [k for k in own if k.endswith("num_batches_tracked")]
    load_state_strict(backbone, state, path, optional=counters)


def init_backbone(backbone: nn.Module, name: str, pretrained: bool | Path | str) -> bool:
    """Apply `pretrained` (True = find in ../shared, a path, or False). Returns True if loaded."""
    if pretrained is False or pretrained is None:
        return False
    if pretrained is True:
        path = default_backbone_weights(name)
        if path is None:
            warnings.warn(
                f"no pretrained weights for {name} found (../shared); starting from scratch",
                stacklevel=3,
            )
            return False
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise WeightsError(f"backbone weights not found: {path}")
    load_backbone_weights(backbone, path)
    return True

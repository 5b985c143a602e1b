"""YOLOX-Nano's CSPDarknet + PAFPN in plain PyTorch, as a trimap-network backbone.

The COCO-trained YOLOX-Nano (../shared/weights/coco_person_detection, Apache-2.0) already
knows what a person is; its backbone and neck are the student's initialisation (issue 18),
read from the ONNX file's initializers by `onnx_init.py` (no code runs).

Decisions worth knowing:
- Module names follow Megvii's YOLOX (`backbone.stem.conv.conv`, `dark3.1.m.0.conv2.dconv`,
  `C3_p3.conv3`, ...), so the ONNX graph's node scopes map onto parameters by name.
- The export folded batch norm into the convolutions, so every `BaseConv` here is a plain
  conv with a bias + SiLU; there is nothing to freeze or re-estimate. Depthwise separable
  convs (DWConv) where Nano has them (width 0.25, depth 0.33).
- Input as YOLOX was trained: BGR on the 0..255 scale, no mean/std (config: colour_order
  "BGR", pixel_mean 0, pixel_std 1); TrimapNet.preprocess does that.
- `forward` returns [C2, P3, P4, P5]: the stride-4 output of dark2 (32 ch, which YOLOX
  itself does not use) for the mask branch, then the PAFPN outputs at strides 8/16/32
  (64/128/256 ch). TrimapNet's FPN adapts them to the SOLOv2 heads' width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Nano's multipliers and the channel counts they give (base = 64 x 0.25).
DEPTH, WIDTH = 0.33, 0.25
BASE = int(64 * WIDTH)  # 16
BASE_DEPTH = max(round(3 * DEPTH), 1)  # 1
#: Stages of `freeze_stages`: stem, dark2 .. dark5, then the PAFPN.
STAGES = ("stem", "dark2", "dark3", "dark4", "dark5")


class BaseConv(nn.Module):
    """Conv (BN folded into its bias) + SiLU."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=True)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(x))


class DWConv(nn.Module):
    """Depthwise k x k + pointwise 1x1, each a BaseConv."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1):
        super().__init__()
        self.dconv = BaseConv(cin, cin, k, stride, groups=cin)
        self.pconv = BaseConv(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pconv(self.dconv(x))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, shortcut: bool):
        super().__init__()
        self.conv1 = BaseConv(cin, cout, 1)
        self.conv2 = DWConv(cout, cout, 3)
        self.use_add = shortcut and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class CSPLayer(nn.Module):
    """C3 block: two 1x1 branches, n bottlenecks on one, concatenated, 1x1 out."""

    def __init__(self, cin: int, cout: int, n: int = 1, shortcut: bool = True):
        super().__init__()
        hidden = int(cout * 0.5)
        self.conv1 = BaseConv(cin, hidden, 1)
        self.conv2 = BaseConv(cin, hidden, 1)
        self.conv3 = BaseConv(2 * hidden, cout, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut) for _ in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(torch.cat([self.m(self.conv1(x)), self.conv2(x)], dim=1))


class SPPBottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, kernels: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        hidden = cin // 2
        self.conv1 = BaseConv(cin, hidden, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernels)
        self.conv2 = BaseConv(hidden * (len(kernels) + 1), cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(m(x) for m in self.m)], dim=1))


class Focus(nn.Module):
    """Space-to-depth (2x2 pixels -> 12 channels) + a 3x3 conv: the stride-2 stem."""

    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__()
        self.conv = BaseConv(cin * 4, cout, k)

    def forward(self, x: Tensor) -> Tensor:
        tl, tr = x[..., ::2, ::2], x[..., ::2, 1::2]
        bl, br = x[..., 1::2, ::2], x[..., 1::2, 1::2]
        return self.conv(torch.cat([tl, bl, tr, br], dim=1))


class CSPDarknet(nn.Module):
    """Stem (stride 2) and dark2..dark5 (strides 4..32) of YOLOX-Nano, depthwise."""

    def __init__(self):
        super().__init__()
        b, d = BASE, BASE_DEPTH
        self.stem = Focus(3, b)
        self.dark2 = nn.Sequential(DWConv(b, 2 * b, 3, 2), CSPLayer(2 * b, 2 * b, d))
        self.dark3 = nn.Sequential(DWConv(2 * b, 4 * b, 3, 2), CSPLayer(4 * b, 4 * b, 3 * d))
        self.dark4 = nn.Sequential(DWConv(4 * b, 8 * b, 3, 2), CSPLayer(8 * b, 8 * b, 3 * d))
        self.dark5 = nn.Sequential(
            DWConv(8 * b, 16 * b, 3, 2),
            SPPBottleneck(16 * b, 16 * b),
            CSPLayer(16 * b, 16 * b, d, shortcut=False),
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        """-> [dark2 (s4), dark3 (s8), dark4 (s16), dark5 (s32)]."""
        c2 = self.dark2(self.stem(x))
        c3 = self.dark3(c2)
        c4 = self.dark4(c3)
        return [c2, c3, c4, self.dark5(c4)]


class YOLOXNanoBackbone(nn.Module):
    """YOLOX's `YOLOPAFPN` (CSPDarknet + PAFPN) for Nano; returns [C2, P3, P4, P5]."""

    def __init__(self):
        super().__init__()
        c3, c4, c5 = 4 * BASE, 8 * BASE, 16 * BASE  # 64, 128, 256
        n = BASE_DEPTH
        self.backbone = CSPDarknet()
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c5, c4, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, shortcut=False)
        self.reduce_conv1 = BaseConv(c4, c3, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, shortcut=False)
        self.bu_conv2 = DWConv(c3, c3, 3, 2)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, shortcut=False)
        self.bu_conv1 = DWConv(c4, c4, 3, 2)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, shortcut=False)
        self.out_channels = (2 * BASE, c3, c4, c5)

    def forward(self, x: Tensor) -> list[Tensor]:
        c2, x2, x1, x0 = self.backbone(x)
        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat([self.upsample(fpn_out0), x1], dim=1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), x2], dim=1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], dim=1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], dim=1))
        return [c2, pan_out2, pan_out1, pan_out0]

    def stage_modules(self, stages: int) -> list[nn.Module]:
        """The modules of the first `stages` stages (stem, dark2..dark5, then the PAFPN)."""
        mods: list[nn.Module] = [getattr(self.backbone, s) for s in STAGES[:stages]]
        if stages > len(STAGES):
            mods += [m for name, m in self.named_children() if name != "backbone"]
        return mods

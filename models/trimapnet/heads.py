"""SOLOv2 instance branch: category and dynamic-kernel towers over S x S grids.

Module and parameter names follow AdelaiDet's `SOLOv2InsHead` (cate_tower, kernel_tower,
cate_pred, kernel_pred) so that official checkpoints load by name. The kernel tower gets
CoordConv (two normalised coordinate channels); both towers run on the FPN level resized
to that level's grid. `kernel_pred` predicts `num_kernels` = mask-feature channels x mask
classes values per cell: the 1x1 dynamic kernels of the C mask logits (C = 1 binary, 3
trimap), laid out class-major (C, E).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def coord_channels(x: Tensor) -> Tensor:
    """(B, 2, H, W) x and y coordinates in [-1, 1] (CoordConv), on x's device and dtype."""
    b, _, h, w = x.shape
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    y, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, y]).unsqueeze(0).expand(b, -1, -1, -1)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (SOLOv2), or the largest power-of-two divisor below that,
    so any head width works (48 channels -> 16 groups); widths of 32·k are unchanged."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


def split_feats(feats: list[Tensor]) -> list[Tensor]:
    """P2..P6 -> instance-branch inputs at strides 8, 8, 16, 32, 32 (as official SOLOv2)."""
    return [
        F.interpolate(feats[0], scale_factor=0.5, mode="bilinear"),
        feats[1],
        feats[2],
        feats[3],
        F.interpolate(feats[4], size=feats[3].shape[-2:], mode="bilinear"),
    ]


class SOLOv2InsHead(nn.Module):
    def __init__(
        self,
        in_channels: int = 256,
        channels: int = 512,
        num_convs: int = 4,
        num_classes: int = 80,
        num_kernels: int = 256,
        num_grids: tuple[int, ...] = (40, 36, 24, 16, 12),
        prior_prob: float = 0.01,
    ):
        super().__init__()
        self.num_grids = tuple(num_grids)
        self.num_classes = num_classes
        self.num_kernels = num_kernels
        for head, coord in (("cate", False), ("kernel", True)):
            layers: list[nn.Module] = []
            for i in range(num_convs):
                chn = (in_channels + (2 if coord else 0)) if i == 0 else channels
                layers += [
                    nn.Conv2d(chn, channels, 3, padding=1, bias=False),
                    group_norm(channels),
                    nn.ReLU(inplace=True),
                ]
            self.add_module(f"{head}_tower", nn.Sequential(*layers))
        self.cate_pred = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.kernel_pred = nn.Conv2d(channels, num_kernels, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.cate_pred.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Five split FPN levels -> (category logits (B, K, S, S), kernels (B, E*C, S, S))."""
        cates, kernels = [], []
        for feat, grid in zip(feats, self.num_grids, strict=True):
            x = torch.cat([feat, coord_channels(feat)], dim=1)
            x = F.interpolate(x, size=grid, mode="bilinear")
            kernels.append(self.kernel_pred(self.kernel_tower(x)))
            cates.append(self.cate_pred(self.cate_tower(x[:, :-2])))
        return cates, kernels

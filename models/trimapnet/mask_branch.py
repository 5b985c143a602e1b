"""SOLOv2 unified mask-feature branch: P2..P5 fused at stride 4, plus dynamic convolution.

Names follow AdelaiDet's `SOLOv2MaskHead` (convs_all_levels.{i}.conv{j}, conv_pred) so
official checkpoints load by name. Level i gets i conv+2x-upsample steps (level 0 one conv);
the coarsest level (P5) also gets CoordConv channels. The output has `num_masks` channels
(E), which each instance's dynamic 1x1 kernels turn into C mask logits.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vidmatte.models.trimapnet.heads import coord_channels, group_norm


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), group_norm(cout), nn.ReLU(inplace=False)
    )


class SOLOv2MaskHead(nn.Module):
    def __init__(
        self, in_channels: int = 256, channels: int = 128, num_masks: int = 256, num_levels: int = 4
    ):
        super().__init__()
        self.num_masks = num_masks
        self.convs_all_levels = nn.ModuleList()
        for i in range(num_levels):
            level = nn.Sequential()
            if i == 0:
                level.add_module("conv0", _conv(in_channels, channels))
            for j in range(i):
                cin = (in_channels + (2 if i == num_levels - 1 else 0)) if j == 0 else channels
                level.add_module(f"conv{j}", _conv(cin, channels))
                level.add_module(
                    f"upsample{j}",
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                )
            self.convs_all_levels.append(level)
        self.conv_pred = nn.Sequential(
            nn.Conv2d(channels, num_masks, 1, bias=False),
            group_norm(num_masks),
            nn.ReLU(inplace=True),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)

    def forward(self, feats: list[Tensor]) -> Tensor:
        """[P2, P3, P4, P5] -> mask features (B, E, H/4, W/4)."""
        out = self.convs_all_levels[0](feats[0])
        last = len(self.convs_all_levels) - 1
        for i in range(1, last + 1):
            x = feats[i]
            if i == last:
                x = torch.cat([x, coord_channels(x)], dim=1)
            out = out + self.convs_all_levels[i](x)
        return self.conv_pred(out)


def dynamic_conv(features: Tensor, kernels: Tensor, num_classes: int) -> Tensor:
    """Apply N dynamic 1x1 kernels to one image's mask features.

    features: (E, h, w); kernels: (N, C*E) laid out class-major -> logits (N, C, h, w).
    One matmul instead of a conv: the same arithmetic, fewer reshapes on every device.
    """
    e, h, w = features.shape
    n = kernels.shape[0]
    out = kernels.reshape(n * num_classes, e) @ features.reshape(e, h * w)
    return out.reshape(n, num_classes, h, w)

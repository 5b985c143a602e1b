"""Feature pyramid P2..P6 over the backbone's C2..C5 (detectron2's FPN, as SOLOv2 uses it).

1x1 laterals, nearest 2x top-down sums, 3x3 outputs (both with bias, no norm), and
P6 = max-pool(kernel 1, stride 2) of P5 (detectron2's LastLevelMaxPool), so that the
official SOLOv2 weights map one to one. Inputs must be padded to a multiple of 32.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, ...] | list[int], out_channels: int = 256):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels
        )
        self.out_channels = out_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # detectron2's c2_xavier_fill
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        """C2..C5 -> [P2, P3, P4, P5, P6]."""
        prev = self.lateral[-1](feats[-1])
        outs = [self.output[-1](prev)]
        for i in range(len(feats) - 2, -1, -1):
            prev = self.lateral[i](feats[i]) + F.interpolate(prev, scale_factor=2.0, mode="nearest")
            outs.insert(0, self.output[i](prev))
        outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return outs

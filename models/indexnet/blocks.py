"""The parts of IndexNet (Lu et al., ICCV 2019): MobileNetV2 blocks, index blocks, ASPP, decoder.

Written from the paper and the official configuration (depthwise M2O index blocks,
nonlinear, with context; ASPP; 5x5 decoder convs; ReLU6; BatchNorm). Module shapes
follow the official model so that `official.py` can map its checkpoint key by key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv_bn_relu(inp: int, oup: int, k: int) -> nn.Sequential:
    """k×k conv (same padding, no bias) + BN + ReLU6."""
    return nn.Sequential(
        nn.Conv2d(inp, oup, k, 1, padding=k // 2, bias=False), nn.BatchNorm2d(oup), nn.ReLU6(True)
    )


class InvertedResidual(nn.Module):
    """MobileNetV2 block at stride 1 (IndexNet downsamples with index pooling instead).

    `conv` holds expand (0,1,2) – depthwise (3,4,5) – project (6,7), or depthwise (0,1,2) –
    project (3,4) without expansion. As in the official model, the block input is
    zero-padded by one pixel *before* the expansion and the depthwise conv is unpadded, so
    border activations match imported official weights exactly.
    """

    def __init__(self, inp: int, oup: int, expand: int) -> None:
        super().__init__()
        hid = inp * expand
        self.residual = inp == oup
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(inp, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(True)]
        layers += [
            nn.Conv2d(hid, hid, 3, 1, 0, groups=hid, bias=False),
            nn.BatchNorm2d(hid),
            nn.ReLU6(True),
            nn.Conv2d(hid, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(F.pad(x, (1, 1, 1, 1)))
        return x + y if self.residual else y


class IndexBlock(nn.Module):
    """Depthwise many-to-one (M2O) nonlinear index block with context (4x4, stride 2).

    Four branches predict, for each channel, one logit per position of a 2x2 cell from the
    whole neighbourhood of all channels. sigmoid gives the decoder index map; a softmax
    over the 4 positions gives the encoder index map, so indexed pooling is a learned,
    per-pixel weighted average (`4·avgpool(idx_en·x)`), and unpooling is `idx_de ·
    nearest-upsample(x)`.
    """

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(ch, ch, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch),
                nn.ReLU6(True),
                nn.Conv2d(ch, ch, 1, bias=False),
            )
            for _ in range(4)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        logits = torch.stack([br(x) for br in self.branches], dim=2)  # b,c,4,h/2,w/2
        dec = torch.sigmoid(logits)
        enc = torch.softmax(dec, dim=2)
        shape = (b, c * 4, h // 2, w // 2)
        return (
            F.pixel_shuffle(enc.reshape(shape), 2),
            F.pixel_shuffle(dec.reshape(shape), 2),
        )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling at output stride 32 (dilations 1, 2, 4, 8)."""

    def __init__(self, inp: int = 320, oup: int = 160, mid: int = 256) -> None:
        super().__init__()
        branches: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(inp, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(True))
        ]
        for d in (2, 4, 8):
            branches.append(
                nn.Sequential(
                    nn.Conv2d(inp, inp, 3, 1, d, d, groups=inp, bias=False),
                    nn.BatchNorm2d(inp),
                    nn.ReLU6(True),
                    nn.Conv2d(inp, mid, 1, bias=False),
                    nn.BatchNorm2d(mid),
                    nn.ReLU6(True),
                )
            )
        self.branches = nn.ModuleList(branches)
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(inp, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU6(True),
        )
        self.project = nn.Sequential(
            nn.Conv2d(mid * 5, oup, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU6(True)
        )
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: Tensor) -> Tensor:
        ys = [br(x) for br in self.branches]
        pool, conv, bn, act = self.image_pool
        g = conv(pool(x))
        if self.training and x.shape[0] == 1:
            # A 1x1 map of one sample has no batch statistics: use the running ones.
            g = F.batch_norm(
                g, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps
            )
        else:
            g = bn(g)
        ys.append(act(g).expand(-1, -1, x.shape[2], x.shape[3]))
        return self.dropout(self.project(torch.cat(ys, 1)))


class IndexedUpsample(nn.Module):
    """Decoder stage: index-guided unpooling of the coarse map, concat skip, 5x5 conv."""

    def __init__(self, inp: int, oup: int, k: int = 5) -> None:
        super().__init__()
        self.conv = conv_bn_relu(inp, oup, k)

    def forward(self, x: Tensor, skip: Tensor, idx_de: Tensor | None = None) -> Tensor:
        if idx_de is not None:
            x = idx_de * F.interpolate(x, size=skip.shape[2:], mode="nearest")
        return self.conv(torch.cat((x, skip), 1))


class Head(nn.Module):
    """Prediction: 5x5 conv-BN-ReLU6 to one channel, then a final 5x5 conv (no activation)."""

    def __init__(self, inp: int = 32, k: int = 5) -> None:
        super().__init__()
        self.conv = conv_bn_relu(inp, 1, k)
        self.out = nn.Conv2d(1, 1, k, 1, k // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.conv(x))

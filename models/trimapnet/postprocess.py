"""SOLOv2 post-processing on the device: point NMS on the grids and Matrix NMS.

Matrix NMS (SOLOv2): decay every score by its overlap with higher-scored masks at once.

All in tensor algebra (one N x N IoU matrix), so it stays on the device and needs no loop.
For candidate j, each higher-scored i of the same class contributes
decay(iou_ij) / decay(max IoU of i with anything above i); j keeps the minimum. The
compensation term stops a mask that is itself suppressed from suppressing others fully.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def matrix_nms(
    masks: Tensor,
    labels: Tensor,
    scores: Tensor,
    *,
    sum_masks: Tensor | None = None,
    sigma: float = 2.0,
    kernel: str = "gaussian",
) -> Tensor:
    """Return decayed scores for candidates **sorted by descending score**.

    masks: (N, H, W) or (N, P) binary (bool or 0/1); labels: (N,); scores: (N,).
    kernel "gaussian": exp(-sigma * iou^2); "linear": 1 - iou.
    """
    n = scores.shape[0]
    if n == 0:
        return scores
    flat = masks.reshape(n, -1).to(scores.dtype)
    if sum_masks is None:
        sum_masks = flat.sum(dim=1)
    inter = flat @ flat.T
    union = sum_masks[:, None] + sum_masks[None, :] - inter
    iou = (inter / union.clamp_min(1e-6)).triu(diagonal=1)
    same = (labels[:, None] == labels[None, :]).triu(diagonal=1)
    decay_iou = iou * same
    # max IoU of each i with any higher-scored mask of its class, broadcast along rows
    compensate = decay_iou.max(dim=0).values[:, None]
    if kernel == "gaussian":
        coeff = torch.exp(-sigma * (decay_iou**2 - compensate**2)).min(dim=0).values
    elif kernel == "linear":
        coeff = ((1 - decay_iou) / (1 - compensate).clamp_min(1e-6)).min(dim=0).values
    else:
        raise ValueError(f"unknown Matrix NMS kernel {kernel!r}")
    return scores * coeff


def point_nms(heat: Tensor, kernel: int = 2) -> Tensor:
    """Keep grid scores that are local maxima of a 2x2 window (official SOLOv2)."""
    hmax = F.max_pool2d(heat, kernel, stride=1, padding=1)
    return heat * (hmax[:, :, :-1, :-1] == heat)

"""Matting losses (Deep Image Matting, Xu et al. 2017; used by IndexNet): alpha prediction and
composition, both Charbonnier (sqrt(d² + eps²)) and averaged over the trimap's unknown region
only, since known pixels are copied from the trimap at inference and carry no signal.

`trimap` is B×1×H×W in IndexNet's {0, 0.5, 1} encoding (models/trimap.py: `unit`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidmatte.models.trimap import unit_unknown

EPS = 1e-6


def _masked_mean(err: Tensor, mask: Tensor) -> Tensor:
    mask = mask.expand_as(err)
    return (err * mask).sum() / (mask.sum() + 1.0)


def alpha_prediction_loss(pred: Tensor, gt: Tensor, trimap: Tensor) -> Tensor:
    """Mean Charbonnier distance between predicted and true alpha over unknown pixels."""
    err = torch.sqrt((pred - gt) ** 2 + EPS**2)
    return _masked_mean(err, unit_unknown(trimap))


def composition_loss(pred: Tensor, fg: Tensor, bg: Tensor, image: Tensor, trimap: Tensor) -> Tensor:
    """Mean Charbonnier distance between image and pred·fg + (1-pred)·bg over unknown pixels.

    fg, bg, image: B×3×H×W in the same range (e.g. [0,1]); pred B×1×H×W.
    """
    comp = pred * fg + (1.0 - pred) * bg
    err = torch.sqrt((comp - image) ** 2 + EPS**2)
    return _masked_mean(err, unit_unknown(trimap))

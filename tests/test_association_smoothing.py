"""TrimapSmoother on a real person mask (DAVIS-16) turned into trimap probs that move and
flicker: smoothing must reduce flicker without lagging behind the motion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vidmatte.matting.tracking.smoothing import TrimapSmoother
from vidmatte.models.errors import UsageError
from vidmatte.models.instances import boxes_and_centres


def trimap_probs(mask: torch.Tensor, band: int = 4) -> torch.Tensor:
    """(H, W) {0,1} -> (3, H, W) soft probs: unknown band by dilation minus erosion."""
    m = mask[None, None]
    dil = F.max_pool2d(m, 2 * band + 1, 1, band)
    ero = -F.max_pool2d(-m, 2 * band + 1, 1, band)
    unknown = (dil - ero)[0, 0]
    fg = ero[0, 0]
    bg = 1 - dil[0, 0]
    p = torch.stack([bg, unknown, fg]) * 0.9 + 0.1 / 3
    return p / p.sum(0, keepdim=True)


@pytest.fixture(scope="module")
def person(shared_data: Path) -> torch.Tensor:
    m = np.array(Image.open(shared_data / "vos" / "davis16_lucia" / "masks" / "00010.png"))
    m = torch.from_numpy(m > 127).float()
    return F.interpolate(m[None, None], scale_factor=0.25, mode="nearest")[0, 0]  # 120x214


def sequence(person: torch.Tensor, n: int, step: int, noise: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    clean, noisy, boxes = [], [], []
    for f in range(n):
        m = torch.roll(person, step * f, 1)
        p = trimap_probs(m)
        clean.append(p)
        band = (p[1:2] > 0.3).float()  # flicker: zero-mean log-noise in the unknown band
        flicker = p * torch.exp(noise * band * torch.randn(p.shape, generator=g))
        noisy.append(flicker / flicker.sum(0, keepdim=True))
        boxes.append(boxes_and_centres(m[None])[0][0])
    return clean, noisy, boxes


def test_smoothing_reduces_flicker_without_lag(person: torch.Tensor) -> None:
    clean, noisy, boxes = sequence(person, 12, step=3, noise=1.0)
    smoother = TrimapSmoother(weight=0.5)
    err_raw, err_smooth, err_nomc = [], [], []
    prev = None
    for f, (c, n, b) in enumerate(zip(clean, noisy, boxes, strict=True)):
        s = smoother(1, n, b, frame_index=f)
        assert s.shape == n.shape and torch.allclose(s.sum(0), torch.ones(s.shape[1:]), atol=1e-4)
        naive = n if prev is None else 0.5 * n + 0.5 * prev  # EMA without motion compensation
        prev = naive
        if f >= 3:
            err_raw.append((n - c).abs().mean())
            err_smooth.append((s - c).abs().mean())
            err_nomc.append((naive - c).abs().mean())
    raw, smooth, nomc = (float(torch.stack(e).mean()) for e in (err_raw, err_smooth, err_nomc))
    assert smooth < 0.8 * raw  # flicker damped
    assert smooth < 0.8 * nomc  # and motion compensation avoids the lag of a plain EMA


def test_no_noise_no_change_and_resets(person: torch.Tensor) -> None:
    clean, _, boxes = sequence(person, 4, step=2, noise=0.0)
    smoother = TrimapSmoother(weight=0.5)
    for f in range(4):
        s = smoother(7, clean[f], boxes[f], frame_index=f)
        # Interior pixels: a pure translation is followed exactly (edges may be resampled).
        assert (s - clean[f])[:, 10:-10, 10:-10].abs().max() < 0.05
    # After a gap the state resets: output is the input itself.
    other = trimap_probs(torch.flip(person, [1]))
    b = boxes_and_centres(torch.flip(person, [1])[None])[0][0]
    assert torch.equal(smoother(7, other, b, frame_index=10), other)
    # Different tracks never mix.
    assert torch.equal(smoother(8, clean[0], boxes[0], frame_index=11), clean[0])
    smoother.forget(7)
    smoother.reset()
    with pytest.raises(UsageError):
        smoother(1, clean[0][:2], boxes[0])
    with pytest.raises(UsageError):
        TrimapSmoother(weight=0)

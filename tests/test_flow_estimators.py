"""Optical flow: DIS and RAFT-small on a real frame moved by a known sub-pixel shift, and
the torch warp / occlusion helpers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vidmatte.models.errors import UsageError, WeightsError
from vidmatte.models.flow import (
    RaftSmall,
    backward_warp,
    dis_flow,
    estimate_flow,
    occlusion_weight,
    warp_valid_mask,
)

SHIFT = (2.5, -1.5)  # x, y in pixels


@pytest.fixture(scope="module")
def pair(shared_data):
    img = cv2.imread(str(shared_data / "vos" / "davis16_lucia" / "frames" / "00000.jpg"))
    img = np.ascontiguousarray(cv2.resize(img, (320, 184))[..., ::-1])
    m = np.float32([[1, 0, SHIFT[0]], [0, 1, SHIFT[1]]])
    moved = cv2.warpAffine(img, m, (320, 184), borderMode=cv2.BORDER_REFLECT)
    return img, moved


def _epe(flow: np.ndarray) -> float:
    inner = flow[16:-16, 16:-16]
    return float(np.hypot(inner[..., 0] - SHIFT[0], inner[..., 1] - SHIFT[1]).mean())


def test_dis_recovers_shift(pair):
    img, moved = pair
    f = dis_flow(img, moved)
    assert f.shape == (184, 320, 2) and f.dtype == np.float32
    assert _epe(f) < 0.6
    assert _epe(estimate_flow(img, moved, "dis-fast")) < 1.0
    with pytest.raises(UsageError):
        dis_flow(img, moved, preset="bogus")


@pytest.fixture
def one_thread():
    """RAFT on a shared 2-core machine: one thread avoids OpenMP oversubscription stalls."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_raft_small_checkpoint_recovers_shift(pair, shared_weights, one_thread):
    raft = RaftSmall.from_checkpoint(shared_weights / "optical_flow" / "raft-small.pth")
    t = [torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255 for x in pair]
    f = raft(t[0], t[1], iters=8)  # 184 is not a multiple of 8: padding path
    assert f.shape == (1, 2, 184, 320)
    assert _epe(f[0].permute(1, 2, 0).numpy()) < 0.5


def test_raft_rejects_wrong_checkpoint(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"w": torch.zeros(3)}, bad)
    with pytest.raises(WeightsError):
        RaftSmall.from_checkpoint(bad)
    with pytest.raises(WeightsError):
        RaftSmall.from_checkpoint(tmp_path / "missing.pth")


def test_backward_warp_integer_shift_and_grad():
    x = torch.arange(2 * 1 * 5 * 6, dtype=torch.float32).reshape(2, 1, 5, 6).requires_grad_()
    flow = torch.zeros(2, 2, 5, 6)
    flow[:, 0] = 1.0  # x_{t+1} content sits 1 px to the right
    out = backward_warp(x, flow)
    assert torch.allclose(out[..., :, :-1], x[..., :, 1:])
    assert torch.all(out[..., :, -1] == 0)  # read from outside the frame
    valid = warp_valid_mask(flow)
    assert valid[..., :-1].all() and not valid[..., -1].any()
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_occlusion_weight():
    a = torch.rand(1, 3, 4, 4)
    assert torch.allclose(occlusion_weight(a, a), torch.ones(1, 1, 4, 4))
    b = a + 1.0
    v = occlusion_weight(a, b)
    assert v.shape == (1, 1, 4, 4)
    assert torch.allclose(v, torch.full_like(v, float(np.exp(-1.0))))
    assert occlusion_weight(a, b, scale=20).max() < 1e-8

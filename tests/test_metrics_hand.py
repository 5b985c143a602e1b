"""Metrics on small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidmatte.models.errors import InputError
from vidmatte.models.trimap import trimap_to_classes
from vidmatte.training.metrics import (
    TrimapIoU,
    alpha_metrics,
    boundary_f,
    dtssd,
    mask_j,
    temporal_consistency,
    temporal_consistency_pairs,
    trimap_iou,
    video_alpha_metrics,
)


def test_mask_j_hand():
    gt = np.zeros((4, 4), np.uint8)
    gt[0, :3] = 255  # 3 px
    pred = np.zeros((4, 4), np.float32)
    pred[0, 2:4] = 0.9  # 2 px, 1 shared
    assert mask_j(pred, gt) == pytest.approx(1 / 4)
    assert mask_j(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    assert mask_j(gt, gt) == 1.0
    with pytest.raises(InputError):
        mask_j(np.zeros((3, 3)), gt)


def test_boundary_f_tolerance():
    gt = np.zeros((100, 100), bool)
    gt[30:70, 30:70] = True
    shifted = np.roll(gt, 3, axis=1)
    assert boundary_f(gt, gt) == 1.0
    assert boundary_f(shifted, gt, bound_th=4) == 1.0  # within 4 px
    f1 = boundary_f(shifted, gt, bound_th=1)
    assert 0.2 < f1 < 1.0  # only the horizontal edges still match
    assert boundary_f(np.zeros_like(gt), gt) == 0.0
    assert boundary_f(np.zeros_like(gt), np.zeros_like(gt)) == 1.0


def test_trimap_iou_hand():
    gt = trimap_to_classes(np.array([[0, 0, 128], [128, 255, 255]], np.uint8))
    pred = trimap_to_classes(np.array([[0, 128, 128], [128, 255, 0]], np.uint8))
    r = trimap_iou(pred, gt)
    assert r["background"] == pytest.approx(1 / 3)  # {0,0},{0,1},{1,2}: 1 shared of 3
    assert r["unknown"] == pytest.approx(2 / 3)
    assert r["foreground"] == pytest.approx(1 / 2)
    assert r["mean"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    # a class absent from both is NaN and not averaged; 0/128/255 values are refused
    idx = trimap_iou(np.array([[0, 1]]), np.array([[0, 1]]))
    assert idx["mean"] == 1.0 and math.isnan(idx["foreground"])
    with pytest.raises(InputError, match="trimap_to_classes"):
        trimap_iou(np.array([[0, 128]], np.uint8), np.array([[0, 128]], np.uint8))
    acc = TrimapIoU()
    acc.update(pred, gt)
    acc.update(gt, gt)
    assert acc.compute()["foreground"] == pytest.approx((1 + 2) / (2 + 2))


def test_alpha_metrics_hand():
    gt = np.zeros((20, 20), np.float32)
    gt[5:15, 5:15] = 1.0
    assert alpha_metrics(gt, gt) == {"MAD": 0.0, "MSE": 0.0, "Grad": 0.0, "Conn": 0.0}
    pred = gt.copy()
    pred[0, :4] = 0.5  # 4 px off by 0.5 over 400 px
    r = alpha_metrics(pred, gt)
    assert r["MAD"] == pytest.approx(2.0 / 400 * 1e3)
    assert r["MSE"] == pytest.approx(1.0 / 400 * 1e3)
    assert r["Grad"] > 0 and r["Conn"] > 0
    tri = np.full((20, 20), 255, np.uint8)
    tri[0, :8] = 128  # unknown band of 8 px holds all the error
    rt = alpha_metrics(pred, gt, tri)
    assert rt["MAD"] == pytest.approx(2.0 / 8 * 1e3)
    # uint8 input is read as 0..255
    assert alpha_metrics((gt * 255).astype(np.uint8), gt)["MAD"] == 0.0


def test_dtssd_and_video_hand():
    g0, g1 = np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32)
    p0, p1 = g0.copy(), g1.copy()
    p1[0, 0] = 0.2  # prediction changes by 0.2 at one of 4 px, truth is static
    assert dtssd(p1, p0, g1, g0) == pytest.approx(np.sqrt(0.04 / 4) * 1e2)
    v = video_alpha_metrics([p0, p1], [g0, g1])
    assert v["dtSSD"] == pytest.approx(10.0)
    assert v["MESSDdt"] > 0
    still = video_alpha_metrics([g0, g1], [g0, g1])
    assert still["dtSSD"] == 0.0 and still["MESSDdt"] == 0.0


def test_tc_hand():
    a = np.zeros((10, 10), np.uint8)
    a[2:6, 2:6] = 1
    b = np.roll(a, 2, axis=1)  # the object moved 2 px right
    zero = np.zeros((10, 10, 2), np.float32)
    move = zero.copy()
    move[..., 0] = 2.0
    assert temporal_consistency([a, a], [zero]) == 100.0
    # with the true motion the warped prediction lines up again
    assert temporal_consistency([a, b], [move]) == pytest.approx(100.0)
    # without it: fg IoU 8/24, bg IoU (warp of b at p) - hand count below
    fg = 8 / 24
    bg = (100 - 24) / (100 - 8)
    assert temporal_consistency([a, b], [zero]) == pytest.approx(50 * (fg + bg))
    assert temporal_consistency_pairs([a, b, b], [zero, zero]) == pytest.approx(
        [50 * (fg + bg), 100.0]
    )
    with pytest.raises(InputError):
        temporal_consistency([a], [])

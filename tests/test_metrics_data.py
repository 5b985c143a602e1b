"""Metrics on real ground truth from ../shared/data: GT vs GT is perfect, degraded GT is
worse, and more degradation is worse still."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidmatte.training.eval.data import read_map, read_rgb, read_sequences
from vidmatte.training.metrics import (
    alpha_metrics,
    boundary_f,
    mask_j,
    sequence_flows,
    temporal_consistency,
    to_binary,
    video_alpha_metrics,
)


@pytest.fixture(scope="module")
def spring(shared_data):
    (seq,) = read_sequences(shared_data / "matting" / "c1k_spring-289527_1920_15")
    (k,) = seq.frame_keys()
    # half size keeps the test fast; metrics are scale-consistent within the test
    shrink = lambda m: cv2.resize(m, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)  # noqa: E731
    tri = cv2.resize(
        read_map(seq.trimaps[k]), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_NEAREST
    )
    return shrink(read_map(seq.files[k])), tri


def test_alpha_gt_vs_gt_is_zero_and_degradation_ordered(spring):
    gt, tri = spring
    assert alpha_metrics(gt, gt, tri) == {"MAD": 0.0, "MSE": 0.0, "Grad": 0.0, "Conn": 0.0}
    blur = [alpha_metrics(cv2.GaussianBlur(gt, (k, k), 0), gt, tri) for k in (3, 9, 21)]
    shift = [alpha_metrics(np.roll(gt, s, axis=1), gt, tri) for s in (1, 2, 3)]
    for series in (blur, shift):
        for name in ("MAD", "MSE", "Grad", "Conn"):
            vals = [m[name] for m in series]
            assert 0 < vals[0] < vals[1] < vals[2], (name, vals)


def test_video_alpha_temporal_errors(spring):
    gt, _ = spring
    gts = [np.roll(gt, 2 * i, axis=1) for i in range(3)]  # GT moving right 2 px per frame
    assert video_alpha_metrics(gts, gts)["dtSSD"] == 0.0
    flicker = [gts[0], cv2.GaussianBlur(gts[1], (9, 9), 0), gts[2]]
    stale = [gts[0], gts[0], gts[0]]  # frozen prediction
    f, s = video_alpha_metrics(flicker, gts), video_alpha_metrics(stale, gts)
    assert f["dtSSD"] > 0 and f["MESSDdt"] > 0
    assert s["dtSSD"] > 0 and s["MESSDdt"] > 0


@pytest.fixture(scope="module")
def lucia(shared_data):
    (seq,) = read_sequences(shared_data / "vos" / "davis16_lucia")
    keys = seq.frame_keys()[:4]
    small = lambda m, i: cv2.resize(m, (427, 240), interpolation=i)  # noqa: E731
    masks = [to_binary(small(read_map(seq.files[k]), cv2.INTER_NEAREST)) for k in keys]
    frames = [small(read_rgb(seq.frames[k]), cv2.INTER_AREA) for k in keys]
    return masks, frames


def test_masks_j_f_on_davis(lucia):
    masks, _ = lucia
    gt = masks[0]
    assert mask_j(gt, gt) == 1.0 and boundary_f(gt, gt) == 1.0
    js = [mask_j(np.roll(gt, s, axis=1), gt) for s in (2, 8, 24)]
    fs = [boundary_f(np.roll(gt, s, axis=1), gt) for s in (2, 8, 24)]
    assert 1.0 > js[0] > js[1] > js[2]
    assert fs[0] == pytest.approx(1.0) and fs[0] > fs[1] > fs[2]


def test_tc_on_davis(lucia):
    masks, frames = lucia
    flows = sequence_flows(frames)
    tc_gt = temporal_consistency(masks, flows)
    assert 85.0 < tc_gt <= 100.0
    rng = np.random.default_rng(0)
    jitter = [np.roll(m, int(rng.integers(-12, 13)), axis=1) for m in masks]
    assert temporal_consistency(jitter, flows) < tc_gt
    frozen = [masks[0]] * len(masks)  # a person who stopped: consistent with itself
    assert temporal_consistency(frozen, [np.zeros_like(f) for f in flows]) == 100.0

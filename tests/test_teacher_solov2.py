"""The SOLOv2 teacher wrapper: persons only, masks at the frame's size, no trimaps.

Runs only once `vidmatte.models.trimapnet.official` exists. No official SOLOv2 checkpoint is in
../shared (over the fetch limit), so the wrapper is checked on a binary-mode TrimapNet with
untrained heads at a low threshold: the plumbing, not the accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip(
    "vidmatte.models.trimapnet.official", reason="models/trimapnet/official.py not there yet"
)

from vidmatte.models.errors import WeightsError  # noqa: E402
from vidmatte.models.teachers.base import Teacher, load_teacher  # noqa: E402
from vidmatte.models.teachers.solov2 import Solov2Teacher, load_solov2_teacher  # noqa: E402
from vidmatte.models.trimapnet import PostprocessConfig, TrimapNetConfig, build_trimapnet  # noqa: E402


def test_wrapper_keeps_persons_only():
    torch.manual_seed(0)
    cfg = TrimapNetConfig(
        mode="binary",
        input_short_side=64,
        fpn_channels=16,
        ins_channels=16,
        num_instance_convs=1,
        mask_channels=16,
        num_masks=8,
        num_grids=(8, 6, 4, 4, 2),
        # untrained heads score ~prior_prob: let every class through to test the filter
        postprocess=PostprocessConfig(score_thr=0.001, update_thr=0.0, max_per_img=50),
    )
    net = build_trimapnet(cfg, pretrained_backbone=False).eval()
    rgb = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    raw = net.detect(x)[0]
    assert (raw.labels != 0).any()  # the network proposes other COCO classes too
    teacher = Solov2Teacher(net, score_threshold=0.0)
    assert isinstance(teacher, Teacher)
    out = teacher(rgb)
    assert out.trimaps is None and out.masks.dtype == torch.float32
    assert out.masks.shape[1:] == (120, 160)
    assert (out.labels == 0).all() and len(out) == int((raw.labels == 0).sum())


def test_missing_checkpoint_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError):
        load_solov2_teacher(tmp_path / "none.pth")
    with pytest.raises(WeightsError):
        load_teacher(None, detector="solov2")

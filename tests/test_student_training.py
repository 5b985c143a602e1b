"""Issue 18's training parts: human ground truth (CIHP unions split per person), datasets
that refuse validation clips, concatenated datasets, the shared forward of the temporal
loss, and the validation report's ID switches against reference tracks."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from vidmatte.models.errors import InputError
from vidmatte.training.data.augment import AugmentConfig
from vidmatte.training.data.datasets import (
    ConcatVideoDataset,
    TripletConfig,
    VideoTripletDataset,
    collate,
    import_mask_sequence,
)
from vidmatte.training.data.human_gt import split_union


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_split_union_follows_gt_shape_and_teacher_identity(shared_data):
    lab = cv2.imread(
        str(shared_data / "train/instances/cihp_pgn_samples/labels/0002190.png"),
        cv2.IMREAD_UNCHANGED,
    )
    union = lab > 0
    h, w = union.shape
    # two "teacher" people: left and right halves of the union's box, each a bit too small
    ys, xs = np.nonzero(union)
    mid = int(np.median(xs))
    t = np.zeros((2, h, w), np.float32)
    t[0, ys.min() + 5 : ys.max() - 5, xs.min() + 5 : mid - 5] = 0.9
    t[1, ys.min() + 5 : ys.max() - 5, mid + 5 : xs.max() - 5] = 0.9
    parts = split_union(union, t)
    assert len(parts) == 2
    assert not (parts[0] & parts[1]).any()  # disjoint
    assert np.array_equal(parts[0] | parts[1], union)  # GT decides the shape: nothing lost
    assert np.nonzero(parts[0])[1].mean() < mid < np.nonzero(parts[1])[1].mean()
    # no teacher person: the union stays one instance
    assert len(split_union(union, np.zeros((0, h, w), np.float32))) == 1


def _dataset(tmp_path, shared_data, seqs):
    out = tmp_path / "ds"
    for base, name in seqs:
        d = shared_data / base / name
        import_mask_sequence(d / "frames", d / "masks", out, name, max_frames=3, max_side=160)
    return out


def test_datasets_refuse_validation_clips(tmp_path, shared_data):
    ok = _dataset(tmp_path / "a", shared_data, [("train/vos", "davis16_hike")])
    aug = AugmentConfig(out_size=(64, 64))
    ds = VideoTripletDataset(ok, aug, TripletConfig(flow="none"))
    assert len(ds) == 3
    bad = _dataset(tmp_path / "b", shared_data, [("vos", "davis16_lucia")])
    with pytest.raises(InputError, match="validation item"):
        VideoTripletDataset(bad, aug, TripletConfig(flow="none"))


def test_concat_dataset_repeats_and_is_keyed(tmp_path, shared_data):
    a = _dataset(tmp_path / "a", shared_data, [("train/vos", "davis16_hike")])
    b = _dataset(tmp_path / "b", shared_data, [("train/vos", "davis16_swing")])
    aug = AugmentConfig(out_size=(64, 64))
    da = VideoTripletDataset(a, aug, TripletConfig(flow="none"))
    db = VideoTripletDataset(b, aug, TripletConfig(flow="none"), seed=1)
    cat = ConcatVideoDataset([da, db], [1, 2])
    assert len(cat) == len(da) + 2 * len(db) == 9
    # the same key gives the same sample; parts are reached in order
    s1, s2 = cat[(3, 4)], cat[(3, 4)]
    assert torch.equal(s1["images"], s2["images"])
    assert torch.equal(cat[(0, 0)]["images"], da[(0, 0)]["images"])
    assert torch.equal(cat[(0, 3)]["images"], db[(0, 0)]["images"])


@pytest.mark.parametrize("neighbours", ["both", "next"])
def test_shared_forward_gives_the_same_losses(tmp_path, shared_data, neighbours):
    """The training step's one forward of all frames (labelled frame's features reused by the
    temporal loss) computes exactly what separate forwards compute."""
    from vidmatte.models.trimapnet import TrimapNetConfig, build_trimapnet
    from vidmatte.training.losses import LossConfig
    from vidmatte.training.trimap_training import TrimapLoss

    root = _dataset(tmp_path, shared_data, [("train/vos", "davis16_hike")])
    aug = AugmentConfig(out_size=(96, 96))
    ds = VideoTripletDataset(root, aug, TripletConfig(flow="none", window=1))
    batch = collate([ds[(0, i)] for i in range(2)])
    batch["flows"] = torch.randn_like(batch["flows"])  # any flow: both paths warp the same
    torch.manual_seed(0)
    cfg = TrimapNetConfig(
        backbone="yolox_nano", num_grids=(12, 10, 8, 6, 4), fpn_channels=32, ins_channels=32
    )
    model = build_trimapnet(cfg, pretrained_backbone=False).train()
    loss_cfg = replace(LossConfig(), neighbours=neighbours)

    class Plain(torch.nn.Module):  # no losses_from_features: the separate-forward path
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *a, **k):
            return self.m(*a, **k)

        def instance_logits(self, *a, **k):
            return self.m.instance_logits(*a, **k)

    shared = TrimapLoss(model, loss_cfg, "dis")(batch)
    plain = TrimapLoss(Plain(model), loss_cfg, "dis")(batch)
    assert float(shared["loss_temporal"].detach()) > 0
    for k in ("loss_cate", "loss_mask", "loss_temporal", "loss"):
        assert torch.allclose(shared[k], plain[k], rtol=1e-5, atol=1e-6), k


def test_id_switches_against_reference():
    from vidmatte.training.eval.validation_report import TrackRun, id_switches_against

    a = np.zeros((20, 20), bool)
    a[2:10, 2:8] = True
    b = np.zeros((20, 20), bool)
    b[2:10, 12:18] = True
    ref = {1: {t: a for t in range(4)}, 2: {t: b for t in range(4)}}
    run = TrackRun(masks={7: {0: a, 1: a, 2: b, 3: b}, 8: {0: b, 1: b, 2: a, 3: a}})
    r = id_switches_against(run, ref)
    assert r["id_switches"] == 2 and r["matched"] == 1.0  # the two people swap once
    steady = TrackRun(masks={7: {t: a for t in range(4)}, 8: {t: b for t in range(4)}})
    assert id_switches_against(steady, ref)["id_switches"] == 0

"""Training building blocks on real frames: augmentation keeps triplets and flows aligned,
sampling is deterministic and resumable, the temporal loss behaves on tensors, the data
mix honours its ratio, the flow cache round-trips, the schedule follows the paper, the CLI
parses configs, IndexNet trains a step on composites."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from vidmatte.models.errors import UsageError
from vidmatte.models.flow import dis_flow, warp_numpy
from vidmatte.training.data.augment import (
    AugmentConfig,
    apply_flow,
    apply_image,
    apply_label,
    sample_params,
)
from vidmatte.training.data.datasets import (
    MattingCompositeDataset,
    MixedDataset,
    ResumableSampler,
    TripletConfig,
    VideoTripletDataset,
    collate,
    import_mask_sequence,
    read_rgb,
)
from vidmatte.training.data.flow_cache import FlowCache
from vidmatte.training.losses import instance_temporal_loss, neighbour_points, pool_flow
from vidmatte.training.trainer import OptimConfig, lr_factor


@pytest.fixture(scope="module")
def lucia(shared_data: Path) -> Path:
    return shared_data / "vos" / "davis16_lucia"


@pytest.fixture(scope="module")
def small_ds(shared_data: Path, tmp_path_factory) -> Path:
    # a training sequence: the trimap datasets refuse validation items (validation.toml)
    hike = shared_data / "train" / "vos" / "davis16_hike"
    root = tmp_path_factory.mktemp("parts_ds")
    return import_mask_sequence(
        hike / "frames", hike / "masks", root, "hike", max_frames=8, max_side=160
    )


def _photo_err(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32))[valid].mean())


@pytest.mark.parametrize("flip", [False, True])
def test_augmented_flow_still_aligns_frames(lucia: Path, flip: bool):
    f0 = read_rgb(lucia / "frames" / "00010.jpg")[::2, ::2].copy()
    f1 = read_rgb(lucia / "frames" / "00012.jpg")[::2, ::2].copy()
    flow = dis_flow(f0, f1)
    h, w = f0.shape[:2]
    rng = np.random.default_rng(3)
    cfg = AugmentConfig(out_size=(128, 160), flip_p=1.0 if flip else 0.0)
    p = sample_params(rng, h, w, cfg)
    assert p.flip == flip
    a0, a1 = apply_image(f0, p), apply_image(f1, p)
    half = flow[::2, ::2] * 0.5  # a half-size flow in its own pixels, as the cache stores it
    af = apply_flow(half, p, (h, w))
    warped = warp_numpy(a1, af)
    valid = (apply_label(np.zeros((h, w), np.uint8), p) == 0)[..., None].repeat(3, -1)
    aligned, raw = _photo_err(a0, warped, valid), _photo_err(a0, a1, valid)
    assert aligned < 0.75 * raw, (aligned, raw)


def test_triplets_are_deterministic_and_share_one_transform(small_ds: Path):
    aug = AugmentConfig(out_size=(96, 96))
    ds = VideoTripletDataset(small_ds, aug, TripletConfig(window=2, flow_max_side=160), seed=1)
    a, b = ds[(2, 3)], ds[(2, 3)]
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["flows"], b["flows"])
    assert not torch.equal(ds[(3, 3)]["images"], a["images"])  # another epoch, another draw
    s = a
    assert s["images"].shape == (3, 3, 96, 96) and s["flows"].shape == (2, 2, 96, 96)
    assert set(torch.unique(s["trimaps"]).tolist()) <= {0, 1, 2, 255}
    # the labelled instance's mask agrees with its trimap (fg inside, bg outside)
    m, t = s["masks"][0].bool(), s["trimaps"][0]
    assert (t[m] != 0).all() and (t[~m] != 2).all()
    # frame_f / frame_b are within the window, before/after the labelled frame
    rng = np.random.default_rng(0)
    for fi in range(8):
        f, b2 = ds.neighbours(rng, 0, fi)
        assert 1 <= abs(fi - f) <= 2 and 1 <= abs(b2 - fi) <= 2
        if 0 < fi < 7:
            assert f < fi < b2


def test_sampler_resumes_at_any_position_and_splits_ranks():
    full = list(itertools.islice(iter(ResumableSampler(10, seed=4)), 37))
    resumed = list(itertools.islice(iter(ResumableSampler(10, seed=4, start=23)), 14))
    assert resumed == full[23:]
    assert sorted(i for _, i in full[:10]) == list(range(10))  # an epoch is a permutation
    r0 = [i for _, i in itertools.islice(iter(ResumableSampler(10, 4, rank=0, world=2)), 5)]
    r1 = [i for _, i in itertools.islice(iter(ResumableSampler(10, 4, rank=1, world=2)), 5)]
    assert sorted(r0 + r1) == list(range(10))


def test_mix_ratio_and_matting_composites(small_ds: Path, shared_data: Path):
    aug = AugmentConfig(out_size=(96, 96))
    video = VideoTripletDataset(small_ds, aug, TripletConfig(flow="none"))
    bgs = [small_ds / "frames" / "hike" / "000000.jpg"]
    matting = MattingCompositeDataset(
        [shared_data / "matting" / "c1k_spring-289527_1920_15"], aug, bgs
    )
    mix = MixedDataset(video, matting, matting_ratio=0.25)
    n_matting = sum(mix[(0, i)]["source"] == "matting" for i in range(len(mix)))
    assert len(mix) == len(video) + n_matting and n_matting / len(mix) == pytest.approx(0.25, 0.2)
    s = mix[(0, len(mix) - 1)]
    assert s["source"] == "matting" and not s["temporal"]
    assert s["alpha"].shape == (1, 96, 96) and set(torch.unique(s["trimaps"]).tolist()) <= {
        0,
        1,
        2,
        255,
    }
    # backgrounds vary between samples: two composites of the same item differ
    c0, _, _, _ = matting.composite((0, 0))
    c1, _, _, _ = matting.composite((1, 0))
    assert np.abs(c0.astype(int) - c1.astype(int)).mean() > 5
    b = collate([mix[(0, 0)], s])
    assert b["images"].shape == (2, 3, 3, 96, 96) and b["temporal"].tolist() == [True, False]


def test_temporal_loss_zero_when_consistent_positive_otherwise():
    torch.manual_seed(0)
    h, w, dx = 24, 32, 3
    logits_t = torch.randn(2, 3, h, w, requires_grad=True)
    # frame t' = frame t moved dx px right: flow_{t->t'} = (+dx, 0), P_t'(x + dx) = P_t(x)
    logits_n = torch.zeros(2, 3, h, w)
    logits_n[..., dx:] = logits_t.detach()[..., : w - dx]
    flow = torch.zeros(2, h, w)
    flow[0] = dx
    weight = torch.ones(1, h, w)
    weight[..., w - dx :] = 0  # sources outside the frame
    zero = instance_temporal_loss(logits_t, logits_n, flow, weight)
    assert float(zero.detach()) < 1e-6
    moved = instance_temporal_loss(logits_t, logits_n, torch.zeros(2, h, w), weight)
    assert float(moved.detach()) > 0.01
    moved.backward()
    assert logits_t.grad is not None and logits_t.grad.abs().sum() > 0
    # instance centres follow the flow; stride-4 pooling divides vectors by 4
    pts = neighbour_points(torch.tensor([[5.0, 5.0], [30.0, 10.0]]), flow)
    assert pts.tolist() == [[8.0, 5.0], [31.0, 10.0]]  # clamped to the frame
    assert pool_flow(flow[None] * 4, (h // 4, w // 4))[0, 0].mean().item() == pytest.approx(dx)


def test_flow_cache_roundtrip(small_ds: Path, tmp_path: Path):
    frames = [read_rgb(small_ds / "frames" / "hike" / f"{i:06d}.jpg") for i in range(3)]
    cache = FlowCache(tmp_path / "cache", max_side=80)
    a = cache.get("lucia", 0, 2, lambda i: frames[i])
    p = cache.path("lucia", 0, 2)
    assert p.is_file() and np.load(p).dtype == np.float16 and max(a.shape[:2]) == 80
    b = cache.get("lucia", 0, 2, lambda i: pytest.fail("cache hit expected"))
    assert np.array_equal(a, b)
    assert cache.precompute([("lucia", 0, 1), ("lucia", 0, 2)], lambda v, i: frames[i]) == 1


def test_lr_schedule_follows_the_paper():
    o = OptimConfig(lr=5e-4, warmup_steps=10, warmup_factor=0.1)
    assert lr_factor(0, 120, o) == pytest.approx(0.1)
    assert lr_factor(10, 120, o) == 1.0 and lr_factor(69, 120, o) == 1.0
    assert lr_factor(70, 120, o) == pytest.approx(0.1)  # /10 at 7/12 of the schedule


def test_fit_cli_config_and_errors(tmp_path: Path):
    from vidmatte.training.cli import main
    from vidmatte.training.fit import apply_override, build, resolve_config
    from vidmatte.training.trainer import load_toml

    cfg = load_toml(resolve_config("recipe"))
    assert cfg["optim"]["lr"] == 5e-4 and cfg["loss"]["temporal_weight"] == 0.1
    apply_override(cfg, "run.steps=7")
    apply_override(cfg, "data.dataset=/nowhere")
    assert cfg["run"]["steps"] == 7 and cfg["data"]["dataset"] == "/nowhere"
    cfg["run"]["bogus"] = 1
    with pytest.raises(UsageError, match="bogus"):
        build(cfg)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "task = 'trimap'\n[data]\ndataset = '" + str(tmp_path / "none") + "'\n"
        "[run]\nout_dir = '" + str(tmp_path / "run") + "'\n"
    )
    assert main(["fit", "--config", str(bad), "--quiet"]) == 3  # InputError: no manifest
    assert main(["fit", "--config", "no-such-config"]) == 2


def test_indexnet_trains_on_composites(shared_data: Path, tmp_path: Path):
    from vidmatte.training.fit import build

    threads = torch.get_num_threads()
    cfg = {
        "task": "indexnet",
        "data": {
            "matting": [str(shared_data / "matting" / "c1k_spring-289527_1920_15")],
            "out_size": [64, 64],
            "eval_items": 1,
        },
        "run": {
            "out_dir": str(tmp_path / "ix"),
            "steps": 2,
            "batch_size": 2,
            "num_workers": 0,
            "ckpt_every": 0,
            "threads": 1,
            "amp": False,
        },
        "optim": {"lr": 0.01, "warmup_steps": 0},
    }
    try:
        trainer, task = build(cfg, quiet=True)
        s = task.build_train_set(0, 1)[(0, 0)]
        comp = s["fg"] * s["alpha"] + s["bg"] * (1 - s["alpha"])
        assert torch.allclose(comp, s["image"])  # composited after augmentation: exact
        res = trainer.fit()
    finally:
        torch.set_num_threads(threads)
    assert res.step == 2 and np.isfinite(res.last_loss)
    assert {"MAD", "MSE"} <= set(res.metrics)
    assert (tmp_path / "ix" / "model" / "config.json").is_file()

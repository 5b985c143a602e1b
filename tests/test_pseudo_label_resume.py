"""`vidmatte-train pseudo-label` end to end on a short real cut of the three dancers, with
both teachers (whole-video, the default, and --per-frame): dataset layout and manifest,
track IDs, preview, resume after an interruption (same result as a straight run), settings
mismatch refused."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidmatte.matting.io.video import open_video
from vidmatte.models.trimap import IGNORE_LEVEL
from vidmatte.training.cli import main as train_main
from vidmatte.training.data.datasets import read_manifest
from vidmatte.training.release.model_folder import write_model_folder

EVERY, WINDOW, N = 5, 1, 28
#: extra options per teacher; the whole-video tests leave D2Go out (its load takes seconds)
MODES = {"per-frame": ("--per-frame",), "whole-video": ("--no-d2go",)}


@pytest.fixture(scope="module")
def cut(videos_dir: Path, tmp_path_factory) -> Path:
    """The first N frames of the dancers clip as a frame folder at 480×270."""
    d = tmp_path_factory.mktemp("dancers")
    with open_video(videos_dir / "maggie_three_dancers.mp4") as r:
        for f in r.frames(0, N):
            small = cv2.resize(f.rgb, (480, 270), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(d / f"{f.index:04d}.png"), small[..., ::-1])
    return d


def label(cut: Path, out: Path, shared_weights: Path, *extra: str) -> int:
    argv = ["pseudo-label", str(cut), "--out", str(out), "--teacher-dir", str(shared_weights)]
    argv += ["--every", str(EVERY), "--window", str(WINDOW), *extra]
    return train_main(argv)


@pytest.fixture(scope="module", params=list(MODES))
def mode(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def straight_by_mode() -> dict:
    return {}


@pytest.fixture(scope="module")
def straight(mode, straight_by_mode, cut, shared_weights, tmp_path_factory) -> Path:
    """A straight run of `mode` (per-frame for the tests that take no mode)."""
    if mode not in straight_by_mode:
        out = tmp_path_factory.mktemp("straight") / "ds"
        assert label(cut, out, shared_weights, "--preview", *MODES[mode]) == 0
        straight_by_mode[mode] = out
    return straight_by_mode[mode]


@pytest.fixture(scope="module")
def per_frame(straight_by_mode, cut, shared_weights, tmp_path_factory) -> Path:
    if "per-frame" not in straight_by_mode:
        out = tmp_path_factory.mktemp("straight") / "ds"
        assert label(cut, out, shared_weights, "--preview", *MODES["per-frame"]) == 0
        straight_by_mode["per-frame"] = out
    return straight_by_mode["per-frame"]


def test_layout_and_manifest(straight, mode, cut, capsys):
    m = json.loads((straight / "manifest.json").read_text())
    name = "whole-video" if mode == "whole-video" else "yolox"
    assert m["schema"] == 1 and m["teacher"]["name"].startswith(name)
    assert m["settings"]["every"] == EVERY and m["settings"]["window"] == WINDOW
    (v,) = m["videos"]
    assert v["name"] == cut.name and (v["width"], v["height"]) == (480, 270) and v["fps"] > 0
    idx = [f["index"] for f in v["frames"]]
    assert idx == sorted(idx)
    labelled = [f for f in v["frames"] if f["labelled"]]
    assert [f["index"] for f in labelled] == list(range(EVERY // 2, N, EVERY))
    for f in v["frames"]:
        assert (straight / f["file"]).is_file()
        assert f["file"] == f"frames/{v['name']}/{f['index']:06d}.jpg"
        near = min(abs(f["index"] - g["index"]) for g in labelled)
        assert near <= WINDOW  # only labelled frames and their neighbours are kept
        if not f["labelled"]:
            assert f["instances"] == []
    for f in labelled:
        ids = sorted(i["track_id"] for i in f["instances"])
        assert ids == [1, 2, 3], (f["index"], ids)
        for i in f["instances"]:
            assert i["mask"] == f"masks/{v['name']}/{f['index']:06d}_t{i['track_id']:02d}.png"
            mask = cv2.imread(str(straight / i["mask"]), cv2.IMREAD_GRAYSCALE)
            tri = cv2.imread(str(straight / i["trimap"]), cv2.IMREAD_GRAYSCALE)
            assert mask.shape == tri.shape == (270, 480)
            assert set(np.unique(mask)) == {0, 255}
            levels = {0, 128, 255} | ({IGNORE_LEVEL} if mode == "whole-video" else set())
            assert {0, 128, 255} <= set(np.unique(tri)) <= levels
            assert (mask[tri == 255] == 255).all()
            assert 0.3 < i["score"] <= 1 and len(i["box"]) == 4
    # the same dancer keeps her ID: her box centre moves little between labelled frames
    cx = {}
    for f in labelled:
        for i in f["instances"]:
            cx.setdefault(i["track_id"], []).append((i["box"][0] + i["box"][2]) / 2)
    assert all(np.abs(np.diff(x)).max() < 40 for x in cx.values()), cx
    # the training side reads it
    (entry,) = read_manifest(straight)
    assert sum(f.labelled for f in entry.frames) == len(labelled)
    # preview contact sheet
    prev = cv2.imread(str(straight / "preview.png"))
    assert prev is not None and prev.shape[1] >= 4 * 300


def test_interrupted_run_resumes_to_the_same_dataset(
    straight, mode, cut, shared_weights, tmp_path, capsys
):
    out = tmp_path / "ds"
    opts = MODES[mode]
    assert label(cut, out, shared_weights, "--max-frames", "14", *opts) == 0
    part = json.loads((out / "manifest.json").read_text())["videos"][0]
    assert part["complete"] is False
    done = [f["index"] for f in part["frames"] if f["labelled"]]
    assert done and max(done) < 14
    err = capsys.readouterr().err
    assert "ETA" in err  # progress on stderr
    # lose the last labelled frame's outputs too, as a crash might
    last = max(done)
    for p in (out / "masks" / cut.name).glob(f"{last:06d}_*"):
        p.unlink()
    if mode == "whole-video":  # and a stage-1 cache file, as a crash before its rename
        cached = sorted((out / "cache" / cut.name).glob("*.npz"))
        assert len(cached) == 14
        cached[-3].unlink()
    assert label(cut, out, shared_weights, *opts) == 0
    a = json.loads((straight / "manifest.json").read_text())
    b = json.loads((out / "manifest.json").read_text())
    assert b["videos"][0]["complete"] is True
    assert a["videos"][0]["frames"] == b["videos"][0]["frames"]  # same files, ids, scores
    for f in a["videos"][0]["frames"]:
        for i in f["instances"]:
            for key in ("mask", "trimap"):
                x = cv2.imread(str(straight / i[key]), cv2.IMREAD_GRAYSCALE)
                y = cv2.imread(str(out / i[key]), cv2.IMREAD_GRAYSCALE)
                assert y is not None and (x == y).all()
    # a finished dataset reruns as a no-op
    assert not (out / "cache" / cut.name).exists()  # stage-1 cache removed when complete
    mtime = (out / "parts" / f"{cut.name}.json").stat().st_mtime_ns
    assert label(cut, out, shared_weights, *opts) == 0
    assert (out / "parts" / f"{cut.name}.json").stat().st_mtime_ns == mtime
    # other settings on the same dataset are refused with a one-line usage error
    assert label(cut, out, shared_weights, "--max-side", "320", *opts) == 2
    assert "other settings" in capsys.readouterr().err


def test_user_errors_are_one_line(cut, tmp_path, shared_weights, capsys, monkeypatch):
    monkeypatch.delenv("VIDMATTE_TEACHER_DIR", raising=False)
    assert train_main(["pseudo-label", str(cut), "--out", str(tmp_path / "a")]) == 5
    assert (
        train_main(["pseudo-label", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "b")]) == 3
    )
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    assert label(cut, tmp_path / "c", shared_weights) == 6
    assert label(cut, tmp_path / "d", shared_weights, "--every", "0") == 2
    assert label(cut, tmp_path / "e", shared_weights, "--tta") == 2  # --tta needs --per-frame
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and all(e.startswith("vidmatte-train: error: ") for e in err)


def test_distil_alpha_makes_a_matting_folder(per_frame, tmp_path, capsys):
    """The classical matter's alpha on each labelled person, as IndexNet training data:
    soft only inside the teacher's band, exact 0/1 outside it, resumable."""
    from vidmatte.training.data.augment import AugmentConfig
    from vidmatte.training.data.datasets import MattingCompositeDataset, read_grey

    out = tmp_path / "distil"
    assert train_main(["distil-alpha", str(per_frame), "--out", str(out), "--limit", "3"]) == 0
    alphas = sorted((out / "alpha").glob("*.png"))
    assert len(alphas) == 3
    assert [p.name for p in sorted((out / "image").glob("*.png"))] == [p.name for p in alphas]
    labels = {
        f"{v.name}_{f.index:06d}_t{i.track_id:02d}": i
        for v in read_manifest(per_frame)
        for f in v.frames
        for i in f.instances
    }
    for p in alphas:
        alpha = read_grey(p)
        crop_tri = read_grey(per_frame / labels[p.stem].trimap)
        assert alpha.shape[0] <= crop_tri.shape[0] and alpha.shape[1] <= crop_tri.shape[1]
        soft = (alpha > 5) & (alpha < 250)
        assert soft.mean() > 0.002  # a real soft edge, not a copied mask
        assert alpha.max() == 255 and alpha.min() == 0
    # resume: nothing recomputed; the rest are added
    assert train_main(["distil-alpha", str(per_frame), "--out", str(out), "--quiet"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "(3 already there" in line
    ds = MattingCompositeDataset([out], AugmentConfig(out_size=(64, 64)))
    sample = ds[0]
    assert tuple(sample["images"].shape[-2:]) == (64, 64) and sample["alpha"].max() > 0.5


def test_calibrate_writes_the_person_threshold_the_pipeline_uses(per_frame, tmp_path, capsys):
    import torch

    from vidmatte.matting.sources import NetworkSource
    from vidmatte.models.trimapnet import TrimapNet, TrimapNetConfig, build_trimapnet
    from vidmatte.models.weights.folder import sha256_file

    torch.manual_seed(0)
    cfg = TrimapNetConfig(fpn_channels=32, ins_channels=32, num_instance_convs=1,
                          mask_channels=16, num_masks=16, num_grids=(12, 10, 8, 6, 4))  # fmt: skip
    folder = write_model_folder(build_trimapnet(cfg, pretrained_backbone=False), tmp_path / "m")
    digest = sha256_file(folder / "model.safetensors")
    argv = ["calibrate", str(folder), str(per_frame), "--frames", "3"]
    assert train_main([*argv, "--dry-run"]) == 0
    assert "person threshold" in capsys.readouterr().out
    assert TrimapNet.from_folder(folder).config.postprocess.person_thr == 0.5  # untouched
    assert train_main(argv) == 0
    line = capsys.readouterr().out.splitlines()[0]
    thr = float(line.split()[2].rstrip(":"))
    assert 0.05 <= thr <= 0.95
    model = TrimapNet.from_folder(folder)  # the sha256 check still passes: tensors untouched
    assert model.config.postprocess.person_thr == thr
    assert sha256_file(folder / "model.safetensors") == digest
    src = NetworkSource(model, torch.device("cpu"), False)
    assert src.min_score == thr


def test_held_out_clips_are_skipped(videos_dir, tmp_path, shared_weights, capsys):
    """pseudo-label refuses validation items itself (training/configs/validation.toml)."""
    held = videos_dir / "maggie_three_dancers.mp4"
    argv = ["pseudo-label", str(held), "--out", str(tmp_path / "a"), "--teacher-dir"]
    assert train_main([*argv, str(shared_weights)]) == 3
    err = capsys.readouterr().err
    assert "skipping maggie_three_dancers.mp4: held out" in err
    assert err.strip().splitlines()[-1].startswith("vidmatte-train: error: ")
    assert not (tmp_path / "a").exists()  # nothing written

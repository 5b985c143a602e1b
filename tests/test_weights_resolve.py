"""Weight resolution (explicit -> env -> assets -> Hub cache -> Hub), folder checks and the
generic module loader, with real model folders written by save_model_folder."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from vidmatte.models.errors import WeightsError
from vidmatte.models.weights import resolution as W
from vidmatte.models.weights.folder import TENSORS_NAME, read_config
from vidmatte.training.release.model_folder import save_model_folder

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def small_net(width: int = 8) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, 3, 1),
    )


def make_folder(folder: Path, architecture: str = "trimapnet", width: int = 8) -> Path:
    cfg = {"architecture": architecture, "arch": {"width": width}, "classes": ["person"]}
    return save_model_folder(folder, cfg, small_net(width).state_dict())


def build_hub_cache(cache: Path, repo_id: str, src: Path, *, ref: str | None) -> Path:
    """The standard HF cache layout: blobs/, snapshots/<commit>/ (symlinks), refs/<ref>."""
    import hashlib

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / f.name).symlink_to(Path("../..") / "blobs" / blob.name)
    if ref is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(COMMIT)
    return snap


pytestmark = pytest.mark.usefixtures("isolated_weights")


def test_contract_constants():
    assert W.DEFAULT_MODELS == ("trimapnet", "indexnet")
    assert W.HUB_REPOS["trimapnet"][0] == "vidmatte/vidmatte-trimapnet-mnv2"
    assert W.HUB_REPOS["indexnet"][0] == "vidmatte/vidmatte-indexnet"
    assert all(rev for _, rev in W.HUB_REPOS.values())


def test_nothing_available_is_one_line_exit_5(tmp_path):
    assert W.find_weights("trimapnet") is None
    with pytest.raises(WeightsError) as e:
        W.resolve_weights("trimapnet")
    msg = str(e.value)
    assert e.value.exit_code == 5 and "\n" not in msg
    assert "HF_HUB_OFFLINE" in msg and "weights download trimapnet" in msg
    with pytest.raises(WeightsError, match="unknown model"):
        W.resolve_weights("nope")


def test_explicit_env_assets_order(tmp_path, monkeypatch):
    a = make_folder(tmp_path / "assets" / "weights" / "trimapnet")
    assert W.assets_weights_dir() == tmp_path / "assets" / "weights"
    r = W.resolve_weights("trimapnet")
    assert (r.source, r.folder) == ("assets", a)
    assert r.sha256 == read_config(a)["sha256"] and r.config["architecture"] == "trimapnet"

    env = make_folder(tmp_path / "env" / "trimapnet", width=4)
    monkeypatch.setenv("VIDMATTE_WEIGHTS", str(tmp_path / "env"))  # a folder of folders
    r = W.resolve_weights("trimapnet")
    assert (r.source, r.folder) == ("env", env)

    exp = make_folder(tmp_path / "explicit", width=2)
    r = W.resolve_weights("trimapnet", exp)
    assert (r.source, r.folder) == ("explicit", exp)


def test_env_model_folder_serves_only_its_architecture(tmp_path, monkeypatch):
    tri = make_folder(tmp_path / "tri")
    idx = make_folder(tmp_path / "assets" / "weights" / "indexnet", "indexnet")
    monkeypatch.setenv("VIDMATTE_WEIGHTS", str(tri))
    assert W.resolve_weights("trimapnet").folder == tri
    assert W.resolve_weights("indexnet").folder == idx  # not broken by the trimapnet folder
    monkeypatch.setenv("VIDMATTE_INDEXNET_WEIGHTS", str(tri))
    with pytest.raises(WeightsError, match="'trimapnet' weights, but 'indexnet'"):
        W.resolve_weights("indexnet")


def test_explicit_path_problems_are_reported_not_skipped(tmp_path):
    make_folder(tmp_path / "assets" / "weights" / "trimapnet")
    with pytest.raises(WeightsError, match="does not exist"):
        W.find_weights("trimapnet", tmp_path / "typo")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="not a model folder"):
        W.resolve_weights("trimapnet", tmp_path / "empty")
    idx = make_folder(tmp_path / "idx", "indexnet")
    with pytest.raises(WeightsError, match="'indexnet' weights"):
        W.resolve_weights("trimapnet", idx)


@pytest.mark.parametrize("pin", ["tag", "commit"])
def test_hub_cache_resolves_offline(tmp_path, monkeypatch, pin):
    src = make_folder(tmp_path / "published")
    (src / "README.md").write_text("card\n")
    repo_id, revision = W.HUB_REPOS["trimapnet"]
    if pin == "commit":
        monkeypatch.setitem(W.HUB_REPOS, "trimapnet", (repo_id, COMMIT))
    snap = build_hub_cache(
        tmp_path / "hf-cache", repo_id, src, ref=revision if pin == "tag" else None
    )
    r = W.resolve_weights("trimapnet")
    assert r.source == "hub-cache" and r.folder == snap
    assert W.verify_folder(r.folder)["sha256"] == r.sha256
    # the other model is not in the cache: still a clean "missing"
    assert W.find_weights("indexnet") is None
    # a different pinned revision does not pick up this snapshot
    monkeypatch.setitem(W.HUB_REPOS, "trimapnet", (repo_id, "v9.9.9"))
    assert W.find_weights("trimapnet") is None


def test_no_download_when_not_allowed(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(WeightsError, match="weights download"):
        W.resolve_weights("indexnet", allow_download=False)


def test_verify_folder_catches_corruption_and_truncation(tmp_path):
    f = make_folder(tmp_path / "m")
    assert W.verify_folder(f)["architecture"] == "trimapnet"
    t = f / TENSORS_NAME
    good = t.read_bytes()
    t.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        W.verify_folder(f)
    t.write_bytes(good[: len(good) - 100])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        W.verify_folder(f)
    # header check alone (no checksum) also sees truncation
    with pytest.raises(WeightsError, match="truncated"):
        W.read_safetensors_header(t)
    t.write_bytes(good)
    W.read_safetensors_header(t)


def test_load_module_round_trip_and_mismatches(tmp_path):
    f = make_folder(tmp_path / "m", width=8)
    m = W.load_module(f, "trimapnet", lambda cfg: small_net(cfg["arch"]["width"]))
    ref = small_net(8).state_dict()
    assert all(torch.equal(ref[k], v) for k, v in m.state_dict().items())
    assert not m.training

    with pytest.raises(WeightsError, match="'trimapnet' weights, but 'indexnet'"):
        W.load_module(f, "indexnet", lambda cfg: small_net())
    with pytest.raises(WeightsError, match=r"tensor '0.weight' has shape \(8, 3, 3, 3\)"):
        W.load_module(f, "trimapnet", lambda cfg: small_net(4))
    with pytest.raises(WeightsError, match="missing tensor '4.weight'"):
        W.load_module(f, "trimapnet", lambda cfg: nn.Sequential(*small_net(8), nn.Conv2d(3, 3, 1)))
    with pytest.raises(WeightsError, match=r"unexpected tensor '3\.(weight|bias)'"):
        W.load_module(f, "trimapnet", lambda cfg: nn.Sequential(*list(small_net(8))[:3]))


def test_registry_builds_lazily_through_from_folder(tmp_path, monkeypatch):
    pkg = tmp_path / "plug"
    pkg.mkdir()
    (pkg / "tiny_arch.py").write_text(
        textwrap.dedent(
            """
            from torch import nn
            from vidmatte.models.weights.resolution import load_module

            class Tiny(nn.Sequential):
                @classmethod
                def from_folder(cls, folder):
                    return load_module(folder, "tiny", lambda cfg: cls(nn.Conv2d(3, 2, 1)))
            """
        )
    )
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setitem(W.MODEL_ARCHITECTURE, "tiny", "tiny")
    W.register_architecture("tiny", "tiny_arch:Tiny.from_folder")
    try:
        torch.manual_seed(1)
        conv = nn.Conv2d(3, 2, 1)
        save_model_folder(
            tmp_path / "tiny",
            {"architecture": "tiny"},
            {"0." + k: v for k, v in conv.state_dict().items()},
        )  # noqa: E501
        module, res = W.load_model("tiny", tmp_path / "tiny", allow_download=False)
        assert res.source == "explicit"
        assert torch.equal(module[0].weight, conv.weight)
    finally:
        W.ARCHITECTURES.pop("tiny", None)
        sys.modules.pop("tiny_arch", None)
    with pytest.raises(WeightsError, match="unknown architecture"):
        W.builder_for("nope")


def test_default_architectures_are_registered():
    assert set(W.DEFAULT_MODELS) <= set(W.ARCHITECTURES)
    for target in W.ARCHITECTURES.values():
        assert target.endswith(".from_folder")


def test_hub_cache_dir_follows_environment(tmp_path, monkeypatch):
    assert W.hub_cache_dir() == tmp_path / "hf-cache"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert W.hub_cache_dir() == tmp_path / "home" / "hub"
    assert W.hub_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not W.hub_offline()
    shutil.rmtree(tmp_path / "home", ignore_errors=True)

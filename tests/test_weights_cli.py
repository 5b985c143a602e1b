"""`vidmatte-cli weights ...` through its main(argv): exit codes and one-line errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from vidmatte.matting.weights_cli import main
from vidmatte.models.weights import resolution as W
from vidmatte.models.weights.folder import CONFIG_NAME, TENSORS_NAME
from vidmatte.training.release.model_folder import save_model_folder

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def make_folder(folder: Path, architecture: str = "trimapnet") -> Path:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.Conv2d(16, 3, 1))
    return save_model_folder(folder, {"architecture": architecture}, net.state_dict())


pytestmark = pytest.mark.usefixtures("isolated_weights")


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("vidmatte-cli weights: error: "), err
    return err


def test_verify_good_corrupt_truncated_and_bad_config(tmp_path, capsys):
    f = make_folder(tmp_path / "m")
    assert main(["verify", str(f)]) == 0
    assert read_sha(f)[:12] in capsys.readouterr().out

    t = f / TENSORS_NAME
    good = t.read_bytes()
    t.write_bytes(good[:200] + bytes([good[200] ^ 0xFF]) + good[201:])  # one flipped byte
    assert main(["verify", str(f)]) == 5
    assert "corrupt or truncated" in _err_line(capsys)

    t.write_bytes(good[: len(good) // 2])  # truncated download
    assert main(["verify", str(f)]) == 5
    assert "corrupt or truncated" in _err_line(capsys)

    t.write_bytes(good)
    cfg = json.loads((f / CONFIG_NAME).read_text())
    (f / CONFIG_NAME).write_text(json.dumps({**cfg, "format_version": 99}))
    assert main(["verify", str(f)]) == 5
    assert "format version 99" in _err_line(capsys)

    (f / CONFIG_NAME).write_text("{not json")
    assert main(["verify", str(f)]) == 5
    assert "not valid JSON" in _err_line(capsys)


def read_sha(folder: Path) -> str:
    return json.loads((folder / CONFIG_NAME).read_text())["sha256"]


def test_verify_names_list_and_path(tmp_path, capsys):
    tri = make_folder(tmp_path / "assets" / "weights" / "trimapnet")
    # indexnet is missing: verify of both fails (exit 5), trimapnet alone passes
    assert main(["verify"]) == 5
    out = capsys.readouterr()
    assert "ok     trimapnet" in out.out and "FAILED indexnet" in out.out
    assert main(["verify", "trimapnet", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["ok"] and row["source"] == "assets" and row["sha256"] == read_sha(tri)

    assert main(["list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["trimapnet"]["source"] == "assets"
    assert rows["indexnet"]["source"] is None and rows["indexnet"]["hub"].startswith("vidmatte/")
    assert main(["list"]) == 0
    assert "missing" in capsys.readouterr().out

    assert main(["path"]) == 0
    assert capsys.readouterr().out.strip() == str(tri)
    assert main(["path", "indexnet"]) == 5
    assert "no indexnet weights" in _err_line(capsys)
    assert main(["path", "--weights", str(tmp_path / "nowhere")]) == 5
    assert "does not exist" in _err_line(capsys)


def test_hub_cache_listed_and_verified_offline(tmp_path, capsys):
    src = make_folder(tmp_path / "src", "indexnet")
    repo_id, revision = W.HUB_REPOS["indexnet"]
    repo = tmp_path / "hf-cache" / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for f in src.iterdir():
        blob = repo / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        blob.write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(Path("../../blobs") / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / revision).write_text(COMMIT)

    assert main(["path", "indexnet"]) == 0
    assert capsys.readouterr().out.strip() == str(snap)
    assert main(["verify", "indexnet"]) == 0
    assert "hub-cache" in capsys.readouterr().out
    # download skips what the cache already holds, even offline
    assert main(["download", "indexnet"]) == 0
    assert "already cached" in capsys.readouterr().out
    # a corrupted cached blob is caught by verify, and download points at --force
    blob = (snap / TENSORS_NAME).resolve()
    blob.write_bytes(blob.read_bytes()[:-10])
    assert main(["verify", "indexnet"]) == 5
    assert "corrupt or truncated" in _err_line(capsys)
    assert main(["download", "indexnet"]) == 5
    assert "download --force indexnet" in _err_line(capsys)
    # an interrupted download (blob gone) is "not cached", not an error
    blob.unlink()
    assert W.find_weights("indexnet") is None
    assert main(["path", "indexnet"]) == 5
    assert "no indexnet weights" in _err_line(capsys)


def test_download_offline_and_usage_errors(capsys):
    assert main(["download", "trimapnet"]) == 5
    assert "HF_HUB_OFFLINE" in _err_line(capsys)
    assert main(["download", "nope"]) == 5
    assert "unknown model" in _err_line(capsys)
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    assert main(["--help"]) == 0


def test_help_does_not_import_torch():
    code = (
        "import sys; from vidmatte.matting.weights_cli import main; rc = main(['--help']); "
        "assert rc == 0; assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'huggingface_hub' not in sys.modules"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "download" in r.stdout and "verify" in r.stdout

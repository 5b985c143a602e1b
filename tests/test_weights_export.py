"""`vidmatte-train export` (checkpoint -> folder -> module, exact) and `publish` (card, dry run)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torchvision.models import mobilenet_v2

from vidmatte.models.weights import resolution as W
from vidmatte.models.weights.folder import TENSORS_NAME, read_config
from vidmatte.models.weights.resolution import load_module, verify_folder
from vidmatte.training.cli import main as train_main
from vidmatte.training.release.model_card import DataSource, build_model_card

ARCH = {"width_mult": 0.35, "num_classes": 3}
TEST_ARCH = "mnv2-test"  # not registered: export verifies the folder generically


def build(cfg: dict) -> torch.nn.Module:
    return mobilenet_v2(**cfg["arch"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """A trainer-format checkpoint of a real (small) MobileNetV2 after one update."""
    torch.manual_seed(0)
    net = mobilenet_v2(**ARCH)
    net.train()
    with torch.no_grad():
        net(torch.randn(2, 3, 32, 32))  # BN running stats + counters move
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    ckpt = tmp_path_factory.mktemp("ckpt") / "step_00100.pt"
    torch.save(
        {
            "model": net.state_dict(),
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.01}]},
            "config": {
                "model": {"architecture": TEST_ARCH, **ARCH, "init": "", "classes": ["person"]},
                "data": {"root": "/secret/path"},
                "lr": 0.01,
            },
            "step": 100,
        },
        ckpt,
    )
    return ckpt, {k: v.clone() for k, v in net.state_dict().items()}


def test_export_then_load_is_exact(tmp_path, trained, capsys):
    ckpt, state = trained
    out = tmp_path / "folder"
    assert train_main(["export", str(ckpt), str(out)]) == 0
    assert "exported" in capsys.readouterr().out
    cfg = verify_folder(out, expected_architecture=TEST_ARCH)
    assert cfg["arch"] == ARCH and cfg["training"]["step"] == 100
    assert cfg["classes"] == ["person"]
    assert "data" not in cfg and "lr" not in cfg and "init" not in cfg["arch"]  # training-only
    module = load_module(out, TEST_ARCH, build)
    loaded = module.state_dict()
    assert loaded.keys() == state.keys()
    for k, v in state.items():
        assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v), k
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_export_fp16_halves_and_keeps_integers(tmp_path, trained):
    ckpt, state = trained
    full, half = tmp_path / "full", tmp_path / "half"
    assert train_main(["export", str(ckpt), str(full)]) == 0
    assert train_main(["export", str(ckpt), str(half), "--fp16"]) == 0
    assert read_config(half)["dtype"] == "float16"
    size_ratio = (half / TENSORS_NAME).stat().st_size / (full / TENSORS_NAME).stat().st_size
    assert 0.45 < size_ratio < 0.55
    module = load_module(half, TEST_ARCH, build)
    for k, v in module.state_dict().items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 and torch.equal(v, state[k].half().float()), k
        else:
            assert torch.equal(v, state[k]), k  # num_batches_tracked stays int64


def test_export_refuses_overwrite_and_needs_architecture(tmp_path, trained, capsys):
    ckpt, state = trained
    out = tmp_path / "folder"
    out.mkdir()
    assert train_main(["export", str(ckpt), str(out)]) == 6
    assert "--overwrite" in capsys.readouterr().err
    assert train_main(["export", str(ckpt), str(out), "--overwrite"]) == 0
    verify_folder(out)

    ddp = tmp_path / "ddp.pt"  # DDP prefixes, no architecture in the config
    torch.save({"model": {"module." + k: v for k, v in state.items()}, "config": {}}, ddp)
    assert train_main(["export", str(ddp), str(tmp_path / "x")]) == 2
    assert "--architecture" in capsys.readouterr().err
    assert train_main(["export", str(ddp), str(tmp_path / "x"), "--architecture", "other"]) == 0
    assert read_config(tmp_path / "x")["architecture"] == "other"
    m = load_module(tmp_path / "x", "other", lambda cfg: mobilenet_v2(**ARCH))
    assert torch.equal(m.features[0][0].weight, state["features.0.0.weight"])


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_export_refuses_code_and_damaged_checkpoints(tmp_path, trained, capsys):
    ckpt, state = trained
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"model": state, "config": {"architecture": "x"}, "hook": _RunsCode(marker)}, evil)
    assert train_main(["export", str(evil), str(tmp_path / "o1")]) == 5
    err = capsys.readouterr().err
    assert "refused" in err and err.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "o1").exists()

    cut = tmp_path / "cut.pt"
    cut.write_bytes(ckpt.read_bytes()[:5000])
    assert train_main(["export", str(cut), str(tmp_path / "o2")]) == 5
    assert "truncated or corrupt" in capsys.readouterr().err


def test_model_card_content():
    cfg = {
        "architecture": "trimapnet",
        "format_version": 1,
        "dtype": "float16",
        "sha256": "ab" * 32,
        "input": {"size": [512, 512], "mean": [0.485, 0.456, 0.406]},
        "training": {"step": 1234},
    }
    metrics = {"davis-val": {"mIoU": 0.81234, "TC": 93.1}, "fps": 41.5}
    data = [
        DataSource("COCO persons", "CC-BY-4.0", "https://cocodataset.org"),
        DataSource("Dance videos", "research-only, non-commercial", notes="pseudo-labelled"),
    ]
    card = build_model_card(cfg, repo_id="org/model", metrics=metrics, data=data)
    front = card.split("---")[1]
    assert "license: other" in front and "library_name: vidmatte" in front
    assert "research / non-commercial" in card and "Dance videos" in card
    assert "| davis-val | mIoU | 0.8123 |" in card and "| - | fps | 41.5 |" in card
    assert "ab" * 32 in card and "| training steps | 1234 |" in card
    permissive = build_model_card(cfg, repo_id="org/model", data=data[:1], licence="mit")
    assert "license: mit" in permissive and "non-commercial" not in permissive
    assert "No evaluation metrics" in permissive


def test_publish_dry_run(tmp_path, trained, capsys):
    ckpt, _ = trained
    out = tmp_path / "folder"
    assert train_main(["export", str(ckpt), str(out), "--fp16"]) == 0
    (tmp_path / "m.json").write_text(json.dumps({"val": {"mIoU": 0.7}}))
    (tmp_path / "d.json").write_text(json.dumps([{"name": "DAVIS", "licence": "BSD"}]))
    capsys.readouterr()
    args = ["publish", str(out), "--dry-run", "--metrics", str(tmp_path / "m.json")]
    args += ["--repo-id", "vidmatte/vidmatte-trimapnet-mnv2"]
    args += ["--data", str(tmp_path / "d.json"), "--card-out", str(tmp_path / "card.md")]
    assert train_main(args) == 0
    text = capsys.readouterr().out
    assert (
        "dry run: would upload to https://huggingface.co/vidmatte/vidmatte-trimapnet-mnv2" in text
    )
    for name in ("config.json", "model.safetensors", "README.md"):
        assert name in text
    assert read_config(out)["sha256"] in text
    assert "| val | mIoU | 0.7 |" in (tmp_path / "card.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]

    assert train_main(["publish", str(out), "--dry-run"]) == 2  # no repo known for this arch
    assert "--repo-id" in capsys.readouterr().err
    (out / TENSORS_NAME).write_bytes((out / TENSORS_NAME).read_bytes()[:-8])
    assert train_main(["publish", str(out), "--dry-run", "--repo-id", "a/b"]) == 5  # damaged
    assert train_main(["publish", str(tmp_path / "nowhere"), "--dry-run"]) == 5


def test_export_goes_through_a_registered_architecture(tmp_path, trained, monkeypatch, capsys):
    """A registered, importable architecture must accept the tensors and supplies its config."""
    ckpt, state = trained
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "mnv2_plugin.py").write_text(
        textwrap.dedent(
            f"""
            from torchvision.models import mobilenet_v2
            from vidmatte.models.weights.resolution import load_module

            class Net:
                @classmethod
                def from_folder(cls, folder):
                    m = load_module(folder, "mnv2-reg", lambda cfg: mobilenet_v2(**{ARCH!r}))
                    m.folder_config = lambda: {{
                        "architecture": "mnv2-reg", "arch": {ARCH!r},
                        "input": {{"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}},
                    }}
                    return m
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "plug"))
    monkeypatch.setitem(W.ARCHITECTURES, "mnv2-reg", "mnv2_plugin:Net.from_folder")
    out = tmp_path / "reg"
    assert train_main(["export", str(ckpt), str(out), "--architecture", "mnv2-reg"]) == 0
    assert "checked by mnv2_plugin:Net.from_folder" in capsys.readouterr().out
    cfg = verify_folder(out)
    assert cfg["input"]["std"] == [0.25, 0.25, 0.25] and cfg["training"]["step"] == 100
    assert "classes" not in cfg  # the network's canonical config replaced the generic one

    # tensors that do not fit the registered network: refused, nothing written
    bad = tmp_path / "bad.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "config": {}}, bad)
    assert train_main(["export", str(bad), str(tmp_path / "o"), "--architecture", "mnv2-reg"]) == 5
    assert "missing tensor" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    sys.modules.pop("mnv2_plugin", None)


def test_export_takes_a_run_folder_and_a_fine_tunes_init_architecture(tmp_path, trained):
    """A run folder exports its last checkpoint; a fine-tune's config names only `init`,
    so the architecture comes from the init folder."""
    ckpt, state = trained
    base = tmp_path / "base"
    assert train_main(["export", str(ckpt), str(base)]) == 0
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    obj = torch.load(ckpt, weights_only=True)
    obj["config"] = {"model": {"init": str(base), "freeze": 2}}
    for step in (50, 200):
        obj["step"] = step
        torch.save(obj, run / "checkpoints" / f"step_{step:08d}.pt")
    out = tmp_path / "tuned"
    assert train_main(["export", str(run), str(out), "--fp16"]) == 0
    cfg = verify_folder(out, expected_architecture=TEST_ARCH)
    assert cfg["arch"] == ARCH and cfg["training"]["step"] == 200
    assert cfg["training"]["checkpoint"] == "step_00000200.pt"
    (tmp_path / "empty_run").mkdir()
    assert train_main(["export", str(tmp_path / "empty_run"), str(tmp_path / "x")]) == 2

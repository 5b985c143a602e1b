"""Third-party checkpoints: real files from ../shared load, anything that could run code or
is damaged is refused with one line (WeightsError, exit 5)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from vidmatte.models.errors import WeightsError
from vidmatte.models.weights.checkpoints import (
    load_checkpoint_object,
    load_third_party_checkpoint,
    strip_prefix,
)


class _RunsCode:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(WeightsError) as e:
        load_third_party_checkpoint(path)
    msg = str(e.value)
    assert "\n" not in msg and e.value.exit_code == 5
    for w in words:
        assert w in msg, msg
    return msg


def test_official_raft_small_legacy_format_loads(shared_weights):
    sd = load_third_party_checkpoint(shared_weights / "optical_flow" / "raft-small.pth")
    assert len(sd) == 106
    assert all(k.startswith("module.") for k in sd)
    assert sum(v.numel() for v in sd.values()) == 990_162
    assert not any(k.startswith("module.") for k in strip_prefix(sd, "module."))


def test_pickled_full_model_is_refused(shared_weights):
    # yolov5n.pt pickles the model classes themselves: refused, never imported
    _refused(shared_weights / "coco_person_detection" / "yolov5n.pt", "models.yolo.Model")


def test_torchscript_archive_is_refused(shared_weights):
    p = shared_weights / "coco_person_detection"
    _refused(p / "d2go_faster_rcnn_fbnetv3a_dsmask_C4_int8_torchscript.pt", "TorchScript")


@pytest.mark.parametrize("form", ["raw-pickle", "torch-zip", "torch-legacy"])
def test_code_running_pickle_is_refused_and_never_runs(tmp_path, form):
    marker = tmp_path / "PWNED"
    evil = _RunsCode(marker)
    path = tmp_path / "evil.pth"
    if form == "raw-pickle":
        path.write_bytes(pickle.dumps(evil, protocol=2))
    else:
        torch.save(
            {"state_dict": {"w": torch.zeros(2)}, "x": evil},
            path,
            _use_new_zipfile_serialization=form == "torch-zip",
        )
    _refused(path, "refused", "system")
    assert not marker.exists()
    # the same object through the trainer-checkpoint path
    with pytest.raises(WeightsError):
        load_checkpoint_object(path)
    assert not marker.exists()


def test_truncated_files_are_refused(tmp_path, shared_weights):
    raw = (shared_weights / "optical_flow" / "raft-small.pth").read_bytes()
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(raw[: len(raw) // 2])
    _refused(legacy, "truncated")
    torch.save({"a": torch.randn(4096)}, tmp_path / "full.pt")
    z = (tmp_path / "full.pt").read_bytes()
    for cut in (len(z) // 2, len(z) - 30):
        p = tmp_path / f"zip{cut}.pt"
        p.write_bytes(z[:cut])
        _refused(p, "corrupt")


def test_not_a_checkpoint_empty_and_missing(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(2000))
    _refused(junk, "not a PyTorch checkpoint")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    _refused(empty, "empty")
    _refused(tmp_path / "nope.pth", "not found")


def test_wrappers_and_numpy_values(tmp_path):
    # mmdet-style wrapper with metadata, numpy scalar and array: tensors come back
    p = tmp_path / "wrapped.pth"
    torch.save(
        {
            "meta": {"epoch": 12, "best_loss": np.float64(0.25), "cfg": "text"},
            "state_dict": {
                "conv.weight": torch.randn(2, 3, 1, 1),
                "conv.bias": np.arange(2, dtype=np.float32),
            },
        },
        p,
    )
    sd = load_third_party_checkpoint(p)
    assert set(sd) == {"conv.weight", "conv.bias"}
    assert torch.equal(sd["conv.bias"], torch.tensor([0.0, 1.0]))
    q = tmp_path / "no_tensors.pth"
    torch.save({"epoch": 3, "note": "nothing"}, q)
    _refused(q, "no tensors")


def test_safetensors_file_is_accepted(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "w.safetensors"
    save_file({"a": torch.ones(3)}, str(p))
    assert torch.equal(load_third_party_checkpoint(p)["a"], torch.ones(3))

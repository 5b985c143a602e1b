"""TrackStore: recording association results on real masks and the GUI's edits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vidmatte.matting.tracking.association import AssociationConfig, Associator
from vidmatte.matting.tracking.tracks import TrackStore
from vidmatte.models.errors import UsageError
from vidmatte.models.instances import Instances, boxes_and_centres


@pytest.fixture(scope="module")
def store(shared_data: Path, tmp_path_factory) -> TrackStore:
    """Two real runners (DAVIS-17) walking apart for 10 frames; payloads are alpha files."""
    label = torch.from_numpy(
        np.array(Image.open(shared_data / "instances" / "davis17_testdev_running" / "mask.png"))
    )
    label = F.interpolate(label[None, None].float(), scale_factor=0.25, mode="nearest")[0, 0]
    out = tmp_path_factory.mktemp("alphas")
    assoc = Associator(AssociationConfig(confirm_hits=1))
    s = TrackStore()
    for f in range(10):
        masks = torch.stack([torch.roll(label == 1, -f, 1), torch.roll(label == 2, f, 1)]).float()
        boxes, centres = boxes_and_centres(masks)
        inst = Instances(
            torch.tensor([0.9, 0.7]), torch.zeros(2, dtype=torch.long), masks, boxes, centres
        )
        a = assoc.update(f, inst)
        paths = []
        for t, m in zip(a.track_ids, masks, strict=True):
            p = out / f"{t}_{f:06d}.png"
            Image.fromarray((m.numpy() * 255).astype(np.uint8)).save(p)
            paths.append(p)
        s.add_frame(f, a.track_ids, inst.scores.tolist(), paths)
    return s


def test_records_and_manifest(store: TrackStore) -> None:
    assert [t.id for t in store.tracks()] == [1, 2]
    man = store.to_manifest()
    assert man[0] == {
        "id": 1,
        "name": "person_01",
        "first": 0,
        "last": 9,
        "frames": 10,
        "mean_score": pytest.approx(0.9),
    }
    assert man[1]["mean_score"] == pytest.approx(0.7)
    frame3 = store.frame(3)
    assert set(frame3) == {1, 2} and frame3[1].name == "1_000003.png" and frame3[1].exists()
    assert store.frame(42) == {}


def test_split_then_merge_restores(store: TrackStore) -> None:
    s = store.copy()
    new = s.split(2, 6)
    assert new == 3
    info = {t.id: t for t in s.tracks()}
    assert (info[2].first, info[2].last, info[3].first, info[3].last) == (0, 5, 6, 9)
    assert s.frame(7)[3] == store.frame(7)[2]  # payload moved, untouched
    assert s.name(3) == "person_03"
    s.merge(2, 3)
    assert s.to_manifest() == store.to_manifest()
    assert s.payloads(2) == store.payloads(2)
    # The original was not touched by edits on its copy.
    assert [t.id for t in store.tracks()] == [1, 2]


def test_merge_conflicts(store: TrackStore) -> None:
    s = store.copy()
    with pytest.raises(UsageError, match="both are in 10 frame"):
        s.merge(1, 2)
    assert len(s) == 2  # nothing changed
    s.merge(2, 1, on_conflict="score")  # track 1 scores higher in every frame
    assert s.ids() == [2] and s.frame(0)[2] == store.frame(0)[1]
    assert s.name(2) == "person_02"
    t = store.copy()
    t.merge(2, 1, on_conflict="keep")
    assert t.frame(0)[2] == store.frame(0)[2]
    with pytest.raises(UsageError):
        t.merge(2, 2)
    with pytest.raises(UsageError):
        t.merge(2, 1, on_conflict="whatever")


def test_delete_rename_and_errors(store: TrackStore) -> None:
    s = store.copy()
    s.rename(1, "  Alice ")
    assert s.name(1) == "Alice" and s.to_manifest()[0]["name"] == "Alice"
    with pytest.raises(UsageError, match="already used"):
        s.rename(2, "Alice")
    with pytest.raises(UsageError, match="empty"):
        s.rename(2, "   ")
    files = list(s.payloads(2).values())
    s.delete(2)
    assert s.ids() == [1] and 2 not in s and all(f.exists() for f in files)
    with pytest.raises(UsageError, match="no track with id 2"):
        s.delete(2)
    for bad in (lambda: s.split(1, 0), lambda: s.split(1, 10), lambda: s.split(7, 3)):
        with pytest.raises(UsageError):
            bad()
    with pytest.raises(UsageError):
        s.add(0, 0, 0.5)
    # A split after a delete never reuses a deleted id.
    assert s.split(1, 5) == 3


def test_add_replaces_and_add_frame_checks_lengths() -> None:
    s = TrackStore()
    s.add(4, 2, 0.5, "a")
    s.add(4, 2, 0.7, "b")
    assert s.frame(4) == {2: "b"} and s.tracks()[0].frames == 1
    assert s.scores(2) == {4: 0.7}
    with pytest.raises(UsageError):
        s.add_frame(5, [1, None], [0.9])

"""The offline teacher on real frames: DAVIS lucia masks (J), the three dancers (3 people,
stable IDs through the associator), TTA merging, D2Go recall option, file lookup errors."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vidmatte.matting.io.video import open_video
from vidmatte.matting.tracking.association import AssociationConfig, Associator
from vidmatte.models.errors import WeightsError
from vidmatte.models.instances import Instances, boxes_and_centres
from vidmatte.models.teachers.base import (
    ENV_TEACHER_DIR,
    POSE_FILE,
    YOLOX_FILE,
    Teacher,
    find_teacher_dir,
    load_teacher,
)
from vidmatte.models.teachers.tta import TTATeacher, merge_augmented


@pytest.fixture(scope="module")
def teacher(shared_weights: Path) -> Teacher:
    return load_teacher(shared_weights)


def lucia(shared_data: Path, i: int) -> tuple[np.ndarray, np.ndarray]:
    root = shared_data / "vos" / "davis16_lucia"
    rgb = cv2.imread(str(root / "frames" / f"{i:05d}.jpg"))[..., ::-1].copy()
    gt = cv2.imread(str(root / "masks" / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE) > 127
    return rgb, gt


def union_iou(inst: Instances, gt: np.ndarray) -> float:
    u = (inst.masks > 0.5).any(0).numpy() if len(inst) else np.zeros_like(gt)
    return float((u & gt).sum() / max(1, (u | gt).sum()))


def test_lucia_union_matches_davis_masks(teacher, shared_data):
    js = []
    for i in (0, 35, 69):
        rgb, gt = lucia(shared_data, i)
        inst = teacher(rgb)
        assert isinstance(inst, Instances) and inst.trimaps is None
        assert inst.masks.shape == (len(inst), *gt.shape)
        assert (inst.labels == 0).all() and (inst.scores > 0.5).all()
        assert float(inst.masks.min()) >= 0 and float(inst.masks.max()) <= 1
        js.append(union_iou(inst, gt))
    assert min(js) >= 0.85, js


def dancer_frames(videos_dir: Path, step: int = 8, side: int = 640):
    with open_video(videos_dir / "maggie_three_dancers.mp4") as r:
        for f in r:
            if f.index % step == 0:
                h, w = f.rgb.shape[:2]
                s = side / max(h, w)
                yield cv2.resize(f.rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def test_three_dancers_three_stable_identities(teacher, videos_dir):
    assoc = Associator(AssociationConfig())
    ids_per_frame, xs = [], {}
    for k, rgb in enumerate(dancer_frames(videos_dir)):
        inst = teacher(rgb)
        assert len(inst) == 3, f"frame {k}: {len(inst)} persons"
        binary = (inst.masks > 0.5).numpy()
        assert binary.sum((1, 2)).min() > 2000
        assert not (binary.sum(0) > 1).any()  # every pixel belongs to one person at most
        a = assoc.update(k, inst)
        ids_per_frame.append(a.track_ids)
        for tid, cx in zip(a.track_ids, inst.centres[:, 0].tolist(), strict=True):
            if tid is not None:
                xs.setdefault(tid, []).append(cx)
    assert len(ids_per_frame) >= 12
    confirmed = [set(ids) for ids in ids_per_frame[1:]]
    assert all(s == {1, 2, 3} for s in confirmed), ids_per_frame
    # identities do not swap: each track keeps its left-to-right place
    order = [sorted(xs, key=lambda t, k=k: xs[t][k]) for k in range(len(confirmed))]
    assert all(o == order[0] for o in order), order


def test_tta_teacher_on_real_frame(teacher, shared_data):
    rgb, gt = lucia(shared_data, 35)
    tta = TTATeacher(teacher)
    assert len(tta.augmentations()) == 4 and tta.name.endswith("+tta")
    inst = tta(rgb)
    assert len(inst) == 1
    assert union_iou(inst, gt) >= 0.85
    # a flipped input gives the flipped answer
    flipped = tta(np.ascontiguousarray(rgb[:, ::-1]))
    a = (inst.masks[0] > 0.5).numpy()
    b = (flipped.masks[0] > 0.5).numpy()[:, ::-1]
    assert (a & b).sum() / (a | b).sum() > 0.95


def _inst(masks: list[np.ndarray], scores: list[float]) -> Instances:
    m = torch.from_numpy(np.stack(masks).astype(np.float32))
    boxes, centres = boxes_and_centres(m)
    return Instances(
        torch.tensor(scores), torch.zeros(len(masks), dtype=torch.long), m, boxes, centres
    )


def test_merge_augmented_matches_by_box_and_votes():
    h, w = 60, 100
    left = np.zeros((h, w))
    left[10:50, 5:35] = 1  # noqa: E702
    right = np.zeros((h, w))
    right[10:50, 60:95] = 1  # noqa: E702
    ghost = np.zeros((h, w))
    ghost[0:5, 40:50] = 1  # noqa: E702
    right2 = np.zeros((h, w))
    right2[12:50, 62:95] = 1  # noqa: E702
    results = [
        _inst([left, right], [0.9, 0.8]),
        _inst([right2, left, ghost], [0.7, 0.9, 0.6]),  # other order + a one-off ghost
        _inst([left], [0.8]),  # right missed once
        _inst([right, left], [0.8, 0.7]),
    ]
    out = merge_augmented(results)
    assert len(out) == 2  # ghost seen in 1 of 4 is dropped
    xs = sorted(out.centres[:, 0].tolist())
    assert xs[0] < 40 < xs[1]
    r = int(out.centres[:, 0].argmax())
    assert abs(float(out.masks[r, 30, 80]) - 0.75) < 1e-6  # found in 3 of 4: mean prob
    assert abs(float(out.scores[r]) - (0.8 + 0.7 + 0.8) / 4) < 1e-6


@pytest.mark.skipif(
    not os.environ.get("VIDMATTE_TEST_D2GO"),
    reason="D2Go's TorchScript load takes 5-15 s on CPU; set VIDMATTE_TEST_D2GO=1 to run",
)
def test_d2go_boxes_merged(shared_weights, videos_dir):
    t = load_teacher(shared_weights, detector="yolox+d2go")
    assert "d2go" in t.name
    rgb = next(dancer_frames(videos_dir, step=40))
    assert len(t(rgb)) == 3


def test_teacher_files_lookup(tmp_path, monkeypatch, shared_weights):
    monkeypatch.delenv(ENV_TEACHER_DIR, raising=False)
    assert find_teacher_dir() is None
    monkeypatch.setenv(ENV_TEACHER_DIR, str(tmp_path))
    assert find_teacher_dir() == tmp_path
    assert find_teacher_dir(shared_weights) == shared_weights  # explicit first
    with pytest.raises(WeightsError) as e:
        load_teacher()
    msg = str(e.value)
    assert "\n" not in msg and YOLOX_FILE in msg and POSE_FILE in msg and ENV_TEACHER_DIR in msg
    assert e.value.exit_code == 5
    # flat layout: the same file names in one folder (links, not copies)
    for rel in (YOLOX_FILE, POSE_FILE):
        os.symlink(shared_weights / rel, tmp_path / Path(rel).name)
    t = load_teacher()
    assert t.name.startswith("yolox")
    with pytest.raises(WeightsError):
        load_teacher(tmp_path, detector="d2go")  # its file is not there
    with pytest.raises(WeightsError):
        load_teacher(tmp_path, detector="nope")
    # a corrupt model file is a WeightsError too, not a traceback
    bad = tmp_path / "bad"
    (bad / "coco_person_detection").mkdir(parents=True)
    (bad / "person_segmentation").mkdir()
    (bad / YOLOX_FILE).write_bytes(b"not onnx")
    os.symlink(shared_weights / POSE_FILE, bad / POSE_FILE)
    with pytest.raises(WeightsError):
        load_teacher(bad)

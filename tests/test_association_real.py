"""Association on real masks: DAVIS-2016 per-frame masks (one person) and DAVIS-2017 instance
masks (2-3 people) moved over synthetic frames with jitter, occlusion, dropped detections,
merged masks, score noise and shuffled order. IDs must survive; count_id_switches counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vidmatte.matting.tracking.association import AssociationConfig, Associator
from vidmatte.matting.tracking.id_metrics import count_id_switches, id_metrics
from vidmatte.models.instances import Instances, boxes_and_centres

SCALE = 0.5  # half resolution keeps the tests fast; association reduces masks anyway


def load_mask(path: Path, scale: float = SCALE) -> torch.Tensor:
    m = torch.from_numpy(np.array(Image.open(path).convert("L")))
    if scale != 1:
        m = F.interpolate(m[None, None].float(), scale_factor=scale, mode="nearest")[0, 0]
    return m


def to_instances(masks: list[torch.Tensor], scores: list[float], h: int, w: int) -> Instances:
    if not masks:
        return Instances.empty(h, w)
    m = torch.stack(masks).float()
    boxes, centres = boxes_and_centres(m)
    return Instances(
        torch.tensor(scores), torch.zeros(len(masks), dtype=torch.long), m, boxes, centres
    )


def translate(mask: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Shift with zero fill: people can walk out of the frame."""
    h, w = mask.shape
    out = torch.zeros_like(mask)
    ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    yd, xd = slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def associate(frames, h, w, config=None, shuffle_seed=None):
    """frames: [(f, [(gt_id, mask, score)])] -> pred {f: {gt_id: track}} with backfill."""
    rng = np.random.default_rng(shuffle_seed)
    assoc = Associator(config)
    pred: dict[int, dict[int, int | None]] = {}
    keys: dict[int, list[int]] = {}
    for f, objs in frames:
        if shuffle_seed is not None:
            objs = [objs[i] for i in rng.permutation(len(objs))]
        a = assoc.update(f, to_instances([o[1] for o in objs], [o[2] for o in objs], h, w))
        keys[f] = [o[0] for o in objs]
        pred[f] = {o[0]: t for o, t in zip(objs, a.track_ids, strict=True)}
        for tid, hits in a.confirmed.items():
            for hf, idx in hits:
                pred[hf][keys[hf][idx]] = tid
    return pred, assoc


def test_vos_single_person_keeps_one_id(shared_data: Path) -> None:
    seq = shared_data / "vos" / "davis16_lucia" / "masks"
    paths = sorted(seq.glob("*.png"))[::2]
    assert len(paths) >= 30
    rng = np.random.default_rng(0)
    frames = []
    for f, p in enumerate(paths):
        m = load_mask(p) / 255.0
        objs = []
        if not 12 <= f < 18:  # the detector misses the person for 6 frames
            objs.append((1, m, float(np.clip(0.85 + rng.normal(0, 0.08), 0.3, 1))))
        if f % 7 == 3:  # a one-frame false positive far from the person
            objs.append((99, translate(m, 200, 0) * (1 - m), 0.6))
        frames.append((f, objs))
    h, w = frames[0][1][0][1].shape
    pred, assoc = associate(frames, h, w)
    person = {f: p[1] for f, p in pred.items() if 1 in p}
    assert set(person.values()) == {1}
    assert count_id_switches(pred) == 0
    assert all(p.get(99) is None for p in pred.values())  # never confirmed
    assert list(assoc.tracks) == [1]


@pytest.mark.parametrize("name", ["hurdles", "running", "tackle"])
def test_davis17_instances_survive_perturbations(shared_data: Path, name: str) -> None:
    label = load_mask(shared_data / "instances" / f"davis17_testdev_{name}" / "mask.png")
    ids = [int(i) for i in label.unique().tolist() if i != 0]
    assert len(ids) >= 2
    base = {i: (label == i).float() for i in ids}
    h, w = label.shape
    rng = np.random.default_rng(len(name))
    # Each person walks on their own line; their paths cross for the overlapping ones.
    vel = {i: (float(rng.uniform(-4, 4)), float(rng.uniform(-1, 1))) for i in ids}
    order = list(ids)  # depth order: earlier ids in front
    frames = []
    n_frames = 36
    for f in range(n_frames):
        masks = {}
        for i in ids:
            jx, jy = rng.normal(0, 1.5, 2)
            dx, dy = round(vel[i][0] * f + jx), round(vel[i][1] * f + jy)
            masks[i] = translate(base[i], dx, dy)
        covered = torch.zeros(h, w)
        for i in order:  # occlusion: people in front hide those behind
            masks[i] = masks[i] * (1 - covered)
            covered = torch.maximum(covered, masks[i])
        objs = []
        merged = 20 <= f < 23  # the detector merges the first two people
        for i in ids:
            if f in (8, 9) and i == ids[-1]:  # dropped detections
                continue
            if merged and i == ids[1]:
                continue
            m = torch.maximum(masks[ids[0]], masks[ids[1]]) if merged and i == ids[0] else masks[i]
            if m.sum() < 50:
                continue
            score = float(np.clip(0.8 + rng.normal(0, 0.1), 0.2, 1.0))
            objs.append((-1 if merged and i == ids[0] else i, m, score))
        frames.append((f, objs))
    pred, assoc = associate(frames, h, w, shuffle_seed=1)
    for p in pred.values():
        p.pop(-1, None)  # the merged mask is no one's ground truth
    assert count_id_switches(pred) == 0
    metrics = id_metrics(pred)
    assert metrics.pred_ids == len(ids)
    assert metrics.idf1 > 0.95
    # IDs are small and given in order of appearance (left to right on the first frame).
    first_x = {i: float(boxes_and_centres(base[i][None])[1][0, 0]) for i in ids}
    by_x = sorted(ids, key=lambda i: first_x[i])
    assert [pred[0][i] for i in by_x] == list(range(1, len(ids) + 1))


def test_count_id_switches_detects_a_forced_swap(shared_data: Path) -> None:
    """The metric is not vacuous: with association crippled, real masks that cross swap."""
    label = load_mask(shared_data / "instances" / "davis17_testdev_running" / "mask.png")
    a, b = (label == 1).float(), (label == 2).float()
    ca = float(boxes_and_centres(a[None])[1][0, 0])
    cb = float(boxes_and_centres(b[None])[1][0, 0])
    h, w = label.shape
    gap = round(cb - ca)
    frames = []
    for f in range(6):  # they swap places in big steps
        d = round(gap * f / 5)
        frames.append((f, [(1, translate(a, d, 0), 0.9), (2, translate(b, -d, 0), 0.9)]))
    # Location only, no motion model: the nearest previous position wins -> swap.
    blind = AssociationConfig(
        w_score=0, w_iou=0, w_loc=1, min_similarity=0, velocity_momentum=0, max_extrapolation=0
    )
    pred_blind, _ = associate(frames, h, w, blind)
    pred_good, _ = associate(frames, h, w)
    assert count_id_switches(pred_blind) >= 1
    assert count_id_switches(pred_good) == 0

"""Association on synthetic scenes: crossing, hiding, entering/leaving, births, gates."""

from __future__ import annotations

import pytest
import torch

from vidmatte.matting.tracking.association import (
    AssociationConfig,
    Associator,
    mask_iou,
    reduce_masks,
    shift_masks,
)
from vidmatte.matting.tracking.id_metrics import count_id_switches, id_metrics
from vidmatte.models.errors import UsageError
from vidmatte.models.instances import Instances, boxes_and_centres

H, W = 180, 320


def person(cx: float, cy: float, rx: float = 14, ry: float = 40, h: int = H, w: int = W):
    """An upright ellipse 'person' as a float mask."""
    ys = torch.arange(h, dtype=torch.float32)[:, None]
    xs = torch.arange(w, dtype=torch.float32)[None, :]
    return (((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0).float()


def make_instances(masks: list[torch.Tensor], scores: list[float] | None = None) -> Instances:
    if not masks:
        return Instances.empty(H, W)
    m = torch.stack(masks)
    boxes, centres = boxes_and_centres(m)
    n = m.shape[0]
    return Instances(
        scores=torch.tensor(scores if scores is not None else [0.9] * n),
        labels=torch.zeros(n, dtype=torch.long),
        masks=m,
        boxes=boxes,
        centres=centres,
    )


def run_scene(frames, config=None):
    """frames: list of (frame_index, [(gt_id, mask, score), ...]) -> (pred, associator)."""
    assoc = Associator(config)
    pred: dict[int, dict[int, int | None]] = {}
    for f, objs in frames:
        inst = make_instances([o[1] for o in objs], [o[2] for o in objs])
        a = assoc.update(f, inst)
        pred[f] = {o[0]: t for o, t in zip(objs, a.track_ids, strict=True)}
        for tid, hits in a.confirmed.items():  # backfill, as a buffering caller would
            for hf, _ in hits:
                for g, t in pred[hf].items():
                    if t is None:
                        pred[hf][g] = tid
                        break
    return pred, assoc


def test_two_people_crossing_keep_ids() -> None:
    frames = []
    for f in range(40):
        ax, bx = 40 + 6 * f, 280 - 6 * f
        a, b = person(ax, 90), person(bx, 95)
        b = b * (1 - a)  # A walks in front of B
        objs = [(1, a, 0.92)]
        if b.sum() > 30:  # B fully hidden for a few frames at the crossing
            objs.append((2, b, 0.85))
        frames.append((f, objs))
    pred, assoc = run_scene(frames)
    assert count_id_switches(pred) == 0
    m = id_metrics(pred)
    assert m.pred_ids == 2 and m.idf1 > 0.95
    assert pred[0] == {1: 1, 2: 2}  # backfilled, left person is 1
    assert pred[39] == {1: 1, 2: 2}


def test_hidden_person_is_reidentified_within_max_age() -> None:
    cfg = AssociationConfig(max_age=15)
    frames = []
    for f in range(40):
        objs = [(1, person(60 + f, 90), 0.9)]
        if not 10 <= f < 22:  # hidden 12 frames, reappears near where it left
            objs.append((2, person(220 + 0.5 * min(f, 10), 90), 0.8))
        frames.append((f, objs))
    pred, assoc = run_scene(frames, cfg)
    assert count_id_switches(pred) == 0
    assert pred[22][2] == 2 and pred[39][2] == 2
    assert set(assoc.tracks) == {1, 2}


def test_hidden_longer_than_max_age_gets_new_id() -> None:
    cfg = AssociationConfig(max_age=5)
    frames = []
    for f in range(30):
        objs = [(1, person(60, 90), 0.9)]
        if not 5 <= f < 15:
            objs.append((2, person(220, 90), 0.8))
        frames.append((f, objs))
    pred, assoc = run_scene(frames, cfg)
    assert pred[4][2] == 2
    assert pred[16][2] == 3  # a new identity: the old track was dropped at age 6
    assert count_id_switches(pred) == 1


def test_people_entering_and_leaving() -> None:
    frames = []
    for f in range(60):
        objs = [(1, person(100, 90), 0.9)]
        x = W + 20 - 5 * (f - 10)  # enters from the right at f=10, leaves on the left
        m = person(x, 100)
        if f >= 10 and m.sum() > 20:
            objs.append((2, m, 0.85))
        if f >= 30:
            objs.append((3, person(200, 60, rx=10, ry=25), 0.8))
        frames.append((f, objs))
    pred, assoc = run_scene(frames, AssociationConfig(max_age=10))
    assert count_id_switches(pred) == 0
    ids = {g: {p for fr in pred.values() for gg, p in fr.items() if gg == g} for g in (1, 2, 3)}
    assert ids == {1: {1}, 2: {2}, 3: {3}}  # in order of appearance
    # Person 2 walked out around frame 58..; everyone present is still tracked.
    assert 1 in assoc.tracks and 3 in assoc.tracks


def test_spurious_detection_never_confirmed_and_backfill() -> None:
    assoc = Associator(AssociationConfig(confirm_hits=3))
    a = person(80, 90)
    got = []
    for f in range(5):
        masks, scores = [a], [0.9]
        if f == 1:  # one-frame false positive
            masks.append(person(250, 60, rx=8, ry=12))
            scores.append(0.95)
        got.append(assoc.update(f, make_instances(masks, scores)))
    assert [g.track_ids for g in got] == [[None], [None, None], [1], [1], [1]]
    assert got[2].confirmed == {1: [(0, 0), (1, 0)]}
    assert list(assoc.tracks) == [1]
    assert assoc.tracks[1].scores == pytest.approx([0.9] * 5) and assoc.tracks[1].hits == 5


def test_low_score_extends_but_never_starts_a_track() -> None:
    assoc = Associator(AssociationConfig(min_score=0.5, confirm_hits=1))
    r = assoc.update(0, make_instances([person(80, 90), person(240, 90)], [0.9, 0.3]))
    assert r.track_ids == [1, None]
    r = assoc.update(1, make_instances([person(82, 90)], [0.35]))
    assert r.track_ids == [1]


def test_dropped_frames_and_fast_motion() -> None:
    frames = []
    for f in range(0, 60, 3):  # every third frame arrives; people move 10 px/frame
        frames.append((f, [(1, person(20 + 4 * f, 80), 0.9), (2, person(300 - 4 * f, 100), 0.9)]))
    pred, _ = run_scene(frames)
    assert count_id_switches(pred) == 0
    assert pred[57] == {1: 1, 2: 2}


def test_merged_masks_do_not_swap_ids() -> None:
    frames = []
    for f in range(30):
        a, b = person(120 + f, 90), person(180 - f, 90)
        if 10 <= f < 14:  # the detector merges both people into one mask
            frames.append((f, [(1, torch.maximum(a, b), 0.7)]))
        else:
            frames.append((f, [(1, a, 0.9), (2, b, 0.9)]))
    pred, _ = run_scene(frames)
    after = {f: pred[f] for f in range(14, 30)}
    assert all(p == {1: 1, 2: 2} for p in after.values())


def test_frame_indices_must_increase() -> None:
    assoc = Associator()
    assoc.update(3, make_instances([person(80, 90)]))
    with pytest.raises(UsageError, match="increasing"):
        assoc.update(3, make_instances([person(80, 90)]))
    assoc.reset()
    assoc.update(0, make_instances([person(80, 90)]))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"w_score": -1},
        {"w_score": 0, "w_iou": 0, "w_loc": 0},
        {"confirm_hits": 0},
        {"min_similarity": 2},
        {"mask_side": 2},
        {"max_age": -1},
    ],
)
def test_bad_config_is_a_usage_error(kwargs) -> None:
    with pytest.raises(UsageError):
        AssociationConfig(**kwargs)


def test_4k_masks_are_reduced_and_tracked() -> None:
    h, w = 2160, 3840
    assoc = Associator(AssociationConfig(confirm_hits=1))
    for f in range(3):
        masks = torch.stack(
            [
                person(800 + 40 * f, 1000, 150, 450, h, w),
                person(3000 - 40 * f, 1100, 150, 450, h, w),
            ]
        )
        boxes, centres = boxes_and_centres(masks)
        inst = Instances(
            torch.tensor([0.9, 0.8]), torch.zeros(2, dtype=torch.long), masks, boxes, centres
        )
        assert assoc.update(f, inst).track_ids == [1, 2]
    assert tuple(assoc.tracks[1].mask.shape) == (90, 160)


def test_mask_helpers() -> None:
    m = reduce_masks(torch.stack([person(100, 90), person(200, 90)]), 80)
    assert tuple(m.shape) == (2, 45, 80) and m.dtype == torch.bool
    iou = mask_iou(m, m)
    assert torch.allclose(iou.diagonal(), torch.ones(2)) and iou[0, 1] == 0
    s = shift_masks(m[0], 5, -3)
    assert s.sum() == m[0].sum() and mask_iou(s[None], shift_masks(s, -5, 3)[None])[0, 0] < 1
    assert torch.equal(shift_masks(s, -5, 3), m[0])


def test_image_size_change_does_not_crash() -> None:
    """A resolution change mid-stream (e.g. a new clip fed without reset) degrades to
    location-only matching instead of failing."""
    assoc = Associator(AssociationConfig(confirm_hits=1))
    assoc.update(0, make_instances([person(80, 90), person(240, 90)]))
    assoc.update(1, make_instances([person(80, 90)]))  # track 2 lost
    small = person(80, 90, h=90, w=160)
    boxes, centres = boxes_and_centres(small[None])
    inst = Instances(
        torch.tensor([0.9]), torch.zeros(1, dtype=torch.long), small[None], boxes, centres
    )
    assert assoc.update(2, inst).track_ids == [1]


def test_reduced_iou_matches_full_resolution() -> None:
    """Both reduction modes give the full-resolution IoU of overlapping people at 1080p."""
    m = torch.stack(
        [person(800, 500, 150, 400, 1080, 1920), person(950, 540, 150, 400, 1080, 1920)]
    )
    flat = (m > 0.5).flatten(1).float()
    inter = (flat[0] * flat[1]).sum()
    full = float(inter / (flat.sum() - inter))
    for mode in ("area", "nearest"):
        r = reduce_masks(m, 160, mode)
        assert tuple(r.shape) == (2, 90, 160)
        assert abs(float(mask_iou(r, r)[0, 1]) - full) < 0.02
    with pytest.raises(UsageError):
        AssociationConfig(mask_reduce="bicubic")

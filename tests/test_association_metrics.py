"""Identity metrics: hand-checked cases of ID switches, fragmentations, IDF1, IoU matching."""

from __future__ import annotations

import pytest
import torch

from vidmatte.matting.tracking.id_metrics import (
    count_fragmentations,
    count_id_switches,
    id_metrics,
    match_by_iou,
)


def test_id_switches_keyed_by_gt() -> None:
    pred = {
        0: {"a": 1, "b": 2},
        1: {"a": 1, "b": 2},
        2: {"a": 2, "b": 1},  # swap: 2 switches
        3: {"a": None, "b": 1},  # a missed: memory kept
        4: {"a": 2, "b": 1},  # a back with the same (wrong) id: no new switch
        5: {"a": 1, "b": 1},  # a switches back
    }
    assert count_id_switches(pred) == 3
    assert count_fragmentations(pred) == 1
    assert count_id_switches({0: {"a": 1}, 1: {"a": 1}}) == 0
    assert count_id_switches({}) == 0


def test_separate_pred_and_gt_with_false_positives() -> None:
    # keys are per-frame detection indices shared by pred and gt
    gt = {0: {0: 10, 1: 20}, 1: {0: 20, 1: 10}, 2: {0: 10}}
    pred = {0: {0: 1, 1: 2}, 1: {0: 2, 1: 1, 2: 3}, 2: {0: 2}}
    assert count_id_switches(pred, gt) == 1  # gt 10 went from track 1 to track 2 at frame 2
    m = id_metrics(pred, gt)
    assert (m.gt_ids, m.pred_ids, m.id_switches) == (2, 3, 1)
    # best map 10->1, 20->2: 4 of 5 gt detections, 4 of 6 predictions
    assert m.id_recall == pytest.approx(4 / 5)
    assert m.id_precision == pytest.approx(4 / 6)
    assert m.idf1 == pytest.approx(8 / 11)


def test_match_by_iou() -> None:
    gt = torch.zeros(2, 10, 10)
    gt[0, :5, :5] = 1
    gt[1, 5:, 5:] = 1
    pred = torch.zeros(3, 10, 10)
    pred[0, 5:, 5:] = 0.9  # = gt 1
    pred[1, :5, :4] = 0.8  # IoU 0.8 with gt 0
    pred[2, :, :] = 0.7  # everything: low IoU
    assert match_by_iou(pred, gt) == {0: 1, 1: 0}
    assert match_by_iou(pred, gt, min_iou=0.9) == {1: 0}
    assert match_by_iou(pred[:0], gt) == {}

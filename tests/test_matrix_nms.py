"""Matrix NMS on hand-built overlapping masks, checked against the formula by hand."""

import math

import torch

from vidmatte.models.trimapnet.postprocess import matrix_nms


def _box(h0, h1, w0, w1, size=20):
    m = torch.zeros(size, size, dtype=torch.bool)
    m[h0:h1, w0:w1] = True
    return m


def test_overlap_decays_lower_score_only():
    a = _box(0, 10, 0, 10)  # 100 px
    b = _box(0, 10, 0, 8)  # 80 px inside a: IoU 0.8
    c = _box(12, 20, 12, 20)  # disjoint
    masks = torch.stack([a, b, c])
    scores = torch.tensor([0.9, 0.8, 0.7])
    out = matrix_nms(masks, torch.zeros(3, dtype=torch.long), scores, sigma=2.0)
    assert math.isclose(out[0].item(), 0.9, rel_tol=1e-6)
    assert math.isclose(out[1].item(), 0.8 * math.exp(-2.0 * 0.8**2), rel_tol=1e-5)
    assert math.isclose(out[2].item(), 0.7, rel_tol=1e-6)


def test_different_classes_do_not_suppress():
    a, b = _box(0, 10, 0, 10), _box(0, 10, 0, 8)
    out = matrix_nms(torch.stack([a, b]), torch.tensor([0, 1]), torch.tensor([0.9, 0.8]))
    assert torch.allclose(out, torch.tensor([0.9, 0.8]))


def test_compensation_for_already_suppressed_mask():
    # a > b > d; b overlaps a (IoU 0.5), d overlaps b (IoU 0.5) but not a.
    a = _box(0, 10, 0, 10)
    b = _box(0, 10, 5, 15)  # inter 50, union 150 -> 1/3
    d = _box(0, 10, 10, 20)  # with b: inter 50, union 150 -> 1/3; with a: 0
    masks = torch.stack([a, b, d])
    out = matrix_nms(masks, torch.zeros(3, dtype=torch.long), torch.tensor([0.9, 0.8, 0.7]))
    iou = 1 / 3
    # b: decayed by a.  d: decay from b compensated by b's own overlap with a -> exp(0) = 1,
    # and a contributes exp(-2 * 0) / exp(0) = 1: d keeps its score.
    assert math.isclose(out[1].item(), 0.8 * math.exp(-2 * iou**2), rel_tol=1e-5)
    assert math.isclose(out[2].item(), 0.7, rel_tol=1e-5)


def test_linear_kernel_and_empty():
    a, b = _box(0, 10, 0, 10), _box(0, 10, 0, 8)
    out = matrix_nms(
        torch.stack([a, b]),
        torch.zeros(2, dtype=torch.long),
        torch.tensor([1.0, 1.0]),
        kernel="linear",
    )
    assert math.isclose(out[1].item(), 0.2, rel_tol=1e-5)
    empty = matrix_nms(torch.zeros(0, 4, 4), torch.zeros(0), torch.zeros(0))
    assert empty.shape == (0,)

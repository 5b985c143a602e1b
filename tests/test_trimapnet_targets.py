"""Target assignment (centre sampling, scale ranges) and mask losses on hand-made cases."""

import torch

from vidmatte.models.trimapnet.loss import LossWeights, dice_loss, trimap_mask_loss
from vidmatte.models.trimapnet.targets import assign_targets


def _square(x0, y0, side, size=256):
    m = torch.zeros(size, size, dtype=torch.uint8)
    m[y0 : y0 + side, x0 : x0 + side] = 1
    return m


def test_small_square_gets_centre_cells_on_level_0_only():
    # 40 px square, pixels 80..119 x 40..79: mass centre (99.5, 59.5), scale 40 -> level 0
    mask = _square(80, 40, 40)[None]
    out = assign_targets(mask, torch.tensor([0]), num_classes=1)
    # grid 40 on 256 px (6.4 px cells): centre cell col 15, row 9; the sigma box (half
    # 0.2 * 40 / 2 = 4 px) spans cols 95.5..103.5 -> 14..16, rows 55.5..63.5 -> 8..9
    assert [int(t.cells.numel()) for t in out] == [6, 0, 0, 0, 0]
    rows, cols = (out[0].cate == 0).nonzero().T
    assert sorted(set(rows.tolist())) == [8, 9]
    assert sorted(set(cols.tolist())) == [14, 15, 16]
    assert set(out[0].cells.tolist()) == {r * 40 + c for r in (8, 9) for c in (14, 15, 16)}
    assert (out[0].instances == 0).all()
    assert (out[1].cate == 1).all()  # background = num_classes


def test_large_object_goes_to_two_levels_and_tiny_is_skipped():
    big = _square(20, 20, 200)  # scale 200: ranges (96, 384) and (192, 768)
    tiny = _square(5, 5, 2)  # under 6 px at stride 4: skipped
    out = assign_targets(torch.stack([big, tiny]), torch.tensor([3, 4]), num_classes=5)
    counts = [int(t.cells.numel()) for t in out]
    assert counts[0] == counts[1] == counts[4] == 0
    assert counts[2] > 0 and counts[3] > 0
    assert set(out[2].cate.unique().tolist()) == {3, 5}
    assert (out[2].instances == 0).all()


def test_smaller_instance_wins_a_shared_cell():
    big = _square(60, 60, 90)  # scale 90 -> level 0 (and 1)
    small = _square(95, 95, 50)  # scale 50 -> level 0 (and 1), same centre region
    out = assign_targets(torch.stack([big, small]), torch.tensor([0, 0]), num_classes=1)
    lvl = out[0]
    centre = int(119.5 / 256 * 40) * 40 + int(119.5 / 256 * 40)
    owner = dict(zip(lvl.cells.tolist(), lvl.instances.tolist(), strict=True))
    assert owner[centre] == 1
    assert len(lvl.cells) == len(set(lvl.cells.tolist()))  # one owner per cell


def test_dice_and_trimap_loss_reward_the_right_answer():
    t = torch.zeros(1, 8, 8, dtype=torch.long)
    t[:, 2:6, 2:6] = 2
    t[:, 2, 2:6] = 1
    t[:, 0, 0] = 255
    good = torch.nn.functional.one_hot(t.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 20
    bad = good.flip(1)
    w = LossWeights()
    assert trimap_mask_loss(good, t, w) < 0.01
    assert trimap_mask_loss(bad, t, w) > 3.0
    p = torch.rand(2, 8, 8)
    assert torch.allclose(dice_loss(p, p > 2), torch.ones(2), atol=1e-3)

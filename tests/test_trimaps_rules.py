"""Trimap rules: band width scales with size, bands sit on the mask edge, touching people
never get foreground inside each other, the frame border is not an edge, alpha trimaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from vidmatte.models.instances import Instances, boxes_and_centres
from vidmatte.models.trimap import (
    BAND_MAX,
    BAND_MIN,
    band_width,
    instances_with_trimaps,
    masks_to_trimaps,
    probs_to_trimaps,
    trimap_from_alpha,
)


def disc(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def test_band_width_scales_with_size_and_is_clamped():
    small, big = disc(400, 400, 200, 200, 20), disc(400, 400, 200, 200, 150)
    assert BAND_MIN <= band_width(small) < band_width(big) <= BAND_MAX
    assert band_width(np.zeros((10, 10), bool)) == 0
    assert band_width(np.ones((4000, 4000), bool)) == BAND_MAX
    tiny = np.zeros((50, 50), bool)
    tiny[10, 10] = True
    assert band_width(tiny) == BAND_MIN
    # probabilities are thresholded at 0.5
    assert band_width(big.astype(np.float32) * 0.6) == band_width(big)
    assert band_width(big.astype(np.float32) * 0.4) == 0


def test_single_mask_band_sits_on_the_edge():
    m = disc(300, 300, 150, 150, 90)
    r = band_width(m)
    (t,) = masks_to_trimaps(m[None].astype(np.float32))
    assert set(np.unique(t)) == {0, 128, 255}
    inside = ndimage.distance_transform_edt(m)
    outside = ndimage.distance_transform_edt(~m)
    assert (m[t == 255]).all()  # foreground only inside the mask
    assert (t[m] > 0).all()  # the whole mask is fg or unknown
    assert (t[inside > r + 1.5] == 255).all()  # deep inside: foreground
    assert (t[outside > r + 1.5] == 0).all()  # far outside: background
    band = t == 128
    assert (inside[band] <= r + 1.5).all() and (outside[band] <= r + 1.5).all()
    # the band is about 2r wide: its area ~ perimeter * 2r
    assert 0.7 < band.sum() / (2 * np.pi * 90 * 2 * r) < 1.3


def test_touching_people_no_foreground_inside_another():
    h, w = 200, 300
    a = np.zeros((h, w), bool)
    b = np.zeros((h, w), bool)
    a[40:180, 40:150] = True  # touching along x = 150
    b[30:190, 150:260] = True
    b[90:110, 120:150] = True  # b's arm in front of a
    a[90:110, 120:150] = False
    ta, tb = masks_to_trimaps(np.stack([a, b]))
    for t_i, m_j, t_j in ((ta, b, tb), (tb, a, ta)):
        assert not (t_i == 255)[m_j].any()  # no fg inside the other's mask
        assert not ((t_i == 255) & (t_j == 128)).any()  # nor inside the other's band
        assert not ((t_i == 255) & (t_j == 255)).any()
    # the contact line is unknown for both people
    contact = np.zeros((h, w), bool)
    contact[60:80, 148:152] = True
    assert (ta[contact] == 128).all() and (tb[contact] == 128).all()
    # away from the contact each keeps its foreground
    assert ta[100:160, 50:80].min() == 255 and tb[150:180, 200:240].min() == 255


def test_frame_border_is_not_an_edge():
    m = np.zeros((120, 160), bool)
    m[40:, 50:110] = True  # person cut by the bottom of the frame
    (t,) = masks_to_trimaps(m[None])
    assert (t[-1, 60:100] == 255).all()


def test_empty_and_probs():
    assert masks_to_trimaps(np.zeros((0, 8, 9), np.float32)).shape == (0, 8, 9)
    p = np.zeros((2, 3, 4, 5), np.float32)
    p[0, 2] = 1  # fg
    p[1, 1] = 1  # unknown
    p[1, 0, 0, 0] = 2  # one background pixel
    out = probs_to_trimaps(p)
    assert out.dtype == np.uint8 and (out[0] == 255).all()
    assert out[1, 0, 0] == 0 and (out[1].ravel()[1:] == 128).all()
    assert (probs_to_trimaps(torch.from_numpy(p)) == out).all()


def test_instances_with_trimaps_one_hot():
    m = torch.from_numpy(disc(100, 120, 60, 50, 30).astype(np.float32))[None]
    boxes, centres = boxes_and_centres(m)
    inst = Instances(torch.ones(1), torch.zeros(1, dtype=torch.long), m, boxes, centres)
    out = instances_with_trimaps(inst)
    assert out.trimaps.shape == (1, 3, 100, 120)
    assert torch.allclose(out.trimaps.sum(1), torch.ones(1, 100, 120))
    assert (probs_to_trimaps(out.trimaps) == masks_to_trimaps(m.numpy())).all()


def test_trimap_from_real_alpha(shared_data):
    folder = shared_data / "matting" / "c1k_spring-289527_1920_15"
    alpha = np.array(Image.open(next((folder / "alpha").iterdir())).convert("L"))
    alpha = alpha[::2, ::2]
    t = trimap_from_alpha(alpha, band=5)
    assert set(np.unique(t)) <= {0, 128, 255}
    partial = (alpha > 3) & (alpha < 252)
    assert (t[partial] == 128).all()  # every partly transparent pixel is unknown
    assert (alpha[t == 255] >= 252).all() and (alpha[t == 0] <= 3).all()
    wider = trimap_from_alpha(alpha, band=15)
    assert (wider == 128).sum() > (t == 128).sum()
    # float alpha in [0, 1] gives the same trimap
    assert (trimap_from_alpha(alpha.astype(np.float32) / 255, band=5) == t).all()


@pytest.mark.parametrize("n", [1, 3])
def test_trimaps_are_per_instance_shapes(n):
    masks = np.stack([disc(64, 200, 30 + 60 * i, 32, 20) for i in range(n)])
    out = masks_to_trimaps(masks)
    assert out.shape == masks.shape and out.dtype == np.uint8

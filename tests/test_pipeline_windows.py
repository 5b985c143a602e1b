"""Windowed instances (issue 20): per-person work inside the person's box gives exactly
what the whole-frame code gave, on real frames through the shipped network and teacher."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vidmatte.matting.io.video import open_video
from vidmatte.models.instances import Instances, boxes_and_centres
from vidmatte.models.trimap import masks_to_trimap_windows, masks_to_trimaps

SAMPLE = Path(__file__).resolve().parents[1] / "assets" / "sample.mp4"


def _frames(path, n, size=None):
    with open_video(path) as r:
        frames = [f.rgb for f in r.frames(0, n)]
    if size is not None:
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    return frames


@pytest.fixture(scope="module")
def student():
    from vidmatte.models.trimapnet import TrimapNet
    from vidmatte.models.weights.resolution import find_weights

    found = find_weights("trimapnet")
    if found is None:
        pytest.skip("no trimap weights installed")
    return TrimapNet.from_folder(found.folder).eval()


def _whole_frame(logits, image_size, output_size):
    """The pre-window upsampling (SOLOv2's): the reference."""
    h, w = image_size
    hf, wf = logits.shape[-2:]
    if (hf * 4, wf * 4) == (h, w):
        return F.interpolate(logits, size=output_size, mode="bilinear")
    up = F.interpolate(logits, size=(hf * 4, wf * 4), mode="bilinear")[..., :h, :w]
    if tuple(output_size) != (h, w):
        up = F.interpolate(up, size=output_size, mode="bilinear")
    return up


@pytest.mark.parametrize(
    "clip,size,side",
    [("sample", None, None), ("sample", None, 320), ("sample", (640, 360), None)],
)
def test_network_windows_equal_whole_frame(student, clip, size, side):
    """Trimaps, masks > 0.5, boxes: identical to upsampling every kept instance to the
    whole frame; logits inside each window within float rounding (bitwise for x4)."""
    from vidmatte.models.trimapnet.postprocess import upsample_window

    rgb = _frames(SAMPLE, 1, size)[0]
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    seen = {}
    original = student._instances

    def spy(logits, scores, labels, image_size, output_size):
        seen["args"] = (logits, image_size, output_size)
        return original(logits, scores, labels, image_size, output_size)

    student._instances = spy
    try:
        with torch.inference_mode():
            inst = student.detect(x, short_side=side)[0]
    finally:
        student._instances = original
    assert len(inst) >= 1
    logits, image_size, output_size = seen["args"]
    full = _whole_frame(logits, image_size, output_size)
    probs = full.softmax(1)
    assert torch.equal(inst.trimaps.argmax(1), probs.argmax(1))
    assert torch.equal(inst.masks > 0.5, (1 - probs[:, 0]) > 0.5)
    ref_boxes, _ = boxes_and_centres(1 - probs[:, 0])
    assert torch.equal(inst.boxes, ref_boxes)
    from vidmatte.matting.sources import probs_to_levels
    from vidmatte.models.trimap import probs_to_trimaps

    for crop in inst.trimap_crops:  # the pipeline's trimaps: argmax by comparisons
        assert np.array_equal(probs_to_levels(crop), probs_to_trimaps(crop[None])[0])
    ties = torch.tensor([[0.4, 0.4, 0.2], [0.2, 0.4, 0.4], [0.3, 0.3, 0.3]]).T.reshape(3, 1, 3)
    assert np.array_equal(probs_to_levels(ties), probs_to_trimaps(ties[None])[0])
    exact = output_size == tuple(4 * s for s in logits.shape[-2:])
    for k in range(len(inst)):
        (x0, y0, x1, y1), vals = upsample_window(logits[k], image_size, output_size)
        ref = full[k, :, y0:y1, x0:x1]
        assert torch.equal(vals, ref) if exact else torch.allclose(vals, ref, atol=1e-5)
        # the window holds every pixel the whole-frame mask has above 0.45
        outside = (1 - probs[k, 0]) > 0.45
        outside[y0:y1, x0:x1] = False
        assert not bool(outside.any())


def test_person_filter_runs_before_upsampling(student):
    """select() drops instances before any is upsampled; the survivors are unchanged."""
    rgb = _frames(SAMPLE, 1)[0]
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        every = student.detect(x)[0]
        best = student.detect(x, select=lambda s, lab: torch.tensor([0]))[0]
    assert len(every) >= 1 and len(best) == 1
    assert torch.equal(best.trimap_crops[0], every.trimap_crops[0])
    assert torch.equal(best.windows[0], every.windows[0])


def test_full_masks_round_trip_and_sampling():
    """Full-frame masks given to Instances are cropped losslessly; reduced masks for
    association read only the windows and equal sampling the full masks."""
    from vidmatte.matting.tracking.association import reduce_instance_masks, reduce_masks

    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(3, 90, 160)
    masks[0, 10:50, 20:60] = torch.rand(40, 40, generator=g)
    masks[1, 40:90, 100:160] = 0.9
    boxes, centres = boxes_and_centres(masks)
    inst = Instances(torch.ones(3), torch.zeros(3, dtype=torch.long), masks, boxes, centres)
    assert torch.equal(inst.masks, masks)
    assert inst.window(0) == (20, 10, 60, 50) and inst.window(2) == (0, 0, 0, 0)
    assert [tuple(m.shape) for m in inst.mask_crops] == [(40, 40), (50, 60), (0, 0)]
    for side in (160, 64, 33):
        assert torch.equal(
            reduce_instance_masks(inst, side, "nearest"), reduce_masks(masks, side, "nearest")
        )
        assert torch.equal(
            reduce_instance_masks(inst, side, "area"), reduce_masks(masks, side, "area")
        )
    sub = inst.select(torch.tensor([False, True, True]))
    assert torch.equal(sub.masks, masks[1:])


def test_band_rule_on_windows_equals_full_frame(shared_data):
    """The dilate/erode trimaps of touching people, computed per window, are the
    full-frame rule's, byte for byte (DAVIS tackle: three overlapping players)."""
    pngs = sorted((shared_data / "instances" / "davis17_testdev_tackle").rglob("*.png"))
    if not pngs:
        pytest.skip("davis17_testdev_tackle instance PNG missing")
    label = np.asarray(Image.open(pngs[0]))  # palette PNG: pixel value = instance index
    ids = [v for v in np.unique(label) if v not in (0, 255)]
    assert len(ids) >= 2
    masks = np.stack([(label == v).astype(np.float32) for v in ids])
    # make two people touch: the second shifted onto the first
    masks[1] = np.maximum(masks[1], np.roll(masks[0], 12, axis=1))
    full = masks_to_trimaps(masks)
    inst = Instances(
        torch.ones(len(ids)),
        torch.zeros(len(ids), dtype=torch.long),
        torch.from_numpy(masks),
        *boxes_and_centres(torch.from_numpy(masks)),
    )
    got = masks_to_trimap_windows(inst.mask_crops, inst.windows.tolist(), inst.image_size)
    for i, ((x0, y0, x1, y1), t) in enumerate(got):
        canvas = np.zeros_like(full[i])
        canvas[y0:y1, x0:x1] = t
        assert np.array_equal(canvas, full[i])


def test_classical_matting_on_crop_equals_whole_frame():
    """The pipeline mattes each person on a crop around the band: the classical matter's
    alpha there is bit-identical to matting the whole frame."""
    from vidmatte.matting.pipeline import crop_for_matting
    from vidmatte.models.matters.classical import ClassicalMatter

    rgb = _frames(SAMPLE, 1)[0]
    h, w = rgb.shape[:2]
    mask = np.zeros((1, h, w), np.float32)
    cv2.ellipse(mask[0], (w // 2, h // 2), (w // 5, h // 3), 0, 0, 360, 1.0, -1)
    trimap = masks_to_trimaps(mask)[0]
    matter = ClassicalMatter(workers=1)
    whole = matter(rgb, trimap[None])[0]
    window, tri = crop_for_matting(trimap, (0, 0, w, h), (h, w))
    x0, y0, x1, y1 = window
    assert (x1 - x0) * (y1 - y0) < h * w  # really a crop
    part = matter(rgb[y0:y1, x0:x1], tri[None])[0]
    assert np.array_equal(part, whole[y0:y1, x0:x1])
    assert not whole[:y0].any() and not whole[y1:].any()

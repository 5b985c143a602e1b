"""A real learning signal: TrimapNet (ImageNet MobileNetV2, small head) overfits three real
frames with person masks from ../shared (DAVIS 2016 lucia/rollerblade, DAVIS 2017 running:
two runners) and then finds those persons: loss falls and mask IoU rises on those frames."""

import numpy as np
import pytest
import torch

from vidmatte.models.trimapnet import TrimapNetConfig, build_trimapnet

SHORT_SIDE = 192
STEPS = 24


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _frame(image_path, mask_path):
    cv2 = pytest.importorskip("cv2")
    from PIL import Image

    image = np.array(Image.open(image_path).convert("RGB"))
    ids = np.array(Image.open(mask_path))
    h, w = ids.shape
    s = SHORT_SIDE / min(h, w)
    size = (round(w * s), round(h * s))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ids = cv2.resize(ids, size, interpolation=cv2.INTER_NEAREST)
    masks = np.stack([ids == v for v in np.unique(ids) if v]).astype(np.uint8)
    kernel = np.ones((5, 5), np.uint8)  # a 2-px unknown band either side of the edge
    trimaps = [
        np.where(cv2.erode(m, kernel) > 0, 2, np.where(cv2.dilate(m, kernel) > 0, 1, 0))
        for m in masks
    ]
    target = {
        "labels": torch.zeros(len(masks), dtype=torch.long),
        "masks": torch.from_numpy(masks),
        "trimaps": torch.from_numpy(np.stack(trimaps)).long(),
    }
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255, target


def _best_ious(model, images, targets):
    model.eval()
    with torch.no_grad():
        results = model(images)
    model.train()
    ious = []
    for inst, t in zip(results, targets, strict=True):
        for gt in t["masks"].bool():
            if len(inst) == 0:
                ious.append(0.0)
                continue
            pred = inst.masks > 0.5
            inter = (pred & gt).flatten(1).sum(1)
            union = (pred | gt).flatten(1).sum(1).clamp_min(1)
            ious.append(float((inter / union).max()))
    return ious


def test_overfits_real_frames(shared_data, shared_weights):
    frames = [
        _frame(shared_data / "vos/davis16_lucia/frames/00000.jpg",
               shared_data / "vos/davis16_lucia/masks/00000.png"),
        _frame(shared_data / "instances/davis17_testdev_running/image.jpg",
               shared_data / "instances/davis17_testdev_running/mask.png"),
        _frame(shared_data / "vos/davis16_rollerblade/frames/00010.jpg",
               shared_data / "vos/davis16_rollerblade/masks/00010.png"),
    ]  # fmt: skip
    images = torch.stack([f[0] for f in frames])
    targets = [f[1] for f in frames]
    assert sum(len(t["labels"]) for t in targets) == 4
    torch.manual_seed(0)
    cfg = TrimapNetConfig(
        fpn_channels=64, ins_channels=64, num_instance_convs=2, mask_channels=32,
        num_masks=32, num_grids=(20, 18, 12, 8, 6),
    )  # fmt: skip
    model = build_trimapnet(cfg, pretrained_backbone=True).train()
    model.backbone.requires_grad_(False)  # ImageNet features; train FPN + heads (faster)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-3, weight_decay=0.0)
    before = _best_ious(model, images, targets)
    history = []
    for _ in range(STEPS):
        losses = model(images, targets)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    after = _best_ious(model, images, targets)
    assert np.mean(history[-3:]) < 0.5 * np.mean(history[:3]), history
    assert np.mean(after) > 0.35 and np.mean(after) > np.mean(before) + 0.3, (before, after)
    assert min(after) > 0.15, after

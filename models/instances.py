"""The per-image result every instance source returns (trimap network, teachers).

One contract, as torchvision's detection models have: a source returns one `Instances`
per image. What is stored is **windowed**: each instance keeps its mask (and trimap
probabilities) only inside its own window, a box of the image, because a person covers a
small part of a frame and everything downstream (association, trimaps, matting) works
inside that box. Full-frame copies per person and per class were most of the pipeline's
memory (3.5 GB peak at 720p, issue 20) and much of its time.

Windows obey one rule: **outside its window an instance's mask is < 0.5 and its trimap
is background** (the full-frame views read 0 there, and one-hot background). Every
consumer that thresholds the mask at 0.5 or takes the trimap's argmax therefore gets
exactly what it would get from full-frame maps. Sources that only have full-frame masks
pass them as an (N, H, W) tensor: they are cropped to the pixels where they are > 0 (and
where the trimap is not background), which loses nothing.

Fields (tensors may live on any device, e.g. the network's):
    scores:  (N,) float, classification score after Matrix NMS / detector score.
    labels:  (N,) long, COCO contiguous class index (0 = person).
    boxes:   (N, 4) float, xyxy in input pixels (tight box of masks > 0.5 where the source
             has no detector box).
    centres: (N, 2) float, (x, y) mass centre of the mask in input pixels.
    windows: (N, 4) long, x0, y0, x1, y1 (end exclusive) in image pixels, inside the image.
    mask_crops:   N tensors (y1-y0, x1-x0) float in [0, 1], the probability that a pixel
                  belongs to the instance; for trimap outputs 1 - P(background).
    trimap_crops: N tensors (3, y1-y0, x1-x0) float softmax (background, unknown,
                  foreground): the `probs` encoding of models/trimap.py, which owns every
                  trimap conversion; None for sources that predict only masks.
    image_size:   (H, W) of the image.

Views: `masks` (N, H, W) and `trimaps` (N, 3, H, W) build full-frame tensors on demand,
for training, evaluation and tests; the matting pipeline never calls them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Window = tuple[int, int, int, int]


class Instances:
    """Persons (or COCO objects in binary mode) found in one image (see module docstring).

    `Instances(scores, labels, masks, boxes, centres, trimaps=None)` with full-frame
    (N, H, W) masks [and (N, 3, H, W) trimaps] crops them; with `windows=` and
    `image_size=`, `masks` [and `trimaps`] are the N crops themselves.
    """

    __slots__ = (
        "scores",
        "labels",
        "boxes",
        "centres",
        "windows",
        "mask_crops",
        "trimap_crops",
        "image_size",
    )

    def __init__(
        self,
        scores: Tensor,
        labels: Tensor,
        masks: Tensor | Sequence[Tensor],
        boxes: Tensor,
        centres: Tensor,
        trimaps: Tensor | Sequence[Tensor] | None = None,
        *,
        windows: Tensor | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        self.scores, self.labels, self.boxes, self.centres = scores, labels, boxes, centres
        if windows is None:
            if not isinstance(masks, Tensor) or masks.dim() != 3:
                raise ValueError("full-frame masks must be an (N, H, W) tensor")
            image_size = (int(masks.shape[-2]), int(masks.shape[-1]))
            windows = support_windows(masks, trimaps)
            masks, trimaps = _crop_all(masks, windows), _crop_all(trimaps, windows)
        elif image_size is None:
            raise ValueError("windowed Instances need image_size")
        self.windows = windows.to(torch.long)
        self.mask_crops: tuple[Tensor, ...] = tuple(masks)
        self.trimap_crops: tuple[Tensor, ...] | None = None if trimaps is None else tuple(trimaps)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        if len(self.mask_crops) != len(self.scores) or self.windows.shape != (len(self), 4):
            raise ValueError(
                f"{len(self.scores)} scores, {len(self.mask_crops)} masks, "
                f"windows {tuple(self.windows.shape)}"
            )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __repr__(self) -> str:
        return f"Instances(n={len(self)}, image_size={self.image_size})"

    @property
    def device(self) -> torch.device:
        return self.scores.device

    def window(self, i: int) -> Window:
        """Window of instance i as Python ints (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = (int(v) for v in self.windows[i].tolist())
        return x0, y0, x1, y1

    # ------------------------------------------------------------------ full-frame views
    @property
    def masks(self) -> Tensor:
        """(N, H, W) float full-frame masks (0 outside each window). Built on each access."""
        h, w = self.image_size
        ref = self.mask_crops[0] if self.mask_crops else self.scores
        out = torch.zeros(len(self), h, w, dtype=_float(ref), device=ref.device)
        for i, crop in enumerate(self.mask_crops):
            x0, y0, x1, y1 = self.window(i)
            out[i, y0:y1, x0:x1] = crop
        return out

    @property
    def trimaps(self) -> Tensor | None:
        """(N, 3, H, W) float full-frame probabilities (one-hot background outside each
        window), or None. Built on each access."""
        if self.trimap_crops is None:
            return None
        h, w = self.image_size
        ref = self.trimap_crops[0] if self.trimap_crops else self.scores
        out = torch.zeros(len(self), 3, h, w, dtype=_float(ref), device=ref.device)
        out[:, 0] = 1
        for i, crop in enumerate(self.trimap_crops):
            x0, y0, x1, y1 = self.window(i)
            out[i, :, y0:y1, x0:x1] = crop
        return out

    # ------------------------------------------------------------------ subsets, devices
    def select(self, keep: Tensor | list[int]) -> Instances:
        """A subset (bool mask or index list), order kept."""
        if isinstance(keep, list):
            keep = torch.as_tensor(keep, dtype=torch.long, device=self.scores.device)
        if keep.dtype == torch.bool:
            keep = keep.nonzero().flatten()
        idx = [int(i) for i in keep.tolist()]
        return Instances(
            self.scores[keep],
            self.labels[keep],
            [self.mask_crops[i] for i in idx],
            self.boxes[keep],
            self.centres[keep],
            None if self.trimap_crops is None else [self.trimap_crops[i] for i in idx],
            windows=self.windows[keep.to(self.windows.device)],
            image_size=self.image_size,
        )

    def without_trimaps(self) -> Instances:
        """The same instances, masks only (a teacher's result: trimaps come from masks)."""
        return Instances(
            self.scores,
            self.labels,
            self.mask_crops,
            self.boxes,
            self.centres,
            windows=self.windows,
            image_size=self.image_size,
        )

    def with_trimaps(self, trimap_crops: Sequence[Tensor]) -> Instances:
        """The same instances with these trimap probabilities (one per window)."""
        return Instances(
            self.scores,
            self.labels,
            self.mask_crops,
            self.boxes,
            self.centres,
            list(trimap_crops),
            windows=self.windows,
            image_size=self.image_size,
        )

    def to(self, device: torch.device | str) -> Instances:
        return Instances(
            self.scores.to(device),
            self.labels.to(device),
            [m.to(device) for m in self.mask_crops],
            self.boxes.to(device),
            self.centres.to(device),
            None if self.trimap_crops is None else [t.to(device) for t in self.trimap_crops],
            windows=self.windows.to(device),
            image_size=self.image_size,
        )

    @staticmethod
    def empty(height: int, width: int, device: torch.device | str = "cpu") -> Instances:
        return Instances(
            torch.zeros(0, device=device),
            torch.zeros(0, dtype=torch.long, device=device),
            [],
            torch.zeros(0, 4, device=device),
            torch.zeros(0, 2, device=device),
            windows=torch.zeros(0, 4, dtype=torch.long, device=device),
            image_size=(height, width),
        )

    # ------------------------------------------------------------------ reduced masks
    def sampled_masks(self, rows: Tensor, cols: Tensor, threshold: float = 0.5) -> Tensor:
        """(N, len(rows), len(cols)) bool: mask > threshold at the given (sorted) pixels.

        Equal to `masks[:, rows][:, :, cols] > threshold` (threshold >= 0.5), but only each
        window is read: the cost follows the sampled grid, not the image.
        """
        out = torch.zeros(len(self), len(rows), len(cols), dtype=torch.bool)
        rows, cols = rows.cpu(), cols.cpu()
        for i, crop in enumerate(self.mask_crops):
            x0, y0, x1, y1 = self.window(i)
            # rows and columns are sorted: those inside the window are one run of them
            r0, r1 = (int(v) for v in torch.searchsorted(rows, torch.tensor([y0, y1])))
            c0, c1 = (int(v) for v in torch.searchsorted(cols, torch.tensor([x0, x1])))
            if r0 == r1 or c0 == c1:
                continue
            dev = crop.device
            sub = crop.index_select(0, (rows[r0:r1] - y0).to(dev))
            sub = sub.index_select(1, (cols[c0:c1] - x0).to(dev)) > threshold
            out[i, r0:r1, c0:c1] = sub.cpu()
        return out

    def area_masks(self, size: tuple[int, int], threshold: float = 0.5) -> Tensor:
        """(N, h, w) bool on the CPU: area-averaged full-frame masks > threshold, one
        instance at a time on its device (for accelerators, where this is cheap)."""
        h, w = self.image_size
        out = torch.zeros(len(self), *size, dtype=torch.bool)
        for i, crop in enumerate(self.mask_crops):
            x0, y0, x1, y1 = self.window(i)
            full = torch.zeros(1, 1, h, w, dtype=_float(crop), device=crop.device)
            full[0, 0, y0:y1, x0:x1] = crop
            out[i] = (F.interpolate(full, size=size, mode="area")[0, 0] > threshold).cpu()
        return out


def _float(t: Tensor) -> torch.dtype:
    return t.dtype if t.is_floating_point() else torch.float32


def support_windows(masks: Tensor, trimaps: Tensor | None = None) -> Tensor:
    """(N, 4) long windows of full-frame masks: the box of pixels where the mask is > 0 or
    the trimap is not background (lossless crop); an empty instance gets a 0×0 window."""
    n = masks.shape[0]
    if n == 0:
        return torch.zeros(0, 4, dtype=torch.long, device=masks.device)
    live = masks > 0
    if trimaps is not None:
        live = live | (trimaps[:, 0] < 1)
    rows, cols = live.any(dim=2), live.any(dim=1)
    out = torch.zeros(n, 4, dtype=torch.long, device=masks.device)
    for i in range(n):
        r, c = rows[i].nonzero(), cols[i].nonzero()
        if r.numel():
            out[i] = torch.stack([c.min(), r.min(), c.max() + 1, r.max() + 1]).flatten()
    return out


def _crop_all(full: Tensor | None, windows: Tensor) -> list[Tensor] | None:
    if full is None:
        return None
    out = []
    for i, (x0, y0, x1, y1) in enumerate(windows.tolist()):
        out.append(full[i, ..., y0:y1, x0:x1].clone())
    return out


def boxes_and_centres(masks: Tensor, threshold: float = 0.5) -> tuple[Tensor, Tensor]:
    """Tight xyxy boxes and mass centres of (N, H, W) probability masks (empty mask: zeros)."""
    n, h, w = masks.shape
    if n == 0:
        return masks.new_zeros(0, 4), masks.new_zeros(0, 2)
    binary = masks > threshold
    ys = torch.arange(h, device=masks.device, dtype=masks.dtype)
    xs = torch.arange(w, device=masks.device, dtype=masks.dtype)
    rows = binary.any(dim=2)
    cols = binary.any(dim=1)
    big = torch.finfo(masks.dtype).max
    x0 = torch.where(cols, xs, big).amin(dim=1)
    x1 = torch.where(cols, xs, -big).amax(dim=1) + 1
    y0 = torch.where(rows, ys, big).amin(dim=1)
    y1 = torch.where(rows, ys, -big).amax(dim=1) + 1
    boxes = torch.stack([x0, y0, x1, y1], dim=1)
    boxes = torch.where(binary.flatten(1).any(1, keepdim=True), boxes, torch.zeros_like(boxes))
    weight = masks * binary
    total = weight.sum(dim=(1, 2)).clamp_min(1e-6)
    cx = (weight.sum(dim=1) * xs).sum(dim=1) / total
    cy = (weight.sum(dim=2) * ys).sum(dim=1) / total
    return boxes, torch.stack([cx, cy], dim=1)


def window_boxes_and_centres(
    mask: Tensor, window: Window, threshold: float = 0.5
) -> tuple[Tensor, Tensor]:
    """`boxes_and_centres` of one windowed mask, in image pixels: (4,), (2,)."""
    boxes, centres = boxes_and_centres(mask[None], threshold)
    box, centre = boxes[0], centres[0]
    if bool((box[2:] > 0).all()):  # an empty mask keeps zeros, as in boxes_and_centres
        x0, y0 = window[0], window[1]
        box = box + box.new_tensor([x0, y0, x0, y0])
        centre = centre + centre.new_tensor([x0, y0])
    return box, centre

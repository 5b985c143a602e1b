"""The per-image result every instance source returns (trimap network, teachers).

One contract, as torchvision's detection models have: a source returns one `Instances`
per image. Tensors may live on any device; masks and trimaps are at input resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: Trimap class order everywhere: channel/probability index and the uint8 PNG values.
TRIMAP_CLASSES = ("background", "unknown", "foreground")
TRIMAP_VALUES = (0, 128, 255)


@dataclass
class Instances:
    """Persons (or COCO objects in binary mode) found in one image.

    scores:  (N,) float, classification score after Matrix NMS / detector score.
    labels:  (N,) long, COCO contiguous class index (0 = person).
    masks:   (N, H, W) float in [0, 1], probability that a pixel belongs to the instance.
             For trimap outputs this is 1 - P(background).
    boxes:   (N, 4) float, xyxy in input pixels (tight box of masks > 0.5 where the source
             has no detector box).
    centres: (N, 2) float, (x, y) mass centre of the mask in input pixels.
    trimaps: (N, 3, H, W) float softmax probabilities (background, unknown, foreground),
             or None for sources that predict only masks (binary mode, teachers).
    """

    scores: Tensor
    labels: Tensor
    masks: Tensor
    boxes: Tensor
    centres: Tensor
    trimaps: Tensor | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the image these instances belong to."""
        return int(self.masks.shape[-2]), int(self.masks.shape[-1])

    def select(self, keep: Tensor | list[int]) -> Instances:
        """A subset (bool mask or index list), order kept."""
        if isinstance(keep, list):
            keep = torch.as_tensor(keep, dtype=torch.long, device=self.scores.device)
        return Instances(
            scores=self.scores[keep],
            labels=self.labels[keep],
            masks=self.masks[keep],
            boxes=self.boxes[keep],
            centres=self.centres[keep],
            trimaps=None if self.trimaps is None else self.trimaps[keep],
        )

    def to(self, device: torch.device | str) -> Instances:
        return Instances(
            scores=self.scores.to(device),
            labels=self.labels.to(device),
            masks=self.masks.to(device),
            boxes=self.boxes.to(device),
            centres=self.centres.to(device),
            trimaps=None if self.trimaps is None else self.trimaps.to(device),
        )

    @staticmethod
    def empty(height: int, width: int, device: torch.device | str = "cpu") -> Instances:
        return Instances(
            scores=torch.zeros(0, device=device),
            labels=torch.zeros(0, dtype=torch.long, device=device),
            masks=torch.zeros(0, height, width, device=device),
            boxes=torch.zeros(0, 4, device=device),
            centres=torch.zeros(0, 2, device=device),
        )


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

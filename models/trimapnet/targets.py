"""SOLOv2 target assignment: which grid cells of which FPN level own which instance.

An instance of scale sqrt(box area) goes to every level whose scale range contains it
(ranges overlap, so often two). On that level's S x S grid, the cells inside its centre
region are positive: the box scaled by `sigma` around the mask's mass centre, clipped to
the 3 x 3 cells around the centre cell (as official SOLOv2). Positions are measured on
the padded image, which the grid spans. Decision: where instances compete for a cell,
the smaller one wins (instances are assigned largest first), so a cell has exactly one
owner and its kernel one target, unlike the official code that trains both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vidmatte.models.instances import boxes_and_centres


@dataclass
class LevelTargets:
    """Targets of one image on one FPN level.

    cate: (S, S) long, class index per cell, `num_classes` for background.
    cells: (P,) long, flat indices (row * S + col) of positive cells.
    instances: (P,) long, which input instance each positive cell must segment.
    """

    cate: Tensor
    cells: Tensor
    instances: Tensor


def assign_targets(
    masks: Tensor,
    labels: Tensor,
    *,
    num_grids: tuple[int, ...] = (40, 36, 24, 16, 12),
    scale_ranges: tuple[tuple[float, float], ...] = (
        (1, 96),
        (48, 192),
        (96, 384),
        (192, 768),
        (384, 2048),
    ),
    sigma: float = 0.2,
    num_classes: int = 1,
    min_pixels: int = 6,
) -> list[LevelTargets]:
    """Assign instances of one padded image to grid cells on every level.

    masks: (N, H, W) bool/uint8 instance masks on the padded image; labels: (N,) long.
    Instances covering fewer than `min_pixels` pixels of the stride-4 sampled mask are
    skipped (too small to supervise a stride-4 mask), as official SOLOv2 does.
    """
    device = labels.device
    n, h, w = masks.shape
    if n:
        boxes, centres = boxes_and_centres(masks.float())
        sampled = masks[:, 2::4, 2::4].flatten(1).sum(1)
        scales = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
        # One transfer of a few numbers per instance: the loops below are tiny.
        rows = torch.cat(
            [boxes, centres, scales[:, None], sampled[:, None].float()], dim=1
        ).tolist()
        order = sorted(range(n), key=lambda i: -rows[i][6])
        label_list = labels.tolist()
    out = []
    for grid, (lo, hi) in zip(num_grids, scale_ranges, strict=True):
        owner = [-1] * (grid * grid)
        cate = torch.full((grid, grid), num_classes, dtype=torch.long)
        for i in order if n else []:
            x0, y0, x1, y1, cx, cy, scale, count = rows[i]
            if not (lo <= scale <= hi) or count < min_pixels:
                continue
            half_w = 0.5 * (x1 - x0) * sigma
            half_h = 0.5 * (y1 - y0) * sigma
            col = int(cx / w * grid)
            row = int(cy / h * grid)
            top = max(0, int((cy - half_h) / h * grid), row - 1)
            down = min(grid - 1, int((cy + half_h) / h * grid), row + 1)
            left = max(0, int((cx - half_w) / w * grid), col - 1)
            right = min(grid - 1, int((cx + half_w) / w * grid), col + 1)
            cate[top : down + 1, left : right + 1] = label_list[i]
            for r in range(top, down + 1):
                for c in range(left, right + 1):
                    owner[r * grid + c] = i
        cells = [k for k, o in enumerate(owner) if o >= 0]
        out.append(
            LevelTargets(
                cate=cate.to(device),
                cells=torch.tensor(cells, dtype=torch.long, device=device),
                instances=torch.tensor([owner[k] for k in cells], dtype=torch.long, device=device),
            )
        )
    return out

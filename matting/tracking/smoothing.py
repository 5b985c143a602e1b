"""Optional online smoothing of trimap probabilities along each track, adding no latency.

Per-frame inference flickers a little at the unknown band; an exponential moving average
of each track's trimap probabilities damps that without waiting for future frames:

    S_t = w · P_t + (1 − w) · warp(S_{t−1}),     S_0 = P_0

warp() compensates the person's motion with the affine map that takes the track's
previous box onto its current box (translation of the box centre, scale of its sides),
sampled bilinearly (`grid_sample`). Pixels the warp brings in from outside the previous
frame take P_t alone. The state resets (S_t = P_t) when the track was not seen in the
previous frame (given `frame_index`), when the image size changes, or when the box
scale jumps by more than `max_scale_change` (a bad box, not motion). The output is a
probability distribution per pixel again (channels renormalised).

Memory: one (3, H, W) tensor per live track, at the trimap's resolution and dtype.
Call `forget(track_id)` for ended tracks (Assignment.ended) or `reset()` per video.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vidmatte.models.errors import UsageError


class TrimapSmoother:
    """EMA of each track's trimap probs, motion-compensated by its box (see module doc)."""

    def __init__(self, weight: float = 0.6, max_scale_change: float = 1.5) -> None:
        if not 0.0 < weight <= 1.0:
            raise UsageError(f"smoothing weight must be in (0, 1], got {weight}")
        if max_scale_change < 1.0:
            raise UsageError("max_scale_change must be >= 1")
        self.weight = weight  # weight of the current frame; 1 = no smoothing
        self.max_scale_change = max_scale_change
        self._state: dict[int, tuple[Tensor, tuple[float, float, float, float], int | None]] = {}

    def reset(self) -> None:
        self._state.clear()

    def forget(self, track_id: int) -> None:
        self._state.pop(track_id, None)

    def __call__(
        self,
        track_id: int,
        trimap_probs: Tensor,
        box: Tensor | tuple[float, float, float, float],
        frame_index: int | None = None,
    ) -> Tensor:
        """Smoothed (3, H, W) probs of this track in this frame; box is xyxy in its pixels."""
        if trimap_probs.dim() != 3 or trimap_probs.shape[0] != 3:
            raise UsageError(f"trimap probs must be (3, H, W), got {tuple(trimap_probs.shape)}")
        b = tuple(float(v) for v in (box.tolist() if isinstance(box, Tensor) else box))
        prev = self._state.get(track_id)
        out = trimap_probs
        if prev is not None and self._continues(prev, trimap_probs, b, frame_index):
            warped, valid = _warp_box(prev[0], prev[1], b)
            w = self.weight
            out = w * trimap_probs + (1 - w) * (valid * warped + (1 - valid) * trimap_probs)
            out = out / out.sum(0, keepdim=True).clamp_min(1e-6)
        self._state[track_id] = (out.detach(), b, frame_index)
        return out

    def _continues(self, prev, probs: Tensor, box, frame_index: int | None) -> bool:
        p, pbox, pframe = prev
        if p.shape != probs.shape or p.device != probs.device:
            return False
        if frame_index is not None and pframe is not None and frame_index - pframe != 1:
            return False
        sizes = [(pbox[2] - pbox[0], box[2] - box[0]), (pbox[3] - pbox[1], box[3] - box[1])]
        for old, new in sizes:
            if old <= 0 or new <= 0:
                return False
            r = max(old / new, new / old)
            if r > self.max_scale_change:
                return False
        return True


def _warp_box(prev: Tensor, old_box, new_box) -> tuple[Tensor, Tensor]:
    """Warp (3, H, W) `prev` so old_box lands on new_box; also the (1, H, W) validity."""
    _, h, w = prev.shape
    theta = torch.zeros(1, 2, 3, dtype=torch.float32)
    for axis, size in ((0, w), (1, h)):
        o0, o1 = old_box[axis], old_box[axis + 2]
        n0, n1 = new_box[axis], new_box[axis + 2]
        s = (o1 - o0) / (n1 - n0)
        c_old, c_new = 0.5 * (o0 + o1), 0.5 * (n0 + n1)
        # Normalised coords (align_corners=False): x_n = 2x/size - 1, continuous pixels.
        theta[0, axis, axis] = s
        theta[0, axis, 2] = s - 1 + 2 * (c_old - s * c_new) / size
    src = torch.cat([prev, torch.ones_like(prev[:1])], 0)[None]
    grid = F.affine_grid(theta.to(prev.device, src.dtype), list(src.shape), align_corners=False)
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped = warped[0]
    valid = warped[3:].clamp(0, 1)
    probs = warped[:3] / valid.clamp_min(1e-6) * (valid > 1e-3)
    return probs, valid

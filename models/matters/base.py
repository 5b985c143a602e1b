"""The matting contract: per-person trimaps -> soft alpha mattes, shared helpers, the factory.

Matters share one call: `IndexNetMatter` (matters/indexnet.py, learned, needs a model
folder), `ClassicalMatter` (matters/classical.py, closed-form matting, needs nothing;
the quality reference) and `FastMatter` (matters/fast.py, closed-form on a coarse grid
with guided upsampling: the CPU default).
Both only work on the unknown band: known pixels are copied from the trimap exactly, and
the work is confined to tiles that touch the band, so a frame whose band is thin costs
little at any resolution (4K included). `band_tiles` and `blend_weights` are the tiling
every tiled matter shares: windows over the band only, linear ramps that never reach 0 and
are flat at frame borders, so there are no seams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from vidmatte.models.errors import InputError, UsageError, WeightsError

KINDS = ("classical", "fast", "indexnet")


@runtime_checkable
class Matter(Protocol):
    name: str  # "indexnet" | "classical" | "fast"

    def __call__(self, image: np.ndarray, trimaps: np.ndarray) -> np.ndarray:
        """image uint8 H×W×3 RGB; trimaps uint8 (N,H,W) 0/128/255 -> float32 (N,H,W) alpha."""
        ...


def check_inputs(image: np.ndarray, trimaps: np.ndarray) -> np.ndarray:
    """Validate shapes/dtypes (InputError, one line); returns trimaps as (N,H,W) uint8."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"matting needs an H×W×3 RGB image, got shape {np.shape(image)}")
    if image.dtype != np.uint8:
        raise InputError(f"matting needs a uint8 image, got {image.dtype}")
    trimaps = np.asarray(trimaps)
    if trimaps.ndim == 2:
        trimaps = trimaps[None]
    if trimaps.ndim != 3 or trimaps.shape[1:] != image.shape[:2]:
        raise InputError(
            f"trimaps must be (N,{image.shape[0]},{image.shape[1]}), got {trimaps.shape}"
        )
    if trimaps.dtype != np.uint8:
        raise InputError(f"trimaps must be uint8 (0/128/255), got {trimaps.dtype}")
    return trimaps


def ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weight: linear ramp over `overlap` px at cut edges, never 0."""
    wgt = np.ones(n, np.float64)
    if overlap > 0:
        r = (np.arange(overlap) + 0.5) / overlap
        m = min(overlap, n)
        if not at_start:
            wgt[:m] = np.minimum(wgt[:m], r[:m])
        if not at_end:
            wgt[n - m :] = np.minimum(wgt[n - m :], r[:m][::-1])
    return wgt


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length) with >= `overlap` overlap."""
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def band_tiles(unknown: np.ndarray, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Top-left corners of tile×tile windows (clipped to the frame) covering the band.

    Windows are laid on a grid over the band's bounding box and kept only where they hold
    an unknown pixel; every unknown pixel lies in at least one kept window.
    """
    h, w = unknown.shape
    ys_, xs_ = np.nonzero(unknown.any(1))[0], np.nonzero(unknown.any(0))[0]
    if ys_.size == 0:
        return []
    th, tw = min(tile, h), min(tile, w)
    y0, y1, x0, x1 = ys_[0], ys_[-1] + 1, xs_[0], xs_[-1] + 1
    ys = sorted({min(y0 + s, h - th) for s in tile_starts(y1 - y0, th, overlap)})
    xs = sorted({min(x0 + s, w - tw) for s in tile_starts(x1 - x0, tw, overlap)})
    # An integral image makes "does this window hold an unknown pixel" O(1).
    ii = np.pad(unknown.astype(np.int32).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    out = []
    for y in ys:
        for x in xs:
            if ii[y + th, x + tw] - ii[y, x + tw] - ii[y + th, x] + ii[y, x] > 0:
                out.append((int(y), int(x)))
    return out


def blend_weights(th: int, tw: int, y: int, x: int, h: int, w: int, overlap: int) -> np.ndarray:
    wy = ramp(th, overlap, y == 0, y + th >= h)
    wx = ramp(tw, overlap, x == 0, x + tw >= w)
    return (wy[:, None] * wx[None, :]).astype(np.float32)


def build_matter(
    kind: str = "classical",
    *,
    weights: str | Path | None = None,
    device: str = "cpu",
    fp16: bool = False,
) -> Matter:
    """The matter for `kind`: "classical", "fast" (need nothing) or "indexnet" (a model folder)."""
    if kind == "classical":
        from vidmatte.models.matters.classical import ClassicalMatter

        return ClassicalMatter()
    if kind == "fast":
        from vidmatte.models.matters.fast import FastMatter

        return FastMatter()
    if kind != "indexnet":
        raise UsageError(f"unknown matter {kind!r} (choose from {', '.join(KINDS)})")
    if weights is None:
        raise WeightsError(
            "the indexnet matter needs weights (a model folder); use --matter classical without"
        )
    from vidmatte.models.indexnet.model import IndexNetMatting
    from vidmatte.models.matters.indexnet import IndexNetMatter

    model = IndexNetMatting.from_folder(weights, device=device)
    return IndexNetMatter(model, device=device, fp16=fp16)

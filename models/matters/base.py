"""The matting interface: per-person trimaps -> soft alpha mattes, and its factory.

Two matters share one call: `IndexNetMatter` (learned, needs a model folder) and
`ClassicalMatter` (closed-form matting, needs nothing; the quality reference).
Both only work on the unknown band: known pixels are copied from the trimap exactly, and
the work is confined to tiles that touch the band, so a frame whose band is thin costs
little at any resolution (4K included).

IndexNet tiling: a grid of `tile`-sized windows laid over the band's bounding box, keeping
only windows that contain unknown pixels; each window sees its full image + trimap
context; overlapping outputs are blended with linear ramps that never reach 0 and are
flat at frame borders, so there are no seams. Tiles of all people go through the network
together in batches (fp16 on CUDA when asked).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from vidmatte.models.errors import InputError, UsageError, WeightsError

KINDS = ("classical", "indexnet")


@runtime_checkable
class Matter(Protocol):
    name: str  # "indexnet" | "classical"

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


def _known_alpha(trimaps: np.ndarray) -> np.ndarray:
    return (trimaps == 255).astype(np.float32)


def _unknown(trimaps: np.ndarray) -> np.ndarray:
    return (trimaps != 0) & (trimaps != 255)


def band_tiles(unknown: np.ndarray, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Top-left corners of tile×tile windows (clipped to the frame) covering the band.

    Windows are laid on a grid over the band's bounding box and kept only where they hold
    an unknown pixel; every unknown pixel lies in at least one kept window.
    """
    from vidmatte.models.matters.classical import tile_starts

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
    from vidmatte.models.matters.classical import _ramp

    wy = _ramp(th, overlap, y == 0, y + th >= h)
    wx = _ramp(tw, overlap, x == 0, x + tw >= w)
    return (wy[:, None] * wx[None, :]).astype(np.float32)


class ClassicalMatter:
    """Closed-form matting on the unknown band of each trimap (no weights needed).

    People are solved in parallel threads: SuperLU and numpy release the GIL for most of
    the work, so two cores matte three dancers ~1.6x faster than one after another, with
    identical results (each person's solve is independent).
    """

    name = "classical"

    def __init__(
        self,
        *,
        tile: int = 128,
        overlap: int = 16,
        sweeps: int = 4,
        eps: float = 1e-7,
        workers: int | None = None,
    ):
        self.tile, self.overlap, self.sweeps, self.eps = tile, overlap, sweeps, eps
        self.workers = workers or min(4, os.cpu_count() or 1)

    def __call__(self, image: np.ndarray, trimaps: np.ndarray) -> np.ndarray:
        from vidmatte.models.matters.classical import closed_form_alpha

        trimaps = check_inputs(image, trimaps)
        out = np.empty(trimaps.shape, np.float32)

        def solve(i: int) -> None:
            out[i] = closed_form_alpha(
                image,
                trimaps[i],
                eps=self.eps,
                tile=self.tile,
                overlap=self.overlap,
                sweeps=self.sweeps,
            )

        if self.workers > 1 and len(trimaps) > 1:
            with ThreadPoolExecutor(min(self.workers, len(trimaps))) as pool:
                list(pool.map(solve, range(len(trimaps))))
        else:
            for i in range(len(trimaps)):
                solve(i)
        return out


class IndexNetMatter:
    """IndexNet on tiles around each person's unknown band, batched across people.

    tile=None runs each person's whole frame in one pass (the reference for tiling).
    """

    name = "indexnet"

    def __init__(
        self,
        model,
        *,
        device: str = "cpu",
        fp16: bool = False,
        tile: int | None = 512,
        overlap: int = 64,
        batch_size: int = 4,
    ) -> None:
        import torch

        self.device = torch.device(device)
        self.fp16 = bool(fp16) and self.device.type == "cuda"
        self.model = model.to(self.device).eval()
        self.tile, self.overlap, self.batch_size = tile, overlap, max(1, batch_size)

    def __call__(self, image: np.ndarray, trimaps: np.ndarray) -> np.ndarray:
        trimaps = check_inputs(image, trimaps)
        n, h, w = trimaps.shape
        alpha = _known_alpha(trimaps)
        unknown = _unknown(trimaps)
        tile = self.tile or max(h, w)
        jobs = [
            (i, y, x) for i in range(n) for (y, x) in band_tiles(unknown[i], tile, self.overlap)
        ]
        if not jobs:
            return alpha
        th, tw = min(tile, h), min(tile, w)
        acc = np.zeros((n, h, w), np.float32)
        wsum = np.zeros((n, h, w), np.float32)
        for k in range(0, len(jobs), self.batch_size):
            chunk = jobs[k : k + self.batch_size]
            pred = self._run(image, trimaps, chunk, th, tw)
            for (i, y, x), p in zip(chunk, pred, strict=True):
                wt = blend_weights(th, tw, y, x, h, w, self.overlap)
                acc[i, y : y + th, x : x + tw] += wt * p
                wsum[i, y : y + th, x : x + tw] += wt
        est = acc / np.maximum(wsum, 1e-12)
        alpha[unknown] = np.clip(est[unknown], 0.0, 1.0)
        return alpha

    def _run(self, image, trimaps, chunk, th, tw) -> np.ndarray:
        import torch

        imgs = np.stack([image[y : y + th, x : x + tw] for _, y, x in chunk])
        tris = np.stack([trimaps[i, y : y + th, x : x + tw] for i, y, x in chunk])
        with torch.inference_mode():
            im = torch.from_numpy(imgs).to(self.device).permute(0, 3, 1, 2).float() / 255.0
            tr = torch.from_numpy(tris).to(self.device)[:, None].float()
            tr = torch.where((tr > 0) & (tr < 255), torch.full_like(tr, 0.5), tr / 255.0)
            if self.fp16:
                with torch.autocast("cuda", dtype=torch.float16):
                    out = self.model(im, tr)
            else:
                out = self.model(im, tr)
            return out[:, 0].float().cpu().numpy()


def build_matter(
    kind: str = "classical",
    *,
    weights: str | Path | None = None,
    device: str = "cpu",
    fp16: bool = False,
) -> Matter:
    """The matter for `kind`: "classical" (needs nothing) or "indexnet" (a model folder)."""
    if kind == "classical":
        return ClassicalMatter()
    if kind != "indexnet":
        raise UsageError(f"unknown matter {kind!r} (choose from {', '.join(KINDS)})")
    if weights is None:
        raise WeightsError(
            "the indexnet matter needs weights (a model folder); use --matter classical without"
        )
    from vidmatte.models.indexnet.model import IndexNetMatting

    model = IndexNetMatting.from_folder(weights, device=device)
    return IndexNetMatter(model, device=device, fp16=fp16)

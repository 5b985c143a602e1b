"""IndexNet as a matter: the network on tiles around each person's unknown band.

Tiling: a grid of `tile`-sized windows laid over the band's bounding box, keeping only
windows that contain unknown pixels; each window sees its full image + trimap context;
overlapping outputs are blended with linear ramps (matters/base.py), so there are no
seams. Tiles of all people go through the network together in batches (fp16 on CUDA).
"""

from __future__ import annotations

import numpy as np

from vidmatte.models.matters.base import band_tiles, blend_weights, check_inputs
from vidmatte.models.trimap import known_alpha, trimap_to_unit, unknown_region


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
        alpha = known_alpha(trimaps)
        unknown = unknown_region(trimaps)
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
            tr = trimap_to_unit(torch.from_numpy(tris).to(self.device)[:, None])
            if self.fp16:
                with torch.autocast("cuda", dtype=torch.float16):
                    out = self.model(im, tr)
            else:
                out = self.model(im, tr)
            return out[:, 0].float().cpu().numpy()

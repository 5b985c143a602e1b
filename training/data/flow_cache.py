"""Optical flow between training frames, computed once with OpenCV DIS and cached on disk.

The temporal loss needs the flow from each labelled frame t to its sampled neighbours. On a
GPU the trainer computes it on the fly with RAFT; on CPU (and for reproducible runs) DIS
flow is computed once per (video, t, t') pair and kept as float16 .npy files, either next
to the dataset (`DATASET/flow_cache/`) or in a chosen cache folder. Flows are computed and
stored on frames downscaled to at most `max_side` pixels, which bounds the cache (a pair at
480 px is ~0.5 MB) and the DIS cost; vectors are in the pixels of that stored size and are
rescaled by `augment.apply_flow` to whatever the frames are resized to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np


def _dis_flow(img0: np.ndarray, img1: np.ndarray) -> np.ndarray:
    from vidmatte.models.flow import dis_flow  # the one DIS implementation (models/flow.py)

    return dis_flow(img0, img1)


def downscale(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return img
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


class FlowCache:
    """float16 flows t -> t' per video, computed on demand and cached as .npy files."""

    def __init__(self, folder: str | Path, max_side: int = 480) -> None:
        self.folder = Path(folder)
        self.max_side = int(max_side)

    def path(self, video: str, i: int, j: int) -> Path:
        return self.folder / f"s{self.max_side}" / video / f"{i:06d}_{j:06d}.npy"

    def get(self, video: str, i: int, j: int, load: Callable[[int], np.ndarray]) -> np.ndarray:
        """Flow (h, w, 2) float32 from frame i to frame j (img_i(p) ~ img_j(p + flow(p))).

        `load(index)` returns the uint8 RGB frame; called only on a cache miss.
        """
        if i == j:
            h, w = downscale(load(i), self.max_side).shape[:2]
            return np.zeros((h, w, 2), np.float32)
        p = self.path(video, i, j)
        if p.is_file():
            try:
                return np.load(p, allow_pickle=False).astype(np.float32)
            except (OSError, ValueError):
                pass  # a torn file from an interrupted run: recompute
        a = downscale(load(i), self.max_side)
        b = downscale(load(j), self.max_side)
        flow = np.asarray(_dis_flow(a, b), np.float32).astype(np.float16)
        self._save(p, flow)
        # hits and misses return the same (float16-rounded) values: runs are reproducible
        return flow.astype(np.float32)

    def _save(self, p: Path, arr: np.ndarray) -> None:
        from vidmatte.matting.io.atomic import atomic_path, make_dirs

        make_dirs(p.parent)
        with atomic_path(p) as tmp, open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)

    def precompute(
        self,
        pairs: Iterable[tuple[str, int, int]],
        load: Callable[[str, int], np.ndarray],
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Fill the cache for (video, i, j) pairs; returns how many were computed."""
        n = 0
        for k, (video, i, j) in enumerate(pairs):
            if i != j and not self.path(video, i, j).is_file():
                self.get(video, i, j, lambda idx, v=video: load(v, idx))
                n += 1
            if progress is not None:
                progress(k + 1)
        return n

"""Scoring a matter alone: held-out human triplets and the Composition-1k item.

The items (issue 19):

- **Held-out triplets**: background-matting triplets (training/labels/background_matting.py)
  of the clips listed under `matting` in training/configs/validation.toml, read from a
  triplet folder (`OUT/<clip>/{image,alpha,fg}`). Each is a real frame crop with its
  near-ground-truth alpha. The trimap is the pipeline's band rule applied to that alpha
  (models/trimap.py `trimap_from_alpha`): what a matter gets from the trimap network.
- **Composition-1k 'spring', right half**: its true alpha, trimap by Deep Image Matting's
  rule (training/metrics `evaluation_trimap`). The left half (x < 560) may train IndexNet
  (`c1k_training_half`); the right half never does, so every matter is scored on it.

Metrics per item (training/metrics/alpha.py): SAD (sum |α - g| / 1000 over the whole
crop, known pixels included, as Composition-1k reports it), MSE ×1e3, Grad, Conn over
the trimap's unknown pixels; averaged over items. Speed: ms per person-frame with each
triplet rescaled so that its source frame is 720p (short side 720) or 1080p, wall clock
and process CPU time (the machine may be shared: the load average is recorded with it),
on the pipeline's trimap for that person (the band rule on alpha > 0.5).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidmatte.models.errors import InputError

SPRING = "data/matting/c1k_spring-289527_1920_15"
SPRING_SPLIT_X = 560  # left half: IndexNet may train on it; right half: evaluation only


@dataclass
class MattingItem:
    name: str
    image: np.ndarray  # uint8 H×W×3 RGB
    alpha: np.ndarray  # float32 H×W ground truth
    trimap: np.ndarray  # uint8 H×W 0/128/255
    frame_short_side: int  # short side of the frame this crop comes from


def _read(path: Path, grey: bool = False) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read {path}")
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_spring(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    """The Composition-1k 'spring' image (uint8 RGB) and its ground-truth alpha (float32)."""
    d = shared / SPRING
    name = "spring-289527_1920_15.png"
    img = _read(d / "image" / name)
    return img, _read(d / "alpha" / name, grey=True).astype(np.float32) / 255.0


def spring_halves(
    shared: Path,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((image, alpha) of the left half, (image, alpha) of the right half); alpha float."""
    img, alpha = read_spring(shared)
    x = SPRING_SPLIT_X
    return (img[:, :x], alpha[:, :x]), (img[:, x:], alpha[:, x:])


def spring_item(shared: Path) -> MattingItem:
    """The held-out right half of Composition-1k 'spring' with its evaluation trimap."""
    from vidmatte.training.metrics import evaluation_trimap

    _, (img, alpha) = spring_halves(shared)
    return MattingItem("c1k_spring (right half)", np.ascontiguousarray(img), alpha,
                       evaluation_trimap(alpha), img.shape[0])  # fmt: skip


def held_out_triplets(root: str | Path, limit: int = 0) -> list[MattingItem]:
    """The triplets of held-out clips under `root` (module docstring), sorted by name."""
    from vidmatte.models.trimap import trimap_from_alpha
    from vidmatte.training.data.validation import load_validation

    root = Path(root)
    names = {p.stem if p.suffix else p.name for p in load_validation().matting}
    items: list[MattingItem] = []
    for clip in sorted(names):
        folder = root / clip
        if not (folder / "alpha").is_dir():
            continue
        report = folder / "report.json"
        short = 720
        if report.is_file():
            short = min(json.loads(report.read_text()).get("working_size", [1280, 720]))
        for a in sorted((folder / "alpha").glob("*.png")):
            alpha = _read(a, grey=True).astype(np.float32) / 255.0
            img = _read(folder / "image" / a.name)
            items.append(MattingItem(a.stem, img, alpha, trimap_from_alpha(alpha), short))
    if limit:
        step = max(1, len(items) // limit)
        items = items[::step][:limit]
    return items


def score(pred: np.ndarray, item: MattingItem) -> dict[str, float]:
    from vidmatte.training.metrics import alpha_metrics

    m = alpha_metrics(pred, item.alpha, item.trimap)
    return {
        "SAD": float(np.abs(pred - item.alpha).sum() / 1000.0),
        "MSE": m["MSE"],
        "Grad": m["Grad"],
        "Conn": m["Conn"],
    }


def rescaled(item: MattingItem, short_side: int) -> tuple[np.ndarray, np.ndarray]:
    """(image, trimap) of the item as if its frame had this short side; the trimap is the
    pipeline's: the band rule on the person's mask (alpha > 0.5), as from a perfect
    segmenter, so the timed band is the band the pipeline solves."""
    from vidmatte.models.trimap import masks_to_trimaps

    s = short_side / item.frame_short_side
    h, w = item.alpha.shape
    size = (max(8, round(w * s)), max(8, round(h * s)))
    img = cv2.resize(item.image, size, interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
    a = cv2.resize(item.alpha, size, interpolation=cv2.INTER_LINEAR)
    return img, masks_to_trimaps((a > 0.5)[None])[0]


def evaluate_matter(
    matter: Callable[[np.ndarray, np.ndarray], np.ndarray],
    items: list[MattingItem],
    *,
    speed_items: int = 6,
    speed_sides: tuple[int, ...] = (720, 1080),
) -> dict[str, float]:
    """Mean SAD/MSE/Grad/Conn over `items`, and ms per person-frame at each short side
    (median over the first `speed_items` items, one warm-up call first)."""
    per = [score(matter(it.image, it.trimap[None])[0], it) for it in items]
    out = {k: float(np.mean([p[k] for p in per])) for k in ("SAD", "MSE", "Grad", "Conn")}
    out["items"] = len(items)
    timed = [it for it in items if it.frame_short_side > 0][:speed_items]
    for side in speed_sides if timed else ():
        walls, cpus = [], []
        for k, it in enumerate(timed):
            img, tri = rescaled(it, side)
            if k == 0:
                matter(img, tri[None])
            t0, c0 = time.perf_counter(), time.process_time()
            matter(img, tri[None])
            walls.append((time.perf_counter() - t0) * 1e3)
            cpus.append((time.process_time() - c0) * 1e3)
        out[f"ms_{side}p"] = float(np.median(walls))
        out[f"cpu_ms_{side}p"] = float(np.median(cpus))
    return out


def load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0

"""`vidmatte-train distil-alpha`: alpha mattes for real frames from the classical matter.

The issue's recipe trains IndexNet on composites with "alpha from ground truth where
available, otherwise from the classical matter on real frames, as offline distillation".
Real human-matting ground truth is scarce (the shared data has one non-person GT triplet),
so this command turns a pseudo-labelled dataset (`vidmatte-train pseudo-label`) into a
matting folder: for every labelled person it runs closed-form matting (models/matters/classical.py)
on the teacher's pseudo trimap and writes a crop around the person as

    OUT/image/<video>_<frame>_t<track>.png   the real frame (RGB)
    OUT/alpha/<video>_<frame>_t<track>.png   the classical matter's alpha (8-bit)

which `[data] matting = ["OUT"]` then composites onto new backgrounds (training/data/datasets.py:
the image stands in for the foreground colours). Decisions:

- Crops, not whole frames: a crop of the person's box grown by `--margin` (plus the band)
  keeps each item about the person it is labelled for; other people inside the crop stay
  in the image but not in the alpha, which teaches IndexNet to follow the trimap.
- People under `--min-area` pixels are skipped: their band is a few pixels and the
  closed-form solution there is mostly the trimap itself.
- Resumable and atomic per file: an item whose alpha already exists is skipped, files are
  written beside their target and renamed. The matter runs single-threaded per person
  (one person at a time, see models/matters/classical.py on why tiles are solved serially).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidmatte.models.errors import InputError, UsageError


@dataclass
class DistilResult:
    written: int
    skipped: int  # already present (resume)
    too_small: int
    seconds: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="pseudo-labelled dataset folder (manifest.json)")
    parser.add_argument("--out", required=True, help="matting folder to write (image/, alpha/)")
    parser.add_argument(
        "--margin", type=float, default=0.15, help="crop margin, fraction of the box side"
    )
    parser.add_argument(
        "--min-area", type=int, default=2000, help="skip people smaller than this (pixels)"
    )
    parser.add_argument("--limit", type=int, default=0, help="stop after N items (0: all)")
    parser.add_argument("--quiet", action="store_true")


def crop_box(mask: np.ndarray, margin: float, pad: int) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) around the mask's non-zero pixels, grown by margin·side + pad."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    h, w = mask.shape
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    my = int(margin * (y1 - y0)) + pad
    mx = int(margin * (x1 - x0)) + pad
    return max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx)


def distil(
    dataset: str | Path,
    out: str | Path,
    *,
    margin: float = 0.15,
    min_area: int = 2000,
    limit: int = 0,
    progress=None,
) -> DistilResult:
    """Write OUT/{image,alpha}/ crops for every labelled person of `dataset` (see module doc)."""
    from vidmatte.models.matters.classical import closed_form_alpha
    from vidmatte.models.trimap import band_width, classes_to_trimap, trimap_to_classes
    from vidmatte.training.data.datasets import read_grey, read_manifest, read_rgb
    from vidmatte.training.data.teacher_dataset import write_image

    root, out = Path(dataset), Path(out)
    videos = read_manifest(root)
    jobs = [
        (v.name, f, inst) for v in videos for f in v.frames if f.labelled for inst in f.instances
    ]
    if not jobs:
        raise InputError(f"{root}: no labelled people to distil")
    if limit:
        jobs = jobs[:limit]
    written = skipped = small = 0
    t0 = time.monotonic()
    for n, (name, frame, inst) in enumerate(jobs):
        stem = f"{name}_{frame.index:06d}_t{inst.track_id:02d}"
        alpha_path = out / "alpha" / f"{stem}.png"
        if alpha_path.is_file():
            skipped += 1
            continue
        trimap = read_grey(root / inst.trimap)
        classes = trimap_to_classes(trimap)
        mask = classes >= 1
        if int(mask.sum()) < min_area:
            small += 1
            continue
        box = crop_box(mask, margin, band_width(classes == 2) + 4)
        if box is None:
            small += 1
            continue
        y0, y1, x0, x1 = box
        image = read_rgb(root / frame.file)[y0:y1, x0:x1]
        tri = classes_to_trimap(classes)
        alpha = closed_form_alpha(np.ascontiguousarray(image), tri[y0:y1, x0:x1])
        write_image(out / "image" / f"{stem}.png", image, rgb=True)
        write_image(alpha_path, (np.clip(alpha, 0, 1) * 255 + 0.5).astype(np.uint8))
        written += 1
        if progress is not None:
            progress(n + 1, len(jobs), time.monotonic() - t0)
    return DistilResult(written, skipped, small, time.monotonic() - t0)


def run(args: argparse.Namespace) -> int:
    if args.margin < 0 or args.min_area < 0 or args.limit < 0:
        raise UsageError("--margin, --min-area and --limit must not be negative")

    def progress(done: int, total: int, secs: float) -> None:
        if args.quiet:
            return
        eta = secs / done * (total - done)
        print(f"\r{done}/{total} people  ETA {eta:5.0f} s", end="", file=sys.stderr, flush=True)

    r = distil(args.dataset, args.out, margin=args.margin, min_area=args.min_area,
               limit=args.limit, progress=progress)  # fmt: skip
    if not args.quiet:
        print(file=sys.stderr)
    print(
        f"{r.written} mattes written to {args.out} ({r.skipped} already there, "
        f"{r.too_small} too small) in {r.seconds:.0f} s"
    )
    return 0

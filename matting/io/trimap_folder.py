"""The matting-only mode: `vidmatte-cli INPUT --trimaps DIR --out OUT`.

For users who bring masks from another tool, and to score a matter alone: the instance
stage (network or teacher) and association are skipped; each person's trimap comes from
a file, in the layout `--save-trimaps` writes:

    DIR/person_01/trimap/000000.png …     file name = source frame number
    DIR/manifest.json                     optional: a vidmatte export's, maps renamed
                                          person folders back to their IDs

A person folder may also hold the PNGs directly (`DIR/person_01/000000.png`). Person IDs
come from the manifest's tracks, else from the folder name (`person_07` is person 7), else
they are numbered after the largest one in name order. Each file is read as

- a **trimap** when its values are a subset of {0, 128, 255} that includes 128;
- otherwise a **mask** (a binary 0/255 mask, or a soft one, thresholded at 128): all
  masks of a frame get the band rule together (models/trimap.py `masks_to_trimaps`, the
  same rule the teacher's masks get, touching people included).

A file of another size than the video is resized (nearest) when the aspect ratio agrees,
else it is an input error (exit 3); so are a missing folder, a folder without trimaps and
an unreadable PNG. A frame without any file has no people. People are matted on a crop
around their trimap exactly as in the full pipeline (`crop_for_matting`), so trimaps saved
by a run and matted again here give the same alpha with the same matter. The output
layout, manifest and exit codes are the full pipeline's.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from vidmatte.models.errors import Cancelled, InputError

if TYPE_CHECKING:
    from vidmatte.matting.pipeline import FrameResult, Pipeline
    from vidmatte.matting.progress import Progress

_PERSON = re.compile(r"^person_(\d+)$")
_FRAME = re.compile(r"^(\d+)$")
LAYOUT = "DIR/person_XX/trimap/NNNNNN.png"


@dataclass(frozen=True)
class PersonFiles:
    """One person's trimap or mask files, by source frame number."""

    track_id: int
    folder: Path
    files: dict[int, Path]


def _person_ids(root: Path, folders: list[Path]) -> dict[Path, int]:
    ids: dict[Path, int] = {}
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            tracks = json.loads(manifest.read_text()).get("tracks", [])
        except (OSError, ValueError):
            tracks = []
        for t in tracks:
            rel = t.get("trimap") or ""
            if isinstance(rel, str) and rel and isinstance(t.get("id"), int):
                ids[(root / Path(rel).parts[0]).resolve()] = t["id"]
    out: dict[Path, int] = {}
    for f in folders:
        m = _PERSON.match(f.name)
        if f.resolve() in ids:
            out[f] = ids[f.resolve()]
        elif m:
            out[f] = int(m.group(1))
    nxt = max(out.values(), default=0) + 1
    for f in folders:
        if f not in out:
            out[f] = nxt
            nxt += 1
    return out


def scan(root: str | Path) -> list[PersonFiles]:
    """The people of a trimap folder (module docstring); InputError when there are none."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"--trimaps {root}: no such folder (expected {LAYOUT})")
    found: list[tuple[Path, dict[int, Path]]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        where = sub / "trimap" if (sub / "trimap").is_dir() else sub
        files = {}
        for f in where.iterdir():
            m = _FRAME.match(f.stem)
            if m and f.suffix.lower() == ".png" and f.is_file():
                files[int(m.group(1))] = f
        if files:
            found.append((sub, files))
    if not found:
        raise InputError(f"--trimaps {root}: no trimap or mask PNGs found (expected {LAYOUT})")
    ids = _person_ids(root, [f for f, _ in found])
    if len(set(ids.values())) != len(ids):
        raise InputError(f"--trimaps {root}: two person folders have the same ID")
    return sorted((PersonFiles(ids[f], f, files) for f, files in found), key=lambda p: p.track_id)


def read_trimap_or_mask(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """(uint8 H×W, is_trimap) from one PNG, resized to `size` (H, W) when needed."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"cannot read {path} (not a PNG image)")
    if img.ndim == 3:
        img = img[..., 0] if img.shape[2] in (3, 4) else img.max(-1)
    if img.dtype == np.uint16:
        img = (img // 257).astype(np.uint8)
    img = img.astype(np.uint8)
    h, w = size
    if img.shape != (h, w):
        if abs(img.shape[1] / img.shape[0] - w / h) > 0.01 * (w / h):
            raise InputError(
                f"{path}: {img.shape[1]}×{img.shape[0]} does not fit the video's {w}×{h}"
            )
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
    values = np.unique(img)
    is_trimap = bool(np.isin(values, (0, 128, 255)).all() and 128 in values)
    return img, is_trimap


def frame_trimaps(people: list[PersonFiles], index: int, size: tuple[int, int]):
    """[(track_id, uint8 trimap H×W)] of the people who have a file for frame `index`."""
    from vidmatte.models.trimap import masks_to_trimaps

    got, masks = [], []
    for p in people:
        path = p.files.get(index)
        if path is None:
            continue
        img, is_trimap = read_trimap_or_mask(path, size)
        if is_trimap:
            got.append((p.track_id, img))
        else:
            masks.append((p.track_id, img > 127))
    if masks:
        tris = masks_to_trimaps(np.stack([m for _, m in masks]))
        got += [(tid, tris[i]) for i, (tid, _) in enumerate(masks)]
    return sorted(((t, tri) for t, tri in got if tri.any()), key=lambda x: x[0])


class TrimapFolderSource:
    """The instance source of the matting-only mode: people and IDs come from files."""

    name = "trimaps"
    min_score = 0.0  # there are no scores: every given person is kept

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        self.people = scan(self.folder)

    def describe(self) -> dict[str, Any]:
        return {"instances": "trimap-folder", "model": "given trimaps", "trimaps": str(self.folder)}

    def detect(self, frames, select=None):  # pragma: no cover - never called
        raise RuntimeError("the trimap folder has no instance stage")

    def process(
        self,
        pipe: Pipeline,
        reader,
        *,
        start: int = 0,
        end: int | None = None,
        cancel: threading.Event | None = None,
        progress: Callable[[Progress], None] | None = None,
        skip_matting: Callable[[int, set[int]], bool] | None = None,
    ) -> Iterator[FrameResult]:
        """`Pipeline.process` for given trimaps: a FrameResult per frame, in order."""
        from vidmatte.matting.pipeline import FrameResult, PersonFrame, matte_person
        from vidmatte.matting.progress import RateMeter

        total_end = reader.info.frame_count if end is None else min(end, reader.info.frame_count)
        meter = RateMeter(max(0, total_end - start) if total_end else None)
        wanted = pipe.config.persons
        timings = {"decode": 0.0, "matting": 0.0}
        pipe.timings = timings
        done = 0
        frames = reader.frames(start, end)

        def matte(rgb: np.ndarray, tri: np.ndarray) -> np.ndarray:
            # the pipeline's per-person matting, on a window that is the whole frame
            return matte_person(pipe.matter, rgb, (0, 0, tri.shape[1], tri.shape[0]), tri)

        with ThreadPoolExecutor(pipe.matting_workers, thread_name_prefix="vidmatte-matte") as pool:
            while True:
                t0 = time.perf_counter()
                frame = next(frames, None)
                timings["decode"] += time.perf_counter() - t0
                if frame is None:
                    break
                h, w = frame.rgb.shape[:2]
                people = [
                    (tid, tri)
                    for tid, tri in frame_trimaps(self.people, frame.index, (h, w))
                    if wanted is None or tid in wanted
                ]
                result = FrameResult(frame=frame, started=time.perf_counter())
                t0 = time.perf_counter()
                ids = {tid for tid, _ in people}
                skip = skip_matting is not None and skip_matting(frame.index, ids)
                alphas = [None] * len(people) if skip else list(
                    pool.map(lambda p, rgb=frame.rgb: matte(rgb, p[1]), people)
                )  # fmt: skip
                timings["matting"] += time.perf_counter() - t0
                for (tid, tri), alpha in zip(people, alphas, strict=True):
                    ys, xs = np.nonzero(tri >= 128)
                    if ys.size == 0:
                        ys, xs = np.nonzero(tri)
                    box = (
                        float(xs.min()),
                        float(ys.min()),
                        float(xs.max() + 1),
                        float(ys.max() + 1),
                    )
                    result.people[tid] = PersonFrame(1.0, box, (0, 0, w, h), (h, w), tri, alpha)
                yield result
                done += 1
                if progress is not None:
                    progress(meter.update(done))
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")

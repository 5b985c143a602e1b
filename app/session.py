"""The application's model: one open video, its results cache and the people in it.

Design decisions:
- Results stay out of RAM: the processing job writes each (frame, person) alpha, trimap and
  a small thumbnail into one compressed .npz in a temporary cache folder; the TrackStore
  (matting/tracking/tracks.py) records which track owns which file (`CacheEntry` payloads). A long
  video costs disk, not memory.
- Edits (rename, merge, split, delete) change only the TrackStore; files never move.
  Export replays the cache through the same Exporter as the CLI, re-keying each frame's
  people with the edited IDs and passing the edited names.
- Qt-free: jobs are generator functions (see app/workers.py) that also run headless.
  Only the GUI thread mutates the TrackStore; jobs get snapshots (TrackStore.copy()).
- Loaded models are cached per PipelineConfig (frozen, hashable: the one list of model
  settings) for the process's lifetime (loading takes seconds; re-processing after an edit
  of the range should not pay it again).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidmatte.matting.config import PipelineConfig
from vidmatte.matting.io.atomic import atomic_path
from vidmatte.matting.tracking.tracks import TrackInfo, TrackStore
from vidmatte.models.errors import UsageError

if TYPE_CHECKING:  # the pipeline imports torch: loaded with the models, off the GUI path
    from vidmatte.matting.pipeline import Pipeline

THUMB = 64  # thumbnail side in pixels

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 190),
    (0, 128, 128),
    (170, 110, 40),
    (128, 0, 0),
)


def colour_of(track_id: int) -> tuple[int, int, int]:
    return PALETTE[(track_id - 1) % len(PALETTE)]


@dataclass(frozen=True)
class CacheEntry:
    """Payload of one (frame, track) record: where its arrays are, and its box."""

    path: Path
    box: tuple[float, float, float, float]


@dataclass
class CachedPerson:
    score: float
    box: tuple[float, float, float, float]
    alpha: np.ndarray | None  # uint8 H×W
    trimap: np.ndarray  # uint8 H×W (0/128/255)


@dataclass
class ProcessedFrame:
    """What the processing job yields per frame (GUI thread records it in the store)."""

    index: int
    rgb: np.ndarray
    people: dict[int, tuple[float, CacheEntry]]  # track id -> (score, entry)


@dataclass
class ProcessSummary:
    frames: int
    seconds: float
    start: int
    end: int
    describe: dict[str, Any] = field(default_factory=dict)
    load_s: float = 0.0  # model loading (0 when the models were already loaded)


@dataclass
class ExportSummary:
    out_dir: Path
    manifest: Path
    frames: int
    seconds: float
    tracks: list[dict[str, Any]]


_PIPELINES: dict[PipelineConfig, Pipeline] = {}
_PIPELINES_LOCK = threading.Lock()


def load_pipeline(config: PipelineConfig) -> Pipeline:
    """The Pipeline for this config, loaded once per process and keyed by the (frozen)
    config itself: change any model setting and the models load again (raises WeightsError,
    UsageError with the one-line message when models are missing or the device is absent)."""
    from vidmatte.matting.pipeline import Pipeline

    with _PIPELINES_LOCK:
        pipe = _PIPELINES.get(config)
        if pipe is None:
            pipe = Pipeline(config)
            _PIPELINES.clear()  # keep one set of models in memory
            _PIPELINES[config] = pipe
        return pipe


def _thumbnail(rgb: np.ndarray, alpha: np.ndarray | None, box) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0 = max(0, min(x0, w - 1)), max(0, min(y0, h - 1))
    x1, y1 = max(x0 + 1, min(x1, w)), max(y0 + 1, min(y1, h))
    crop = rgb[y0:y1, x0:x1].astype(np.float32)
    if alpha is not None:  # the person over mid grey: shows who it is, not the background
        a = alpha[y0:y1, x0:x1, None].astype(np.float32) / 255.0
        crop = crop * a + 96.0 * (1.0 - a)
    ch, cw = crop.shape[:2]
    s = THUMB / max(ch, cw)
    small = cv2.resize(crop, (max(1, round(cw * s)), max(1, round(ch * s))), cv2.INTER_AREA)
    out = np.full((THUMB, THUMB, 3), 96, np.uint8)
    oy, ox = (THUMB - small.shape[0]) // 2, (THUMB - small.shape[1]) // 2
    out[oy : oy + small.shape[0], ox : ox + small.shape[1]] = np.clip(small, 0, 255)
    return out


class Session:
    """One video being worked on. Not thread-safe: use from the GUI thread; jobs are
    generator functions given snapshots."""

    def __init__(self, path: str | Path) -> None:
        from vidmatte.matting.io.video import open_video

        self.path = Path(path).expanduser().resolve()
        self.reader = open_video(self.path)  # raises InputError (one line) for bad files
        self.info = self.reader.info
        self.store = TrackStore()
        self.hidden: set[int] = set()  # not drawn in the preview
        self.skip_export: set[int] = set()  # unchecked in the people panel
        self.processed: tuple[int, int] | None = None  # [start, end) covered by the cache
        self.describe: dict[str, Any] = {}
        self._cache = tempfile.mkdtemp(prefix="vidmatte-cache-")
        self._run = 0
        self._frame_cache: tuple[int, np.ndarray] | None = None

    @property
    def frame_count(self) -> int:
        return self.info.frame_count

    @property
    def cache_dir(self) -> Path:
        return Path(self._cache)

    def close(self) -> None:
        self.reader.close()
        shutil.rmtree(self._cache, ignore_errors=True)

    # -- frames ------------------------------------------------------------------------
    def read_rgb(self, index: int) -> np.ndarray:
        """Exactly frame `index` (frame-accurate seek), with a one-frame cache."""
        if self._frame_cache is not None and self._frame_cache[0] == index:
            return self._frame_cache[1]
        rgb = self.reader.read(index).rgb
        self._frame_cache = (index, rgb)
        return rgb

    def remember_frame(self, index: int, rgb: np.ndarray) -> None:
        """A frame already decoded elsewhere (processing): showing it costs no decode."""
        self._frame_cache = (index, rgb)

    def people_at(self, index: int) -> dict[int, CachedPerson]:
        """Edited track id -> cached arrays of everyone recorded in this frame."""
        out = {}
        for tid, entry in self.store.frame(index).items():
            score = self.store.scores(tid)[index]
            with np.load(entry.path) as z:
                alpha = z["alpha"] if "alpha" in z.files else None
                out[tid] = CachedPerson(score, entry.box, alpha, z["trimap"])
        return out

    def thumbnail(self, track_id: int) -> np.ndarray | None:
        """The person's crop at their best-scoring frame (THUMB×THUMB RGB)."""
        scores = self.store.scores(track_id)
        if not scores:
            return None
        best = max(scores, key=scores.get)
        entry = self.store.payloads(track_id)[best]
        with np.load(entry.path) as z:
            return z["thumb"]

    # -- processing --------------------------------------------------------------------
    def process_range(self, max_frames: int = 0) -> tuple[int, int]:
        n = self.frame_count
        end = n if max_frames <= 0 else min(n, max_frames)
        return 0, end

    def begin_processing(self) -> Path:
        """Forget previous results (a new run renumbers people) and return the run's folder."""
        self.store = TrackStore()
        self.hidden.clear()
        self.skip_export.clear()
        self.processed = None
        self._run += 1
        folder = self.cache_dir / f"run{self._run:03d}"
        old = [p for p in self.cache_dir.iterdir() if p != folder]
        for p in old:
            shutil.rmtree(p, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def record(self, item: ProcessedFrame) -> list[int]:
        """Add one processed frame to the store; returns ids seen for the first time."""
        new = [tid for tid in item.people if tid not in self.store]
        for tid, (score, entry) in item.people.items():
            self.store.add(item.index, tid, score, entry)
        lo, hi = self.processed or (item.index, item.index + 1)
        self.processed = (min(lo, item.index), max(hi, item.index + 1))
        return new

    # -- edits (the TrackStore only) ------------------------------------------------------
    def tracks(self) -> list[TrackInfo]:
        return self.store.tracks()

    def rename(self, track_id: int, name: str) -> None:
        self.store.rename(track_id, name)

    def merge(self, keep: int, other: int) -> None:
        self.store.merge(keep, other)
        self.hidden.discard(other)
        self.skip_export.discard(other)

    def split(self, track_id: int, at_frame: int) -> int:
        new = self.store.split(track_id, at_frame)
        if track_id in self.hidden:
            self.hidden.add(new)
        if track_id in self.skip_export:
            self.skip_export.add(new)
        return new

    def delete(self, track_id: int) -> None:
        self.store.delete(track_id)
        self.hidden.discard(track_id)
        self.skip_export.discard(track_id)

    def export_ids(self) -> list[int]:
        return [t for t in self.store.ids() if t not in self.skip_export]

    def export_job_args(self, persons: list[int] | None = None) -> dict[str, Any]:
        """Snapshot for export_job (taken in the GUI thread, so later edits do not race)."""
        if self.processed is None or not len(self.store):
            raise UsageError("nothing to export: process the video first (no person found yet)")
        chosen = self.export_ids() if persons is None else persons
        if not chosen:
            raise UsageError("no person is selected for export")
        return {
            "path": self.path,
            "store": self.store.copy(),
            "persons": frozenset(chosen),
            "start": self.processed[0],
            "end": self.processed[1],
            "model": dict(self.describe),
        }


def process_job(
    path: Path,
    config: PipelineConfig,
    folder: Path,
    start: int = 0,
    end: int | None = None,
    cancel: threading.Event | None = None,
) -> Generator[Any, None, ProcessSummary]:
    """Load the models (cached), run the pipeline and write each result into `folder`.

    Yields Progress (stage "loading models", then "processing") and a ProcessedFrame per
    frame; returns a ProcessSummary.
    """
    from vidmatte.matting.io.video import open_video
    from vidmatte.matting.progress import Progress

    t_load = time.perf_counter()
    yield Progress(0, None, 0.0, None, 0.0, stage="loading models")
    pipe = load_pipeline(config)
    t0 = time.perf_counter()
    load_s = t0 - t_load
    last: list[Progress] = []
    frames = 0
    with open_video(path) as reader:
        end = reader.info.frame_count if end is None else min(end, reader.info.frame_count)
        for result in pipe.process(
            reader, start=start, end=end, cancel=cancel, progress=last.append
        ):
            people = {}
            for tid, person in result.people.items():
                file = folder / f"{result.frame.index:06d}_{tid:03d}.npz"
                arrays = {
                    "trimap": person.trimap,
                    "thumb": _thumbnail(result.frame.rgb, person.alpha, person.box),
                }
                if person.alpha is not None:
                    arrays["alpha"] = person.alpha
                with atomic_path(file) as tmp, open(tmp, "wb") as f:
                    np.savez_compressed(f, **arrays)
                people[tid] = (person.score, CacheEntry(file, tuple(person.box)))
            frames += 1
            yield ProcessedFrame(result.frame.index, result.frame.rgb, people)
            if last:
                p = last[-1]
                p.stage = "processing"
                last.clear()
                yield p
    seconds = time.perf_counter() - t0
    return ProcessSummary(frames, seconds, start, end, pipe.describe(), load_s)


def export_job(
    path: Path,
    store: TrackStore,
    persons: frozenset[int],
    start: int,
    end: int,
    out_dir: str | Path,
    fmt: str = "png",
    composite: str | None = None,
    save_trimaps: bool = False,
    overwrite: bool = False,
    model: dict[str, Any] | None = None,
    cancel: threading.Event | None = None,
) -> Generator[Any, None, ExportSummary]:
    """Replay the cache through the CLI's Exporter with the edited IDs and names."""
    from vidmatte.matting.io.export import ExportConfig, Exporter
    from vidmatte.matting.io.video import open_video
    from vidmatte.matting.pipeline import FrameResult, PersonFrame
    from vidmatte.matting.progress import RateMeter
    from vidmatte.models.errors import Cancelled

    t0 = time.perf_counter()
    config = ExportConfig(
        fmt=fmt,
        persons=persons,
        composite=composite or None,
        save_trimaps=save_trimaps,
        overwrite=overwrite,
    )
    settings = {
        "source": "gui",
        "start": start,
        "end": end,
        "composite": config.composite,
        "save_trimaps": save_trimaps,
        "edited": True,
    }
    names = {tid: store.name(tid) for tid in store.ids()}
    scores = {tid: store.scores(tid) for tid in store.ids() if tid in persons}
    frames = 0
    meter = RateMeter(end - start)
    with open_video(path) as reader:
        exporter = Exporter(
            Path(out_dir),
            reader.info,
            config,
            start=start,
            end=end,
            settings=settings,
            model=model or {},
            names=names,
        )
        try:
            for frame in reader.frames(start, end):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("export cancelled; files written so far are kept")
                people = {}
                for tid, entry in store.frame(frame.index).items():
                    if tid not in persons:
                        continue
                    with np.load(entry.path) as z:
                        alpha = z["alpha"] if "alpha" in z.files else None
                        trimap = z["trimap"]
                    people[tid] = PersonFrame.full(
                        scores[tid][frame.index], entry.box, trimap, alpha
                    )
                exporter.write(FrameResult(frame=frame, people=people))
                frames += 1
                p = meter.update(frames, stage="exporting")
                yield p
            manifest = exporter.close(names=names)
        except BaseException:
            exporter.abort()
            raise
        tracks = exporter.tracks(names)
    return ExportSummary(Path(out_dir), manifest, frames, time.perf_counter() - t0, tracks)

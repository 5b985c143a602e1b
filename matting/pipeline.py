"""The streaming matting pipeline: decode -> instances -> association -> matting -> (encode).

Stages overlap (issue 20): each runs in its own thread and hands its results to the next
through a short bounded queue, so the pipeline runs at the rate of its slowest stage and
memory is bounded by a few frames whatever the video's length:

    decoder thread      reader.frames()                      -> frames queue (1 deep)
    instance thread     source.detect(batch, select=filter)  -> instances queue (1 deep)
    association thread  Associator.update, `confirm_hits - 1` frames held back so a new
                        person's first frames get their ID too; per-person trimaps; one
                        matting job per person submitted to the matting pool
    matting pool        matter(crop, trimap) per person, people and frames in parallel,
                        each on the person's box only (crop_for_matting)
    caller's thread     waits for a frame's people in order and yields its FrameResult;
                        the runner's export thread encodes behind it.

Why threads, not processes: every stage spends its time in native code that releases the
GIL (PyAV, torch, onnxruntime/TFLite, scipy.sparse, numpy, PNG encoding), and threads share
the models and frames without copies. Everything per person stays inside its window
(models/instances.py): the network upsamples only the kept people inside their boxes,
trimaps and alphas are computed on crops, and the full-frame uint8 maps of `PersonFrame`
are built only when an exporter reads them. Results are identical to running the stages
one after another: association runs in frame order on one thread, and each person's
matting is independent of the others'.

The CLI and the GUI drive the same object: `process()` is a generator that yields one
`FrameResult` per frame in order, takes a cancel event and reports `Progress`.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vidmatte.matting.config import PipelineConfig
from vidmatte.matting.device import select_device, use_fp16
from vidmatte.matting.memory import trim
from vidmatte.matting.progress import Progress, RateMeter
from vidmatte.models.errors import Cancelled
from vidmatte.models.instances import Instances

if TYPE_CHECKING:
    from vidmatte.matting.io.video import Frame, VideoReader

Window = tuple[int, int, int, int]

#: Image pixels of context kept around a person's unknown band for matting. The classical
#: matter's solve never reaches further than 3 px beyond the band, so its alpha on the crop
#: is bit-identical to the whole frame's; learned matters see this much context.
MATTING_MARGIN = 16


@dataclass
class PersonFrame:
    """One tracked person in one frame: uint8 trimap (0/128/255) and alpha inside `window`
    (x0, y0, x1, y1) of an image of `image_size`, zero outside. `trimap` and `alpha` are
    the full-frame H×W views, built when read (by an exporter), not kept."""

    score: float
    box: tuple[float, float, float, float]
    window: Window
    image_size: tuple[int, int]
    trimap_crop: np.ndarray
    alpha_crop: np.ndarray | None  # None where matting was skipped (resume)

    @classmethod
    def full(cls, score: float, box, trimap: np.ndarray, alpha: np.ndarray | None):
        """From full-frame maps (e.g. a GUI cache)."""
        h, w = trimap.shape[:2]
        return cls(float(score), tuple(box), (0, 0, w, h), (h, w), trimap, alpha)

    @property
    def trimap(self) -> np.ndarray:
        return _paste(self.trimap_crop, self.window, self.image_size)

    @property
    def alpha(self) -> np.ndarray | None:
        if self.alpha_crop is None:
            return None
        return _paste(self.alpha_crop, self.window, self.image_size)


def _paste(crop: np.ndarray, window: Window, size: tuple[int, int]) -> np.ndarray:
    x0, y0, x1, y1 = window
    if (x0, y0, x1, y1) == (0, 0, size[1], size[0]):
        return crop
    out = np.zeros(size, np.uint8)
    out[y0:y1, x0:x1] = crop
    return out


@dataclass
class FrameResult:
    frame: Frame
    people: dict[int, PersonFrame] = field(default_factory=dict)
    #: perf_counter when the frame entered the instance stage (latency = done - started)
    started: float = 0.0
    #: every tracked person in this frame, chosen by `persons` or not (to say who exists)
    track_ids: tuple[int, ...] = ()


@dataclass
class Detected:
    frame: Frame
    instances: Instances
    started: float


@dataclass
class _Pending:
    frame: Frame
    instances: Instances
    ids: list[int | None]
    started: float


@dataclass
class _Matting:
    """A frame whose people are being matted (the futures), in output order."""

    frame: Frame
    started: float
    people: list[tuple[int, float, tuple, Window, np.ndarray]]  # tid, score, box, win, tri
    alphas: list[Future | None]
    track_ids: tuple[int, ...] = ()  # everyone tracked in the frame (FrameResult.track_ids)


class _Stop(Exception):
    """A stage noticed that the pipeline is stopping."""


def person_filter(
    min_score: float, max_persons: int
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`select(scores, labels) -> indices`: persons (label 0) scoring >= min_score, the
    max_persons best of them, in their original order. Sources apply it before doing any
    per-instance work (the network: before upsampling)."""

    def select(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        idx = ((labels == 0) & (scores >= min_score)).nonzero().flatten()
        if idx.numel() > max_persons:
            best = torch.argsort(scores[idx], descending=True)[:max_persons]
            idx = idx[torch.sort(best).values]
        return idx

    return select


def crop_for_matting(
    trimap: np.ndarray, window: Window, size: tuple[int, int], margin: int = MATTING_MARGIN
) -> tuple[Window, np.ndarray] | None:
    """(crop window, trimap on it) around a person's non-background pixels plus `margin`,
    inside the image; None when the trimap is all background (alpha is 0 everywhere)."""
    rows, cols = np.nonzero(trimap.any(1))[0], np.nonzero(trimap.any(0))[0]
    if rows.size == 0:
        return None
    x0, y0 = window[0], window[1]
    h, w = size
    cx0, cy0 = max(0, x0 + int(cols[0]) - margin), max(0, y0 + int(rows[0]) - margin)
    cx1, cy1 = min(w, x0 + int(cols[-1]) + 1 + margin), min(h, y0 + int(rows[-1]) + 1 + margin)
    out = np.zeros((cy1 - cy0, cx1 - cx0), np.uint8)
    # the part of the trimap's window inside the crop (the rest of the crop is background)
    ix0, iy0 = max(cx0, x0), max(cy0, y0)
    ix1, iy1 = min(cx1, window[2]), min(cy1, window[3])
    out[iy0 - cy0 : iy1 - cy0, ix0 - cx0 : ix1 - cx0] = trimap[
        iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0
    ]
    return (cx0, cy0, cx1, cy1), out


def matte_person(matter, rgb: np.ndarray, window: Window, trimap: np.ndarray) -> np.ndarray:
    """uint8 alpha of one person on its trimap's window: the matter runs on a crop around
    the person's band (crop_for_matting), not on the frame."""
    out = np.zeros(trimap.shape, np.uint8)
    crop = crop_for_matting(trimap, window, rgb.shape[:2])
    if crop is None:
        return out
    (cx0, cy0, cx1, cy1), tri = crop
    alpha = matter(rgb[cy0:cy1, cx0:cx1], tri[None])[0]
    a8 = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)
    x0, y0, x1, y1 = window
    ix0, iy0, ix1, iy1 = max(cx0, x0), max(cy0, y0), min(cx1, x1), min(cy1, y1)
    out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = a8[iy0 - cy0 : iy1 - cy0, ix0 - cx0 : ix1 - cx0]
    return out


def chosen_people(ids: list[int | None], wanted: frozenset[int] | None) -> list[tuple[int, int]]:
    """(instance index, track ID) of the people to matte: confirmed, and asked for."""
    return [
        (i, tid)
        for i, tid in enumerate(ids)
        if tid is not None and (wanted is None or tid in wanted)
    ]


def associate(associator, detected, smoother=None, timed=None) -> Iterator[_Pending]:
    """Frames in order with their track IDs: `detected` yields `Detected` items; a frame
    comes out `confirm_hits - 1` frames later, when the tracks its people start have
    been confirmed (the associator names those earlier hits: they are backfilled)."""
    delay = max(0, associator.config.confirm_hits - 1)
    pending: deque[_Pending] = deque()
    for item in detected:
        t0 = time.perf_counter()
        assignment = associator.update(item.frame.index, item.instances)
        if smoother is not None:
            for track_id in assignment.ended:
                smoother.forget(track_id)  # bounded memory on long videos
        for track_id, hits in assignment.confirmed.items():
            for frame_index, inst_index in hits:
                for p in pending:
                    if p.frame.index == frame_index and inst_index < len(p.ids):
                        p.ids[inst_index] = track_id
        pending.append(
            _Pending(item.frame, item.instances, list(assignment.track_ids), item.started)
        )
        if timed is not None:
            timed(time.perf_counter() - t0)
        while len(pending) > delay:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


class Pipeline:
    """Loads the models once; `process()` runs them over one video."""

    def __init__(self, config: PipelineConfig | None = None) -> None:
        from vidmatte.matting.memory import limit_arenas
        from vidmatte.matting.sources import resolve_matter, resolve_source

        limit_arenas()  # before any stage thread allocates (matting/memory.py)
        self.config = config or PipelineConfig()
        self.device = select_device(self.config.device)
        self.fp16 = use_fp16(self.device, self.config.fp16)
        if self.config.trimaps is not None:  # matting-only mode: no instance stage
            from vidmatte.matting.io.trimap_folder import TrimapFolderSource

            self.source = TrimapFolderSource(self.config.trimaps)
        else:
            self.source = resolve_source(
                self.config.source,
                weights=self.config.weights,
                teacher_dir=self.config.teacher_dir,
                device=self.device,
                fp16=self.fp16,
            )
        self.matter, self._matter_info = resolve_matter(
            self.config.matter,
            weights=self.config.matting_weights,
            device=self.device,
            fp16=self.fp16,
        )
        #: seconds per stage of the last process() (summed over its threads), and each
        #: frame's latency (instance stage entered -> result ready)
        self.timings: dict[str, float] = {}
        self.latencies: list[float] = []
        ms = self.config.min_score
        self.min_score = float(self.source.min_score if ms is None else ms)
        bs = self.config.batch_size
        #: frames per network call: batching pays on a GPU; on a CPU it only adds latency
        self.batch_size = max(1, bs if bs is not None else (4 if self.device.type == "cuda" else 1))
        #: people matted at once (threads): one per core, at most 4
        self.matting_workers = max(1, min(4, os.cpu_count() or 1))

    def describe(self) -> dict[str, Any]:
        """Which path runs: for the manifest and the terminal."""
        return {
            "device": str(self.device),
            "fp16": self.fp16,
            "min_score": self.min_score,
            **self.source.describe(),
            **{f"matting_{k}" if k != "matter" else k: v for k, v in self._matter_info.items()},
        }

    def summary_line(self) -> str:
        d = self.describe()
        inst = d.get("instances")
        model = d.get("model", "")
        return f"instances: {inst} ({model}), matting: {d.get('matter')}, device: {d['device']}"

    def _smoother(self):
        from vidmatte.matting.tracking.smoothing import TrimapSmoother

        return TrimapSmoother()

    def select(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The person filter of this configuration (see `person_filter`)."""
        return person_filter(self.min_score, self.config.max_persons)

    # ------------------------------------------------------------------ running
    def process(
        self,
        reader: VideoReader,
        *,
        start: int = 0,
        end: int | None = None,
        cancel: threading.Event | None = None,
        progress: Callable[[Progress], None] | None = None,
        skip_matting: Callable[[int, set[int]], bool] | None = None,
    ) -> Iterator[FrameResult]:
        """Yield a FrameResult per frame of reader[start:end], in order.

        skip_matting(frame_index, track_ids) -> True lets a resumed export skip the
        matting of frames whose outputs already exist (detection and association still
        run, so identities come out the same as in an uninterrupted run).
        """
        if self.config.trimaps is not None:  # given trimaps (matting/io/trimap_folder.py)
            yield from self.source.process(
                self, reader, start=start, end=end, cancel=cancel, progress=progress,
                skip_matting=skip_matting,
            )  # fmt: skip
            return
        run = _Run(self, reader, start, end, skip_matting)
        total_end = reader.info.frame_count if end is None else min(end, reader.info.frame_count)
        meter = RateMeter(max(0, total_end - start) if total_end else None)
        done = 0
        try:
            run.start()
            for result in run.results():
                yield result
                done += 1
                if progress is not None:
                    progress(meter.update(done))
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
        finally:
            run.close()
            self.timings = dict(run.timings)
            self.latencies = list(run.latencies)


class _Run:
    """One `process()` call: the stage threads, their queues and the matting pool."""

    def __init__(self, pipe: Pipeline, reader, start: int, end: int | None, skip) -> None:
        from vidmatte.matting.tracking.association import AssociationConfig, Associator

        self.pipe, self.reader, self.skip = pipe, reader, skip
        self.start_index, self.end = start, end
        cfg = pipe.config
        total_end = reader.info.frame_count if end is None else min(end, reader.info.frame_count)
        total = max(0, total_end - start) if total_end else None
        assoc_cfg = cfg.association or AssociationConfig()
        if total is not None and 0 < total < assoc_cfg.confirm_hits:
            # a single image (or a clip shorter than k) could never confirm anyone
            assoc_cfg = dataclasses.replace(assoc_cfg, confirm_hits=total)
        self.associator = Associator(assoc_cfg)
        self.smoother = pipe._smoother() if cfg.smooth else None
        self.stop = threading.Event()
        self.error: BaseException | None = None
        # One slot between stages is enough to overlap them; deeper queues would only add
        # latency in front of the slowest stage. The matting pool holds the people of the
        # frame being collected and of the next one, so no worker waits for a frame.
        self.frames_q: queue.Queue = queue.Queue(maxsize=1)
        self.inst_q: queue.Queue = queue.Queue(maxsize=1)
        self.out_q: queue.Queue = queue.Queue(maxsize=1)  # frames being matted
        self.pool = ThreadPoolExecutor(pipe.matting_workers, thread_name_prefix="vidmatte-matte")
        self.threads: list[threading.Thread] = []
        self.timings = {
            "decode": 0.0,
            "network": 0.0,
            "association": 0.0,
            "matting": 0.0,
            "wait": 0.0,
        }
        self._lock = threading.Lock()
        #: seconds from entering the instance stage to the result, per frame (last 10k)
        self.latencies: deque[float] = deque(maxlen=10_000)

    # -- plumbing ----------------------------------------------------------------------
    def start(self) -> None:
        for name, target in (
            ("decode", self._decode),
            ("instances", self._instances),
            ("association", self._associate),
        ):
            t = threading.Thread(target=self._guard, args=(target,), name=f"vidmatte-{name}")
            t.daemon = True
            t.start()
            self.threads.append(t)

    def _guard(self, target) -> None:
        try:
            target()
        except _Stop:
            pass
        except BaseException as e:  # handed to the caller's thread, which re-raises it
            with self._lock:
                if self.error is None:
                    self.error = e
            self.stop.set()

    def _put(self, q: queue.Queue, item) -> None:
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue):
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    def _add(self, key: str, seconds: float) -> None:
        with self._lock:
            self.timings[key] += seconds

    def close(self) -> None:
        self.stop.set()
        for q in (self.frames_q, self.inst_q, self.out_q):
            _drain(q)
        for t in self.threads:
            t.join(timeout=10)
        self.pool.shutdown(wait=True, cancel_futures=True)

    # -- stages ------------------------------------------------------------------------
    def _decode(self) -> None:
        frames = self.reader.frames(self.start_index, self.end)
        while True:
            t0 = time.perf_counter()
            frame = next(frames, _END)
            self._add("decode", time.perf_counter() - t0)
            self._put(self.frames_q, frame)
            if frame is _END:
                return

    def _instances(self) -> None:
        pipe = self.pipe
        select = pipe.select()
        finished = False
        while not finished:
            batch = []
            while len(batch) < pipe.batch_size:
                item = self._get(self.frames_q)
                if item is _END:
                    finished = True
                    break
                batch.append(item)
            if not batch:
                break
            t0 = time.perf_counter()
            detections = pipe.source.detect([f.rgb for f in batch], select=select)
            if _TRIM:
                trim()  # the network's activations
            self._add("network", time.perf_counter() - t0)
            for frame, inst in zip(batch, detections, strict=True):
                self._put(self.inst_q, Detected(frame, inst, t0))
        self._put(self.inst_q, _END)

    def _associate(self) -> None:
        def detected():
            while True:
                item = self._get(self.inst_q)
                if item is _END:
                    return
                yield item

        def timed(seconds: float) -> None:
            self._add("association", seconds)

        for p in associate(self.associator, detected(), self.smoother, timed):
            self._put(self.out_q, self._submit(p))
        self._put(self.out_q, _END)

    def _submit(self, p: _Pending) -> _Matting:
        """Trimaps of the chosen people, and their matting jobs."""
        t0 = time.perf_counter()
        chosen = chosen_people(p.ids, self.pipe.config.persons)
        job = _Matting(p.frame, p.started, [], [], tuple(t for t in p.ids if t is not None))
        if not chosen:
            self._add("association", time.perf_counter() - t0)
            return job
        inst = p.instances.select([i for i, _ in chosen])
        if self.smoother is not None and inst.trimap_crops is not None:
            inst = self._smooth(inst, [tid for _, tid in chosen], p.frame.index)
        trimaps = self.pipe.source.trimaps(inst)
        ids = {tid for _, tid in chosen}
        matte = self.skip is None or not self.skip(p.frame.index, ids)
        rgb = p.frame.rgb
        boxes = inst.boxes.detach().float().cpu().tolist()
        scores = inst.scores.detach().float().cpu().tolist()
        for j, (_, tid) in enumerate(chosen):
            window, tri = trimaps[j]
            job.people.append((tid, scores[j], tuple(boxes[j]), window, tri))
            job.alphas.append(self.pool.submit(self._matte, rgb, window, tri) if matte else None)
        self._add("association", time.perf_counter() - t0)
        return job

    def _smooth(self, inst: Instances, tids: list[int], frame_index: int) -> Instances:
        """--smooth: each person's full-frame probabilities through the track's EMA."""
        full = inst.trimaps
        smoothed = [
            self.smoother(tid, full[j], inst.boxes[j], frame_index=frame_index)
            for j, tid in enumerate(tids)
        ]
        h, w = inst.image_size
        windows = torch.tensor([[0, 0, w, h]] * len(inst), dtype=torch.long)
        return Instances(
            inst.scores,
            inst.labels,
            list(inst.masks),
            inst.boxes,
            inst.centres,
            smoothed,
            windows=windows,
            image_size=inst.image_size,
        )

    def _matte(self, rgb: np.ndarray, window: Window, trimap: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = matte_person(self.pipe.matter, rgb, window, trimap)
        if _TRIM:
            trim()  # a solve's buffers are the biggest that are freed (matting/memory.py)
        self._add("matting", time.perf_counter() - t0)
        return out

    # -- the caller's side ---------------------------------------------------------------
    def results(self) -> Iterator[FrameResult]:
        size = None
        while True:
            t0 = time.perf_counter()
            try:
                job = self._get(self.out_q)
            except _Stop:
                break
            if job is _END:
                break
            size = job.frame.rgb.shape[:2]
            result = FrameResult(frame=job.frame, started=job.started, track_ids=job.track_ids)
            for (tid, score, box, window, tri), fut in zip(job.people, job.alphas, strict=True):
                alpha = None
                if fut is not None:
                    while True:  # wait, but notice a failure elsewhere
                        try:
                            alpha = fut.result(timeout=_POLL_S)
                            break
                        except TimeoutError:
                            if self.stop.is_set():
                                break
                    if alpha is None:
                        break
                result.people[tid] = PersonFrame(score, box, window, size, tri, alpha)
            self._add("wait", time.perf_counter() - t0)
            if self.stop.is_set():
                break
            if _TRIM:
                trim()
            self.latencies.append(time.perf_counter() - job.started)
            yield result
        if self.error is not None:
            raise self.error


_END = object()
#: how often a blocked stage looks whether the pipeline is stopping (cancel, a failure)
_POLL_S = 0.1
#: `VIDMATTE_MALLOC_TRIM=0` keeps freed pages in the process (to measure what trimming buys)
_TRIM = os.environ.get("VIDMATTE_MALLOC_TRIM", "1") != "0"


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return

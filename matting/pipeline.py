"""The streaming matting pipeline: reader -> instances -> association -> matting.

One frame at a time (DESIGN.md): memory is bounded by a few frames whatever the video's
length. Decoding runs in a thread ahead of the network; frames are batched for the
instance source (the GPU's win); association needs `confirm_hits - 1` frames of delay so
a new person's first frames get their ID too (the associator reports those tentative hits
when it confirms the track, and the frames still wait in `pending`). The CLI and the GUI
drive the same object: `process()` is a generator that yields one `FrameResult` per frame,
takes a cancel event and reports `Progress`.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vidmatte.matting.config import PipelineConfig
from vidmatte.matting.device import select_device, use_fp16
from vidmatte.matting.progress import Progress, RateMeter
from vidmatte.models.errors import Cancelled
from vidmatte.models.instances import Instances


@dataclass
class PersonFrame:
    """One tracked person in one frame."""

    score: float
    box: tuple[float, float, float, float]
    trimap: np.ndarray  # uint8 H×W, 0/128/255
    alpha: np.ndarray | None  # uint8 H×W, None where matting was skipped (resume)


@dataclass
class FrameResult:
    frame: Any  # vidmatte.matting.io.video.Frame
    people: dict[int, PersonFrame] = field(default_factory=dict)
    #: every tracked person in this frame, chosen by `persons` or not (to say who exists)
    track_ids: tuple[int, ...] = ()


@dataclass
class _Pending:
    frame: Any
    instances: Instances
    ids: list[int | None]


_END = object()


class Pipeline:
    """Loads the models once; `process()` runs them over one video."""

    def __init__(self, config: PipelineConfig | None = None) -> None:
        from vidmatte.matting.sources import resolve_matter, resolve_source

        self.config = config or PipelineConfig()
        self.device = select_device(self.config.device)
        self.fp16 = use_fp16(self.device, self.config.fp16)
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
        self.timings: dict[str, float] = {}
        ms = self.config.min_score
        self.min_score = float(self.source.min_score if ms is None else ms)

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

    # ------------------------------------------------------------------ running
    def process(
        self,
        reader: Any,
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
        from vidmatte.matting.tracking.association import AssociationConfig, Associator

        cfg = self.config
        total_end = reader.info.frame_count if end is None else min(end, reader.info.frame_count)
        total = max(0, total_end - start) if total_end else None
        assoc_cfg = cfg.association or AssociationConfig()
        if total is not None and 0 < total < assoc_cfg.confirm_hits:
            # a single image (or a clip shorter than k) could never confirm anyone
            assoc_cfg = dataclasses.replace(assoc_cfg, confirm_hits=total)
        associator = Associator(assoc_cfg)
        smoother = self._smoother() if cfg.smooth else None
        meter = RateMeter(total)
        self.timings = {"decode_wait": 0.0, "network": 0.0, "association": 0.0, "matting": 0.0}
        delay = max(0, associator.config.confirm_hits - 1)
        pending: deque[_Pending] = deque()
        done = 0
        stop = threading.Event()
        frames_q: queue.Queue = queue.Queue(maxsize=max(2, 2 * cfg.batch_size))
        decoder = threading.Thread(
            target=_decode, args=(reader, start, end, frames_q, stop), daemon=True
        )
        decoder.start()
        try:
            finished = False
            while not finished:
                batch = []
                while len(batch) < cfg.batch_size:
                    t0 = time.perf_counter()
                    item = frames_q.get()
                    self.timings["decode_wait"] += time.perf_counter() - t0
                    if item is _END:
                        finished = True
                        break
                    if isinstance(item, BaseException):
                        raise item
                    batch.append(item)
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
                if not batch:
                    break
                t0 = time.perf_counter()
                detections = self.source.detect([f.rgb for f in batch])
                self.timings["network"] += time.perf_counter() - t0
                for frame, inst in zip(batch, detections, strict=True):
                    t0 = time.perf_counter()
                    inst = self._filter(inst)
                    assignment = associator.update(frame.index, inst)
                    if smoother is not None:
                        for track_id in getattr(assignment, "ended", ()):
                            smoother.forget(track_id)  # bounded memory on long videos
                    for track_id, hits in assignment.confirmed.items():
                        for frame_index, inst_index in hits:
                            for p in pending:
                                if p.frame.index == frame_index and inst_index < len(p.ids):
                                    p.ids[inst_index] = track_id
                    pending.append(_Pending(frame, inst, list(assignment.track_ids)))
                    self.timings["association"] += time.perf_counter() - t0
                    while len(pending) > delay:
                        yield self._finish(pending.popleft(), smoother, skip_matting)
                        done += 1
                        if progress is not None:
                            progress(meter.update(done))
                        if cancel is not None and cancel.is_set():
                            raise Cancelled("cancelled")
            while pending:
                yield self._finish(pending.popleft(), smoother, skip_matting)
                done += 1
                if progress is not None:
                    progress(meter.update(done))
        finally:
            stop.set()
            _drain(frames_q)
            decoder.join(timeout=5)

    def _filter(self, inst: Instances) -> Instances:
        cfg = self.config
        keep = (inst.labels == 0) & (inst.scores >= self.min_score)
        inst = inst.select(keep)
        if len(inst) > cfg.max_persons:
            order = torch.argsort(inst.scores, descending=True)[: cfg.max_persons]
            inst = inst.select(torch.sort(order).values)
        return inst

    def _smoother(self):
        from vidmatte.matting.tracking.smoothing import TrimapSmoother

        return TrimapSmoother()

    def _finish(self, p: _Pending, smoother, skip_matting) -> FrameResult:
        wanted = self.config.persons
        chosen = [
            (i, tid)
            for i, tid in enumerate(p.ids)
            if tid is not None and (wanted is None or tid in wanted)
        ]
        result = FrameResult(frame=p.frame, track_ids=tuple(t for t in p.ids if t is not None))
        if not chosen:
            return result
        inst = p.instances.select([i for i, _ in chosen])
        if smoother is not None and inst.trimaps is not None:
            smoothed = [
                smoother(tid, inst.trimaps[j], inst.boxes[j], frame_index=p.frame.index)
                for j, (_, tid) in enumerate(chosen)
            ]
            inst.trimaps = torch.stack(smoothed)
        trimaps = self.source.trimaps(inst)
        ids = {tid for _, tid in chosen}
        alphas = None
        if skip_matting is None or not skip_matting(p.frame.index, ids):
            t0 = time.perf_counter()
            alpha = self.matter(p.frame.rgb, trimaps)
            alphas = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)
            self.timings["matting"] += time.perf_counter() - t0
        for j, (_, tid) in enumerate(chosen):
            box = tuple(float(v) for v in inst.boxes[j].tolist())
            result.people[tid] = PersonFrame(
                score=float(inst.scores[j]),
                box=box,  # type: ignore[arg-type]
                trimap=trimaps[j],
                alpha=None if alphas is None else alphas[j],
            )
        return result


def _decode(reader, start: int, end: int | None, out: queue.Queue, stop: threading.Event) -> None:
    """Decoder thread: push frames (or the exception that stopped decoding), then _END."""
    try:
        for frame in reader.frames(start, end):
            while not stop.is_set():
                try:
                    out.put(frame, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
    except BaseException as e:  # handed to the consumer, which re-raises it
        _put(out, e, stop)
    _put(out, _END, stop)


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return

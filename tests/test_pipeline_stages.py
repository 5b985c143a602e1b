"""The staged pipeline (issue 20): stages overlap, results come in order and repeat
exactly, failures and cancels stop every stage thread, on the sample clip with the
shipped network and the classical matter."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vidmatte.matting.config import PipelineConfig
from vidmatte.matting.io.video import open_video
from vidmatte.models.errors import Cancelled, InputError

SAMPLE = Path(__file__).resolve().parents[1] / "assets" / "sample.mp4"
FRAMES = 6


@pytest.fixture(scope="module")
def pipe():
    from vidmatte.matting.pipeline import Pipeline
    from vidmatte.models.weights.resolution import find_weights

    if find_weights("trimapnet") is None:
        pytest.skip("no trimap weights installed")
    return Pipeline(PipelineConfig(source="network", matter="classical"))


def _stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("vidmatte-")]


def _wait_threads_gone(timeout: float = 15.0) -> list[str]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        alive = [t.name for t in _stage_threads() if t.is_alive()]
        if not alive:
            return []
        time.sleep(0.05)
    return alive


def _run(pipe, **kw):
    with open_video(SAMPLE) as reader:
        return list(pipe.process(reader, end=FRAMES, **kw))


def test_in_order_repeatable_and_overlapped(pipe):
    t0 = time.perf_counter()
    first = _run(pipe)
    wall = time.perf_counter() - t0
    busy = sum(v for k, v in pipe.timings.items() if k != "wait")
    assert [r.frame.index for r in first] == list(range(FRAMES))
    assert any(r.people for r in first), "the sample clip has a person"
    # Stage threads work at the same time: their busy spans add up to more than the wall
    # time (run one after another, they could not exceed it).
    assert busy > wall, (busy, wall, pipe.timings)
    assert len(pipe.latencies) == FRAMES and min(pipe.latencies) > 0
    second = _run(pipe)
    for a, b in zip(first, second, strict=True):
        assert a.people.keys() == b.people.keys()
        for tid, p in a.people.items():
            q = b.people[tid]
            assert p.window == q.window and np.array_equal(p.alpha, q.alpha)
            assert np.array_equal(p.trimap, q.trimap)
            # full-frame views: zero outside the window
            x0, y0, x1, y1 = p.window
            assert p.alpha.shape == a.frame.rgb.shape[:2]
            assert p.alpha.sum() == p.alpha[y0:y1, x0:x1].sum()
    assert _wait_threads_gone() == []


class _FailingReader:
    """The real sample reader, whose decoding fails at frame 2 (a damaged file)."""

    def __init__(self, reader):
        self.reader = reader
        self.info = reader.info

    def frames(self, start=0, end=None):
        for f in self.reader.frames(start, end):
            if f.index == 2:
                raise InputError("sample.mp4: damaged at frame 2")
            yield f


def test_a_failing_stage_stops_all_and_raises_its_error(pipe):
    got = []
    with open_video(SAMPLE) as reader, pytest.raises(InputError, match="damaged at frame 2"):
        for r in pipe.process(_FailingReader(reader), end=FRAMES):
            got.append(r.frame.index)
    assert got == got[:2] and len(got) <= 2
    assert _wait_threads_gone() == []


def test_cancel_and_early_close_end_every_thread(pipe):
    cancel = threading.Event()
    seen = []
    with open_video(SAMPLE) as reader, pytest.raises(Cancelled):
        for r in pipe.process(reader, end=FRAMES, cancel=cancel):
            seen.append(r.frame.index)
            cancel.set()
    assert seen == [0]
    assert _wait_threads_gone() == []
    with open_video(SAMPLE) as reader:
        gen = pipe.process(reader, end=FRAMES)
        next(gen)
        gen.close()  # the consumer stops reading (GUI closes, export fails)
    assert _wait_threads_gone() == []


def test_smoothing_starts_from_the_first_frame_and_stays_a_trimap(pipe):
    """--smooth: a track's first frame is its own probabilities (S_0 = P_0), later frames
    are still 0/128/255 trimaps inside the frame."""
    from vidmatte.matting.pipeline import Pipeline

    plain = _run(pipe)
    smooth = Pipeline(PipelineConfig(source="network", matter="classical", smooth=True))
    smoothed = _run(smooth)
    first = next(i for i, r in enumerate(plain) if r.people)
    for tid, p in plain[first].people.items():
        assert np.array_equal(smoothed[first].people[tid].trimap, p.trimap)
    for r in smoothed:
        for p in r.people.values():
            assert set(np.unique(p.trimap)) <= {0, 128, 255}
            assert p.trimap.shape == r.frame.rgb.shape[:2]


@pytest.mark.parametrize("matter", ["classical", "fast"])
def test_same_bytes_whatever_the_thread_counts(pipe, matter):
    """A Ray worker runs with one torch thread, a plain run with all cores, and people are
    matted in a pool: the outputs must not depend on any of it (issue 22: byte-identical)."""
    import torch

    from vidmatte.matting.pipeline import Pipeline

    p = Pipeline(PipelineConfig(source="network", matter=matter))
    threads = torch.get_num_threads()
    try:
        ref = _run(p)
        torch.set_num_threads(1)
        p.matting_workers = 1
        one = _run(p)
    finally:
        torch.set_num_threads(threads)
    assert any(r.people for r in ref)
    for a, b in zip(ref, one, strict=True):
        assert a.people.keys() == b.people.keys()
        for tid, q in a.people.items():
            assert np.array_equal(q.trimap_crop, b.people[tid].trimap_crop)
            assert np.array_equal(q.alpha_crop, b.people[tid].alpha_crop)

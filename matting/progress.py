"""Progress reporting shared by the CLI (bar or JSON lines) and the GUI (signals)."""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass


@dataclass
class Progress:
    """One progress report: frames done of total, throughput and time left."""

    done: int
    total: int | None
    fps: float
    eta_s: float | None
    elapsed_s: float
    stage: str = "matting"
    input: str = ""

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)


class RateMeter:
    """Frames per second over a sliding window (the last ~2 s), so the ETA follows the
    current speed rather than the slow start (model warm-up, first decode)."""

    def __init__(self, total: int | None, window_s: float = 2.0) -> None:
        self.total = total
        self.window_s = window_s
        self.start = time.perf_counter()
        self.samples: deque[tuple[float, int]] = deque([(self.start, 0)])

    def update(self, done: int, stage: str = "matting", input: str = "") -> Progress:
        now = time.perf_counter()
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()
        t0, d0 = self.samples[0]
        fps = (done - d0) / (now - t0) if now > t0 else 0.0
        eta = None
        if self.total and fps > 0:
            eta = max(0.0, (self.total - done) / fps)
        return Progress(done, self.total, fps, eta, now - self.start, stage, input)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(round(seconds))
    return (
        f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
        if s >= 3600
        else f"{s // 60:02d}:{s % 60:02d}"
    )


class TerminalProgress:
    """A one-line progress bar on a terminal, JSON lines with --json, nothing with --quiet."""

    def __init__(self, mode: str = "auto", stream=None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "plain"
        self.mode = mode
        self._last_plain = 0.0

    def __call__(self, p: Progress) -> None:
        if self.mode == "quiet":
            return
        if self.mode == "json":
            print(json.dumps({"event": "progress", **asdict(p)}), flush=True)
            return
        total = p.total or 0
        frac = p.fraction or 0.0
        text = (
            f"{p.input} {p.done}/{total or '?'} frames  {p.fps:5.1f} fps  ETA {format_eta(p.eta_s)}"
        ).strip()
        if self.mode == "bar":
            width = 24
            fill = int(frac * width)
            bar = "█" * fill + "·" * (width - fill)
            self.stream.write(f"\r{bar} {frac * 100:5.1f}%  {text}\033[K")
            self.stream.flush()
        else:  # plain (not a terminal): a line every 5 s and at the end
            now = time.perf_counter()
            if now - self._last_plain >= 5.0 or (total and p.done >= total):
                self._last_plain = now
                self.stream.write(f"{frac * 100:5.1f}%  {text}\n")
                self.stream.flush()

    def finish(self) -> None:
        if self.mode == "bar":
            self.stream.write("\n")
            self.stream.flush()

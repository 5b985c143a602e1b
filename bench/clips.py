"""Benchmark clips, built on the fly from the shared footage and kept outside the repo.

The three-dancer clip (maggie_three_dancers, 1280x720, 96 frames, three people) is the
issue-20 reference; its 1080p and 4K versions are the same frames upscaled (Lanczos), so
the people, their motion and their bands are the same at every size; the length test
ping-pongs its first second at 640x360 into clips of any length. Files go to
$VIDMATTE_BENCH_CLIPS, else ../runs/perf/clips beside the checkout (the team's runs
folder), else ~/.cache/vidmatte/bench; an existing file is reused.
"""

from __future__ import annotations

import os
from pathlib import Path

THREE_DANCERS = "maggie_three_dancers.mp4"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "2160p": (3840, 2160)}


def shared_video(name: str = THREE_DANCERS) -> Path:
    from vidmatte.models.shared import shared_data

    data = shared_data()
    if data is None or not (data / "videos" / name).is_file():
        raise RuntimeError(f"../shared/data/videos/{name} is missing")
    return data / "videos" / name


def clips_dir() -> Path:
    env = os.environ.get("VIDMATTE_BENCH_CLIPS")
    if env:
        d = Path(env)
    else:
        runs = Path(__file__).resolve().parents[2] / "runs"
        d = runs / "perf" / "clips" if runs.is_dir() else Path.home() / ".cache/vidmatte/bench"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write(out: Path, frames, size: tuple[int, int], fps: int) -> Path:
    """Encode RGB frames (an iterable) to H.264 (crf 16), atomically."""
    import av

    from vidmatte.matting.io.atomic import atomic_path

    with atomic_path(out) as tmp, av.open(str(tmp), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps, options={"crf": "16", "preset": "veryfast"})
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        for img in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    return out


def three_dancers(size: str = "720p") -> Path:
    """The three-dancer clip at `size` (720p: the shared file itself)."""
    src = shared_video()
    if size == "720p":
        return src
    out = clips_dir() / f"three_dancers_{size}.mp4"
    if out.is_file():
        return out
    import cv2

    from vidmatte.matting.io.video import open_video

    wh = SIZES[size]
    with open_video(src) as r:
        fps = max(1, round(r.info.fps))
        frames = (cv2.resize(f.rgb, wh, interpolation=cv2.INTER_LANCZOS4) for f in r.frames())
        return _write(out, frames, wh, fps)


def looped(seconds: float, size: tuple[int, int] = (640, 360), fps: int = 25) -> Path:
    """The three dancers' first second ping-ponged into a clip of `seconds` (continuous
    motion), for memory against input length."""
    out = clips_dir() / f"three_dancers_loop_{size[0]}x{size[1]}_{seconds:g}s.mp4"
    if out.is_file():
        return out
    import cv2

    from vidmatte.matting.io.video import open_video

    with open_video(shared_video()) as r:
        src = [cv2.resize(f.rgb, size, interpolation=cv2.INTER_AREA) for f in r.frames(0, fps)]
    period = 2 * len(src) - 2

    def frames():
        for i in range(int(seconds * fps)):
            k = i % period
            yield src[k if k < len(src) else period - k]

    return _write(out, frames(), size, fps)

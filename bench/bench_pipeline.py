"""End-to-end pipeline speed: fps, per-frame latency p50/p99, where the time goes, and
peak memory against input length.

    python -m bench.bench_pipeline [--quick]

Inputs are real clips from ../shared/data (the three dancers at 720p, the white-background
dancer at 1080p) cut to their first frames. The working default path runs (teacher +
classical matter, or the trained network when its weights are found). Baseline measured
in the same run: decode-only fps of the same frames — the floor the pipeline is compared
with. Stage shares come from the pipeline's own timers (decode wait, network/teacher,
association, matting) and the export thread's encode time. Peak memory runs in a child
process per length on a looped 640x360 clip, so one run's allocations do not hide
another's: memory must stay flat as the input grows (streaming).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLIPS = {"720p": "maggie_three_dancers.mp4", "1080p": "romp_dance_whitebg.mp4"}


def _videos() -> Path:
    from vidmatte.models.shared import shared_data

    data = shared_data()
    if data is None:
        raise RuntimeError("../shared/data is missing")
    return data / "videos"


def _pipeline():
    from vidmatte.matting.config import PipelineConfig
    from vidmatte.matting.pipeline import Pipeline
    from vidmatte.models.shared import shared_weights

    w = shared_weights()
    return Pipeline(PipelineConfig(teacher_dir=str(w) if w else None))


def _decode_fps(path: Path, frames: int) -> float:
    from vidmatte.matting.io.video import open_video

    with open_video(path) as r:
        t0 = time.perf_counter()
        n = sum(1 for _ in r.frames(0, frames))
        return n / (time.perf_counter() - t0)


def _e2e(pipe, path: Path, frames: int) -> dict:
    from vidmatte.matting.io.export import ExportConfig, Exporter
    from vidmatte.matting.io.video import open_video

    with tempfile.TemporaryDirectory() as tmp, open_video(path) as reader:
        exporter = Exporter(Path(tmp) / "out", reader.info, ExportConfig(fmt="png"), end=frames)
        stamps = []
        encode = 0.0
        t0 = time.perf_counter()
        for result in pipe.process(reader, end=frames):
            stamps.append(time.perf_counter())
            te = time.perf_counter()
            exporter.write(result)
            encode += time.perf_counter() - te
        exporter.close()
        total = time.perf_counter() - t0
        info = reader.info
    lat = np.diff([t0, *stamps]) * 1e3
    shares = {**pipe.timings, "encode": encode}
    row = {
        "size": f"{info.width}x{info.height}",
        "frames": len(stamps),
        "fps": len(stamps) / total,
        "latency_ms_p50": float(np.percentile(lat[1:] if len(lat) > 2 else lat, 50)),
        "latency_ms_p99": float(np.percentile(lat[1:] if len(lat) > 2 else lat, 99)),
    }
    for k, v in shares.items():
        row[f"share_{k}"] = round(v / total, 3)
    return row


def _looped_clip(path: Path, seconds: float, out: Path, size=(640, 360), fps: int = 25) -> None:
    """A clip of the given length looping the source's first second. 640x360 keeps the
    dancers' bands larger than one closed-form tile, so the tiled solver (where a leak was
    once found) runs on every frame."""
    import av
    import cv2

    from vidmatte.matting.io.video import open_video

    with open_video(path) as r:
        src = [cv2.resize(f.rgb, size, interpolation=cv2.INTER_AREA) for f in r.frames(0, fps)]
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(int(seconds * fps)):
            k = i % (2 * len(src) - 2)  # ping-pong so the motion is continuous
            img = src[k if k < len(src) else 2 * len(src) - 2 - k]
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())


def _memory_child(clip: str) -> None:
    """Run the whole CLI path on one clip; print peak RSS (MiB) as JSON."""
    from vidmatte.matting.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        from vidmatte.models.shared import shared_weights

        code = main([clip, "--out", tmp + "/o", "--quiet", "--teacher-dir", str(shared_weights())])
    print(json.dumps({"code": code, "peak_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM belongs to the address space, which exec replaces;
    ru_maxrss is inherited across fork+exec on Linux and would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _memory(seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "loop.mp4"
        _looped_clip(_videos() / CLIPS["720p"], seconds, clip)
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-m", "bench.bench_pipeline", "--memory-child", str(clip)],
            capture_output=True,
            text=True,
            check=True,
        )
        res = json.loads(r.stdout.strip().splitlines()[-1])
    return {
        "input_s": seconds,
        "frames": int(seconds * 25),
        "peak_mib": round(res["peak_mib"], 1),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def run(quick: bool = False) -> dict:
    frames = 8 if quick else 30
    pipe = _pipeline()
    rows = []
    for label, name in CLIPS.items():
        path = _videos() / name
        decode = _decode_fps(path, frames)
        row = {"clip": f"{label} {name}", **_e2e(pipe, path, frames)}
        row["decode_only_fps"] = decode
        row["e2e_vs_decode"] = row["fps"] / decode
        rows.append(row)
    memory = [_memory(s) for s in ((1, 4) if quick else (3, 30))]
    return {"path": pipe.summary_line(), "rows": rows, "memory": memory}


def _print(result: dict) -> None:
    print(result["path"])
    for r in result["rows"]:
        shares = ", ".join(f"{k[6:]} {v:.0%}" for k, v in r.items() if k.startswith("share_"))
        print(
            f"{r['clip']:40s} {r['size']:>10s} {r['fps']:6.2f} fps (decode-only "
            f"{r['decode_only_fps']:.0f} fps, ratio {r['e2e_vs_decode']:.3f})  latency p50 "
            f"{r['latency_ms_p50']:.0f} ms p99 {r['latency_ms_p99']:.0f} ms  [{shares}]"
        )
    for m in result["memory"]:
        print(f"peak memory, {m['input_s']:>4} s input ({m['frames']} frames): {m['peak_mib']} MiB")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        _memory_child(args.memory_child)
        return 0
    _print(run(args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())

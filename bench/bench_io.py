"""Video I/O throughput: decode-only fps of real sources (PyAV -> upright RGB) and
encode-only / decode-only fps of every alpha format, at 720p and 1080p.

    python -m bench.bench_io [--quick]

Encode inputs are synthetic soft mattes (a moving disc with a soft edge) plus the source
RGB for the container formats, prepared before timing; ratios are against 8-bit PNG
measured in the same run. Needs ../shared/data/videos for the decode rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from vidmatte.matting.io.alpha import ALPHA_FORMATS, open_alpha_writer, read_alpha
from vidmatte.matting.io.video import open_video
from vidmatte.models.shared import shared_data

SOURCES = {"720p": "hybrik_taiji.mp4", "1080p": "romp_dance_whitebg.mp4"}


def _mattes(h: int, w: int, n: int) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        d = np.hypot(xx - w / 2 - 4 * i, yy - h / 2) / (h / 3)
        out.append(np.clip(1.5 - d, 0, 1).astype(np.float32))
    return out


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(quick: bool = False) -> dict:
    data = shared_data()
    if data is None:
        print("bench_io: ../shared/data is missing; nothing to measure")
        return {}
    n = 8 if quick else 48
    results: dict = {"frames": n, "decode": {}, "formats": {}}
    tmp = Path(tempfile.mkdtemp(prefix="bench_io_"))
    try:
        for res, name in SOURCES.items():
            with open_video(data / "videos" / name) as r:
                t0 = time.perf_counter()
                frames = list(r.frames(0, n))
                dec = len(frames) / (time.perf_counter() - t0)
                info = dataclasses.replace(r.info, frame_count=len(frames))
                t0 = time.perf_counter()
                for k in range(4):
                    r.read((k * 37 + 11) % r.info.frame_count)
                seek_ms = (time.perf_counter() - t0) / 4 * 1e3
            results["decode"][res] = {"source": name, "fps": dec, "seek_ms": seek_ms}
            mattes = _mattes(info.height, info.width, len(frames))
            for fmt in ALPHA_FORMATS:
                out = tmp / f"{res}_{fmt}"
                t0 = time.perf_counter()
                with open_alpha_writer(fmt, out, "person_01", info) as w:
                    for f, a in zip(frames, mattes, strict=True):
                        rgb = None if fmt.startswith("png") else f.rgb
                        w.write(f.index, a, pts=f.pts, rgb=rgb)
                enc = len(frames) / (time.perf_counter() - t0)
                size = sum(
                    p.stat().st_size for p in ([w.path] if w.path.is_file() else w.path.iterdir())
                )
                t0 = time.perf_counter()
                count = sum(1 for _ in read_alpha(w.path))
                rd = count / (time.perf_counter() - t0)
                results["formats"][(res, fmt)] = {
                    "encode_fps": enc,
                    "decode_fps": rd,
                    "mb_per_frame": size / len(frames) / 1e6,
                }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["peak_mb"] = _peak_mb()
    _print(results)
    return {
        "frames": n,
        "decode": results["decode"],
        "formats": {f"{r}/{f}": v for (r, f), v in results["formats"].items()},
        "peak_mb": results["peak_mb"],
    }


def _print(res: dict) -> None:
    print(f"bench_io: {res['frames']} frames per measurement")
    print(f"{'source decode':<16}{'res':>7}{'fps':>9}{'seek ms':>10}")
    for r, v in res["decode"].items():
        print(f"{v['source'][:15]:<16}{r:>7}{v['fps']:>9.1f}{v['seek_ms']:>10.1f}")
    print()
    head = f"{'alpha format':<14}{'res':>7}{'enc fps':>9}{'x png':>7}{'dec fps':>9}{'MB/frame':>10}"
    print(head)
    for (r, f), v in res["formats"].items():
        base = res["formats"][(r, "png")]["encode_fps"]
        print(
            f"{f:<14}{r:>7}{v['encode_fps']:>9.1f}{v['encode_fps'] / base:>7.2f}"
            f"{v['decode_fps']:>9.1f}{v['mb_per_frame']:>10.3f}"
        )
    print(f"peak memory: {res['peak_mb']:.0f} MB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_io", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few frames only")
    args = ap.parse_args(argv)
    run(quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

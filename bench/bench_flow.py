"""Optical flow speed: OpenCV DIS (medium, fast) vs RAFT-small, ms per frame pair.

`python -m bench.bench_flow [--quick]`. Real neighbouring frames of a shared clip, resized
to 360p and 540p (16:9). RAFT runs on CUDA when available, else CPU; its 12 updates are the
torchvision default. Ratios are against DIS-medium measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SIZES = {"360p": (640, 360), "540p": (960, 540)}


def _frames(n: int) -> list[np.ndarray]:
    """n+1 neighbouring RGB frames of a real clip (DAVIS lucia), or noise if absent."""
    import cv2

    from vidmatte.models.shared import shared_data

    root = shared_data()
    folder = None if root is None else root / "vos" / "davis16_lucia" / "frames"
    if folder is not None and folder.is_dir():
        files = sorted(folder.glob("*.jpg"))[: n + 1]
        return [np.ascontiguousarray(cv2.imread(str(f))[..., ::-1]) for f in files]
    rng = np.random.default_rng(0)
    base = (rng.random((480, 854, 3)) * 255).astype(np.uint8)
    return [np.roll(base, i, axis=1) for i in range(n + 1)]


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {
        "ms_p50": float(np.percentile(a, 50)),
        "ms_p99": float(np.percentile(a, 99)),
        "pairs_per_s": float(1000.0 / a.mean()),
    }


def _time(fn, pairs, warmup: int = 1) -> list[float]:
    for a, b in pairs[:warmup]:
        fn(a, b)
    out = []
    for a, b in pairs:
        t = time.perf_counter()
        fn(a, b)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def run(quick: bool = False) -> dict:
    import torch

    n = 3 if quick else 10
    raw = _frames(n)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    threads = torch.get_num_threads()
    if device == "cpu":
        # One thread, as DIS: a fair per-core comparison, and it avoids OpenMP stalls that
        # made RAFT 20x slower on a busy 2-core machine.
        torch.set_num_threads(1)
    try:
        return _run(quick, device, raw)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool, device: str, raw: list[np.ndarray]) -> dict:
    import cv2
    import torch

    from vidmatte.models.flow import RaftSmall, dis_flow

    raft = None
    try:
        raft = RaftSmall.from_checkpoint(None, device)
    except Exception as e:  # no shared weights: DIS rows only
        raft_error = str(e)
    rows = []
    for label, (w, h) in SIZES.items():
        frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in raw]
        pairs = list(zip(frames[:-1], frames[1:], strict=True))
        base = _stats(_time(lambda a, b: dis_flow(a, b, "medium"), pairs))
        rows.append({"size": label, "method": "dis-medium (cpu)", **base, "x_dis": 1.0})
        s = _stats(_time(lambda a, b: dis_flow(a, b, "fast"), pairs))
        rows.append(
            {"size": label, "method": "dis-fast (cpu)", **s, "x_dis": s["ms_p50"] / base["ms_p50"]}
        )
        if raft is not None:
            tens = [
                torch.from_numpy(f).permute(2, 0, 1)[None].float().div(255).to(device)
                for f in frames
            ]
            tpairs = list(zip(tens[:-1], tens[1:], strict=True))

            def go(a, b):
                raft(a, b, iters=12)
                if device == "cuda":
                    torch.cuda.synchronize()

            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            s = _stats(_time(go, tpairs[: 2 if quick and device == "cpu" else None]))
            row = {
                "size": label,
                "method": f"raft-small 12 it ({device})",
                **s,
                "x_dis": s["ms_p50"] / base["ms_p50"],
            }
            if device == "cuda":
                row["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
            rows.append(row)
    out = {"rows": rows, "device": device, "torch_threads": torch.get_num_threads()}
    if raft is None:
        out["raft_error"] = raft_error
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_flow", description=__doc__)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    res = run(args.quick)
    print(f"{'size':6} {'method':28} {'p50 ms':>9} {'p99 ms':>9} {'pairs/s':>8} {'x DIS':>7}")
    for r in res["rows"]:
        print(
            f"{r['size']:6} {r['method']:28} {r['ms_p50']:9.1f} {r['ms_p99']:9.1f} "
            f"{r['pairs_per_s']:8.2f} {r['x_dis']:7.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

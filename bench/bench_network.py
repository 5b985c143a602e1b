"""TrimapNet forward + post-processing speed: MobileNetV2 vs ResNet-50, short side 512/768,
batch 1 and 8, CPU (and CUDA when present). Run: python -m bench.bench_network [--quick]

Weights are random (no trained weights are needed for timing); post-processing is forced
to do real work (score threshold 0, 100 candidates through dynamic conv, Matrix NMS and
20 upsampled instances per image), so the figures are an upper bound for that stage.
Frames are 16:9 (e.g. 512 x 910, padded to 512 x 928 inside).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from vidmatte.models.trimapnet import PostprocessConfig, TrimapNetConfig, build_trimapnet

HEAVY_POST = PostprocessConfig(score_thr=0.0, update_thr=0.0, nms_pre=100, max_per_img=20)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _time(model, x, device, iters, warmup) -> list[float]:
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            _sync(device)
            t = time.perf_counter()
            model(x)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - t)
    return times


def run(quick: bool = False) -> dict:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    sides = [512] if quick else [512, 768]
    batches = [1] if quick else [1, 8]
    rows = []
    for device in devices:
        for backbone in ("mobilenet_v2", "resnet50"):
            cfg = TrimapNetConfig(backbone=backbone, postprocess=HEAVY_POST)
            model = build_trimapnet(cfg, pretrained_backbone=False).eval().to(device)
            params = sum(p.numel() for p in model.parameters())
            for side in sides:
                for batch in batches:
                    if device == "cpu" and batch > 1 and (quick or side > 512):
                        continue  # minutes per point on a laptop CPU; GPU covers it
                    w = round(side * 16 / 9)
                    x = torch.rand(batch, 3, side, w, device=device)
                    iters = 2 if device == "cpu" else (5 if quick else 20)
                    if device == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    t = np.array(_time(model, x, device, iters, warmup=1 if quick else 2))
                    peak = (
                        torch.cuda.max_memory_allocated() / 2**20
                        if device == "cuda"
                        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                    )
                    rows.append(
                        dict(
                            device=device, backbone=backbone, params_m=params / 1e6,
                            size=f"{side}x{w}", batch=batch, fps=batch / float(np.median(t)),
                            ms_p50=1e3 * float(np.median(t)),
                            ms_p99=1e3 * float(np.percentile(t, 99)), peak_mib=peak,
                        )
                    )  # fmt: skip
            del model
    base = {
        (r["device"], r["size"], r["batch"]): r["fps"]
        for r in rows
        if r["backbone"] == "mobilenet_v2"
    }
    for r in rows:
        r["speed_vs_mnv2"] = r["fps"] / base[(r["device"], r["size"], r["batch"])]
    print(
        f"{'device':6} {'backbone':13} {'params':>7} {'size':>9} {'batch':>5} {'fps':>7} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'peak MiB':>9} {'x mnv2':>7}"
    )
    for r in rows:
        print(
            f"{r['device']:6} {r['backbone']:13} {r['params_m']:6.1f}M {r['size']:>9} "
            f"{r['batch']:5d} {r['fps']:7.2f} {r['ms_p50']:8.1f} {r['ms_p99']:8.1f} "
            f"{r['peak_mib']:9.0f} {r['speed_vs_mnv2']:7.2f}"
        )
    return {"rows": rows}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes and iterations")
    run(quick=ap.parse_args().quick)

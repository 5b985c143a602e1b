"""Students' network + post-processing at 720p against the per-frame teacher, one run (issue 18).

Ten real 1280x720 frames (shared/data/videos/maggie_three_dancers.mp4, three dancers), each
method's whole per-frame instance work: `TrimapNet.detect` (resize to the weights' input
size, network, point NMS, Matrix NMS, upsampling of the kept people to 720p) for a trimap
model folder, the teacher's detector + segmenter for the teacher. Median ms per frame after
one warm-up frame, at 1 and 2 torch threads; the load average is printed beside, because on
a shared machine it moves every figure (compare ratios within one run).

    python -m bench.bench_student [--quick] [--model LABEL=DIR ...]

Without --model: the shipped student (assets/) and, from training/configs, the YOLOX and
MobileNetV2 student architectures with random weights and post-processing forced to keep
20 people (an upper bound for that stage; trained weights keep far fewer).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from vidmatte.models.shared import shared_data, shared_weights

TARGET_MS = 60.0


def _frames(n: int) -> list[np.ndarray]:
    from vidmatte.matting.io.video import open_video

    out = []
    with open_video(shared_data() / "videos" / "maggie_three_dancers.mp4") as reader:
        for f in reader:
            out.append(f.rgb)
            if len(out) == n:
                break
    return out


def _config_model(name: str):
    from vidmatte.models.trimapnet import PostprocessConfig, TrimapNetConfig, build_trimapnet
    from vidmatte.training.fit import resolve_config
    from vidmatte.training.trainer import load_toml

    m = dict(load_toml(resolve_config(name))["model"])
    for k in ("freeze", "init"):
        m.pop(k, None)
    m["postprocess"] = PostprocessConfig(score_thr=0.0, update_thr=0.0, nms_pre=100, max_per_img=20)
    return build_trimapnet(TrimapNetConfig.from_dict(m), pretrained_backbone=False).eval()


def _methods(models: dict[str, str]) -> dict:
    from vidmatte.models.trimapnet import TrimapNet

    out = {}
    if models:
        for label, folder in models.items():
            out[label] = TrimapNet.from_folder(folder)
    else:
        from vidmatte.models.weights.resolution import find_weights

        shipped = find_weights("trimapnet")
        if shipped is not None:
            out["shipped student (MobileNetV2)"] = TrimapNet.from_folder(shipped.folder)
        out["YOLOX student arch, random, 20 kept"] = _config_model("student_yolox_cpu")
        out["MobileNetV2 student arch, random, 20 kept"] = _config_model("student_mnv2_cpu")
    return out


def _time(fn, frames) -> float:
    fn(frames[0])  # warm-up
    ts = []
    for f in frames[1:]:
        t = time.perf_counter()
        fn(f)
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))


def run(quick: bool = False, models: dict[str, str] | None = None) -> dict:
    from vidmatte.models.teachers.base import load_teacher

    frames = _frames(4 if quick else 10)
    before = torch.get_num_threads()
    rows = []
    nets = _methods(models or {})

    def net_fn(model):
        def fn(rgb):
            x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div_(255.0)
            with torch.inference_mode():
                return model.detect(x)

        return fn

    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            # the teacher's ONNX / TFLite runtimes take their thread count when loaded
            teacher = load_teacher(shared_weights(), threads=threads)
            load = os.getloadavg()[0]
            base = _time(teacher, frames)
            rows.append(dict(method="per-frame teacher", threads=threads, ms=base, load=load))
            for label, model in nets.items():
                ms = _time(net_fn(model), frames)
                rows.append(
                    dict(method=label, threads=threads, ms=ms, load=load, vs_teacher=base / ms)
                )
    finally:
        torch.set_num_threads(before)
    return {"rows": rows, "target_ms": TARGET_MS, "size": "1280x720"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", action="append", default=[], metavar="LABEL=DIR")
    p.add_argument("--json", type=Path, help="also write the rows as JSON (atomically)")
    args = p.parse_args()
    models = dict(m.split("=", 1) for m in args.model)
    res = run(args.quick, models)
    if args.json:
        import json

        from vidmatte.matting.io.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(res, indent=2) + "\n")
    print("method | threads | ms / frame at 720p | × teacher speed | load average")
    for r in res["rows"]:
        print(
            f"{r['method']} | {r['threads']} | {r['ms']:.1f} | {r.get('vs_teacher', 1.0):.2f} | "
            f"{r['load']:.1f}"
        )


if __name__ == "__main__":
    main()

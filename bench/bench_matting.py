"""Matting: quality and speed of each matter, and speed against the unknown-band width.

Quality table (issue 19, README Matting): SAD, MSE, Grad, Conn of every matter (classical,
fast, IndexNet shipped / given) on the held-out background-matting triplets and the
held-out half of Composition-1k 'spring' (training/eval/matting_eval.py), with ms per
person-frame at 720p and 1080p (the triplets rescaled, the pipeline's band-rule trimap),
wall clock and CPU time, and the load average (the machine may be shared). Triplets:
`--triplets DIR` or $VIDMATTE_TRIPLETS (`vidmatte-train background-matting` output);
without them only the Composition-1k rows.

Speed sweep: ms per 1080p / 4K frame against the unknown-band width, IndexNet tiled vs
whole image (CPU, and CUDA fp16 when available), with the classical and fast matters.

Frames and trimaps are synthetic but built from real data: a DAVIS frame and its person
mask (../shared/data/vos/davis16_lucia) scaled up to the target resolution; the trimap
band is the mask's boundary grown to the given width. IndexNet runs with the ImageNet
encoder and an untrained decoder: speed does not depend on the weights.

    python -m bench.bench_matting [--quick] [--triplets DIR] [--indexnet MODEL_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

RES = {"1080p": (1920, 1080), "4K": (3840, 2160)}


def _frame(size: tuple[int, int]):
    import cv2
    from PIL import Image

    from vidmatte.models.shared import shared_data

    root = shared_data()
    if root is None:
        raise SystemExit("bench_matting: ../shared/data is missing")
    d = root / "vos" / "davis16_lucia"
    im = np.array(Image.open(d / "frames" / "00030.jpg").convert("RGB"))
    mask = np.array(Image.open(d / "masks" / "00030.png").convert("L")) > 127
    im = cv2.resize(im, size, interpolation=cv2.INTER_CUBIC)
    m = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    m = cv2.GaussianBlur(m, (0, 0), size[0] / 854) > 0.5  # smooth the upscaled outline
    return im, m


def _trimap(mask: np.ndarray, width: int) -> np.ndarray:
    import cv2

    r = max(1, width // 2)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    m = mask.astype(np.uint8)
    tri = np.full(mask.shape, 128, np.uint8)
    tri[cv2.erode(m, k) > 0] = 255
    tri[cv2.dilate(m, k) == 0] = 0
    return tri


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def quality(quick: bool = False, triplets: str | None = None, indexnet: str | None = None) -> dict:
    """The README's Matting table (module docstring)."""
    import torch

    from vidmatte.models.matters.base import build_matter
    from vidmatte.models.shared import find_shared
    from vidmatte.training.eval.matting_eval import (
        evaluate_matter,
        held_out_triplets,
        load_average,
        spring_item,
    )

    shared = find_shared()
    triplets = triplets or os.environ.get("VIDMATTE_TRIPLETS")
    groups = []
    if triplets:
        items = held_out_triplets(triplets, limit=6 if quick else 0)
        if items:
            groups.append(("held-out triplets", items))
    if shared is not None:
        groups.append(("c1k spring, right half", [spring_item(shared)]))
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    matters = [("classical", build_matter("classical")), ("fast", build_matter("fast"))]
    folders = [
        ("indexnet (shipped)", Path(__file__).resolve().parents[1] / "assets/weights/indexnet")
    ]
    if indexnet:
        folders.append(("indexnet (" + Path(indexnet).name + ")", Path(indexnet)))
    for name, folder in folders:
        if (folder / "config.json").is_file():
            matters.append((name, build_matter("indexnet", weights=folder)))
    rows = []
    for dataset, items in groups:
        for name, matter in matters:
            speed = 0 if dataset.startswith("c1k") else (2 if quick else 6)
            r = evaluate_matter(matter, items, speed_items=speed)
            row = {"dataset": dataset, "matter": name, "load": load_average()}
            row.update({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()})
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"rows": rows}


def markdown(rows: list[dict]) -> str:
    """The quality table as the README shows it."""
    head = "| data | matter | SAD | MSE ×1e3 | Grad | Conn | ms/person 720p | 1080p | CPU ms 720p |"
    out = [head, "|" + "---|" * 9]
    for r in rows:

        def ms(k: str, r: dict = r) -> str:
            return f"{r[k]:.0f}" if k in r else "–"

        out.append(
            f"| {r['dataset']} ({r['items']}) | {r['matter']} | {r['SAD']:.2f} | {r['MSE']:.2f} "
            f"| {r['Grad']:.2f} | {r['Conn']:.2f} | {ms('ms_720p')} | {ms('ms_1080p')} "
            f"| {ms('cpu_ms_720p')} |"
        )
    return "\n".join(out)


def run(quick: bool = False) -> dict:
    import torch

    from vidmatte.models.indexnet.model import build_indexnet
    from vidmatte.models.matters.classical import ClassicalMatter
    from vidmatte.models.matters.fast import FastMatter
    from vidmatte.models.matters.indexnet import IndexNetMatter

    model = build_indexnet(True).eval()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    resolutions = ["1080p"] if quick else ["1080p", "4K"]
    widths = [16] if quick else [8, 32, 96]
    repeats = 1 if quick else 3
    rows = []
    for res in resolutions:
        im, mask = _frame(RES[res])
        for width in widths:
            tri = _trimap(mask, width)
            band = int((tri == 128).sum())
            setups = []
            for dev in devices:
                fp16 = dev == "cuda"
                setups.append(
                    (f"indexnet-tiled/{dev}", IndexNetMatter(model, device=dev, fp16=fp16))
                )
                # Whole-frame IndexNet on CPU is minutes per frame beyond 1080p: GPU only there.
                if dev == "cuda" or (res == "1080p" and not quick):
                    whole = IndexNetMatter(model, device=dev, fp16=fp16, tile=None)
                    setups.append((f"indexnet-whole/{dev}", whole))
            if not (quick and width > 16) and (res == "1080p" or width <= 32):
                setups.append(("classical/cpu", ClassicalMatter()))
            setups.append(("fast/cpu", FastMatter()))
            base = None
            for name, matter in setups:
                if name.endswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                ms = _time(lambda m=matter, i=im, t=tri: m(i, t[None]), repeats)
                if name.endswith("cuda"):
                    torch.cuda.synchronize()
                p50 = float(np.percentile(ms, 50))
                row = {
                    "res": res,
                    "band_px": width,
                    "band_pixels": band,
                    "matter": name,
                    "ms_p50": round(p50, 1),
                    "ms_p99": round(float(np.percentile(ms, 99)), 1),
                    "fps": round(1e3 / p50, 2),
                    "tiles": len(matter_tiles(matter, tri)),
                }
                if name.endswith("cuda"):
                    row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
                if name.startswith("indexnet-tiled"):
                    base = p50
                elif base and name.startswith("indexnet-whole"):
                    row["vs_tiled"] = round(p50 / base, 2)
                rows.append(row)
                print(_fmt(row), flush=True)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = quality(quick)["rows"]
    return {
        "rows": rows,
        "quality": table,
        "quality_markdown": markdown(table),
        "peak_rss_mb": round(peak_rss),
        "quick": quick,
    }


def matter_tiles(matter, tri: np.ndarray) -> list:
    from vidmatte.models.matters.base import band_tiles
    from vidmatte.models.matters.indexnet import IndexNetMatter

    if isinstance(matter, IndexNetMatter):
        t = matter.tile or max(tri.shape)
        return band_tiles(tri == 128, t, matter.overlap)
    return []


def _fmt(r: dict) -> str:
    extra = f"  x{r['vs_tiled']} vs tiled" if "vs_tiled" in r else ""
    gpu = f"  gpu {r['peak_gpu_mb']} MB" if "peak_gpu_mb" in r else ""
    return (
        f"{r['res']:>5} band {r['band_px']:>3}px ({r['band_pixels']:>8} px)  "
        f"{r['matter']:<22} p50 {r['ms_p50']:>9.1f} ms  p99 {r['ms_p99']:>9.1f} ms  "
        f"{r['fps']:>6.2f} fps  tiles {r['tiles']:>3}{gpu}{extra}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--triplets", help="background-matting triplet folder (held-out clips)")
    ap.add_argument("--indexnet", help="also score this IndexNet model folder")
    ap.add_argument("--quality-only", action="store_true", help="only the quality table")
    args = ap.parse_args()
    if args.quality_only:
        result = quality(args.quick, args.triplets, args.indexnet)
        print(markdown(result["rows"]))
    else:
        if args.triplets:
            os.environ["VIDMATTE_TRIPLETS"] = args.triplets
        result = run(quick=args.quick)
        print(result["quality_markdown"])
    if "peak_rss_mb" in result:
        print(f"peak RSS {result['peak_rss_mb']} MB")
    if args.json:
        from vidmatte.matting.io.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

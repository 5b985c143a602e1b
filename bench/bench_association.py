"""Association cost per frame against the number of people (and image size).

Synthetic scene: N ellipse 'people' walking on straight lines that bounce off the edges, so
paths cross and people occlude each other (depth order). Times `Associator.update` only
(mask reduction included, scene generation excluded). Baseline in the same run: IoU at
full resolution (mask_side = the image's long side), which shows what the reduced masks buy.
Also reports ID switches on the scene (count_id_switches), as a quality check.

    python -m bench.bench_association [--quick]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from vidmatte.matting.tracking.association import AssociationConfig, Associator
from vidmatte.matting.tracking.id_metrics import count_id_switches
from vidmatte.models.instances import Instances, boxes_and_centres


def _scene(n_people: int, height: int, width: int, n_frames: int, seed: int = 0):
    """Yield (frame, Instances, gt ids per instance)."""
    rng = np.random.default_rng(seed)
    ry = height * rng.uniform(0.12, 0.2, n_people)
    rx = ry * 0.35
    pos = np.stack([rng.uniform(rx, width - rx), rng.uniform(ry, height - ry)], 1)
    vel = rng.uniform(-1, 1, (n_people, 2)) * np.array([width, height * 0.2]) / 60
    ys = torch.arange(height, dtype=torch.float32)[:, None]
    xs = torch.arange(width, dtype=torch.float32)[None, :]
    for f in range(n_frames):
        covered = torch.zeros(height, width, dtype=torch.bool)
        masks, ids = [], []
        for i in range(n_people):  # person 0 in front
            m = ((xs - pos[i, 0]) / rx[i]) ** 2 + ((ys - pos[i, 1]) / ry[i]) ** 2 <= 1
            m &= ~covered
            covered |= m
            if m.sum() > 50:
                masks.append(m.float())
                ids.append(i)
        pos += vel
        bounce = (pos < 0) | (pos > np.array([width, height]))
        vel[bounce] *= -1
        if masks:
            mk = torch.stack(masks)
            boxes, centres = boxes_and_centres(mk)
            k = len(masks)
            scores = torch.from_numpy(rng.uniform(0.6, 0.95, k)).float()
            inst = Instances(scores, torch.zeros(k, dtype=torch.long), mk, boxes, centres)
        else:
            inst = Instances.empty(height, width)
        yield f, inst, ids


def _measure(
    n_people: int, height: int, width: int, n_frames: int, mask_side: int, reduce: str = "auto"
) -> dict:
    assoc = Associator(AssociationConfig(mask_side=mask_side, mask_reduce=reduce))
    times = []
    pred: dict[int, dict[int, int | None]] = {}
    for f, inst, ids in _scene(n_people, height, width, n_frames):
        t0 = time.perf_counter()
        a = assoc.update(f, inst)
        times.append(time.perf_counter() - t0)
        pred[f] = dict(zip(ids, a.track_ids, strict=True))
    ms = np.array(times[2:]) * 1e3  # first frames pay imports / warm-up
    return {
        "size": f"{width}x{height}",
        "people": n_people,
        "mask_side": mask_side,
        "reduce": reduce,
        "ms_p50": float(np.percentile(ms, 50)),
        "ms_p99": float(np.percentile(ms, 99)),
        "fps": float(1e3 / ms.mean()),
        "id_switches": count_id_switches(pred),
    }


def run(quick: bool = False) -> dict:
    torch.set_num_threads(1)
    if quick:
        sizes, people, n_frames = [(360, 640)], [1, 2, 4, 8], 20
    else:
        sizes, people, n_frames = [(720, 1280), (1080, 1920)], [1, 2, 4, 8, 16], 60
    rows = []
    for h, w in sizes:
        for n in people:
            rows.append(_measure(n, h, w, n_frames, mask_side=160))
    # Baselines: the same 4-person scene with area-averaged reduction, and with IoU at full
    # resolution (no reduction).
    h, w = sizes[-1]
    area = _measure(4, h, w, n_frames, mask_side=160, reduce="area")
    base = _measure(4, h, w, n_frames, mask_side=max(h, w))
    reduced = next(r for r in rows if r["people"] == 4 and r["size"] == base["size"])
    result = {
        "rows": rows,
        "baseline_area_reduce": area,
        "baseline_full_res_iou": base,
        "speedup_vs_full_res_4_people": base["ms_p50"] / max(reduced["ms_p50"], 1e-9),
        "speedup_vs_area_4_people": area["ms_p50"] / max(reduced["ms_p50"], 1e-9),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": 1,
    }
    _print(result)
    return result


def _print(result: dict) -> None:
    print(
        f"{'size':>10} {'people':>6} {'mask':>5} {'reduce':>7} {'ms p50':>8} {'ms p99':>8} "
        f"{'fps':>8} {'IDsw':>5}"
    )
    for r in [*result["rows"], result["baseline_area_reduce"], result["baseline_full_res_iou"]]:
        print(
            f"{r['size']:>10} {r['people']:>6} {r['mask_side']:>5} {r['reduce']:>7} "
            f"{r['ms_p50']:>8.2f} "
            f"{r['ms_p99']:>8.2f} {r['fps']:>8.1f} {r['id_switches']:>5}"
        )
    print(
        f"4 people: {result['speedup_vs_full_res_4_people']:.1f}x faster than full-res IoU, "
        f"{result['speedup_vs_area_4_people']:.1f}x than area reduction; "
        f"peak RSS {result['peak_rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, fewer frames")
    run(quick=ap.parse_args().quick)

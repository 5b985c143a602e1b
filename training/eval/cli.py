"""`vidmatte-eval PRED GT`: score predictions against ground truth, one command.

PRED and GT are folders (see vidmatte.training.eval.data for the layouts). Sequences are
paired by name, or directly when each side holds one; a vidmatte output with several
persons is scored person by person and as their union (max alpha), since a DAVIS mask
covers every foreground person. Metrics follow the GT's kind:

- mask   (DAVIS): J, boundary F, TC of the prediction;
- alpha  (matting): MAD, MSE, Grad, Conn (×1e3 / /1e3, over the trimap's unknown band when
  the GT has trimaps), dtSSD, MESSDdt (sequences), J and F of alpha > 0.5, TC;
- trimap: trimap IoU per class and mean (a predicted alpha is read as bg/unknown/fg), TC.

TC needs flow between RGB frames: the GT's frames/ or image/ folder, `--frames DIR`, or,
lacking both, the GT maps themselves (the ground truth's own motion; noted in the output).
Writes a terminal table, and on request JSON, CSV and PNG plots (TC per frame pair,
latency per frame with `--timings`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

from vidmatte.models import __version__
from vidmatte.models.errors import InputError, OutputError, UsageError, guarded_main

PROG = "vidmatte-eval"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Score mattes, masks or trimaps against ground truth "
        "(J, boundary F, TC, trimap IoU, MAD/MSE/Grad/Conn, dtSSD, MESSDdt).",
    )
    p.add_argument("pred", type=Path, help="predictions: vidmatte output, or a PNG folder")
    p.add_argument(
        "gt",
        type=Path,
        help="ground truth: DAVIS frames/+masks/, matting "
        "image/+alpha/[+trimap/], alpha or trimap PNG folder, or a folder of those",
    )
    p.add_argument("--version", action="version", version=f"vidmatte {__version__}")
    p.add_argument("--json", type=Path, metavar="FILE", help="write results as JSON")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write one CSV row per sequence")
    p.add_argument(
        "--plots",
        type=Path,
        metavar="DIR",
        help="write PNG plots here (default: beside --json, if given)",
    )
    p.add_argument("--frames", type=Path, metavar="DIR", help="RGB frames for TC's flow")
    p.add_argument(
        "--flow",
        choices=("dis", "dis-fast", "raft"),
        default="dis",
        help="flow for TC (default: OpenCV DIS; raft needs ../shared weights)",
    )
    p.add_argument(
        "--timings",
        type=Path,
        metavar="FILE",
        help="per-frame latencies in ms: JSON list / {'latency_ms': [...]} or one number per line",
    )
    p.add_argument(
        "--max-frames",
        type=int,
        default=0,
        metavar="N",
        help="evaluate at most N frames per sequence (0 = all)",
    )
    p.add_argument(
        "--bound-th",
        type=float,
        default=0.008,
        help="boundary F tolerance: fraction of the diagonal (<1) or pixels",
    )
    p.add_argument("--no-tc", action="store_true", help="skip temporal consistency")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


# ---------------------------------------------------------------- evaluation


def _resize_like(x, shape, nearest: bool):
    import cv2

    if x.shape[:2] == shape:
        return x
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(x, (shape[1], shape[0]), interpolation=interp)


def _pair(preds, gts):
    """[(pred_seq, gt_seq)] by name; one-vs-one pairs directly; many persons vs one GT
    gives each person plus their union."""
    by_name = {g.name: g for g in gts}
    pairs = [(p, by_name[p.name]) for p in preds if p.name in by_name]
    if pairs:
        return pairs
    if len(gts) == 1:
        return [(p, gts[0]) for p in preds]
    raise InputError(
        f"cannot pair {len(preds)} predicted with {len(gts)} ground-truth sequences: "
        "give them the same folder names"
    )


def evaluate_pair(pred, gt, args, union_of=None) -> tuple[dict, dict]:
    """Metrics of one (prediction, ground truth) pair -> (row, per-frame series)."""
    import numpy as np

    from vidmatte.models.trimap import trimap_to_classes
    from vidmatte.training import metrics as M
    from vidmatte.training.eval.data import read_map, read_rgb

    src = union_of or [pred]
    common = set(gt.files)
    for s in src:
        common &= set(s.files)
    keys = sorted(common, key=lambda k: (isinstance(k, str), k))
    if args.max_frames:
        keys = keys[: args.max_frames]
    if not keys:
        raise InputError(f"{pred.name} and {gt.name} share no frame numbers")
    gts = [read_map(gt.files[k]) for k in keys]
    shape = gts[0].shape[:2]
    preds = []
    for i, k in enumerate(keys):
        maps = [
            _resize_like(read_map(s.files[k]), gts[i].shape[:2], s.kind != "alpha") for s in src
        ]
        preds.append(np.max(np.stack(maps), axis=0) if len(maps) > 1 else maps[0])
    row: dict = {"pred": pred.name, "gt": gt.name, "gt_kind": gt.kind, "frames": len(keys)}
    series: dict = {}
    if gt.kind == "trimap":
        # every map becomes trimap classes {0, 1, 2} (models/trimap.py) before scoring
        pred_tri = [trimap_to_classes(p) for p in preds]
        if pred.kind == "alpha":
            if pred.trimaps and all(k in pred.trimaps for k in keys):
                pred_tri = [
                    trimap_to_classes(_resize_like(read_map(pred.trimaps[k]), shape, True))
                    for k in keys
                ]
            else:
                pred_tri = [M.alpha_to_classes(p) for p in preds]
        acc = M.TrimapIoU()
        for p, g in zip(pred_tri, gts, strict=True):
            acc.update(p, trimap_to_classes(g))
        for name, v in acc.compute().items():
            row[f"iou_{name}"] = v
        tc_maps = pred_tri
    else:
        binp = [M.to_binary(p) for p in preds]
        row["J"] = float(np.mean([M.mask_j(p, g) for p, g in zip(binp, gts, strict=True)]))
        row["F"] = float(
            np.mean([M.boundary_f(p, g, args.bound_th) for p, g in zip(binp, gts, strict=True)])
        )
        if gt.kind == "alpha":
            tris = None
            if gt.trimaps and all(k in gt.trimaps for k in keys):
                tris = [read_map(gt.trimaps[k]) for k in keys]
            row.update(M.video_alpha_metrics(preds, gts, tris))
            if len(keys) == 1:
                row.pop("dtSSD"), row.pop("MESSDdt")
        tc_maps = binp
    if len(keys) > 1 and not args.no_tc:
        rgb_src = None
        if args.frames is not None:
            from vidmatte.training.eval.data import list_images

            rgb_src = list_images(args.frames)
        elif gt.frames:
            rgb_src = gt.frames
        if rgb_src and all(k in rgb_src for k in keys):
            imgs = [_resize_like(read_rgb(rgb_src[k]), shape, False) for k in keys]
            row["tc_flow"] = f"{args.flow} on RGB frames"
        else:
            imgs = [np.repeat(M.to_alpha(g)[..., None] * 255, 3, 2).astype(np.uint8) for g in gts]
            row["tc_flow"] = f"{args.flow} on GT maps (no RGB frames)"
        flows = M.sequence_flows(imgs, args.flow)
        row["TC"] = M.temporal_consistency(tc_maps, flows)
        series["tc_pairs"] = M.temporal_consistency_pairs(tc_maps, flows)
    return row, series


def evaluate(args) -> dict:
    from vidmatte.training.eval.data import read_sequences

    preds, gts = read_sequences(args.pred), read_sequences(args.gt)
    rows, series = [], {}
    for p, g in _pair(preds, gts):
        row, s = evaluate_pair(p, g, args)
        rows.append(row)
        series[f"{p.name} vs {g.name}"] = s
    if len(gts) == 1 and len(preds) > 1 and gts[0].kind == "mask":
        union = type(preds[0])(name="union", kind="alpha", files={})
        row, s = evaluate_pair(union, gts[0], args, union_of=preds)
        rows.append(row)
        series[f"union vs {gts[0].name}"] = s
    result = {
        "version": __version__,
        "pred": str(args.pred),
        "gt": str(args.gt),
        "rows": rows,
        "series": series,
    }
    if args.timings is not None:
        result["latency"] = summarize_latency(read_timings(args.timings))
    return result


# ---------------------------------------------------------------- timings


def read_timings(path: Path) -> list[float]:
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(f"cannot read timings {path}: {e}") from e
    try:
        data = json.loads(text)
    except ValueError:
        data = [ln.split(",")[-1] for ln in text.splitlines() if ln.strip()]
    if isinstance(data, dict):
        data = next(
            (data[k] for k in ("latency_ms", "frame_ms", "ms", "timings") if k in data), None
        )
    try:
        values = [float(v) for v in data if str(v).strip() not in ("", "ms", "latency_ms")]
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: timings must be numbers (ms per frame)") from e
    if not values:
        raise InputError(f"{path}: no timings")
    return values


def summarize_latency(ms: list[float]) -> dict:
    import numpy as np

    a = np.asarray(ms, np.float64)
    return {
        "frames": int(a.size),
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "fps": float(1000.0 / a.mean()) if a.mean() > 0 else float("inf"),
        "per_frame_ms": [float(v) for v in a],
    }


# ---------------------------------------------------------------- output

COLUMNS = [
    "pred",
    "gt",
    "frames",
    "J",
    "F",
    "TC",
    "iou_background",
    "iou_unknown",
    "iou_foreground",
    "iou_mean",
    "MAD",
    "MSE",
    "Grad",
    "Conn",
    "dtSSD",
    "MESSDdt",
]


def _cell(v) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.4g}" if abs(v) < 1 else f"{v:.2f}"
    return str(v)


def format_table(rows: list[dict]) -> str:
    cols = [c for c in COLUMNS if any(c in r for r in rows)]
    cells = [[_cell(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def write_atomic(path: Path, text: str, overwrite: bool) -> None:
    """Write a report atomically (matting/io/atomic.py); refuse to replace one unasked."""
    from vidmatte.matting.io.atomic import atomic_write_text, make_dirs

    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists (use --overwrite to replace it)")
    make_dirs(path.parent)
    atomic_write_text(path, text)


def to_csv(rows: list[dict]) -> str:
    cols = [c for c in COLUMNS if any(c in r for r in rows)] + ["tc_flow"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(
            {k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
        )
    return buf.getvalue()


def write_plots(result: dict, folder: Path, overwrite: bool) -> list[Path]:
    from vidmatte.training.eval.plots import line_plot

    out = []
    tc = {k: s["tc_pairs"] for k, s in result["series"].items() if s.get("tc_pairs")}
    targets = []
    if tc:
        targets.append(
            (
                "tc_per_pair.png",
                tc,
                "Temporal consistency per frame pair",
                "frame pair (t, t+1)",
                "TC (%)",
            )
        )
    if "latency" in result:
        targets.append(
            (
                "latency_per_frame.png",
                {"latency": result["latency"]["per_frame_ms"]},
                "Latency per frame",
                "frame",
                "ms",
            )
        )
    for name, series, title, xl, yl in targets:
        path = folder / name
        if path.exists() and not overwrite:
            raise OutputError(f"{path} exists (use --overwrite to replace it)")
        out.append(line_plot(series, path, title, xl, yl))
    return out


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_frames < 0:
        raise UsageError("--max-frames must be >= 0")
    for flag in ("json", "csv"):
        p = getattr(args, flag)
        if p is not None and p.exists() and not args.overwrite:
            raise OutputError(f"{p} exists (use --overwrite to replace it)")
    result = evaluate(args)
    print(format_table(result["rows"]))
    if "latency" in result:
        lat = result["latency"]
        print(
            f"latency: {lat['frames']} frames, p50 {lat['p50_ms']:.1f} ms, "
            f"p99 {lat['p99_ms']:.1f} ms, {lat['fps']:.1f} fps"
        )
    for r in result["rows"]:
        if "tc_flow" in r and "GT maps" in r["tc_flow"]:
            print(
                f"note: TC of {r['pred']} uses flow of the GT maps (no RGB frames given)",
                file=sys.stderr,
            )
    if args.json is not None:
        from vidmatte.matting.io.manifest import json_safe

        write_atomic(args.json, json.dumps(json_safe(result), indent=2) + "\n", args.overwrite)
    if args.csv is not None:
        write_atomic(args.csv, to_csv(result["rows"]), args.overwrite)
    plots = args.plots or (args.json.parent if args.json is not None else None)
    if plots is not None:
        for p in write_plots(result, plots, args.overwrite):
            print(f"wrote {p}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return guarded_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())

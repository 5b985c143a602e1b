"""The paper's "SOLO + matting" baseline beside our students, measured with the same code.

Every row runs the shipped `Pipeline` (so it is exactly what `vidmatte-cli` produces on that
path): the baseline is teacher masks (COCO person instances per frame) -> dilate/erode
trimaps -> classical matting; a student row swaps the teacher for a trimap-network model
folder (`--student LABEL=DIR`, repeatable), and `--indexnet DIR` adds the last student with
IndexNet matting. Evaluated on

- ../shared/data/vos (DAVIS-16, one person, per-frame masks): J, boundary F and TC of the
  source's union mask ("… masks") and of the matted alpha > 0.5 ("… + matter matting"), the
  trimap IoU of the pipeline's trimaps against trimaps made from the GT mask with the same
  band rule (models/trimap.py), and the pipeline's own time per frame;
- ../shared/data/matting (Composition-1k, GT alpha): each matter on a trimap made from the
  GT alpha (training/metrics/alpha.py: evaluation_trimap) — MAD, MSE, Grad, Conn over its unknown band. This isolates the matter from detection (the one
  GT-alpha item, c1k_spring, is a plant that no person detector finds).

Persons are merged by max (the DAVIS masks cover every foreground person). Heavy modules
are imported only when run, so `--help` stays instant.

    python -m vidmatte.training.eval.baseline [--max-frames 8] [--student S=DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidmatte.matting.config import PipelineConfig
from vidmatte.models.errors import InputError, UsageError, guarded_main

PROG = "vidmatte-baseline"


def _union(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    a = np.asarray(arr, np.float32)
    if a.ndim == 2:
        return a
    return a.max(axis=0) if len(a) else np.zeros(shape, np.float32)


def _masks(inst) -> np.ndarray:
    m = inst.masks
    m = m.detach().cpu().numpy() if hasattr(m, "detach") else np.asarray(m)
    return m.astype(np.float32)


def _union_trimap(people, shape: tuple[int, int]) -> np.ndarray:
    tris = [p.trimap for p in people.values()]
    return np.max(np.stack(tris), axis=0) if tris else np.zeros(shape, np.uint8)


def run_frames(
    pipe, frames_dir: Path, max_frames: int
) -> list[tuple[np.ndarray, np.ndarray, float, np.ndarray]]:
    """(union of source masks, union of matted alphas, seconds, union trimap) per frame.

    The alphas come from the shipped Pipeline itself (score threshold, association,
    dilate/erode trimaps, classical matter), so this row is exactly what `vidmatte-cli`
    produces; the mask row reuses the pipeline's instance source on the same frames.
    """
    from vidmatte.matting.io.video import open_video

    out = []
    with open_video(frames_dir) as reader:
        end = max_frames or None
        t = time.perf_counter()
        for result in pipe.process(reader, end=end):
            seconds = time.perf_counter() - t  # the pipeline's own work for this frame
            shape = result.frame.rgb.shape[:2]
            alphas = [p.alpha for p in result.people.values() if p.alpha is not None]
            alpha = (
                _union(np.stack(alphas).astype(np.float32) / 255, shape)
                if alphas
                else (np.zeros(shape, np.float32))
            )
            masks = _masks(pipe.source.detect([result.frame.rgb])[0])
            out.append((_union(masks, shape), alpha, seconds, _union_trimap(result.people, shape)))
            t = time.perf_counter()
    return out


def evaluate_vos(
    seq_dir: Path, pipe, max_frames: int, flow: str, label: str = "teacher"
) -> list[dict]:
    from vidmatte.models.trimap import masks_to_trimaps, trimap_to_classes
    from vidmatte.training import metrics as M
    from vidmatte.training.eval.data import read_map, read_rgb, read_sequences

    (seq,) = read_sequences(seq_dir)
    if not seq.frames:
        raise InputError(f"{seq_dir}: no frames/ folder")
    keys = [k for k in seq.frame_keys() if k in seq.frames][: max_frames or None]
    frames = [read_rgb(seq.frames[k]) for k in keys]
    gts = [read_map(seq.files[k]) for k in keys]
    outs = run_frames(pipe, seq_dir / "frames", len(keys))
    flows = M.sequence_flows(frames, flow) if len(frames) > 1 else []
    lat = np.array([o[2] for o in outs]) * 1e3
    # the first frame pays for warm-up (lazy init, association delay): report it apart
    steady = lat[1:] if len(lat) > 2 else lat
    ms = float(np.mean(steady))
    tri_iou = M.TrimapIoU()
    for o, g in zip(outs, gts, strict=True):
        gt_tri = masks_to_trimaps(M.to_binary(g)[None])[0]
        tri_iou.update(trimap_to_classes(o[3]), trimap_to_classes(gt_tri))
    matter = pipe.matter.name if pipe.matter is not None else "no"
    rows = []
    for method, preds in (
        (f"{label} masks", [o[0] for o in outs]),
        (f"{label} + {matter} matting", [o[1] for o in outs]),
    ):
        binp = [M.to_binary(p) for p in preds]
        row = {
            "data": seq.name,
            "method": method,
            "frames": len(keys),
            "J": float(np.mean([M.mask_j(p, g) for p, g in zip(binp, gts, strict=True)])),
            "F": float(np.mean([M.boundary_f(p, g) for p, g in zip(binp, gts, strict=True)])),
            "trimap_IoU": tri_iou.compute()["mean"],
            "ms_per_frame": ms,
            "ms_p50": float(np.percentile(steady, 50)),
            "ms_p99": float(np.percentile(steady, 99)),
        }
        if flows:
            row["TC"] = M.temporal_consistency(binp, flows)
            row["TC_gt"] = M.temporal_consistency([M.to_binary(g) for g in gts], flows)
        rows.append(row)
    return rows


def evaluate_matters(seq_dir: Path, matters: dict, scales: tuple[int, ...] = (4, 1)) -> list[dict]:
    """Each matter (label -> models/matters/base.py Matter) on every GT-alpha item, given the trimap
    made from the GT alpha (training/metrics/alpha.py evaluation_trimap: the stored one has no
    foreground), at 1/scale of the stored size. Two scales because c1k_spring is a plant
    whose unknown region is 63 % of the image: at 1/4 it is band-sized for the solvers'
    tiles (like a person's edge band), at full size it shows how each matter copes with a
    huge unknown region (the tiled closed-form solver does worse there than a constant 0.5)."""
    import cv2

    from vidmatte.training import metrics as M
    from vidmatte.training.eval.data import read_map, read_rgb, read_sequences

    rows = []
    for seq in read_sequences(seq_dir):
        if seq.kind != "alpha" or not seq.frames:
            continue  # no GT alpha (e.g. the wedding composite): nothing to score
        for k in seq.frame_keys():
            image0, gt0 = read_rgb(seq.frames[k]), read_map(seq.files[k])
            for scale in scales:
                size = (gt0.shape[1] // scale, gt0.shape[0] // scale)
                image = cv2.resize(image0, size, interpolation=cv2.INTER_AREA)
                gt = cv2.resize(gt0, size, interpolation=cv2.INTER_AREA)
                tri = M.evaluation_trimap(gt)
                for label, matter in matters.items():
                    t = time.perf_counter()
                    alpha = matter(image, tri[None])[0]
                    sec = time.perf_counter() - t
                    rows.append(
                        {
                            "data": seq.name if scale == 1 else f"{seq.name} (1/{scale})",
                            "method": f"{label} matting on the GT-alpha trimap",
                            "frames": 1,
                            **M.alpha_metrics(alpha, gt, tri),
                            "ms_per_frame": sec * 1e3,
                        }
                    )
    return rows


@dataclass
class Method:
    """One row group: a label and the pipeline settings that produce it."""

    label: str
    config: PipelineConfig


def default_methods(
    teacher_dir: Path | None,
    students: dict[str, Path] | None = None,
    indexnet: Path | None = None,
    teacher_matters: tuple[str, ...] = ("classical",),
) -> list[Method]:
    """The baseline (once per matter in `teacher_matters`: the side-by-side of a default
    matter change), each student with the classical matter, the last student + IndexNet."""
    from vidmatte.matting.config import PipelineConfig

    base = dict(device="cpu", matter="classical")
    methods = [
        Method(
            "teacher",
            PipelineConfig(
                source="teacher", teacher_dir=_s(teacher_dir), device="cpu", matter=matter
            ),
        )  # fmt: skip
        for matter in teacher_matters
    ]
    for label, folder in (students or {}).items():
        methods.append(Method(label, PipelineConfig(source="network", weights=str(folder), **base)))
    if indexnet is not None and students:
        label, folder = list(students.items())[-1]
        methods.append(
            Method(
                label,
                PipelineConfig(
                    source="network",
                    weights=str(folder),
                    matter="indexnet",
                    matting_weights=str(indexnet),
                    device="cpu",
                ),
            )
        )
    return methods


def _s(p: Path | None) -> str | None:
    return str(p) if p else None


def run_methods(
    data: Path,
    methods: list[Method],
    max_frames: int = 8,
    flow: str = "dis",
    sequences: list[str] | None = None,
) -> list[dict]:
    from vidmatte.matting.pipeline import Pipeline

    rows: list[dict] = []
    vos = data / "vos"
    seqs = sorted(p for p in vos.iterdir() if p.is_dir()) if vos.is_dir() else []
    matters: dict = {}
    for m in methods:
        pipe = Pipeline(m.config)
        for d in seqs:
            if sequences is None or d.name in sequences:
                rows += evaluate_vos(d, pipe, max_frames, flow, m.label)
        matters.setdefault(pipe.matter.name, pipe.matter)
    matting = data / "matting"
    if matting.is_dir() and (sequences is None or "matting" in sequences):
        rows += evaluate_matters(matting, matters)
    return rows


def run_baseline(
    data: Path,
    teacher_dir: Path | None,
    max_frames: int = 8,
    flow: str = "dis",
    sequences: list[str] | None = None,
) -> list[dict]:
    return run_methods(data, default_methods(teacher_dir), max_frames, flow, sequences)


def _student(item: str) -> tuple[str, Path]:
    label, sep, folder = item.partition("=")
    if not sep or not label or not folder:
        raise UsageError(f"--student {item!r}: expected LABEL=MODEL_DIR")
    return label, Path(folder)


def _main(argv: list[str] | None) -> int:
    from vidmatte.matting.io.manifest import json_safe
    from vidmatte.models.shared import shared_data, shared_weights
    from vidmatte.training.eval.cli import write_atomic

    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, help="shared data folder (default: ../shared/data)")
    p.add_argument("--teacher-dir", type=Path, help="teacher weights (default ../shared/weights)")
    p.add_argument("--max-frames", type=int, default=8, help="frames per VOS sequence (0 = all)")
    p.add_argument("--flow", choices=("dis", "dis-fast", "raft"), default="dis")
    p.add_argument("--only", nargs="*", help="sequence names (and/or 'matting')")
    p.add_argument(
        "--student", action="append", default=[], metavar="LABEL=DIR",
        help="a trimap-network model folder to compare (repeatable)",
    )  # fmt: skip
    p.add_argument("--indexnet", type=Path, help="IndexNet model folder (with the last student)")
    p.add_argument("--skip-teacher", action="store_true", help="leave out the baseline rows")
    p.add_argument(
        "--teacher-matter", action="append", choices=("classical", "fast", "indexnet"),
        help="the baseline's matter (repeatable: one row group each; default classical)",
    )  # fmt: skip
    p.add_argument(
        "--validation", action="store_true",
        help="the instance-source report on validation.toml's items (validation_report.py)",
    )  # fmt: skip
    p.add_argument("--cache", type=Path, help="--validation: reference-track cache folder")
    p.add_argument("--md", type=Path, help="--validation: also write the Markdown tables")
    p.add_argument("--json", type=Path)
    p.add_argument(
        "--card-metrics", type=Path, metavar="DIR",
        help="also write DIR/<label>.json per method, the model card's metrics",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    data = args.data or shared_data()
    if data is None or not data.is_dir():
        raise UsageError("no data folder: pass --data (../shared/data is not here)")
    students = dict(_student(s) for s in args.student)
    methods = default_methods(
        args.teacher_dir or shared_weights(), students, args.indexnet,
        tuple(args.teacher_matter or ("classical",)),
    )  # fmt: skip
    if args.skip_teacher:
        methods = [m for m in methods if m.label != "teacher"]
    if args.validation:
        from vidmatte.training.eval.validation_report import markdown, run_validation

        for m in methods:
            if m.label == "teacher":
                m.label = "per-frame teacher"
        report = run_validation(
            methods, args.teacher_dir or shared_weights(), args.cache, args.only
        )
        md = markdown(report)
        print(md)
        if args.json:
            write_atomic(args.json, json.dumps(json_safe(report), indent=2) + "\n", args.overwrite)
        if args.md:
            write_atomic(args.md, md, args.overwrite)
        return 0
    rows = run_methods(data, methods, args.max_frames, args.flow, args.only)
    cols = [
        "data",
        "method",
        "frames",
        "J",
        "F",
        "TC",
        "TC_gt",
        "trimap_IoU",
        "MAD",
        "MSE",
        "Grad",
        "Conn",
        "ms_per_frame",
    ]
    cols = [c for c in cols if any(c in r for r in rows)]
    print(" | ".join(cols))
    for r in rows:
        print(
            " | ".join(
                f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols
            )
        )
    if args.json:
        write_atomic(
            args.json, json.dumps(json_safe({"rows": rows}), indent=2) + "\n", args.overwrite
        )
    if args.card_metrics:
        args.card_metrics.mkdir(parents=True, exist_ok=True)
        for m in methods:
            card = card_metrics(rows, m.label)
            out = args.card_metrics / (m.label.replace("/", "-").replace(" ", "_") + ".json")
            write_atomic(out, json.dumps(json_safe(card), indent=2) + "\n", args.overwrite)
    return 0


def card_metrics(rows: list[dict], label: str) -> dict[str, dict[str, float]]:
    """{"<data> · <method>": {metric: value}} for the rows of one method label."""
    keys = ("J", "F", "TC", "trimap_IoU", "MAD", "MSE", "Grad", "Conn", "ms_per_frame")
    return {
        f"{r['data']} · {r['method']}": {k: r[k] for k in keys if k in r}
        for r in rows
        if r["method"] == f"{label} masks" or r["method"].startswith(f"{label} + ")
    }


def main(argv: list[str] | None = None) -> int:
    return guarded_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())

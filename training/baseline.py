"""The paper's "SOLO + matting" baseline, measured with the same metric code.

Teacher masks (COCO person instances per frame) -> dilate/erode trimaps -> classical
matting, run through the shipped `Pipeline` (source "teacher", matter "classical"), so the
row is exactly what `vidmatte-cli` produces on that path. Evaluated on

- ../shared/data/vos (DAVIS-16, one person, per-frame masks): J, boundary F and TC of the
  teacher's union mask ("teacher masks") and of the matted alpha > 0.5 ("teacher + matting");
- ../shared/data/matting (Composition-1k): MAD, MSE, Grad, Conn of the matted alpha over the
  GT trimap's unknown band. c1k_spring is a plant, not a person: the teacher finds no one
  and the row shows the error of an empty matte; it is kept as a sanity floor.

Persons are merged by max (the DAVIS masks cover every foreground person). Heavy modules
are imported only when run, so `--help` stays instant.

    python -m vidmatte.training.baseline [--max-frames 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

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


def run_frames(
    pipe, frames_dir: Path, max_frames: int
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(union of teacher masks, union of matted alphas, seconds) per frame of a folder.

    The alphas come from the shipped Pipeline itself (score threshold, association,
    dilate/erode trimaps, classical matter), so this row is exactly what `vidmatte-cli`
    produces; the mask row reuses the pipeline's instance source on the same frames.
    """
    from vidmatte.matting.video import open_video

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
            out.append((_union(masks, shape), alpha, seconds))
            t = time.perf_counter()
    return out


def evaluate_vos(seq_dir: Path, pipe, max_frames: int, flow: str) -> list[dict]:
    from vidmatte.training import metrics as M
    from vidmatte.training.eval_data import read_map, read_rgb, read_sequences

    (seq,) = read_sequences(seq_dir)
    if not seq.frames:
        raise InputError(f"{seq_dir}: no frames/ folder")
    keys = [k for k in seq.frame_keys() if k in seq.frames][: max_frames or None]
    frames = [read_rgb(seq.frames[k]) for k in keys]
    gts = [read_map(seq.files[k]) for k in keys]
    outs = run_frames(pipe, seq_dir / "frames", len(keys))
    flows = M.sequence_flows(frames, flow) if len(frames) > 1 else []
    ms = float(np.mean([o[2] for o in outs]) * 1e3)
    rows = []
    for label, preds in (
        ("teacher masks", [o[0] for o in outs]),
        ("teacher + classical matting", [o[1] for o in outs]),
    ):
        binp = [M.to_binary(p) for p in preds]
        row = {
            "data": seq.name,
            "method": label,
            "frames": len(keys),
            "J": float(np.mean([M.mask_j(p, g) for p, g in zip(binp, gts, strict=True)])),
            "F": float(np.mean([M.boundary_f(p, g) for p, g in zip(binp, gts, strict=True)])),
            "ms_per_frame": ms,
        }
        if flows:
            row["TC"] = M.temporal_consistency(binp, flows)
            row["TC_gt"] = M.temporal_consistency([M.to_binary(g) for g in gts], flows)
        rows.append(row)
    return rows


def evaluate_matting(seq_dir: Path, pipe) -> list[dict]:
    from vidmatte.training import metrics as M
    from vidmatte.training.eval_data import read_map, read_sequences

    rows = []
    for seq in read_sequences(seq_dir):
        if seq.kind != "alpha" or not seq.frames:
            continue  # no GT alpha (e.g. the wedding composite): nothing to score
        for k in seq.frame_keys():
            ((_, alpha, sec),) = run_frames(pipe, seq.frames[k], 1)
            tri = read_map(seq.trimaps[k]) if seq.trimaps and k in seq.trimaps else None
            m = M.alpha_metrics(alpha, read_map(seq.files[k]), tri)
            rows.append(
                {
                    "data": seq.name,
                    "method": "teacher + classical matting",
                    "frames": 1,
                    **m,
                    "ms_per_frame": sec * 1e3,
                }
            )
    return rows


def run_baseline(
    data: Path,
    teacher_dir: Path | None,
    max_frames: int = 8,
    flow: str = "dis",
    sequences: list[str] | None = None,
) -> list[dict]:
    from vidmatte.matting.pipeline import Pipeline, PipelineConfig

    pipe = Pipeline(
        PipelineConfig(
            source="teacher",
            teacher_dir=str(teacher_dir) if teacher_dir else None,
            matter="classical",
            device="cpu",
        )
    )
    rows: list[dict] = []
    vos = data / "vos"
    for d in sorted(p for p in vos.iterdir() if p.is_dir()) if vos.is_dir() else []:
        if sequences is None or d.name in sequences:
            rows += evaluate_vos(d, pipe, max_frames, flow)
    matting = data / "matting"
    if matting.is_dir() and (sequences is None or "matting" in sequences):
        rows += evaluate_matting(matting, pipe)
    return rows


def _main(argv: list[str] | None) -> int:
    from vidmatte.models.shared import shared_data, shared_weights
    from vidmatte.training.eval_cli import _clean, write_atomic

    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, help="shared data folder (default: ../shared/data)")
    p.add_argument("--teacher-dir", type=Path, help="teacher weights (default ../shared/weights)")
    p.add_argument("--max-frames", type=int, default=8, help="frames per VOS sequence (0 = all)")
    p.add_argument("--flow", choices=("dis", "dis-fast", "raft"), default="dis")
    p.add_argument("--only", nargs="*", help="sequence names (and/or 'matting')")
    p.add_argument("--json", type=Path)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    data = args.data or shared_data()
    if data is None or not data.is_dir():
        raise UsageError("no data folder: pass --data (../shared/data is not here)")
    rows = run_baseline(
        data, args.teacher_dir or shared_weights(), args.max_frames, args.flow, args.only
    )
    cols = [
        "data",
        "method",
        "frames",
        "J",
        "F",
        "TC",
        "TC_gt",
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
        write_atomic(args.json, json.dumps(_clean({"rows": rows}), indent=2) + "\n", args.overwrite)
    return 0


def main(argv: list[str] | None = None) -> int:
    return guarded_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())

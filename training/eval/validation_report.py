"""The validation report of the instance sources (issue 18): per-frame teacher and students,
each run through the real `Pipeline` (score threshold, person limit, association, trimaps;
matting skipped: it does not change who is found or their trimaps), on the held-out items
of training/configs/validation.toml only, all measured in one run.

Per VOS sequence (GT person masks): J, boundary F and TC (paper Eq. 6, DIS flow between the
GT frames) of the best track (the one with the highest mean J; frames where it is absent
count as empty), missed frames (best-track IoU < 0.1), ID switches against the GT, trimap
IoU of the best track's trimaps against trimaps made from the GT masks by the same band rule
(models/trimap.py), and ms per frame of the instance source (network + post-processing for
a student; the teacher's whole work for the teacher) on the sequence's own frames. The
scoring is `teacher_eval.score_tracks`, the same code as the teacher table (issue 17).

Per multi-person clip (no GT): ID switches against the whole-video teacher's tracks on the
same clip (`reference_tracks`: its ensemble on every 5th frame, its light setting between,
and the video pass over all frames, as `vidmatte-train pseudo-label` labels), a reference
person matched at IoU >= 0.5; and ms per frame at the clip's resolution (maggie: 720p).

Instance images: `teacher_eval.evaluate_instances` (each GT person matched one-to-one at
IoU >= 0.5, merged people) at the images' own resolution; recall = found / people.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

#: the whole-video teacher labels every 5th frame with its ensemble (pseudo-label default)
REFERENCE_EVERY = 5


@dataclass
class TrackRun:
    """What one method did on one clip: per track, per frame index, mask and trimap."""

    masks: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    trimaps: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    detect_ms: list[float] = field(default_factory=list)
    frames: int = 0


class _Recording:
    """Wraps the pipeline's instance source: keeps each frame's Instances and detect time."""

    def __init__(self, source) -> None:
        self.inner = source
        self.calls: list = []

    def detect(self, frames, select=None):
        t0 = time.perf_counter()
        out = self.inner.detect(frames, select=select)
        dt = (time.perf_counter() - t0) * 1e3 / max(1, len(frames))
        self.calls += [(inst, dt) for inst in out]
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _small(mask: np.ndarray, max_side: int) -> np.ndarray:
    h, w = mask.shape
    if not max_side or max(h, w) <= max_side:
        return mask
    s = max_side / max(h, w)
    m = cv2.resize(mask.astype(np.uint8), (round(w * s), round(h * s)), cv2.INTER_NEAREST)
    return m > 0


def run_tracks(pipe, path: Path, store_side: int = 0, keep_trimaps: bool = True) -> TrackRun:
    """Run the pipeline over a video or frame folder without matting; masks (> 0.5 of the
    source's instance masks) and trimaps per confirmed track."""
    from vidmatte.matting.io.video import open_video

    rec = _Recording(pipe.source)
    pipe.source = rec
    out = TrackRun()
    try:
        with open_video(path) as reader:
            for k, result in enumerate(pipe.process(reader, skip_matting=lambda i, ids: True)):
                inst, ms = rec.calls[k]
                out.detect_ms.append(ms)
                t = result.frame.index
                if not result.people:
                    continue
                boxes = inst.boxes.detach().float().cpu().numpy()
                masks = inst.masks.detach().float().cpu().numpy() > 0.5
                for tid, person in result.people.items():
                    j = int(np.abs(boxes - np.asarray(person.box)[None]).sum(1).argmin())
                    out.masks.setdefault(tid, {})[t] = _small(masks[j], store_side)
                    if keep_trimaps:
                        out.trimaps.setdefault(tid, {})[t] = person.trimap
            out.frames = len(rec.calls)
    finally:
        pipe.source = rec.inner
    return out


def _steady(ms: list[float]) -> float:
    """Mean ms per frame without the first frame (lazy initialisation, warm-up)."""
    v = ms[1:] if len(ms) > 2 else ms
    return float(np.mean(v)) if v else float("nan")


def score_vos(run: TrackRun, seq_dir: Path) -> dict:
    """Best-track J/F/TC/missed/ID switches (teacher_eval.score_tracks) + trimap IoU + ms."""
    from vidmatte.models.trimap import masks_to_trimaps, trimap_to_classes
    from vidmatte.training import metrics as M
    from vidmatte.training.eval.teacher_eval import load_sequence, score_tracks

    seq = load_sequence(seq_dir, 0)
    row = score_tracks(run.masks, seq)
    # the same best track as score_tracks: highest mean J over the GT frames
    T = len(seq.gts)
    best, best_j = None, -1.0
    for tid, fr in run.masks.items():
        j = np.mean([M.mask_j(fr.get(t, np.zeros_like(g)), g) for t, g in enumerate(seq.gts)])
        if j > best_j:
            best, best_j = tid, j
    iou = M.TrimapIoU()
    for t in range(T):
        g = seq.gts[t]
        gt_tri = masks_to_trimaps(g[None].astype(np.float32))[0]
        pred = run.trimaps.get(best, {}).get(t) if best is not None else None
        pred = np.zeros_like(gt_tri) if pred is None else pred
        if pred.shape != g.shape:
            pred = cv2.resize(pred, g.shape[::-1], interpolation=cv2.INTER_NEAREST)
        iou.update(trimap_to_classes(pred), trimap_to_classes(gt_tri))
    row["trimap_IoU"] = iou.compute()["mean"]
    row["ms_per_frame"] = _steady(run.detect_ms)
    row["size"] = f"{seq.gt_size[0]}x{seq.gt_size[1]}"
    return row


# ----------------------------------------------------------------------------- references


def reference_tracks(
    clip: Path, teacher_dir: Path, cache: Path | None, max_side: int = 480
) -> dict[int, dict[int, np.ndarray]]:
    """The whole-video teacher's tracks on every frame of `clip` (at `max_side`), cached."""
    from vidmatte.matting.io.video import open_video
    from vidmatte.models.teachers.base import load_ensemble
    from vidmatte.models.teachers.video import VideoPass, frame_record

    path = cache / f"{clip.stem}_reference.npz" if cache else None
    if path is not None and path.is_file():
        z = np.load(path, allow_pickle=False)
        out: dict[int, dict[int, np.ndarray]] = {}
        for k in z.files:
            tid, t = (int(x) for x in k.split("_"))
            out.setdefault(tid, {})[t] = z[k]
        return out
    ensemble = load_ensemble(teacher_dir)
    light = ensemble.light()
    frames, records = [], []
    prev = None
    with open_video(clip) as reader:
        for t, frame in enumerate(reader):
            rgb = frame.rgb
            h, w = rgb.shape[:2]
            if max(h, w) > max_side:
                s = max_side / max(h, w)
                rgb = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            strong = t % REFERENCE_EVERY == 0
            teacher = ensemble if strong else light
            people = teacher.people(rgb)
            masks = teacher.full_masks(people, *rgb.shape[:2])
            records.append(
                frame_record(
                    masks, [p.score for p in people], [p.box for p in people], strong, rgb, prev
                )
            )
            frames.append(rgb)
            prev = rgb
    labels = VideoPass().run(records, frames, list(range(len(frames))))
    out = {}
    for t, labs in labels.items():
        for lab in labs:
            out.setdefault(int(lab.track_id), {})[int(t)] = np.asarray(lab.mask, bool)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        from vidmatte.matting.io.atomic import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f, **{f"{a}_{t}": m for a, fr in out.items() for t, m in fr.items()}
            )
    return out


def id_switches_against(run: TrackRun, ref: dict[int, dict[int, np.ndarray]]) -> dict:
    """CLEAR-MOT ID switches of `run` with the reference tracks as ground truth (a reference
    person matched to the predicted track of highest IoU >= 0.5 in each frame)."""
    from vidmatte.matting.tracking.id_metrics import count_id_switches

    frames = sorted({t for fr in ref.values() for t in fr})
    ids: dict[int, dict[int, int | None]] = {}
    matched = total = 0
    for t in frames:
        ids[t] = {}
        for rid, fr in ref.items():
            if t not in fr:
                continue
            g = fr[t]
            best, best_iou = None, 0.5
            for tid, pf in run.masks.items():
                m = pf.get(t)
                if m is None:
                    continue
                if m.shape != g.shape:
                    m = cv2.resize(m.astype(np.uint8), g.shape[::-1], cv2.INTER_NEAREST) > 0
                u = np.count_nonzero(m | g)
                iou = np.count_nonzero(m & g) / u if u else 0.0
                if iou >= best_iou:
                    best, best_iou = tid, iou
            ids[t][rid] = best
            total += 1
            matched += best is not None
    return {
        "id_switches": count_id_switches(ids),
        "ref_people": len(ref),
        "tracks": len(run.masks),
        "matched": matched / max(1, total),
    }


# ----------------------------------------------------------------------------- the report


def run_validation(
    methods: list,
    teacher_dir: Path,
    cache: Path | None = None,
    only: list[str] | None = None,
    instances: bool = True,
    log=print,
) -> dict[str, list[dict]]:
    """{"vos": rows, "multi_person": rows, "instances": rows} for `methods` (baseline.Method:
    a label and a PipelineConfig), every held-out item of validation.toml."""
    import json

    from vidmatte.matting.pipeline import Pipeline
    from vidmatte.models.shared import find_shared
    from vidmatte.training.data.validation import load_validation
    from vidmatte.training.eval.teacher_eval import evaluate_instances

    val = load_validation()
    shared = find_shared()
    rows: dict[str, list[dict]] = {"vos": [], "multi_person": [], "instances": []}
    refs = {
        c.stem: reference_tracks(c, teacher_dir, cache)
        for c in val.multi_person
        if not only or c.stem in only
    }
    fns = {}
    for m in methods:
        pipe = Pipeline(m.config)
        for seq in val.vos:
            if only and seq.name not in only:
                continue
            r = score_vos(run_tracks(pipe, seq / "frames"), seq)
            r["method"] = m.label
            rows["vos"].append(r)
            log(json.dumps(r))
        for clip in val.multi_person:
            if clip.stem not in refs:
                continue
            run = run_tracks(pipe, clip, store_side=480, keep_trimaps=False)
            r = {"data": clip.stem, "method": m.label, "frames": run.frames,
                 **id_switches_against(run, refs[clip.stem]),
                 "ms_per_frame": _steady(run.detect_ms)}  # fmt: skip
            rows["multi_person"].append(r)
            log(json.dumps(r))

        def detect_masks(rgb, pipe=pipe):
            inst = pipe.source.detect([rgb], select=pipe.select())[0]
            return list(inst.masks.detach().float().cpu().numpy() > 0.5) if len(inst) else []

        fns[m.label] = detect_masks
    if instances and shared is not None:
        for r in evaluate_instances(fns, shared, 0):
            r["recall"] = r["found"] / max(1, r["people"])
            rows["instances"].append(r)
            log(json.dumps(r))
    return rows


def markdown(rows: dict[str, list[dict]]) -> str:
    """The README tables."""

    def table(rs: list[dict], cols: list[str]) -> str:
        out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rs:
            cells = []
            for c in cols:
                v = r.get(c, "")
                cells.append(f"{v:.3f}" if isinstance(v, float) and c not in ("TC", "TC_gt",
                             "ms_per_frame") else f"{v:.1f}" if isinstance(v, float) else str(v))  # fmt: skip
            out.append("| " + " | ".join(cells) + " |")
        return "\n".join(out)

    parts = [table(rows["vos"], ["data", "method", "J", "F", "TC", "TC_gt", "missed",
                                 "id_switches", "trimap_IoU", "ms_per_frame", "size"])]  # fmt: skip
    if rows["multi_person"]:
        parts.append(table(rows["multi_person"], ["data", "method", "frames", "id_switches",
                                                   "ref_people", "tracks", "matched",
                                                   "ms_per_frame"]))  # fmt: skip
    if rows["instances"]:
        parts.append(table(rows["instances"], ["data", "method", "people", "found", "merged",
                                                "predicted", "recall"]))  # fmt: skip
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- targets

#: issue 18's targets against the per-frame teacher measured in the same run
J_MARGIN = 0.03
CROWD_RECALL = 0.8
MS_720P = 60.0


def _is_crowd(name: str) -> bool:
    """The crowd frames of validation.toml's instance images (the VSPW market frames)."""
    return "vspw" in name


def check_targets(
    report: dict[str, list[dict]],
    timing: list[dict],
    student: str,
    teacher: str = "per-frame teacher",
    shipped: str | None = None,
    threads: int = 2,
) -> dict:
    """Which of issue 18's targets `student` meets, from `run_validation`'s report and
    bench/bench_student's 720p rows (network + post-processing at `threads` torch threads).

    {"targets": [{"target", "holds", "detail"}], "beats_shipped": bool | None, "decision":
    "default" (every target holds: ship it ahead of a configured teacher) | "fallback"
    (beats the shipped student: may replace the shipped fallback only) | "none"}.
    "Beats the shipped student": higher mean J and no lower mean TC over the VOS sequences,
    at least as many people found and no more merged on the instance images."""

    def rows(kind: str, method: str) -> dict[str, dict]:
        return {r["data"]: r for r in report.get(kind, []) if r["method"] == method}

    vos_s, vos_t = rows("vos", student), rows("vos", teacher)
    seqs = sorted(set(vos_s) & set(vos_t))
    out = []

    def add(target: str, holds: bool, detail: str) -> None:
        out.append({"target": target, "holds": bool(holds), "detail": detail})

    j_ok = [vos_s[s]["J"] >= vos_t[s]["J"] + J_MARGIN for s in seqs]
    add(
        f"J >= teacher J + {J_MARGIN} on every sequence",
        bool(seqs) and all(j_ok),
        "; ".join(f"{s}: {vos_s[s]['J']:.3f} vs {vos_t[s]['J']:.3f}" for s in seqs),
    )
    tc_ok = [vos_s[s]["TC"] >= vos_t[s]["TC"] for s in seqs]
    add(
        "TC >= teacher TC on every sequence",
        bool(seqs) and all(tc_ok),
        "; ".join(f"{s}: {vos_s[s]['TC']:.1f} vs {vos_t[s]['TC']:.1f}" for s in seqs),
    )
    inst = rows("instances", student)
    merged = sum(int(r["merged"]) for r in inst.values())
    add(
        "no merged people on the instance images",
        bool(inst) and merged == 0,
        "; ".join(f"{n}: {r['merged']} merged" for n, r in sorted(inst.items())),
    )
    crowd = {n: r for n, r in inst.items() if _is_crowd(n)}
    add(
        f"recall >= {CROWD_RECALL} on the crowd frames",
        bool(crowd)
        and all(
            r["found"] / max(1, r["people"]) >= CROWD_RECALL for r in crowd.values()
        ),  # fmt: skip
        "; ".join(f"{n}: {r['found']}/{r['people']}" for n, r in sorted(crowd.items())),
    )
    ms = [r["ms"] for r in timing if r["method"] == student and r["threads"] == threads]
    add(
        f"network + post-processing <= {MS_720P:.0f} ms per frame at 720p ({threads} threads)",
        bool(ms) and ms[0] <= MS_720P,
        f"{ms[0]:.1f} ms" if ms else "not measured",
    )
    beats = None
    if shipped is not None:
        vos_p, inst_p = rows("vos", shipped), rows("instances", shipped)
        both = sorted(set(vos_s) & set(vos_p))
        if both and inst_p:
            mean = lambda d, k: float(np.mean([d[s][k] for s in both]))  # noqa: E731
            beats = (
                mean(vos_s, "J") > mean(vos_p, "J")
                and mean(vos_s, "TC") >= mean(vos_p, "TC")
                and sum(r["found"] for r in inst.values())
                >= sum(r["found"] for r in inst_p.values())
                and merged <= sum(int(r["merged"]) for r in inst_p.values())
            )
    decision = "default" if all(t["holds"] for t in out) else "fallback" if beats else "none"
    return {"student": student, "targets": out, "beats_shipped": beats, "decision": decision}


def markdown_targets(result: dict) -> str:
    """The targets table for the README / the report."""
    lines = [f"Targets for **{result['student']}**:", "", "| target | holds | measured |",
             "|---|---|---|"]  # fmt: skip
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {'yes' if t['holds'] else 'NO'} | {t['detail']} |")
    lines += ["", f"beats the shipped student: {result['beats_shipped']}; decision: "
              f"**{result['decision']}**"]  # fmt: skip
    return "\n".join(lines) + "\n"

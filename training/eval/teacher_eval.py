"""Per-frame teacher against the whole-video teacher, measured in one run (issue 17).

    python -m vidmatte.training.eval.teacher_eval --teacher-dir ../shared/weights \\
        --cache /work/runs/teacher/eval_cache --json teacher_eval.json [--md table.md]

On every per-frame ground-truth sequence (shared/data/vos/*, shared/data/train/vos/*; the
train/vos ones hold every 2nd frame, so the clip the teachers see is that subsampled one):

* J and boundary F of the best track (the track with the highest mean J over all GT
  frames; frames where it is absent count as an empty mask), TC (paper Eq. 6, DIS flow
  between the GT frames) of that track's masks next to the GT masks' own TC, missed-frame
  rate (GT frames where the best track's IoU < 0.1) and ID switches (per GT frame, the
  track matching the GT at IoU >= 0.5; CLEAR-MOT switches).
* Both teachers work as `vidmatte-train pseudo-label` runs them: frames at most `--max-side`
  px (480), the per-frame teacher with the associator over every frame; the whole-video
  teacher with the full ensemble on labelled frames (every `--every`-th, 5) and its light
  setting elsewhere. To score it on *every* GT frame, the video pass runs `--every` times,
  once per labelled-frame offset, on per-frame results computed once (cached in --cache,
  so a rerun only repeats the video pass).
* Seconds per labelled frame, measured with the two teachers' calls interleaved on the same
  frames (`interleaved_timing`, `--timing-frames` per sequence) so the load of a shared CPU
  weighs on both alike: per-frame teacher = one call; whole-video teacher = ensemble + (every
  - 1) × light + every × flow pair + the video pass's time per labelled frame.

On the instance images (shared/data/instances, shared/data/train/instances with instance
ids): people found (a GT person matched one-to-one by a predicted mask at IoU >= 0.5) and
merged people (a predicted mask covering >= 50 % of two GT people). The VSPW market
frames' index masks mix people and "stuff" without a class table: a GT id counts as a
person when it is mostly covered by the union of both teachers' person masks (IoU >= 0.3)
or is person-shaped and small (see `_vspw_people`), which favours neither teacher.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidmatte.matting.io.atomic import atomic_path, atomic_write_text

VOS_SETS = ("data/vos", "data/train/vos")


@dataclass
class SeqData:
    name: str
    frames: list[np.ndarray]  # working resolution
    gts: list[np.ndarray]  # bool at GT resolution
    gt_size: tuple[int, int]  # (w, h)


def _resize_max(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        return cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return rgb


def load_sequence(folder: Path, max_side: int) -> SeqData:
    frames, gts = [], []
    for f in sorted((folder / "frames").glob("*.jpg")):
        m = folder / "masks" / (f.stem + ".png")
        if not m.is_file():
            continue
        rgb = cv2.imread(str(f), cv2.IMREAD_COLOR)[..., ::-1]
        frames.append(np.ascontiguousarray(_resize_max(rgb, max_side)))
        gts.append(cv2.imread(str(m), cv2.IMREAD_GRAYSCALE) > 127)
    h, w = gts[0].shape
    return SeqData(folder.name, frames, gts, (w, h))


def _up(mask: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.zeros((size[1], size[0]), bool)
    m = mask.astype(np.float32)
    return cv2.resize(m, size, interpolation=cv2.INTER_LINEAR) > 0.5


def score_tracks(tracks: dict[int, dict[int, np.ndarray]], seq: SeqData) -> dict:
    """tracks: id -> {frame: mask at working res}. Best-track J/F/TC, misses, ID switches."""
    from vidmatte.matting.tracking.id_metrics import count_id_switches
    from vidmatte.training import metrics as M

    T = len(seq.gts)
    per_track: dict[int, list[np.ndarray]] = {
        tid: [_up(fr.get(t), seq.gt_size) for t in range(T)] for tid, fr in tracks.items()
    }
    ious = {tid: [M.mask_j(p, g) for p, g in zip(ms, seq.gts, strict=True)]
            for tid, ms in per_track.items()}  # fmt: skip
    if ious:
        best = max(ious, key=lambda k: np.mean(ious[k]))
        masks = per_track[best]
        j = ious[best]
    else:
        best, masks, j = None, [np.zeros_like(g) for g in seq.gts], [0.0] * T
    flows = _gt_flows(seq)
    ids = {}
    for t in range(T):
        match = [tid for tid in ious if ious[tid][t] >= 0.5]
        ids[t] = {0: max(match, key=lambda k: ious[k][t]) if match else None}
    return {
        "data": seq.name,
        "frames": T,
        "J": float(np.mean(j)),
        "F": float(np.mean([M.boundary_f(p, g) for p, g in zip(masks, seq.gts, strict=True)])),
        "TC": M.temporal_consistency(masks, flows),
        "TC_gt": M.temporal_consistency(seq.gts, flows),
        "missed": float(np.mean([v < 0.1 for v in j])),
        "id_switches": count_id_switches(ids),
        "tracks": len(tracks),
    }


_FLOWS: dict[str, list[np.ndarray]] = {}


def _gt_flows(seq: SeqData) -> list[np.ndarray]:
    from vidmatte.training.metrics.temporal import sequence_flows

    if seq.name not in _FLOWS:
        full = [cv2.resize(f, seq.gt_size, interpolation=cv2.INTER_LINEAR) for f in seq.frames]
        _FLOWS[seq.name] = sequence_flows(full, "dis")
    return _FLOWS[seq.name]


# ----------------------------------------------------------------------------- teachers


def per_frame_tracks(teacher, seq: SeqData) -> tuple[dict[int, dict[int, np.ndarray]], float]:
    from vidmatte.matting.tracking.association import AssociationConfig, Associator

    assoc = Associator(AssociationConfig())
    tracks: dict[int, dict[int, np.ndarray]] = {}
    pending: list[tuple[int, list, np.ndarray]] = []
    seconds = 0.0
    for t, rgb in enumerate(seq.frames):
        t0 = time.perf_counter()
        inst = teacher(rgb)
        seconds += time.perf_counter() - t0
        a = assoc.update(t, inst)
        masks = (inst.masks > 0.5).numpy() if len(inst) else np.zeros((0, *rgb.shape[:2]), bool)
        pending.append((t, list(a.track_ids), masks))
        by_t = {p[0]: p for p in pending}
        for tid, hits in a.confirmed.items():
            for o, j in hits:
                if o in by_t and j < len(by_t[o][1]):
                    by_t[o][1][j] = tid
    for t, ids, masks in pending:
        for j, tid in enumerate(ids):
            if tid is not None:
                tracks.setdefault(tid, {})[t] = masks[j]
    return tracks, seconds / max(1, len(seq.frames))


def _records(ensemble, seq: SeqData, cache: Path | None, preset: str):
    """Strong and light per-frame records for every frame (cached), plus mean timings."""
    from vidmatte.models.teachers.video import FrameRecord, frame_record

    path = cache / f"{seq.name}.npz" if cache else None
    if path is not None and path.is_file():
        z = np.load(path, allow_pickle=False)
        n = int(z["n"])
        strong = [FrameRecord.from_npz(_sub(z, f"s{t}_")) for t in range(n)]
        lights = [FrameRecord.from_npz(_sub(z, f"l{t}_")) for t in range(n)]
        return strong, lights, {k: float(z[f"time_{k}"]) for k in ("strong", "light", "flow")}
    light = ensemble.light()
    times = {"strong": 0.0, "light": 0.0, "flow": 0.0}
    strong, lights = [], []
    prev = None
    for rgb in seq.frames:
        h, w = rgb.shape[:2]
        recs = []
        for name, t in (("strong", ensemble), ("light", light)):
            t0 = time.perf_counter()
            people = t.people(rgb)
            masks = t.full_masks(people, h, w)
            times[name] += time.perf_counter() - t0
            recs.append((masks, [p.score for p in people], [p.box for p in people]))
        t0 = time.perf_counter()
        s = frame_record(*recs[0], True, rgb, prev, preset)
        times["flow"] += time.perf_counter() - t0
        l_rec = frame_record(*recs[1], False, rgb, None, preset)
        l_rec.flow_to_prev, l_rec.flow_from_prev = s.flow_to_prev, s.flow_from_prev
        strong.append(s)
        lights.append(l_rec)
        prev = rgb
    n = len(seq.frames)
    times = {k: v / n for k, v in times.items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        d = {"n": np.array(n)}
        for t in range(n):
            d.update({f"s{t}_{k}": v for k, v in strong[t].to_npz().items()})
            d.update({f"l{t}_{k}": v for k, v in lights[t].to_npz().items()})
        d.update({f"time_{k}": np.array(v) for k, v in times.items()})
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **d)
    return strong, lights, times


def _sub(z, prefix: str) -> dict:
    return {k[len(prefix) :]: z[k] for k in z.files if k.startswith(prefix)}


def whole_video_tracks(
    strong, lights, seq: SeqData, every: int, config=None
) -> tuple[dict[int, dict[int, np.ndarray]], float]:
    """Video pass once per labelled-frame offset; each offset's tracks are mapped onto
    offset 0's by mask IoU over all frames (both passes output every frame for that), and
    each offset contributes its labelled frames only."""
    from vidmatte.models.teachers.video import VideoPass

    vp = VideoPass(config)
    T = len(seq.frames)
    everything = list(range(T))
    tracks: dict[int, dict[int, np.ndarray]] = {}
    base: dict[int, dict[int, np.ndarray]] = {}
    next_id = 1
    seconds = 0.0
    for o in range(min(every, T)):
        recs = [strong[t] if (t - o) % every == 0 else lights[t] for t in range(T)]
        if o == 0:  # timed as pseudo-label runs it: votes on the labelled frames only
            t0 = time.perf_counter()
            vp.run(recs, seq.frames, list(range(0, T, every)))
            seconds = time.perf_counter() - t0
        out = vp.run(recs, seq.frames, everything)
        mine: dict[int, dict[int, np.ndarray]] = {}
        for t, labels in out.items():
            for lab in labels:
                mine.setdefault(lab.track_id, {})[t] = lab.mask
        if o == 0:
            base = mine
            mapping = {k: k for k in mine}
            next_id = max(mine, default=0) + 1
        else:
            mapping = {}
            for k, fr in mine.items():
                best, best_iou = None, 0.3
                for bk, bfr in base.items():
                    common = [t for t in fr if t in bfr]
                    if not common:
                        continue
                    v = float(np.mean([_mask_iou(fr[t], bfr[t]) for t in common]))
                    if v > best_iou:
                        best, best_iou = bk, v
                if best is None:
                    best, next_id = next_id, next_id + 1
                mapping[k] = best
        for k, fr in mine.items():
            for t, m in fr.items():
                if (t - o) % every == 0:
                    tracks.setdefault(mapping[k], {})[t] = m
    return tracks, seconds / max(1, len(range(0, T, every)))


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / u if u else 0.0


def interleaved_timing(per_frame, ensemble, frames: list[np.ndarray], every: int) -> dict:
    """Seconds per labelled frame of both teachers, measured on the same frames with the
    calls interleaved, so a shared CPU's load weighs on both alike.

    per-frame teacher: one call per labelled frame. Whole-video teacher: one ensemble call
    + (every - 1) light calls + `every` flow pairs (two directions) per labelled frame; the
    video pass is timed by the caller (it needs whole clips)."""
    from vidmatte.models.teachers.video import frame_record

    light = ensemble.light()
    acc = {"per_frame": 0.0, "strong": 0.0, "light": 0.0, "flow": 0.0}
    prev = None
    for rgb in frames:
        t0 = time.perf_counter()
        per_frame(rgb)
        t1 = time.perf_counter()
        ensemble.full_masks(ensemble.people(rgb), *rgb.shape[:2])
        t2 = time.perf_counter()
        light.full_masks(light.people(rgb), *rgb.shape[:2])
        t3 = time.perf_counter()
        if prev is not None and prev.shape == rgb.shape:
            frame_record(np.zeros((0, *rgb.shape[:2])), [], [], False, rgb, prev)
        t4 = time.perf_counter()
        acc["per_frame"] += t1 - t0
        acc["strong"] += t2 - t1
        acc["light"] += t3 - t2
        acc["flow"] += t4 - t3
        prev = rgb
    n = max(1, len(frames))
    m = {k: v / n for k, v in acc.items()}
    m["whole_video"] = m["strong"] + (every - 1) * m["light"] + every * m["flow"]
    return m


# ----------------------------------------------------------------------------- instances


def _instance_items(shared: Path) -> list[tuple[str, np.ndarray, list[np.ndarray], bool]]:
    """(name, rgb, GT person masks, needs_person_filter) for every instance image with ids."""
    items = []
    coco = shared / "data/instances/coco_person_sample"
    ann = json.loads((coco / "annotations_coco.json").read_text())
    for img in ann["images"]:
        rgb = cv2.imread(str(coco / "images" / img["file_name"]))[..., ::-1].copy()
        h, w = rgb.shape[:2]
        masks = []
        for a in ann["annotations"]:
            if a["image_id"] != img["id"] or a.get("iscrowd"):
                continue
            m = np.zeros((h, w), np.uint8)
            for poly in a["segmentation"]:
                pts = np.asarray(poly, np.float32).reshape(-1, 2).round().astype(np.int32)
                cv2.fillPoly(m, [pts], 1)
            masks.append(m > 0)
        items.append((f"coco/{img['file_name']}", rgb, masks, False))
    for d in sorted((shared / "data/instances").glob("davis17_*")):
        rgb = cv2.imread(str(d / "image.jpg"))[..., ::-1].copy()
        idx = np.array(__import__("PIL.Image", fromlist=["Image"]).open(d / "mask.png"))
        masks = [idx == k for k in np.unique(idx) if k != 0]
        items.append((d.name, rgb, masks, False))
    for d in sorted((shared / "data/train/instances").glob("aot_vspw_*")):
        img = next((d / "image").glob("*.jpg"))
        rgb = cv2.imread(str(img))[..., ::-1].copy()
        idx = np.array(
            __import__("PIL.Image", fromlist=["Image"]).open(next((d / "mask").glob("*.png")))
        )
        masks = [idx == k for k in np.unique(idx) if k != 0]
        items.append((d.name, rgb, masks, True))
    return items


def _match(pred: list[np.ndarray], gts: list[np.ndarray]) -> tuple[int, int]:
    """(GT people matched one-to-one at IoU >= 0.5, merged people)."""
    from scipy.optimize import linear_sum_assignment

    if not pred or not gts:
        return 0, 0
    iou = np.zeros((len(gts), len(pred)))
    cover = np.zeros((len(gts), len(pred)))
    for i, g in enumerate(gts):
        ga = max(1, np.count_nonzero(g))
        for j, p in enumerate(pred):
            inter = np.count_nonzero(g & p)
            iou[i, j] = inter / max(1, np.count_nonzero(g | p))
            cover[i, j] = inter / ga
    r, c = linear_sum_assignment(-iou)
    found = int(sum(iou[a, b] >= 0.5 for a, b in zip(r, c, strict=True)))
    merged = int(sum((cover[:, j] >= 0.5).sum() >= 2 for j in range(len(pred))))
    return found, merged


def evaluate_instances(teachers: dict, shared: Path, max_side: int) -> list[dict]:
    rows = []
    items = _instance_items(shared)
    preds_all = {}
    for name, rgb, _gts, _f in items:
        small = _resize_max(rgb, max_side)
        h, w = rgb.shape[:2]
        preds_all[name] = {}
        for label, fn in teachers.items():
            masks = fn(small)
            preds_all[name][label] = [
                cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
                for m in masks
            ]
    for name, _rgb, gts, person_filter in items:
        if person_filter:
            union = np.zeros_like(gts[0])
            for lab in preds_all[name].values():
                for m in lab:
                    union |= m
            gts = _vspw_people(gts, union)
        for label, pred in preds_all[name].items():
            found, merged = _match(pred, gts)
            rows.append({"data": name, "method": label, "people": len(gts), "found": found,
                         "merged": merged, "predicted": len(pred)})  # fmt: skip
    return rows


def _vspw_people(gts: list[np.ndarray], union: np.ndarray) -> list[np.ndarray]:
    """GT ids of a people+stuff index mask that are people: mostly inside some teacher's
    person mask (>= 50 % of the region) and not huge (< 10 % of the image)."""
    out = []
    total = gts[0].size
    for g in gts:
        a = np.count_nonzero(g)
        if a < 200 or a > 0.1 * total:
            continue
        if np.count_nonzero(g & union) / a >= 0.5:
            out.append(g)
    return out


# ----------------------------------------------------------------------------- main


def _fmt_table(rows: list[dict], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    from vidmatte.models.shared import find_shared
    from vidmatte.models.teachers.base import load_ensemble, load_teacher

    p = argparse.ArgumentParser(prog="teacher_eval", description=__doc__.split("\n")[0])
    p.add_argument("--teacher-dir", default=None)
    p.add_argument("--cache", type=Path, default=None, help="per-frame results cache folder")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--md", type=Path, default=None)
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--max-side", type=int, default=480)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", nargs="*", default=None, help="sequence names to run")
    p.add_argument("--no-instances", action="store_true")
    p.add_argument("--timing-frames", type=int, default=4, metavar="N",
                   help="frames per sequence for the interleaved speed measurement")  # fmt: skip
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    shared = find_shared()
    if shared is None:
        print("teacher_eval: ../shared not found", file=sys.stderr)
        return 5
    tdir = args.teacher_dir or shared / "weights"
    per_frame = load_teacher(tdir, threads=args.threads)
    ensemble = load_ensemble(tdir, threads=args.threads)
    rows = []
    timing_frames: list[np.ndarray] = []
    vp_seconds: list[float] = []
    for base in VOS_SETS:
        for folder in sorted((shared / base).iterdir()):
            if args.only and folder.name not in args.only:
                continue
            seq = load_sequence(folder, args.max_side)
            pf_tracks, _ = per_frame_tracks(per_frame, seq)
            r = score_tracks(pf_tracks, seq)
            r.update(method="per-frame teacher")
            rows.append(r)
            print(json.dumps(r), flush=True)
            strong, lights, _ = _records(ensemble, seq, args.cache, "fast")
            wv_tracks, vp_s = whole_video_tracks(strong, lights, seq, args.every)
            vp_seconds.append(vp_s)
            r = score_tracks(wv_tracks, seq)
            r.update(method="whole-video teacher")
            rows.append(r)
            print(json.dumps(r), flush=True)
            k = len(seq.frames) // 2
            timing_frames.extend(seq.frames[k : k + args.timing_frames])
    timing = {}
    if timing_frames:
        timing = interleaved_timing(per_frame, ensemble, timing_frames, args.every)
        timing["video_pass"] = float(np.mean(vp_seconds))
        timing["whole_video"] += timing["video_pass"]
        timing["frames"] = len(timing_frames)
        print(json.dumps({"timing": timing}), flush=True)
    inst_rows = []
    if not args.no_instances:

        def pf_fn(rgb):
            inst = per_frame(rgb)
            return list((inst.masks > 0.5).numpy()) if len(inst) else []

        def wv_fn(rgb):
            people = ensemble.people(rgb)
            m = ensemble.full_masks(people, *rgb.shape[:2])
            return [x > 0.5 for x in m if (x > 0.5).any()]

        inst_rows = evaluate_instances(
            {"per-frame teacher": pf_fn, "whole-video teacher (ensemble)": wv_fn},
            shared, args.max_side,
        )  # fmt: skip
        for r in inst_rows:
            print(json.dumps(r), flush=True)
    result = {
        "vos": rows,
        "instances": inst_rows,
        "timing_s_per_labelled": timing,
        "every": args.every,
        "max_side": args.max_side,
    }
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    md = _fmt_table(rows, ["data", "method", "frames", "J", "F", "TC", "TC_gt", "missed",
                           "id_switches"])  # fmt: skip
    if timing:
        t = timing
        md += (
            f"\n\nseconds per labelled frame (interleaved, {t['frames']} frames): "
            f"per-frame {t['per_frame']:.3f}, whole-video {t['whole_video']:.3f} (ensemble "
            f"{t['strong']:.3f}, light {t['light']:.3f}, flow pair {t['flow']:.3f}, "
            f"video pass {t['video_pass']:.3f})"
        )
    if inst_rows:
        md += "\n\n" + _fmt_table(inst_rows, ["data", "method", "people", "found", "merged"])
    if args.md:
        atomic_write_text(args.md, md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

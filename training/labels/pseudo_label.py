"""`vidmatte-train pseudo-label`: label unlabelled videos with the teacher (paper V-B).

Every k-th frame (`--every`, starting at k//2) is a labelled frame: the teacher finds the
people in it, gives them track IDs, and each person's mask becomes a pseudo trimap
(models/trimap.py). Frames within `--window` of a labelled frame are kept too, unlabelled,
for the temporal loss's random (frame_f, t, frame_b) triplets. Held-out validation items
(training/configs/validation.toml) are skipped, with a message.

Two teachers:

- **whole-video** (default, `WholeVideoLabeller`, models/teachers/video.py): the ensemble
  teacher on the labelled frames and its light setting on *every* other frame, DIS flow
  between all neighbouring frames (stage 1, cached per frame in DATASET/cache/<video>/, so
  an interrupted video resumes frame by frame); then one pass over the clip (stage 2):
  association over all frames, flow-warped gap filling from both sides, voting along the
  flow; pixels the members disagree on get the ignore level in the trimap
  (models/trimap.IGNORE_LEVEL). Stage 2 rewrites the video's labels each time it runs and
  the cache is deleted when the video is complete.
- **per-frame** (`--per-frame`, `VideoLabeller`): today's teacher on the labelled frames
  only (`--detector`, `--tta`); decisions below.

`--workers N` labels N videos at once in separate processes (threads split between them).

Decisions worth knowing (per-frame teacher):

- Association runs on the labelled frames only, with the labelled-frame ordinal as the
  frame index (so `max_age`/`confirm_hits` count labelled frames, not source frames). A
  labelled frame is written once its instances can no longer be confirmed later
  (confirm_hits - 1 labelled frames later); persons still tentative then are dropped as
  likely false positives.
- Resume: progress lives in DATASET/parts/<video>.json (see training/data/teacher_dataset.py),
  saved every few seconds, at the end of each video and on Ctrl-C. A rerun with the same
  settings skips finished videos; in an unfinished one it decodes from the start, replays
  the stored labels of finished labelled frames into a fresh associator (so new frames keep
  the same track IDs) and runs the teacher only on frames not yet labelled. Different
  settings on an existing dataset are refused unless --overwrite (which starts the named
  videos over).
- `--max-frames N` stops each video after N source frames; it stays resumable (use it for
  a quick look, then rerun without it to finish).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidmatte.models.errors import Cancelled, InputError, NoPersonError, OutputError, UsageError
from vidmatte.models.trimap import IGNORE_LEVEL

VIDEO_EXTS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts"})
SAVE_INTERVAL_S = 5.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="VIDEO_OR_DIR",
                   help="video files, folders of videos, or folders of frames")  # fmt: skip
    p.add_argument("--out", required=True, metavar="DATASET", help="dataset folder")
    t = p.add_argument_group("teacher")
    t.add_argument("--teacher-dir", help="teacher files folder (default: $VIDMATTE_TEACHER_DIR)")
    t.add_argument("--per-frame", action="store_true",
                   help="the per-frame teacher (labelled frames only) instead of the whole-video one")  # fmt: skip
    t.add_argument("--detector", default="yolox", choices=("yolox", "d2go", "yolox+d2go", "solov2"),
                   help="--per-frame: person detector, or the SOLOv2 checkpoint")  # fmt: skip
    t.add_argument("--tta", action="store_true", help="--per-frame: flip × 2 scales TTA")
    t.add_argument("--no-d2go", action="store_true",
                   help="whole-video: leave D2Go out of the ensemble (faster, less recall)")  # fmt: skip
    t.add_argument("--score-threshold", type=float, default=0.5, metavar="S")
    t.add_argument("--threads", type=int, default=0, help="CPU threads per worker")
    t.add_argument("--workers", type=int, default=1, metavar="N",
                   help="label N videos at once in separate processes")  # fmt: skip
    s = p.add_argument_group("sampling")
    s.add_argument("--every", type=int, default=10, metavar="K", help="label every K-th frame")
    s.add_argument("--window", type=int, default=2, metavar="W",
                   help="keep W unlabelled neighbours on each side of a labelled frame")  # fmt: skip
    s.add_argument("--max-side", type=int, default=0, metavar="PX",
                   help="downscale frames so the long side is at most PX (0: keep)")  # fmt: skip
    s.add_argument("--max-frames", type=int, default=0, metavar="N",
                   help="stop each video after N frames (resumable)")  # fmt: skip
    o = p.add_argument_group("output")
    o.add_argument("--preview", action="store_true", help="write DATASET/preview.png")
    o.add_argument("--overwrite", action="store_true", help="start the given videos over")
    o.add_argument("--quiet", action="store_true", help="no progress bar")


# ---------------------------------------------------------------------------------------
# inputs


@dataclass
class Source:
    name: str
    path: Path


def collect_sources(inputs: list[str]) -> list[Source]:
    """Videos and frame folders named on the command line -> unique dataset names."""
    from vidmatte.matting.io.video import IMAGE_EXTS

    paths: list[Path] = []
    for raw in inputs:
        p = Path(raw).expanduser()
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        if p.is_dir():
            vids = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTS)
            if vids:
                paths.extend(vids)
            elif any(f.suffix.lower() in IMAGE_EXTS for f in p.iterdir()):
                paths.append(p)
            else:
                raise InputError(f"{p}: folder holds no videos and no images")
        else:
            paths.append(p)
    sources: list[Source] = []
    used: set[str] = set()
    for p in paths:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", p.stem if p.is_file() else p.name) or "video"
        name, k = base, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        sources.append(Source(name, p.resolve()))
    return sources


def frame_role(index: int, every: int, window: int) -> str | None:
    """'labelled', 'neighbour' or None for a source frame index (labels at k//2 + n·k)."""
    off = (index - every // 2) % every
    if off == 0:
        return "labelled"
    if off <= window or every - off <= window:
        return "neighbour"
    return None


# ---------------------------------------------------------------------------------------
# one video


@dataclass
class _Pending:
    index: int
    ordinal: int
    masks: np.ndarray  # (N, H, W) bool
    scores: list[float]
    boxes: list[list[float]]
    assoc_ids: list[int | None]


@dataclass
class _Context:
    root: Path
    teacher: object
    settings: dict
    max_frames: int
    progress: object
    done: int = 0
    stats: dict = field(default_factory=lambda: {"labelled": 0, "instances": 0})
    #: whole-video teacher: the ensemble's light setting and the video pass's settings
    light: object = None
    video_config: object = None

    def frame_limit(self, frame_count: int) -> int:
        """Frames of a clip this run labels (`--max-frames`, 0 = all)."""
        return min(frame_count, self.max_frames) if self.max_frames else frame_count

    def advance(self, name: str, frames: int = 1) -> None:
        """Count `frames` of clip `name` as done and report progress."""
        self.done += frames
        self.progress(self.done, name)


class VideoLabeller:
    """Labels one video into the dataset; resumable from its part file."""

    def __init__(self, src: Source, ctx: _Context, overwrite: bool) -> None:
        from vidmatte.matting.tracking.association import AssociationConfig, Associator
        from vidmatte.training.data import teacher_dataset as td

        self.src, self.ctx, self.td = src, ctx, td
        self.every = int(ctx.settings["every"])
        self.window = int(ctx.settings["window"])
        self.max_side = int(ctx.settings["max_side"])
        self.assoc_cfg = AssociationConfig()
        self.assoc = Associator(self.assoc_cfg)
        self.part_path = td.part_file(ctx.root, src.name)
        part = None if overwrite else td.read_json(self.part_path)
        if overwrite:
            self._clear()
        self.part = part
        self.entries: dict[int, dict] = {}
        if part:
            self.entries = {int(f["index"]): f for f in part.get("frames", []) if self._intact(f)}
        self.idmap: dict[int, int] = {}
        stored = [i["track_id"] for f in self.entries.values() for i in f.get("instances", [])]
        self.next_id = max(stored, default=0) + 1
        self.pending: deque[_Pending] = deque()
        self.ordinal = 0
        self._last_save = time.perf_counter()
        self.meta: dict = {}
        self._replayed: dict[int, list[int]] = {}  # ordinal -> stored ids (resume)

    def _intact(self, entry: dict) -> bool:
        """A stored frame counts as done only if all its files are there."""
        root = self.ctx.root
        files = [entry["file"]] + [
            i[k] for i in entry.get("instances", []) for k in ("mask", "trimap")
        ]
        return all((root / f).is_file() for f in files)

    def _clear(self) -> None:
        import shutil

        for sub in ("frames", "masks", "trimaps"):
            d = self.ctx.root / sub / self.src.name
            if d.is_dir():
                shutil.rmtree(d)
        self.part_path.unlink(missing_ok=True)

    @property
    def complete(self) -> bool:
        return bool(self.part and self.part.get("complete"))

    def _resize(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        h, w = rgb.shape[:2]
        if self.max_side and max(h, w) > self.max_side:
            s = self.max_side / max(h, w)
            size = (max(1, round(w * s)), max(1, round(h * s)))
            return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        return rgb

    def save(self, complete: bool = False) -> None:
        entry = {
            "name": self.src.name,
            "source": str(self.src.path),
            **self.meta,
            "complete": complete,
            "frames": [self.entries[i] for i in sorted(self.entries)],
        }
        self.td.write_json(self.part_path, entry)
        self.part = entry
        self._last_save = time.perf_counter()

    def run(self) -> None:
        from vidmatte.matting.io.video import open_video

        ctx = self.ctx
        with open_video(self.src.path) as reader:
            info = reader.info
            limit = ctx.frame_limit(info.frame_count)
            if self.complete:
                ctx.advance(self.src.name, limit)
                return
            stopped = False
            try:
                for frame in reader:
                    if ctx.max_frames and frame.index >= ctx.max_frames:
                        stopped = True
                        break
                    self._frame(frame.index, frame.rgb, info.fps)
                    ctx.advance(self.src.name)
                    if time.perf_counter() - self._last_save > SAVE_INTERVAL_S:
                        self.save()
            except BaseException:
                self.save()  # keep what is final; rerun resumes
                raise
            if not stopped:
                while self.pending:
                    self._finalize(self.pending.popleft())
            self.save(complete=not stopped)

    def _frame(self, index: int, rgb: np.ndarray, fps: float) -> None:
        role = frame_role(index, self.every, self.window)
        if role is None:
            return
        rgb = self._resize(rgb)
        if not self.meta:
            self.meta = {"fps": float(fps), "width": int(rgb.shape[1]), "height": int(rgb.shape[0])}
        td, root, name = self.td, self.ctx.root, self.src.name
        rel = td.frame_file(name, index)
        entry = self.entries.get(index)
        if role == "labelled" and entry is not None and entry.get("labelled"):
            if not (root / rel).is_file():
                td.write_image(root / rel, rgb, rgb=True)
            self._after_update(self._replay(entry, rgb.shape[:2]))
            return
        if entry is None or not (root / rel).is_file():
            td.write_image(root / rel, rgb, rgb=True)
        if role == "neighbour":
            self.entries.setdefault(
                index, {"index": index, "file": rel, "labelled": False, "instances": []}
            )
            return
        inst = self.ctx.teacher(rgb)
        a = self.assoc.update(self.ordinal, inst)
        rec = _Pending(
            index=index,
            ordinal=self.ordinal,
            masks=(inst.masks > 0.5).numpy() if len(inst) else np.zeros((0, *rgb.shape[:2]), bool),
            scores=[float(s) for s in inst.scores],
            boxes=[[round(float(v), 1) for v in b] for b in inst.boxes],
            assoc_ids=list(a.track_ids),
        )
        self.pending.append(rec)
        self._after_update(a)

    def _after_update(self, a) -> None:
        """Backfill newly confirmed tracks, then write labelled frames that are final."""
        self._backfill(a)
        self.ordinal += 1
        lag = self.assoc_cfg.confirm_hits - 1
        while self.pending and self.pending[0].ordinal < self.ordinal - lag:
            self._finalize(self.pending.popleft())

    def _backfill(self, a) -> None:
        """Tracks confirmed now name their earlier tentative hits: pending frames get the
        track, and a replayed (stored) frame's ID becomes the track's dataset ID."""
        by_ord = {p.ordinal: p for p in self.pending}
        for tid, hits in a.confirmed.items():
            for o, j in hits:
                if o in by_ord and j < len(by_ord[o].assoc_ids):
                    by_ord[o].assoc_ids[j] = tid
                elif j < len(self._replayed.get(o, ())):
                    self._map(tid, self._replayed[o][j])

    def _replay(self, entry: dict, hw: tuple[int, int]):
        """Feed a finished labelled frame's stored labels to the associator (resume)."""
        import torch

        from vidmatte.models.instances import Instances, boxes_and_centres

        insts = entry.get("instances", [])
        masks = []
        for i in insts:
            m = self.td.read_mask(self.ctx.root / i["mask"])
            masks.append(m if m is not None and m.shape == hw else np.zeros(hw, bool))
        if insts:
            mt = torch.from_numpy(np.stack(masks).astype(np.float32))
            _, centres = boxes_and_centres(mt)
            inst = Instances(
                scores=torch.tensor([float(i["score"]) for i in insts]),
                labels=torch.zeros(len(insts), dtype=torch.long),
                masks=mt,
                boxes=torch.tensor([i["box"] for i in insts], dtype=torch.float32),
                centres=centres,
            )
        else:
            inst = Instances.empty(*hw)
        a = self.assoc.update(self.ordinal, inst)
        ids = [int(i["track_id"]) for i in insts]
        self._replayed[self.ordinal] = ids
        for j, t in enumerate(a.track_ids):
            if t is not None:
                self._map(t, ids[j])
        return a

    def _map(self, assoc_id: int, dataset_id: int) -> None:
        for k in [k for k, v in self.idmap.items() if v == dataset_id and k != assoc_id]:
            del self.idmap[k]
        self.idmap[assoc_id] = dataset_id

    def _finalize(self, rec: _Pending) -> None:
        from vidmatte.models.trimap import masks_to_trimaps

        td, root, name = self.td, self.ctx.root, self.src.name
        keep = [j for j, t in enumerate(rec.assoc_ids) if t is not None]
        keep = [j for j in keep if rec.masks[j].any()]
        ids: list[int] = []
        for j in keep:
            t = rec.assoc_ids[j]
            if t not in self.idmap:
                self.idmap[t] = self.next_id
                self.next_id += 1
            ids.append(self.idmap[t])
        # distinct ids within one frame even if a resumed mapping collided
        seen: set[int] = set()
        for n, tid in enumerate(ids):
            if tid in seen:
                ids[n] = self.next_id
                self.next_id += 1
            seen.add(ids[n])
        masks = rec.masks[keep]
        trimaps = masks_to_trimaps(masks) if keep else masks.astype(np.uint8)
        instances = []
        for n, j in enumerate(keep):
            mrel, trel = (
                td.mask_file(name, rec.index, ids[n]),
                td.trimap_file(name, rec.index, ids[n]),
            )
            td.write_image(root / mrel, masks[n].astype(np.uint8) * 255)
            td.write_image(root / trel, trimaps[n])
            instances.append(
                {
                    "track_id": ids[n],
                    "score": round(rec.scores[j], 4),
                    "box": rec.boxes[j],
                    "mask": mrel,
                    "trimap": trel,
                }  # fmt: skip
            )
        self.entries[rec.index] = {
            "index": rec.index,
            "file": td.frame_file(name, rec.index),
            "labelled": True,
            "instances": instances,
        }
        self.ctx.stats["labelled"] += 1
        self.ctx.stats["instances"] += len(instances)


class WholeVideoLabeller:
    """Labels one video with the whole-video teacher (module docstring); resumable.

    Stage 1 writes one cache file per source frame (DATASET/cache/<video>/NNNNNN.npz: the
    frame's people and its flows to the previous frame); a rerun skips frames whose file is
    there. Stage 2 needs every frame's record, runs in memory (about 1.5 MB per frame at
    480 px) and rewrites the video's labelled frames; then the cache is removed.
    """

    def __init__(self, src: Source, ctx: _Context, overwrite: bool) -> None:
        from vidmatte.training.data import teacher_dataset as td

        self.src, self.ctx, self.td = src, ctx, td
        self.every = int(ctx.settings["every"])
        self.window = int(ctx.settings["window"])
        self.max_side = int(ctx.settings["max_side"])
        self.part_path = td.part_file(ctx.root, src.name)
        self.cache = ctx.root / "cache" / src.name
        if overwrite:
            self._clear()
        self.part = td.read_json(self.part_path)
        self.meta: dict = {}
        self.seconds = float(self.part.get("seconds", 0.0)) if self.part else 0.0
        self._last_save = time.perf_counter()

    def _clear(self) -> None:
        import shutil

        for sub in ("frames", "masks", "trimaps", "cache"):
            d = self.ctx.root / sub / self.src.name
            if d.is_dir():
                shutil.rmtree(d)
        self.part_path.unlink(missing_ok=True)

    @property
    def complete(self) -> bool:
        return bool(self.part and self.part.get("complete"))

    _resize = VideoLabeller._resize

    def save(self, entries: dict[int, dict], complete: bool = False, **extra) -> None:
        entry = {
            "name": self.src.name,
            "source": str(self.src.path),
            **self.meta,
            "complete": complete,
            "seconds": round(self.seconds, 2),
            **extra,
            "frames": [entries[i] for i in sorted(entries)],
        }
        self.td.write_json(self.part_path, entry)
        self.part = entry
        self._last_save = time.perf_counter()

    def _cache_file(self, index: int) -> Path:
        return self.cache / f"{index:06d}.npz"

    def run(self) -> None:
        from vidmatte.matting.io.video import open_video

        ctx = self.ctx
        with open_video(self.src.path) as reader:
            info = reader.info
            limit = ctx.frame_limit(info.frame_count)
            if self.complete:
                ctx.advance(self.src.name, limit)
                return
            frames: list[np.ndarray] = []
            entries = {
                int(f["index"]): f for f in (self.part or {}).get("frames", []) if not f["labelled"]
            }
            stopped = False
            prev = None
            try:
                for frame in reader:
                    if ctx.max_frames and frame.index >= ctx.max_frames:
                        stopped = True
                        break
                    if frame.index != len(frames):
                        raise InputError(f"{self.src.path}: frame {frame.index} out of order")
                    rgb = self._resize(frame.rgb)
                    if not self.meta:
                        self.meta = {
                            "fps": float(info.fps),
                            "width": int(rgb.shape[1]),
                            "height": int(rgb.shape[0]),
                        }
                    self._stage1(frame.index, rgb, prev, entries)
                    frames.append(rgb)
                    prev = rgb
                    ctx.advance(self.src.name)
                    if time.perf_counter() - self._last_save > SAVE_INTERVAL_S:
                        self.save(entries)
            except BaseException:
                self.save(entries)  # stage-1 cache and frames are kept; rerun resumes
                raise
            self._stage2(frames, entries, complete=not stopped)

    def _stage1(self, index: int, rgb: np.ndarray, prev, entries: dict[int, dict]) -> None:
        from vidmatte.models.teachers.video import frame_record

        td, root, name = self.td, self.ctx.root, self.src.name
        role = frame_role(index, self.every, self.window)
        if role is not None:
            rel = td.frame_file(name, index)
            if not (root / rel).is_file():
                td.write_image(root / rel, rgb, rgb=True)
            if role == "neighbour":
                entries.setdefault(
                    index, {"index": index, "file": rel, "labelled": False, "instances": []}
                )
        path = self._cache_file(index)
        if path.is_file():
            return
        t0 = time.perf_counter()
        strong = role == "labelled"
        teacher = self.ctx.teacher if strong else self.ctx.light
        people = teacher.people(rgb)
        masks = teacher.full_masks(people, *rgb.shape[:2])
        rec = frame_record(
            masks, [p.score for p in people], [p.box for p in people], strong, rgb, prev,
            self.ctx.video_config.flow_preset, self.ctx.video_config.flow_scale,
        )  # fmt: skip
        td.write_npz(path, rec.to_npz())
        self.seconds += time.perf_counter() - t0

    def _stage2(self, frames: list[np.ndarray], entries: dict[int, dict], complete: bool) -> None:
        import shutil

        from vidmatte.models.teachers.video import FrameRecord, VideoPass
        from vidmatte.models.trimap import masks_to_trimaps, with_ignore

        td, root, name = self.td, self.ctx.root, self.src.name
        t0 = time.perf_counter()
        records = []
        for i in range(len(frames)):
            z = td.read_npz(self._cache_file(i))
            if z is None:
                raise OutputError(f"{self._cache_file(i)} is missing: rerun to recompute it")
            records.append(FrameRecord.from_npz(z))
        labelled = [
            i for i in range(len(frames)) if frame_role(i, self.every, self.window) == "labelled"
        ]
        out = VideoPass(self.ctx.video_config).run(records, frames, labelled)
        for sub in ("masks", "trimaps"):  # stage 2 rewrites every label of the video
            d = root / sub / name
            if d.is_dir():
                shutil.rmtree(d)
        stats = {"filled": 0, "uncertain_px": 0}
        for i in labelled:
            labels = out[i]
            instances = []
            if labels:
                masks = np.stack([lab.mask for lab in labels])
                trimaps = masks_to_trimaps(masks)
                for lab, tri in zip(labels, trimaps, strict=True):
                    tri = with_ignore(tri, lab.uncertain)
                    mrel = td.mask_file(name, i, lab.track_id)
                    trel = td.trimap_file(name, i, lab.track_id)
                    td.write_image(root / mrel, lab.mask.astype(np.uint8) * 255)
                    td.write_image(root / trel, tri)
                    n_unc = int(np.count_nonzero(tri == IGNORE_LEVEL))
                    stats["filled"] += int(not lab.detected)
                    stats["uncertain_px"] += n_unc
                    instances.append(
                        {
                            "track_id": lab.track_id,
                            "score": round(lab.score, 4),
                            "box": [round(v, 1) for v in lab.box],
                            "mask": mrel,
                            "trimap": trel,
                            "detected": lab.detected,
                            "ignored_px": n_unc,
                        }  # fmt: skip
                    )
            entries[i] = {
                "index": i,
                "file": td.frame_file(name, i),
                "labelled": True,
                "instances": instances,
            }
            self.ctx.stats["labelled"] += 1
            self.ctx.stats["instances"] += len(instances)
        self.seconds += time.perf_counter() - t0
        self.save(entries, complete=complete, stage2=stats)
        if complete:
            shutil.rmtree(self.cache, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# the command


def _settings(args) -> dict:
    from vidmatte.models import trimap as trimaps

    if args.every < 1:
        raise UsageError("--every must be >= 1")
    if args.window < 0:
        raise UsageError("--window must be >= 0")
    if args.max_side and args.max_side < 64:
        raise UsageError("--max-side must be 0 (keep) or >= 64")
    if args.max_frames < 0:
        raise UsageError("--max-frames must be >= 0")
    return {
        "every": args.every,
        "window": args.window,
        "first_labelled": args.every // 2,
        "max_side": args.max_side,
        "band": {"factor": trimaps.BAND_FACTOR, "min": trimaps.BAND_MIN, "max": trimaps.BAND_MAX},
        "association": "labelled frames only, default AssociationConfig",
    }


def _teacher_info(teacher, args) -> dict:
    return {
        "name": teacher.name,
        "detector": args.detector,
        "tta": bool(args.tta),
        "score_threshold": args.score_threshold,
    }


def _prepare_out(root: Path, overwrite: bool) -> dict | None:
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root} exists and is not a folder")
    from vidmatte.training.data.teacher_dataset import read_json

    manifest = read_json(root / "manifest.json") if root.is_dir() else None
    if manifest is None and root.is_dir() and any(root.iterdir()) and not overwrite:
        raise OutputError(f"{root} exists and is not a pseudo-label dataset (use another --out)")
    root.mkdir(parents=True, exist_ok=True)
    return manifest


def _whole_video_info(args) -> tuple[dict, object, object]:
    """Teacher record of the whole-video teacher (no model is loaded for it)."""
    from dataclasses import asdict

    from vidmatte.models.teachers.base import D2GO_FILE, find_teacher_dir, teacher_file
    from vidmatte.models.teachers.ensemble import EnsembleConfig
    from vidmatte.models.teachers.video import VideoConfig

    root = find_teacher_dir(args.teacher_dir)
    d2go = not args.no_d2go and root is not None and teacher_file(root, D2GO_FILE) is not None
    ecfg = EnsembleConfig(d2go=d2go, score_threshold=args.score_threshold)
    vcfg = VideoConfig()
    e = asdict(ecfg)
    e.pop("overlaps")
    info = {"name": "whole-video", "ensemble": e, "video": asdict(vcfg)}
    info["ensemble"]["yolox_views"] = [list(v) for v in ecfg.yolox_views]
    return info, ecfg, vcfg


def _skip_held_out(sources: list[Source]) -> list[Source]:
    from vidmatte.training.data.validation import VALIDATION_FILE, is_held_out

    kept = []
    for s in sources:
        if is_held_out(s.path):
            print(
                f"skipping {s.path.name}: held out for validation ({VALIDATION_FILE.name})",
                file=sys.stderr,
            )
        else:
            kept.append(s)
    return kept


def _load_whole_video(args, ecfg, threads: int | None):
    from vidmatte.models.teachers.base import load_ensemble

    teacher = load_ensemble(args.teacher_dir, d2go=ecfg.d2go, threads=threads, config=ecfg)
    return teacher, teacher.light()


def run(args: argparse.Namespace) -> int:
    from vidmatte.matting.io.video import open_video
    from vidmatte.matting.progress import RateMeter, TerminalProgress
    from vidmatte.models.teachers.base import load_teacher
    from vidmatte.training.data import teacher_dataset as td

    settings = _settings(args)
    if args.workers < 1:
        raise UsageError("--workers must be >= 1")
    if not args.per_frame and (args.tta or args.detector != "yolox"):
        raise UsageError("--tta and --detector choose the per-frame teacher: add --per-frame")
    if args.per_frame and args.no_d2go:
        raise UsageError("--no-d2go is for the whole-video teacher (per-frame: --detector)")
    sources = _skip_held_out(collect_sources(args.inputs))
    if not sources:
        raise InputError("every input is a held-out validation item: nothing to label")
    root = Path(args.out).expanduser()
    old = _prepare_out(root, args.overwrite)
    teacher = light = vcfg = ecfg = None
    if args.per_frame:
        teacher = load_teacher(
            args.teacher_dir,
            detector=args.detector,
            tta=args.tta,
            score_threshold=args.score_threshold,
            threads=args.threads or None,
        )
        tinfo = _teacher_info(teacher, args)
    else:
        tinfo, ecfg, vcfg = _whole_video_info(args)
        settings["teacher_mode"] = "whole-video"
        settings["association"] = "all frames, flow-warped masks (models/teachers/video.py)"
        settings["ignore_level"] = IGNORE_LEVEL
        if args.workers == 1:
            teacher, light = _load_whole_video(args, ecfg, args.threads or None)
    if (
        old is not None
        and not args.overwrite
        and (old.get("settings"), old.get("teacher")) != (settings, tinfo)
    ):
        raise UsageError(
            f"{root} was labelled with other settings or another teacher: "
            "rerun with the same options, another --out, or --overwrite"
        )
    names = [s.name for s in sources]
    td.assemble_manifest(root, tinfo, settings, names)

    total = 0
    counts = {}
    for s in sources:
        with open_video(s.path) as r:
            n = r.info.frame_count
        counts[s.name] = min(n, args.max_frames) if args.max_frames else n
        total += counts[s.name]
    meter = RateMeter(total)
    bar = TerminalProgress("quiet" if args.quiet else "auto", stream=sys.stderr)

    def progress(done: int, name: str) -> None:
        bar(meter.update(done, stage="pseudo-label", input=name))

    complete = True
    t_start = time.perf_counter()
    try:
        if args.workers > 1 and not args.per_frame:
            complete = _run_workers(sources, args, settings, root, ecfg, vcfg, progress)
        else:
            ctx = _Context(root, teacher, settings, args.max_frames, progress)
            ctx.light, ctx.video_config = light, vcfg
            cls = VideoLabeller if args.per_frame else WholeVideoLabeller
            for s in sources:
                lab = cls(s, ctx, args.overwrite)
                lab.run()
                complete &= lab.complete
    except KeyboardInterrupt:
        raise Cancelled(f"interrupted: rerun the same command to resume into {root}") from None
    finally:
        bar.finish()
        manifest = td.assemble_manifest(root, tinfo, settings, names)
    videos = [v for v in manifest["videos"] if v["name"] in names]
    frames = [f for v in videos for f in v["frames"]]
    n_lab = sum(f["labelled"] for f in frames)
    n_inst = sum(len(f["instances"]) for f in frames)
    tracks = {
        (v["name"], i["track_id"]) for v in videos for f in v["frames"] for i in f["instances"]
    }
    if args.preview:
        out = write_preview(root, manifest)
        print(f"preview: {out}")
    state = "done" if complete else "stopped early (rerun to continue)"
    teacher_s = sum(float(v.get("seconds", 0.0)) for v in videos)
    per = (
        f", {teacher_s / n_lab:.2f} s of teacher per labelled frame" if n_lab and teacher_s else ""
    )
    print(
        f"{state}: {len(frames)} frames, {n_lab} labelled, {n_inst} person labels, "
        f"{len(tracks)} tracks in {len(sources)} video(s){per} "
        f"({time.perf_counter() - t_start:.0f} s) -> {root / 'manifest.json'}"
    )
    if complete and n_lab and not n_inst:
        raise NoPersonError(f"the teacher found no person in {len(sources)} video(s)")
    return 0


# ---------------------------------------------------------------------------------------
# several videos at once


_WORKER: dict = {}


def _worker_init(args, settings, root, ecfg, vcfg, threads, queue) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the pool; parts are saved
    import torch

    torch.set_num_threads(threads)
    teacher, light = _load_whole_video(args, ecfg, threads)

    def progress(done: int, name: str) -> None:
        queue.put((name, done))

    ctx = _Context(root, teacher, settings, args.max_frames, progress)
    ctx.light, ctx.video_config = light, vcfg
    _WORKER.update(ctx=ctx, overwrite=args.overwrite)


def _worker_label(src: Source) -> bool:
    ctx = _WORKER["ctx"]
    ctx.done = 0
    lab = WholeVideoLabeller(src, ctx, _WORKER["overwrite"])
    lab.run()
    return lab.complete


def _run_workers(sources, args, settings, root, ecfg, vcfg, progress) -> bool:
    """Videos in a process pool (spawned: no model state crosses a fork); longest first."""
    import multiprocessing as mp
    import os
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from vidmatte.matting.io.video import open_video

    n = min(args.workers, len(sources))
    threads = args.threads or max(1, (os.cpu_count() or 1) // n)
    mpc = mp.get_context("spawn")
    q = mpc.Queue()
    sizes = {}
    for s in sources:
        with open_video(s.path) as r:
            sizes[s.name] = r.info.frame_count
    order = sorted(sources, key=lambda s: -sizes[s.name])
    done_per: dict[str, int] = {}
    complete = True
    with ProcessPoolExecutor(
        n, mp_context=mpc, initializer=_worker_init,
        initargs=(args, settings, root, ecfg, vcfg, threads, q),
    ) as pool:  # fmt: skip
        futures = {pool.submit(_worker_label, s): s for s in order}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                while True:
                    try:
                        name, d = q.get_nowait()
                    except queue_mod.Empty:
                        break
                    done_per[name] = d
                    progress(sum(done_per.values()), name)
                for f in finished:
                    complete &= bool(f.result())
        except KeyboardInterrupt:
            for f in pending:
                f.cancel()
            raise
    return complete


# ---------------------------------------------------------------------------------------
# contact sheet


def _colour(track_id: int) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618034) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def write_preview(root: Path, manifest: dict, tiles: int = 12, tile_w: int = 360) -> Path:
    """A contact sheet of labelled frames: each person's foreground tinted in its track
    colour, its unknown band lighter, pixels the teacher left unsure (ignore) hatched grey,
    its ID written at its centre."""
    import cv2

    from vidmatte.training.data.teacher_dataset import write_image

    labelled = [(v["name"], f) for v in manifest["videos"] for f in v["frames"] if f["labelled"]]
    if not labelled:
        raise OutputError("nothing to preview: no labelled frame yet")
    pick = np.linspace(0, len(labelled) - 1, min(tiles, len(labelled))).round().astype(int)
    images = []
    for k in pick:
        name, f = labelled[k]
        img = cv2.imread(str(root / f["file"]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        img = img[..., ::-1].astype(np.float32)
        labels = []
        for inst in f["instances"]:
            tri = cv2.imread(str(root / inst["trimap"]), cv2.IMREAD_GRAYSCALE)
            if tri is None or tri.shape != img.shape[:2]:
                continue
            c = np.array(_colour(inst["track_id"]), np.float32)
            img[tri == 255] = 0.45 * img[tri == 255] + 0.55 * c
            img[tri == 128] = 0.5 * img[tri == 128] + 0.5 * (255 + c) / 2
            unsure = (tri == IGNORE_LEVEL) & (np.indices(tri.shape).sum(0) % 4 < 2)
            img[unsure] = 0.4 * img[unsure] + 0.6 * 128  # hatched grey: ignored
            ys, xs = np.nonzero(tri == 255)
            if xs.size:
                labels.append((int(xs.mean()), int(ys.mean()), inst["track_id"]))
        s = tile_w / img.shape[1]
        tile = cv2.resize(img.clip(0, 255).astype(np.uint8), (tile_w, round(img.shape[0] * s)))
        for x, y, tid in labels:
            p = (int(x * s) - 8, int(y * s) + 6)
            cv2.putText(tile, str(tid), p, cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3)
            cv2.putText(tile, str(tid), p, cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1)
        cv2.putText(
            tile, f"{name} #{f['index']}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1
        )
        images.append(tile)
    th = max(t.shape[0] for t in images)
    images = [np.pad(t, ((0, th - t.shape[0]), (0, 0), (0, 0))) for t in images]
    cols = min(4, len(images))
    while len(images) % cols:
        images.append(np.zeros_like(images[0]))
    rows = [np.concatenate(images[i : i + cols], 1) for i in range(0, len(images), cols)]
    sheet = np.concatenate(rows, 0)
    out = root / "preview.png"
    write_image(out, sheet, rgb=True)
    return out

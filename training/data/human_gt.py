"""The human ground truth the project has, as one trimap-training dataset folder.

- Per-frame person masks of every DAVIS sequence under shared/data/{vos,train/vos} that is
  not a validation item (training/configs/validation.toml): hike, swing, kite-walk today.
  Frames are every 2nd source frame, so (t-k, t, t+k) triplets still carry the temporal loss.
- CIHP part labels (shared/data/train/instances/cihp_pgn_samples): label > 0 is a person,
  but the files carry no instance ids and the people in them touch. The per-frame teacher's
  instances split the ground-truth union: each GT pixel goes to the teacher person with the
  highest mask probability there, or else to the nearest one; GT pixels decide the shape,
  the teacher only who is who. An image without a teacher person stays one instance.
  Each image is a one-frame "video" (its triplet is the frame itself: no temporal term).

Layout = `vidmatte-train pseudo-label`'s (manifest schema 1, frames/ masks/ trimaps/), so
`data.extra_datasets` in a trimap config trains on it beside the pseudo-labels.

    python -m vidmatte.training.data.human_gt OUT [--max-side 480] [--teacher-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from vidmatte.matting.io.atomic import atomic_write_text
from vidmatte.models.errors import InputError, UsageError, guarded_main

CIHP = "data/train/instances/cihp_pgn_samples"
VOS_ROOTS = ("data/vos", "data/train/vos")


def split_union(union: np.ndarray, teacher_masks: np.ndarray, min_area: int = 64) -> list:
    """A GT person-union mask -> instance masks, split by the teacher's (N, H, W) masks.

    Each union pixel goes to the teacher instance of highest probability where one is
    > 0.5, else to the nearest teacher instance (Euclidean distance to its mask)."""
    union = union.astype(bool)
    if teacher_masks is None or len(teacher_masks) == 0:
        return [union] if union.sum() >= min_area else []
    probs = np.asarray(teacher_masks, np.float32)
    owner = probs.argmax(0)
    covered = probs.max(0) > 0.5
    dists = np.stack(
        [cv2.distanceTransform((~(p > 0.5)).astype(np.uint8), cv2.DIST_L2, 3) for p in probs]
    )
    owner = np.where(covered, owner, dists.argmin(0))
    out = [union & (owner == k) for k in range(len(probs))]
    return [m for m in out if m.sum() >= min_area]


def _write_video(out: Path, name: str, source: str, frames: list[tuple]) -> dict:
    """frames: (rgb, [instance masks] or None) -> a manifest video entry; files written."""
    from vidmatte.models.trimap import masks_to_trimaps

    for sub in ("frames", "masks", "trimaps"):
        (out / sub / name).mkdir(parents=True, exist_ok=True)
    entries = []
    h = w = 0
    for i, (rgb, masks) in enumerate(frames):
        h, w = rgb.shape[:2]
        rel = f"frames/{name}/{i:06d}.jpg"
        cv2.imwrite(
            str(out / rel), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
        )
        entry: dict = {"index": i, "file": rel, "labelled": bool(masks), "instances": []}
        if masks:
            tris = masks_to_trimaps(np.stack(masks).astype(np.float32))
            for k, (m, t) in enumerate(zip(masks, tris, strict=True), start=1):
                mrel, trel = (
                    f"masks/{name}/{i:06d}_t{k:02d}.png",
                    f"trimaps/{name}/{i:06d}_t{k:02d}.png",
                )
                cv2.imwrite(str(out / mrel), m.astype(np.uint8) * 255)
                cv2.imwrite(str(out / trel), t)
                ys, xs = np.nonzero(m)
                box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
                entry["instances"].append(
                    {"track_id": k, "score": 1.0, "box": box, "mask": mrel, "trimap": trel}
                )
        entries.append(entry)
    return {"name": name, "source": source, "fps": 24.0, "width": w, "height": h, "frames": entries}


def _resize(img: np.ndarray, max_side: int, nearest: bool = False) -> np.ndarray:
    s = max_side / max(img.shape[:2]) if max_side else 1.0
    if s >= 1:
        return img
    size = (round(img.shape[1] * s), round(img.shape[0] * s))
    return cv2.resize(img, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def vos_video(seq: Path, max_side: int) -> tuple[str, list[tuple]]:
    from vidmatte.training.data.datasets import read_grey, read_rgb

    frames = []
    for fp in sorted((seq / "frames").glob("*.jpg")):
        rgb = _resize(read_rgb(fp), max_side)
        mp = seq / "masks" / (fp.stem + ".png")
        masks = None
        if mp.is_file():
            m = cv2.resize(read_grey(mp), rgb.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 127
            masks = [m] if m.sum() >= 64 else None
        frames.append((rgb, masks))
    return seq.name, frames


def cihp_videos(folder: Path, teacher, max_side: int) -> list[tuple[str, list[tuple]]]:
    from vidmatte.training.data.datasets import read_grey, read_rgb

    out = []
    for img in sorted((folder / "images").glob("*.jpg")):
        rgb = _resize(read_rgb(img), max_side)
        lab = read_grey(folder / "labels" / (img.stem + ".png"))
        union = cv2.resize(lab, rgb.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
        tm = teacher(rgb).masks
        tm = tm.numpy() if hasattr(tm, "numpy") else np.asarray(tm)
        out.append((f"cihp_{img.stem}", [(rgb, split_union(union, tm) or None)]))
    return out


def build_human_gt(out: Path, shared: Path, teacher_dir: Path, max_side: int = 480) -> dict:
    """Write the dataset; returns {video name: labelled person count}."""
    from vidmatte.models.teachers.base import load_teacher
    from vidmatte.training.data.validation import is_held_out

    out.mkdir(parents=True, exist_ok=True)
    videos, counts = [], {}
    for root in VOS_ROOTS:
        for seq in sorted(p for p in (shared / root).glob("*") if p.is_dir()):
            if is_held_out(seq):
                continue
            name, frames = vos_video(seq, max_side)
            videos.append(_write_video(out, name, str(seq), frames))
    cihp = shared / CIHP
    if cihp.is_dir():
        teacher = load_teacher(teacher_dir, threads=2)
        for name, frames in cihp_videos(cihp, teacher, max_side):
            videos.append(_write_video(out, name, str(cihp / "images" / name[5:]), frames))
    if not videos:
        raise InputError(f"no human ground truth found under {shared}")
    for v in videos:
        counts[v["name"]] = sum(len(f["instances"]) for f in v["frames"])
    manifest = {
        "schema": 1,
        "teacher": {"name": "ground-truth", "split": "CIHP unions split by the per-frame teacher"},
        "settings": {"max_side": max_side},
        "videos": videos,
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    return counts


def _main(argv: list[str] | None) -> int:
    from vidmatte.models.shared import find_shared, shared_weights

    p = argparse.ArgumentParser(prog="human-gt", description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--max-side", type=int, default=480)
    p.add_argument("--teacher-dir", type=Path, help="default: ../shared/weights")
    args = p.parse_args(argv)
    shared = find_shared()
    if shared is None:
        raise UsageError("../shared is not beside this checkout")
    counts = build_human_gt(args.out, shared, args.teacher_dir or shared_weights(), args.max_side)
    for name, n in counts.items():
        print(f"{name}: {n} person labels")
    return 0


def main(argv: list[str] | None = None) -> int:
    return guarded_main("human-gt", _main, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Write side of the pseudo-labelled dataset (read side: training/data/datasets.py).

    DATASET/manifest.json            schema 1: teacher, settings, videos[frames[instances]]
    DATASET/frames/<video>/NNNNNN.jpg
    DATASET/masks/<video>/NNNNNN_tTT.png     0/255
    DATASET/trimaps/<video>/NNNNNN_tTT.png   0/128/255
    DATASET/parts/<video>.json       per-video progress (the video's manifest entry plus
                                     "complete"); manifest.json is assembled from the parts,
                                     which is what makes a run resumable video by video and
                                     frame by frame.
    DATASET/cache/<video>/NNNNNN.npz whole-video teacher only, while a video is unfinished:
                                     stage 1's per-frame people + flows (removed when done)

Trimap PNGs are 0/128/255, plus models/trimap.IGNORE_LEVEL (64) where the whole-video
teacher is unsure (`trimap_to_classes` reads it as IGNORE). Each labelled instance records
whether the teacher detected it there (`detected`) or filled it from neighbouring frames.

Every file is written under a temporary name and renamed, so an interrupted run leaves
either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidmatte.models.errors import OutputError

SCHEMA = 1


def frame_file(video: str, index: int) -> str:
    return f"frames/{video}/{index:06d}.jpg"


def mask_file(video: str, index: int, track_id: int) -> str:
    return f"masks/{video}/{index:06d}_t{track_id:02d}.png"


def trimap_file(video: str, index: int, track_id: int) -> str:
    return f"trimaps/{video}/{index:06d}_t{track_id:02d}.png"


def part_file(root: Path, video: str) -> Path:
    return root / "parts" / f"{video}.json"


def _atomic_bytes(path: Path, data: bytes) -> None:
    from vidmatte.matting.io.atomic import atomic_write_bytes, make_dirs

    make_dirs(path.parent)
    atomic_write_bytes(path, data)


def write_json(path: Path, data: Any) -> None:
    _atomic_bytes(path, (json.dumps(data, indent=1) + "\n").encode())


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise OutputError(f"cannot read {path} (delete it to start over): {e}") from None


def write_image(path: Path, image: np.ndarray, rgb: bool = False) -> None:
    """JPEG (quality 95) or PNG by suffix; `rgb=True` for H×W×3 RGB input."""
    img = image[..., ::-1] if rgb and image.ndim == 3 else image
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix, np.ascontiguousarray(img), params)
    if not ok:
        raise OutputError(f"cannot encode {path}")
    _atomic_bytes(path, buf.tobytes())


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Compressed .npz, atomically (numpy arrays only: read back with allow_pickle=False)."""
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    _atomic_bytes(path, buf.getvalue())


def read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a .npz written by `write_npz`; None if missing or unreadable (recompute)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None


def read_mask(path: Path) -> np.ndarray | None:
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return None if m is None else m > 127


def assemble_manifest(root: Path, teacher: dict, settings: dict, names: list[str]) -> dict:
    """manifest.json from the parts of `names` (in that order) plus any other parts present."""
    parts_dir = root / "parts"
    others = sorted(p.stem for p in parts_dir.glob("*.json")) if parts_dir.is_dir() else []
    videos = []
    for name in [*names, *(o for o in others if o not in names)]:
        part = read_json(part_file(root, name))
        if part is None:
            continue
        entry = {k: v for k, v in part.items() if k not in ("state",)}
        entry["frames"] = sorted(entry.get("frames", []), key=lambda f: f["index"])
        videos.append(entry)
    manifest = {"schema": SCHEMA, "teacher": teacher, "settings": settings, "videos": videos}
    write_json(root / "manifest.json", manifest)
    return manifest

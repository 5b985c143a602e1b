"""manifest.json: what an export folder holds (docs/architecture.md, output layout).

Schema (version 1), all keys but `schema_version` chosen by the caller:
    {"schema_version": 1, "source": {path, width, height, fps, frame_count, rotation, ...},
     "model": {name, sha256}, "settings": {...}, "tracks": [{id, first, last, frames,
     mean_score, ...}], ...}
Written atomically (temp + fsync + rename): a reader sees the old or the new file, never a
mix. A manifest from a newer schema is refused rather than misread.
"""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidmatte.matting.io.atomic import atomic_write_text, make_dirs
from vidmatte.models.errors import InputError

if TYPE_CHECKING:
    from vidmatte.matting.io.video import VideoInfo

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Fraction):
        return f"{obj.numerator}/{obj.denominator}"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, torch tensors
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def json_safe(obj: Any) -> Any:
    """NaN/inf are not JSON: write them as null (recursively; keys become strings)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def write_manifest(out_dir: Path, manifest: dict) -> Path:
    """Write `out_dir/manifest.json` atomically, stamping `schema_version`; returns its path."""
    out_dir = make_dirs(out_dir)
    data = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in manifest.items()}}
    data["schema_version"] = SCHEMA_VERSION
    text = json.dumps(json_safe(json.loads(json.dumps(data, default=_jsonable))), indent=2)
    path = out_dir / MANIFEST_NAME
    atomic_write_text(path, text + "\n")
    return path


def read_manifest(out_dir: Path) -> dict:
    """Read `out_dir/manifest.json`; InputError if missing, not JSON or from a newer schema."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no manifest (not a vidmatte export folder?)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON (line {e.lineno})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a vidmatte manifest (top level is not an object)")
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise InputError(f"{path}: not a vidmatte manifest (no schema_version)")
    if version > SCHEMA_VERSION:
        raise InputError(
            f"{path}: schema version {version} is newer than this vidmatte reads "
            f"({SCHEMA_VERSION}); update vidmatte"
        )
    return data


def source_entry(info: VideoInfo) -> dict:
    """The manifest's `source` block for a VideoInfo."""
    return {
        "path": str(info.path),
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "frame_count": info.frame_count,
        "duration_s": info.duration_s,
        "rotation": info.rotation,
        "has_audio": info.has_audio,
        "codec": info.codec,
        "pix_fmt": info.pix_fmt,
        "is_image_sequence": info.is_image_sequence,
    }


def input_identity(path: str | Path, frame_count: int | None = None) -> dict:
    """What identifies an input's content, cheaply and wherever it is mounted: its size and
    a sha256 of its first and last MiB (for an image folder: of every file's name and
    size). A resume compares this, not the path, so a moved or renamed input still
    resumes and another file with the same name does not."""
    import hashlib

    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        size = 0
        for f in sorted(x for x in p.iterdir() if x.is_file()):
            n = f.stat().st_size
            size += n
            h.update(f"{f.name}\0{n}\n".encode())
    else:
        size = p.stat().st_size
        with open(p, "rb") as f:
            h.update(f.read(1 << 20))
            if size > 2 << 20:
                f.seek(-(1 << 20), 2)
                h.update(f.read(1 << 20))
    out = {"path": str(p.absolute()), "size": size, "sha256_ends": h.hexdigest()}
    if frame_count is not None:
        out["frames"] = int(frame_count)
    return out


def normalised(obj: Any) -> Any:
    """The value as it reads back from a manifest (tuples as lists, sets sorted, ...)."""
    return json_safe(json.loads(json.dumps(obj, default=_jsonable)))


def depends_differences(old: dict | None, new: dict) -> list[str]:
    """Human-readable differences between two `depends` blocks (empty: the same export).
    The input is compared by content (`path` is informative only)."""
    if not isinstance(old, dict):
        return ["the folder was written by an older vidmatte that did not record its settings"]
    old, new = normalised(old), normalised(new)
    diffs: list[str] = []
    oi, ni = old.get("input") or {}, new.get("input") or {}
    if {k: v for k, v in oi.items() if k != "path"} != {k: v for k, v in ni.items() if k != "path"}:
        diffs.append(f"input ({oi.get('path')} then, {ni.get('path')} now: other content)")
    order = ["range", "export", "pipeline", "model"]
    sections = order + sorted((set(old) | set(new)) - set(order) - {"input"})
    seen: set[str] = set()
    for section in sections:
        a, b = old.get(section), new.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key) and key not in seen:
                    seen.add(key)  # e.g. min_score as set and as resolved: say it once
                    diffs.append(f"{key} ({a.get(key)!r} then, {b.get(key)!r} now)")
        elif a != b:
            diffs.append(f"{section} ({a!r} then, {b!r} now)")
    return diffs

"""manifest.json: what an export folder holds (DESIGN.md, output layout).

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


def _clean(obj: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def write_manifest(out_dir: Path, manifest: dict) -> Path:
    """Write `out_dir/manifest.json` atomically, stamping `schema_version`; returns its path."""
    out_dir = make_dirs(out_dir)
    data = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in manifest.items()}}
    data["schema_version"] = SCHEMA_VERSION
    text = json.dumps(_clean(json.loads(json.dumps(data, default=_jsonable))), indent=2)
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

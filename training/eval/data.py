"""Folder readers for `vidmatte-eval`: find the frame sequences a folder holds.

Layouts understood (one sequence each, or a folder of such folders, one per sequence):

- DAVIS:            NAME/frames/*.jpg + NAME/masks/*.png          -> kind "mask" (+ RGB)
- matting triplet:  NAME/image/ + NAME/alpha/ [+ NAME/trimap/]    -> kind "alpha" (+ RGB, trimaps)
                    NAME/image/ + NAME/trimap/ (no alpha)         -> kind "trimap" (+ RGB)
- vidmatte output:  manifest.json + person_XX/alpha/*.png [+ person_XX/trimap/]
                                                                  -> one "alpha" seq per person
- a plain folder of PNGs: kind guessed from the pixel values of a few files:
  only {0, 128, 255} with 128 present -> "trimap"; only {0, 255} -> "mask"; else "alpha".

Frames are matched across folders by their number (`00012.png` == `000012.png`), or by
name where a stem is not a number. Images are loaded on demand (`load`) so that a long
sequence is never held twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidmatte.models.errors import InputError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
KINDS = ("mask", "alpha", "trimap")


def frame_key(path: Path) -> int | str:
    s = path.stem
    return int(s) if s.isdigit() else s


def list_images(folder: Path) -> dict[int | str, Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    return {frame_key(p): p for p in files}


@dataclass
class FrameSeq:
    """One evaluable sequence: maps (by frame key) of one kind, optional RGB and trimaps."""

    name: str
    kind: str
    files: dict[int | str, Path]
    frames: dict[int | str, Path] | None = None
    trimaps: dict[int | str, Path] | None = None
    meta: dict = field(default_factory=dict)

    def frame_keys(self) -> list:
        return sorted(self.files, key=lambda k: (isinstance(k, str), k))


def read_map(path: Path) -> np.ndarray:
    """A single-channel map as stored: uint8 (or uint16) H×W. Colour files: first channel.

    Palette PNGs (DAVIS-2017 style) keep their indices: any non-zero index is foreground.
    """
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        # cv2 expands palettes to BGR; fall back to Pillow for anything it cannot read.
        try:
            from PIL import Image

            img = np.asarray(Image.open(path))
        except Exception as e:
            raise InputError(f"cannot read image {path}: {e}") from e
    if img.ndim == 3:
        img = img[..., 2] if img.shape[2] >= 3 else img[..., 0]  # BGR(A): take R (=G=B)
    return img


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image {path}")
    return np.ascontiguousarray(img[..., ::-1])


def guess_kind(files: dict, probe: int = 3) -> str:
    keys = sorted(files, key=lambda k: (isinstance(k, str), k))
    if not keys:
        raise InputError("empty folder: no images")
    picks = [keys[i] for i in np.linspace(0, len(keys) - 1, min(probe, len(keys))).astype(int)]
    values: set[int] = set()
    for k in picks:
        m = read_map(files[k])
        if m.dtype != np.uint8:
            return "alpha"
        values |= set(np.unique(m).tolist())
        if len(values) > 3:
            return "alpha"
    if values <= {0, 128, 255} and 128 in values:
        return "trimap"
    if values <= {0, 255} or values <= {0, 1}:
        return "mask"
    return "alpha"


def _single(folder: Path) -> list[FrameSeq] | None:
    """The sequences of `folder` if it is one of the known layouts, else None."""
    name = folder.name
    sub = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
    if (folder / "manifest.json").is_file():
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"unreadable manifest {folder / 'manifest.json'}: {e}") from e
        seqs = []
        for person in sorted(p for p in folder.iterdir() if p.is_dir() and (p / "alpha").is_dir()):
            tri = person / "trimap"
            seqs.append(
                FrameSeq(
                    name=person.name,
                    kind="alpha",
                    files=list_images(person / "alpha"),
                    trimaps=list_images(tri) if tri.is_dir() else None,
                    meta={"manifest": manifest},
                )
            )
        if not seqs:
            raise InputError(
                f"{folder} has a manifest.json but no person_XX/alpha/ PNG folders "
                "(export as PNG sequences to evaluate)"
            )
        return seqs
    rgb_dir = sub.get("frames") or sub.get("image") or sub.get("images")
    rgb = list_images(rgb_dir) if rgb_dir else None
    if "masks" in sub:
        return [FrameSeq(name, "mask", list_images(sub["masks"]), rgb)]
    if "alpha" in sub:
        tri = list_images(sub["trimap"]) if "trimap" in sub else None
        return [FrameSeq(name, "alpha", list_images(sub["alpha"]), rgb, tri)]
    if "trimap" in sub:
        return [FrameSeq(name, "trimap", list_images(sub["trimap"]), rgb)]
    files = list_images(folder)
    if files:
        return [FrameSeq(name, guess_kind(files), files)]
    return None


def read_sequences(path: str | Path) -> list[FrameSeq]:
    """All sequences under `path` (one layout, or a folder of layouts)."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    seqs = _single(folder)
    if seqs is not None:
        return seqs
    out: list[FrameSeq] = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        found = _single(child)
        if found:
            out.extend(found)
    if not out:
        raise InputError(
            f"{folder}: no frames found (expected frames/+masks/, image/+alpha/, "
            "a vidmatte output with manifest.json, or a folder of PNGs)"
        )
    return out

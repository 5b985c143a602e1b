"""The validation split: what stays out of training, read from one file.

`training/configs/validation.toml` lists the held-out items relative to shared/. Training
code asks `is_held_out(path)` before it uses a clip, sequence or image; evaluation code
iterates `load_validation()`. Matching is by resolved path and by the item's name (a clip
copied elsewhere under the same name is still refused), so a renamed folder is the only
way around it — on purpose.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vidmatte.models.shared import find_shared

VALIDATION_FILE = Path(__file__).resolve().parents[1] / "configs" / "validation.toml"
KINDS = ("vos", "multi_person", "instances", "matting")


@dataclass(frozen=True)
class Validation:
    """Held-out items as absolute paths (empty where shared/ is absent)."""

    vos: tuple[Path, ...]
    multi_person: tuple[Path, ...]
    instances: tuple[Path, ...]
    matting: tuple[Path, ...] = ()

    def all(self) -> tuple[Path, ...]:
        return self.vos + self.multi_person + self.instances + self.matting


def _stem(path: Path) -> str:
    return path.stem if path.suffix else path.name


@cache
def load_validation(file: Path = VALIDATION_FILE, shared: Path | None = None) -> Validation:
    """The validation items of `file`, resolved against `shared` (default: find_shared())."""
    spec = tomllib.loads(Path(file).read_text())
    root = shared or find_shared()
    items: dict[str, tuple[Path, ...]] = {}
    for kind in KINDS:
        rel = spec.get(kind, [])
        items[kind] = tuple((root / r).resolve() for r in rel) if root is not None else ()
    return Validation(**items)


@cache
def held_out_names(file: Path = VALIDATION_FILE) -> frozenset[str]:
    """Names (file stem or folder name) of every held-out item, shared/ or not."""
    spec = tomllib.loads(Path(file).read_text())
    return frozenset(_stem(Path(r)) for kind in KINDS for r in spec.get(kind, []))


def is_held_out(path: str | Path) -> bool:
    """True where `path` is (or lies inside) a validation item, or carries one's name."""
    p = Path(path).expanduser()
    resolved = p.resolve()
    for item in load_validation().all():
        if resolved == item or item in resolved.parents:
            return True
    return _stem(p) in held_out_names()

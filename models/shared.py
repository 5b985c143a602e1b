"""Find the read-only `shared/` folder that sits beside the project checkout.

`shared/` holds third-party research data and weights that must never be copied into the
project (licences). Tests, training, benchmarks and the quick-start demo reach it through
this one function. Resolution: `$VIDMATTE_SHARED`, then a `shared/` folder beside any
parent of the current directory or of this package's source folder, recognised by the
DESIGN.md file that folder carries (a marker only: our design is docs/architecture.md).
"""

from __future__ import annotations

import os
from pathlib import Path


def _looks_shared(path: Path) -> bool:
    return path.is_dir() and (path / "DESIGN.md").is_file()


def find_shared() -> Path | None:
    """Return the shared folder, or None where this machine has none."""
    env = os.environ.get("VIDMATTE_SHARED")
    if env:
        p = Path(env).expanduser()
        return p.resolve() if _looks_shared(p) else None
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    for start in starts:
        for parent in [start, *start.parents]:
            cand = parent / "shared"
            if _looks_shared(cand):
                return cand.resolve()
            cand = parent.parent / "shared"
            if _looks_shared(cand):
                return cand.resolve()
    return None


def shared_weights() -> Path | None:
    """The `shared/weights` folder (teacher, backbone, flow files), if present."""
    root = find_shared()
    return root / "weights" if root is not None and (root / "weights").is_dir() else None


def shared_data() -> Path | None:
    """The `shared/data` folder (videos, DAVIS masks, matting triplets), if present."""
    root = find_shared()
    return root / "data" if root is not None and (root / "data").is_dir() else None

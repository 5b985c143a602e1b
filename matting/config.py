"""PipelineConfig: every setting that changes what the pipeline computes, in one place.

The CLI and the GUI both fill it (docs/architecture.md, contracts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class PipelineConfig:
    """Everything that changes what the pipeline computes (the CLI's options map 1:1)."""

    source: str = "auto"  # auto | network | teacher
    weights: str | None = None  # trimap network model folder
    teacher_dir: str | None = None
    matter: str = "auto"  # auto | indexnet | classical
    matting_weights: str | None = None  # IndexNet model folder
    device: str = "auto"
    fp16: bool = True  # used on CUDA only
    batch_size: int = 4
    max_persons: int = 8  # per frame, highest scores first
    min_score: float | None = None  # None: the source's own (teacher 0.5, weights: calibrated)
    persons: frozenset[int] | None = None  # matte only these track IDs (None: everyone)
    smooth: bool = False  # online trimap smoothing along tracks (network source only)
    association: Any = None  # AssociationConfig; None = defaults

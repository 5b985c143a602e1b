"""PipelineConfig: every setting that changes what the pipeline computes, in one place.

The CLI and the GUI both fill it (docs/architecture.md, contracts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PipelineConfig:
    """Everything that changes what the pipeline computes (the CLI's options map 1:1)."""

    source: str = "auto"  # auto | network | teacher
    weights: str | None = None  # trimap network model folder
    teacher_dir: str | None = None
    matter: str = "auto"  # auto | indexnet | classical
    matting_weights: str | None = None  # IndexNet model folder
    # `runtime`: where and how fast it runs, not what it computes (the manifest's `depends`,
    # checked by --resume, leaves these out; the resolved fp16 is in the model block)
    device: str = field(default="auto", metadata={"runtime": True})
    fp16: bool = field(default=True, metadata={"runtime": True})  # used on CUDA only
    batch_size: int = field(default=4, metadata={"runtime": True})
    max_persons: int = 8  # per frame, highest scores first
    min_score: float | None = None  # None: the source's own (teacher 0.5, weights: calibrated)
    persons: frozenset[int] | None = None  # matte only these track IDs (None: everyone)
    smooth: bool = False  # online trimap smoothing along tracks (network source only)
    association: Any = None  # AssociationConfig; None = defaults

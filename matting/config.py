"""PipelineConfig: every setting that changes what the pipeline computes, in one place.

The one list of model settings (docs/architecture.md, contracts): `vidmatte-cli` fills it
from its options (matting/cli.py `pipeline_config`), the desktop app keeps one in its
settings (app/settings.py `AppSettings.model`, persisted field by field under the same
names), the Ray workers and the evaluation build it directly. It is frozen and hashable, so
it can key a cache of loaded models (the GUI's `load_pipeline`): two equal configs mean the
same models. Change a setting with `dataclasses.replace`.

Fields marked `runtime` say where and how fast the pipeline runs, not what it computes
(the manifest's `depends`, checked by --resume, leaves them out; the resolved fp16 is in
the model block).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # import-light: the CLI builds its parser without the tracking code
    from vidmatte.matting.tracking.association import AssociationConfig

#: The choices of the settings that have a fixed set (CLI choices, GUI menus, checks).
SOURCES = ("auto", "network", "teacher")
MATTERS = ("auto", "fast", "indexnet", "classical")
DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that changes what the pipeline computes (the CLI's options map 1:1)."""

    source: str = "auto"  # auto | network | teacher
    weights: str | None = None  # trimap network model folder
    teacher_dir: str | None = None
    matter: str = "auto"  # auto | fast | indexnet | classical
    matting_weights: str | None = None  # IndexNet model folder
    device: str = field(default="auto", metadata={"runtime": True})
    fp16: bool = field(default=True, metadata={"runtime": True})  # used on CUDA only
    # frames per network call; None: 4 on CUDA, 1 elsewhere (batching only pays on a GPU)
    batch_size: int | None = field(default=None, metadata={"runtime": True})
    max_persons: int = 8  # per frame, highest scores first
    min_score: float | None = None  # None: the source's own (teacher 0.5, weights: calibrated)
    persons: frozenset[int] | None = None  # matte only these track IDs (None: everyone)
    smooth: bool = False  # online trimap smoothing along tracks (network source only)
    association: AssociationConfig | None = None  # None: AssociationConfig() defaults
    # matting-only mode: people's trimaps or masks from DIR/person_XX/trimap/NNNNNN.png
    # (matting/io/trimap_folder.py); the instance stage and association are skipped
    trimaps: str | None = None

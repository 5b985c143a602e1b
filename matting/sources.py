"""Where instances and alphas come from: the trained trimap network or the teacher, and
IndexNet or the classical matter.

Resolution (`--source auto`), what the user configured first, shipped defaults last: an
explicit `--weights` means the network; an explicit `--teacher-dir` means the teacher; then
weights named by the environment (`$VIDMATTE_WEIGHTS`, `$VIDMATTE_TRIMAPNET_WEIGHTS`); then
the teacher from `$VIDMATTE_TEACHER_DIR`; then the default trimap weights (assets/, Hub
cache — never a download: `vidmatte-cli weights download` does that on request). The
configured teacher outranks the shipped weights while the shipped student is below its
teacher (README, Evaluation): someone who installed the teacher gets the better path,
everyone else still gets mattes. `SHIPPED_STUDENT_FIRST` swaps those two steps once the
shipped student meets issue 18's targets against the per-frame teacher on the held-out
validation (J + 0.03 on every sequence, TC at least the teacher's, no merged people, 60 ms
at 720p); explicit flags and environment weights still come first. With none of them the
user gets one line that says what is missing and how to get it. The manifest and the
terminal report which path ran (`describe()`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from vidmatte.matting.config import MATTERS, SOURCES
from vidmatte.models.errors import UsageError, WeightsError
from vidmatte.models.instances import Instances

if TYPE_CHECKING:  # the contracts these sources wrap (loaded lazily: the network imports much)
    from vidmatte.models.matters.base import Matter
    from vidmatte.models.teachers.base import Teacher
    from vidmatte.models.trimapnet import TrimapNet

MISSING_MODELS = (
    "no trimap weights and no teacher files found: pass --weights MODEL_DIR "
    "(or run `vidmatte-cli weights download`), or --teacher-dir DIR / $VIDMATTE_TEACHER_DIR "
    "holding coco_person_detection/yolox_nano_coco_416.onnx and "
    "person_segmentation/pose_landmark_lite.tflite (see README, Weights)"
)


#: `select(scores, labels) -> indices`: which instances to keep (the pipeline's person filter)
Selector = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: A person's uint8 trimap (0/128/255) inside its window (x0, y0, x1, y1), background outside
WindowedTrimap = tuple[tuple[int, int, int, int], np.ndarray]


class InstanceSource(Protocol):
    name: str

    def detect(
        self, frames: list[np.ndarray], select: Selector | None = None
    ) -> list[Instances]: ...

    def trimaps(self, instances: Instances) -> list[WindowedTrimap]: ...

    def describe(self) -> dict[str, Any]: ...

    @property
    def min_score(self) -> float:
        """Default person score threshold of this source (PipelineConfig.min_score=None)."""
        ...


@dataclass
class NetworkSource:
    """The trained per-frame trimap network, batched on the chosen device. Instances stay
    on that device; trimaps are the argmax of the windowed probabilities, taken there."""

    model: TrimapNet
    device: torch.device
    fp16: bool
    info: dict[str, Any] = field(default_factory=dict)
    name: str = "network"

    @torch.inference_mode()
    def detect(self, frames: list[np.ndarray], select: Selector | None = None) -> list[Instances]:
        batch = torch.from_numpy(np.stack(frames)).to(self.device, non_blocking=True)
        images = batch.permute(0, 3, 1, 2).float().div_(255.0)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.fp16):
            return self.model.detect(images, select=select)

    @torch.inference_mode()
    def trimaps(self, instances: Instances) -> list[WindowedTrimap]:
        from vidmatte.models.trimap import masks_to_trimap_windows

        if instances.trimap_crops is None:  # binary-mode weights: masks only
            crops = [m.float().cpu() for m in instances.mask_crops]
            return masks_to_trimap_windows(crops, instances.windows.tolist(), instances.image_size)
        return [
            (instances.window(i), probs_to_levels(p)) for i, p in enumerate(instances.trimap_crops)
        ]

    def describe(self) -> dict[str, Any]:
        return {"instances": "trimap-network", **self.info}

    @property
    def min_score(self) -> float:
        """The weights' calibrated person threshold (config.json postprocess.person_thr)."""
        cfg = getattr(self.model, "config", None)
        return float(getattr(getattr(cfg, "postprocess", None), "person_thr", 0.5))


@dataclass
class TeacherSource:
    """The offline COCO teacher: person masks -> dilate/erode trimaps ("SOLO + matting")."""

    teacher: Teacher
    info: dict[str, Any] = field(default_factory=dict)
    name: str = "teacher"
    # The teacher's TFLite/ONNX interpreters keep per-call buffers: two threads calling one
    # interpreter corrupt each other (TFLite raises "reference to internal data"). The
    # pipeline calls detect from its instance thread only; evaluation code that also asks
    # the same source for masks from another thread waits here instead.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def detect(self, frames: list[np.ndarray], select: Selector | None = None) -> list[Instances]:
        with self._lock:
            out = [self.teacher(f) for f in frames]
        if select is None:
            return out
        return [inst.select(select(inst.scores, inst.labels)) for inst in out]

    def trimaps(self, instances: Instances) -> list[WindowedTrimap]:
        from vidmatte.models.trimap import masks_to_trimap_windows

        crops = [m.float().cpu() for m in instances.mask_crops]
        return masks_to_trimap_windows(crops, instances.windows.tolist(), instances.image_size)

    def describe(self) -> dict[str, Any]:
        return {"instances": "teacher", **self.info}

    min_score: float = 0.5  # the teacher's scores are detector confidences


def probs_to_levels(probs: torch.Tensor) -> np.ndarray:
    """(3, h, w) probabilities (bg, unknown, fg) -> uint8 trimap (0/128/255) by argmax,
    computed on their device with comparisons (the first maximum wins, as argmax): a
    channel argmax over 3 was 120 ms for one 720p person on a CPU, this is a few ms."""
    from vidmatte.models.trimap import BG, FG, UNKNOWN

    bg, unknown, fg = probs[0], probs[1], probs[2]
    level = torch.where(unknown >= fg, UNKNOWN, FG).to(torch.uint8)
    level = level.masked_fill_((bg >= unknown) & (bg >= fg), BG)
    return level.cpu().numpy()


#: Whether the shipped (assets/ or Hub-cached) trimap weights outrank a teacher configured
#: by `$VIDMATTE_TEACHER_DIR` under `--source auto`. Set from the README's validation table
#: (issue 18): only when the shipped student meets every target against the per-frame teacher.
SHIPPED_STUDENT_FIRST = False


def resolve_source(
    source: str = "auto",
    *,
    weights: str | Path | None = None,
    teacher_dir: str | Path | None = None,
    device: torch.device,
    fp16: bool = False,
) -> InstanceSource:
    """Pick and load the instance source (see module docstring for the order)."""
    if source not in SOURCES:
        raise UsageError(f"--source {source!r}: choose one of {', '.join(SOURCES)}")
    from vidmatte.models.teachers.base import find_teacher_dir

    if source == "auto":
        if weights is not None:
            source = "network"
        elif teacher_dir is not None:
            source = "teacher"
        else:
            from vidmatte.models.weights.resolution import find_weights

            found = find_weights("trimapnet")
            if found is not None and found.source == "env":
                source = "network"  # weights the user configured
            elif found is not None and SHIPPED_STUDENT_FIRST:
                source = "network"  # the shipped student, measured better than the teacher
            elif find_teacher_dir(None) is not None:
                source = "teacher"  # a teacher the user configured beats shipped weights
            elif found is not None:
                source = "network"  # the shipped (assets) or cached default
            else:
                raise WeightsError(MISSING_MODELS)
    if source == "network":
        return _load_network(weights, device, fp16)
    return _load_teacher(teacher_dir)


def _load_network(weights: str | Path | None, device: torch.device, fp16: bool) -> NetworkSource:
    from vidmatte.models.trimapnet import TrimapNet
    from vidmatte.models.weights.resolution import resolve_weights

    resolved = resolve_weights("trimapnet", weights, allow_download=False)
    model = TrimapNet.from_folder(resolved.folder, device=device).eval()
    info = {
        "model": resolved.name,
        "weights": str(resolved.folder),
        "weights_source": resolved.source,
        "sha256": resolved.sha256,
    }
    return NetworkSource(model=model, device=device, fp16=fp16, info=info)


def _load_teacher(teacher_dir: str | Path | None) -> TeacherSource:
    from vidmatte.models.teachers.base import find_teacher_dir, load_teacher

    folder = find_teacher_dir(teacher_dir)
    if folder is None:
        raise WeightsError(MISSING_MODELS)
    teacher = load_teacher(folder)
    return TeacherSource(
        teacher=teacher,
        info={"model": getattr(teacher, "name", "teacher"), "teacher_dir": str(folder)},
    )


#: Whether `--matter auto` runs the IndexNet shipped in assets/ on a CUDA device. Set from
#: the README's Matting table: only when its SAD is at most the classical matter's on the
#: held-out triplets and Composition-1k (issue 19).
SHIPPED_INDEXNET_ON_CUDA = False
#: What `--matter auto` runs otherwise (README, Matting: the side-by-side table). `fast`
#: since issue 19: on the held-out validation sequences the teacher + fast path matches
#: teacher + classical in J (±0.004) and TC (±0.2), alpha SAD is 9 % above closed-form's on
#: the held-out triplets and 54 % below on Composition-1k, at 18 instead of 620 ms per
#: person at 720p. `--matter classical` remains the quality reference.
AUTO_MATTER = "fast"


def resolve_matter(
    kind: str = "auto",
    *,
    weights: str | Path | None = None,
    device: torch.device,
    fp16: bool = False,
) -> tuple[Matter, dict[str, Any]]:
    """The matter for `kind` (README, Matting).

    `indexnet` (or `--matting-weights`): IndexNet from the given / configured / shipped
    folder. `classical`: closed-form, the quality reference. `fast`: closed-form on a coarse
    grid with guided upsampling. `auto` picks, per device, the best matter that keeps the
    pipeline's speed: IndexNet weights the user configured ($VIDMATTE_INDEXNET_WEIGHTS /
    $VIDMATTE_WEIGHTS) on any device; on CUDA the shipped IndexNet where
    `SHIPPED_INDEXNET_ON_CUDA` says it is at least as good as closed-form; otherwise
    `AUTO_MATTER`."""
    from vidmatte.models.matters.base import build_matter

    if kind not in MATTERS:
        raise UsageError(f"--matter {kind!r}: choose one of {', '.join(MATTERS)}")
    if kind in ("fast", "classical"):
        return build_matter(kind), {"matter": kind}
    from vidmatte.models.weights.resolution import find_weights, resolve_weights

    if kind == "indexnet" or weights is not None:
        found = resolve_weights("indexnet", weights, allow_download=False)
    else:
        found = find_weights("indexnet")
        shipped_ok = SHIPPED_INDEXNET_ON_CUDA and device.type == "cuda"
        if found is not None and found.source != "env" and not shipped_ok:
            found = None
    if found is not None:
        info = {"matter": "indexnet", "weights": str(found.folder), "sha256": found.sha256}
        return build_matter("indexnet", weights=found.folder, device=str(device), fp16=fp16), info
    return build_matter(AUTO_MATTER), {"matter": AUTO_MATTER}

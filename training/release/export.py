"""`vidmatte-train export`: a training checkpoint -> a model folder (config.json + safetensors).

A checkpoint is the trainer's `torch.save` of a plain dict
`{"model": state_dict, "config": {...}, "step": int, ...}`; it is read with
`weights_only=True` (through models/weights/checkpoints.py) like any other file, so even our own
checkpoints cannot run code.

What goes into config.json: first a generic config from the checkpoint's (training) config —
its `[model]` section (model keys kept, the network's own settings moved under `arch`,
training-only keys such as `init` dropped) or else the top-level model keys, so training
paths and hyper-parameters never leak into a published file. Then, when the architecture
is registered and importable, the folder is loaded through its own `from_folder`: that
proves every key and shape fits the real network, and the network's canonical config
(`folder_config()`: input normalisation, classes, ...) replaces the generic
one. The step and the checkpoint's name are recorded under `training`.

The folder appears atomically (matting/io/atomic.py `atomic_dir`: written beside the
target, then renamed) and an existing one is replaced only with --overwrite. The result is
verified by loading it back.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidmatte.models.errors import OutputError, UsageError, WeightsError

#: top-level config keys that describe the model (the rest is training-only)
MODEL_KEYS = ("architecture", "arch", "classes", "input", "name", "description")
#: keys of a [model] section that steer training, not the network
TRAINING_ONLY = ("init", "pretrained_backbone", "pretrained", "freeze")


@dataclass
class ExportResult:
    folder: Path
    config: dict[str, Any]
    checked_by: str | None  # the architecture loader that validated the folder, if any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", help="training checkpoint (.pt) written by `fit`, or a run folder (its last)"
    )
    parser.add_argument("out", help="model folder to create")
    parser.add_argument("--fp16", action="store_true", help="store floating tensors as float16")
    parser.add_argument(
        "--key", default="model", help="checkpoint entry holding the weights (e.g. 'ema')"
    )
    parser.add_argument(
        "--architecture", help="set the architecture when the checkpoint's config lacks it"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")


def model_config_from(ckpt_config: dict[str, Any], architecture: str | None) -> dict[str, Any]:
    """The config.json content (before save_model_folder adds version, dtype, sha256)."""
    section = ckpt_config.get("model")
    init = Path(section["init"]) if isinstance(section, dict) and section.get("init") else None
    if init is not None and (init / "config.json").is_file():
        # a fine-tune: the network is the init folder's (its architecture settings won)
        from vidmatte.models.weights.folder import read_config

        base = read_config(init)
        cfg = {k: base[k] for k in MODEL_KEYS if k in base}
    elif isinstance(section, dict) and section:
        cfg = {k: section[k] for k in MODEL_KEYS if k in section}
        if "arch" not in cfg:
            rest = {k: v for k, v in section.items() if k not in MODEL_KEYS + TRAINING_ONLY}
            if rest:
                cfg["arch"] = rest
    else:
        cfg = {k: ckpt_config[k] for k in MODEL_KEYS if k in ckpt_config}
    if architecture:
        cfg["architecture"] = architecture
    if "architecture" not in cfg:
        raise UsageError("the checkpoint's config names no architecture; pass --architecture NAME")
    return cfg


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    fp16: bool = False,
    key: str = "model",
    architecture: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write the model folder `out` from `checkpoint`. Raises VidmatteErrors (one line)."""
    import torch

    from vidmatte.matting.io.atomic import atomic_dir
    from vidmatte.models.weights.checkpoints import load_checkpoint_object, strip_prefix
    from vidmatte.models.weights.resolution import verify_folder
    from vidmatte.training.release.model_folder import save_model_folder

    checkpoint, out = Path(checkpoint), Path(out)
    if checkpoint.is_dir():  # a run folder: its latest checkpoint
        from vidmatte.training.trainer import list_checkpoints

        found = list_checkpoints(checkpoint / "checkpoints")
        if not found:
            raise UsageError(f"{checkpoint} holds no checkpoints/step_*.pt")
        checkpoint = found[-1]
    if out.exists() and not overwrite:
        raise OutputError(f"{out} exists; pass --overwrite to replace it")
    ckpt = load_checkpoint_object(checkpoint)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get(key), dict):
        found = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise WeightsError(f"{checkpoint} has no {key!r} state dict (found {found})")
    state = ckpt[key]
    bad = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise WeightsError(f"{checkpoint}: entry {bad!r} of {key!r} is not a tensor")
    if state and all(k.startswith("module.") for k in state):
        state = strip_prefix(state, "module.")  # saved from DistributedDataParallel
    raw_cfg = ckpt.get("config") or {}
    if not isinstance(raw_cfg, dict):
        raise WeightsError(f"{checkpoint}: 'config' is not a dict")
    cfg = model_config_from(raw_cfg, architecture)
    cfg["training"] = {
        "checkpoint": checkpoint.name,
        "step": ckpt.get("step"),
        "weights_key": key,
    }

    with atomic_dir(out, replace=overwrite) as tmp:
        save_model_folder(tmp, cfg, state, fp16=fp16)
        checked_by, canonical = _through_architecture(tmp, cfg["architecture"])
        if canonical is not None:
            cfg = {**canonical, "training": cfg["training"]}
            save_model_folder(tmp, cfg, state, fp16=fp16)
        cfg = verify_folder(tmp, expected_architecture=cfg["architecture"])
    return ExportResult(out, cfg, checked_by)


def _through_architecture(folder: Path, architecture: str) -> tuple[str | None, dict | None]:
    """Load `folder` with the registered loader: (loader name, canonical config or None).

    An architecture this build cannot import is not checked (the folder is still verified);
    one that is importable must accept the tensors, or the export fails (WeightsError).
    """
    from vidmatte.models.weights.resolution import ARCHITECTURES, builder_for

    try:
        from_folder = builder_for(architecture)
    except WeightsError:
        return None, None
    model = from_folder(folder)
    fn = getattr(model, "folder_config", None)
    if callable(fn):
        canonical = fn()
        if isinstance(canonical, dict) and canonical.get("architecture") == architecture:
            return ARCHITECTURES[architecture], dict(canonical)
    return ARCHITECTURES[architecture], None


def run(args: argparse.Namespace) -> int:
    res = export_checkpoint(
        args.checkpoint,
        args.out,
        fp16=args.fp16,
        key=args.key,
        architecture=args.architecture,
        overwrite=args.overwrite,
    )
    from vidmatte.models.weights.folder import TENSORS_NAME

    cfg = res.config
    size = (res.folder / TENSORS_NAME).stat().st_size
    check = f"checked by {res.checked_by}" if res.checked_by else "architecture not importable here"
    print(
        f"exported {res.folder} ({cfg['architecture']}, {cfg['dtype']}, {size / 1e6:.1f} MB, "
        f"sha256 {cfg['sha256'][:12]}; {check})"
    )
    return 0

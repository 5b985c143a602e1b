"""Writing model folders (config.json + model.safetensors): training's side of the format.

Reading, checking and resolving model folders is weight loading and lives in
models/weights/folder.py (the format's definition: names, format version, sha256). Writing
one is file output, so it lives here, on top of matting/io/atomic.py — the one atomic-write
helper — and models/ keeps to nn.Modules and weight loading (docs/architecture.md). A model
describes its folder (`folder_config()`: architecture, arch settings, classes, input);
this module writes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidmatte.matting.io.atomic import atomic_dir, atomic_path, atomic_write_text, make_dirs
from vidmatte.models import __version__
from vidmatte.models.weights.folder import CONFIG_NAME, FORMAT_VERSION, TENSORS_NAME, sha256_file

if TYPE_CHECKING:
    import torch
    from torch import nn


def save_model_folder(
    folder: str | Path,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    *,
    fp16: bool = False,
) -> Path:
    """Write `folder/config.json` + `folder/model.safetensors`, each file atomically.

    `config` must name `architecture`; format_version, version, dtype and sha256 are filled
    in. fp16 halves floating-point tensors (integer buffers are kept as they are). The
    tensors file is renamed into place before config.json, whose sha256 names it.
    """
    from safetensors.torch import save_file

    if "architecture" not in config:
        raise ValueError("config needs an 'architecture' entry")
    folder = make_dirs(folder)
    tensors = {}
    for k, v in state_dict.items():
        v = v.detach().cpu()
        if fp16 and v.is_floating_point():
            v = v.half()
        tensors[k] = v.contiguous()
    with atomic_path(folder / TENSORS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        digest = sha256_file(tmp)
    full = {
        **config,
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "dtype": "float16" if fp16 else "float32",
        "sha256": digest,
    }
    atomic_write_text(folder / CONFIG_NAME, json.dumps(full, indent=2, sort_keys=True) + "\n")
    return folder


def write_model_folder(
    model: nn.Module, folder: str | Path, *, fp16: bool = False, replace: bool = True
) -> Path:
    """The model's own folder (`model.folder_config()` + its state dict), appearing whole:
    written beside `folder`, then renamed over it (an existing one only with `replace`)."""
    folder = Path(folder)
    with atomic_dir(folder, replace=replace) as tmp:
        save_model_folder(tmp, model.folder_config(), model.state_dict(), fp16=fp16)
    return folder

"""The one on-disk model format: a folder with `config.json` + `model.safetensors`.

config.json holds what is needed to rebuild the module and to refuse a wrong file:
`format_version`, `architecture` (a registered builder name), the architecture's own
keyword arguments under `arch`, `classes`, `input` (size, normalisation, colour order),
`version` of vidmatte that wrote it, and `sha256` of the tensors file. Loading checks the
format version and the checksum before safetensors parses anything, and explains every
mismatch in one line (WeightsError). No pickle is involved anywhere.

This module reads folders; writing one is file output and belongs to training
(training/release/model_folder.py: `save_model_folder`, `write_model_folder`), so that
models/ stays nn.Modules and weight loading (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidmatte.models.errors import WeightsError

if TYPE_CHECKING:  # torch and safetensors load lazily: CLIs import this for --help
    import torch

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
TENSORS_NAME = "model.safetensors"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_config(folder: str | Path) -> dict[str, Any]:
    """Read and validate `config.json` only (cheap: no tensors are read)."""
    folder = Path(folder)
    cfg_path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise WeightsError(f"weights folder not found: {folder}")
    if not cfg_path.is_file():
        raise WeightsError(f"{folder} is not a vidmatte model folder (no {CONFIG_NAME})")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"{cfg_path} is not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or "architecture" not in cfg:
        raise WeightsError(f"{cfg_path} has no 'architecture' entry")
    fv = cfg.get("format_version")
    if fv != FORMAT_VERSION:
        raise WeightsError(
            f"{cfg_path}: format version {fv!r} is not supported (this vidmatte reads "
            f"{FORMAT_VERSION}); upgrade vidmatte or re-export the weights"
        )
    return cfg


def load_model_folder(
    folder: str | Path, *, verify: bool = True, device: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Return (config, state_dict) after validating format version and checksum."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg = read_config(folder)
    tensors = folder / TENSORS_NAME
    if not tensors.is_file():
        raise WeightsError(f"{folder} has no {TENSORS_NAME}")
    if verify and cfg.get("sha256") and sha256_file(tensors) != cfg["sha256"]:
        raise WeightsError(
            f"{tensors} is corrupt or truncated (sha256 differs from config.json); "
            "download or export it again"
        )
    try:
        state = load_file(str(tensors), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{tensors} cannot be read as safetensors ({e})") from None
    return cfg, state

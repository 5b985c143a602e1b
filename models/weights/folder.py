"""The one on-disk model format: a folder with `config.json` + `model.safetensors`.

config.json holds what is needed to rebuild the module and to refuse a wrong file:
`format_version`, `architecture` (a registered builder name), the architecture's own
keyword arguments under `arch`, `classes`, `input` (size, normalisation, colour order),
`version` of vidmatte that wrote it, and `sha256` of the tensors file. Loading checks the
format version and the checksum before safetensors parses anything, and explains every
mismatch in one line (WeightsError). No pickle is involved anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidmatte.models import __version__
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


def save_model_folder(
    folder: str | Path,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    *,
    fp16: bool = False,
) -> Path:
    """Write `folder/config.json` + `folder/model.safetensors` atomically (temp + rename).

    `config` must name `architecture`; format_version, version and sha256 are filled in.
    fp16 halves floating-point tensors (integer buffers are kept as they are).
    """
    from safetensors.torch import save_file

    if "architecture" not in config:
        raise ValueError("config needs an 'architecture' entry")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in state_dict.items():
        v = v.detach().cpu()
        if fp16 and v.is_floating_point():
            v = v.half()
        tensors[k] = v.contiguous()
    fd, tmp = tempfile.mkstemp(prefix=".model-", suffix=".safetensors.tmp", dir=folder)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt"})
        digest = sha256_file(Path(tmp))
        os.replace(tmp, folder / TENSORS_NAME)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    full = {
        **config,
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "dtype": "float16" if fp16 else "float32",
        "sha256": digest,
    }
    tmp_cfg = folder / (".config.json.tmp")
    tmp_cfg.write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_cfg, folder / CONFIG_NAME)
    return folder


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

"""Which weights to use, where they come from, and how they become a module.

Users should never have to think about weights. Resolution order (docs/architecture.md), first hit wins:

1. explicit: a path given by the caller (`--weights`);
2. env: `$VIDMATTE_WEIGHTS` (or `$VIDMATTE_<NAME>_WEIGHTS`, e.g. VIDMATTE_INDEXNET_WEIGHTS);
3. assets: the default shipped in `vidmatte.assets` (`assets/weights/<name>/`);
4. hub-cache: the pinned Hub revision already in the standard Hugging Face cache
   (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else ~/.cache/huggingface/hub);
5. hub: download that pinned revision (not when `allow_download=False` or `HF_HUB_OFFLINE=1`).

A path (1, 2) may be a model folder or a folder holding one model folder per name
(`<path>/trimapnet/`, `<path>/indexnet/`), so one variable can point at a whole set. A model
folder in $VIDMATTE_WEIGHTS is used only for the name whose architecture it holds, so
VIDMATTE_WEIGHTS=<a trimapnet folder> does not break IndexNet's resolution; an explicit
path or a per-model variable must match, or the error says why.

Resolution reads config.json only (cheap). The sha256 of the tensors is checked when they
are loaded (`load_model_folder`) and by `verify_folder` / `vidmatte-cli weights verify`.
Hub revisions are pinned here, in one place, so a release always loads the exact bytes
it was tested with; the cache and offline switches are read at call time (not at import,
as huggingface_hub's own constants are) so that tests and long-lived GUIs see changes.
"""

from __future__ import annotations

import importlib
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidmatte.models.errors import WeightsError
from vidmatte.models.weights.folder import CONFIG_NAME, TENSORS_NAME, read_config

if TYPE_CHECKING:  # torch is imported lazily: resolution and --help must stay light
    import torch
    from torch import nn

#: The Hub revision every default model is pinned to. A tag is a placeholder until the first
#: upload: `vidmatte-train publish` prints the commit hash to record here instead.
PINNED_REVISION = "v0.1.0"

#: model name -> (Hub repo id, pinned revision)
HUB_REPOS: dict[str, tuple[str, str]] = {
    "trimapnet": ("vidmatte/vidmatte-trimapnet-mnv2", PINNED_REVISION),
    "indexnet": ("vidmatte/vidmatte-indexnet", PINNED_REVISION),
}
DEFAULT_MODELS = ("trimapnet", "indexnet")

#: architecture name (config.json "architecture") -> "module:Class.from_folder", imported lazily
#: because the networks are heavy and written in their own modules.
ARCHITECTURES: dict[str, str] = {
    "trimapnet": "vidmatte.models.trimapnet.model:TrimapNet.from_folder",
    "indexnet": "vidmatte.models.indexnet.model:IndexNetMatting.from_folder",
}

#: model name -> the architecture its folder must declare
MODEL_ARCHITECTURE: dict[str, str] = {"trimapnet": "trimapnet", "indexnet": "indexnet"}


ENV_WEIGHTS = "VIDMATTE_WEIGHTS"
#: files fetched from the Hub (README.md is the model card: licences and metrics)
HUB_FILES = [CONFIG_NAME, TENSORS_NAME, "README.md"]

SOURCES = ("explicit", "env", "assets", "hub-cache", "hub")


@dataclass
class ResolvedWeights:
    """Where a model's weights were found. `sha256` is the tensors' digest from config.json."""

    name: str
    folder: Path
    source: str  # "explicit" | "env" | "assets" | "hub-cache" | "hub"
    sha256: str
    config: dict = field(repr=False)

    @property
    def architecture(self) -> str:
        return self.config["architecture"]


# ---------------------------------------------------------------- locations and switches


def assets_weights_dir() -> Path:
    """`vidmatte.assets` dir / "weights" (read at call time so that tests can redirect it)."""
    import vidmatte.assets

    return Path(vidmatte.assets.ASSETS_DIR) / "weights"


def hub_cache_dir() -> Path:
    """The standard Hugging Face cache: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(os.path.expandvars(env)).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(os.path.expandvars(home)).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set to a true value."""
    val = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return val.strip().upper() in {"1", "ON", "YES", "TRUE", "Y"}


def env_var_for(name: str) -> str:
    return f"VIDMATTE_{name.upper().replace('-', '_')}_WEIGHTS"


def _check_name(name: str) -> str:
    if name not in MODEL_ARCHITECTURE:
        raise WeightsError(
            f"unknown model {name!r} (known: {', '.join(sorted(MODEL_ARCHITECTURE))})"
        )
    return MODEL_ARCHITECTURE[name]


# ---------------------------------------------------------------- checks


def check_architecture(cfg: Mapping[str, Any], expected: str, folder: Path) -> None:
    got = cfg.get("architecture")
    if got != expected:
        raise WeightsError(
            f"{folder} holds {got!r} weights, but {expected!r} weights are needed here"
        )


def _check_tensors_file(folder: Path) -> Path:
    tensors = folder / TENSORS_NAME
    if not tensors.is_file():
        raise WeightsError(f"{folder} has no {TENSORS_NAME}")
    return tensors


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """Parse a safetensors header (JSON) and check it against the file size, reading no tensors.

    Catches truncation even where no checksum is recorded: the header's last data offset
    must equal the bytes that follow it.
    """
    import json

    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise WeightsError(f"{path} is truncated ({size} bytes, no safetensors header)")
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, 100 << 20):
            raise WeightsError(f"{path} is not a safetensors file or is truncated (bad header)")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise WeightsError(f"{path} has a corrupt safetensors header") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path} has a corrupt safetensors header")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise WeightsError(f"{path} has a corrupt entry {key!r} in its header") from None
    if 8 + n + end != size:
        raise WeightsError(
            f"{path} is truncated or padded: header promises {8 + n + end} bytes, file has {size}"
        )
    return header


def verify_folder(folder: str | Path, *, expected_architecture: str | None = None) -> dict:
    """Full check of a model folder: config, checksum, safetensors header. Returns the config."""
    folder = Path(folder)
    cfg = read_config(folder)
    if expected_architecture is not None:
        check_architecture(cfg, expected_architecture, folder)
    tensors = _check_tensors_file(folder)
    digest = cfg.get("sha256")
    if not digest:
        raise WeightsError(f"{folder / CONFIG_NAME} records no sha256 of {TENSORS_NAME}")
    from vidmatte.models.weights.folder import sha256_file

    if sha256_file(tensors) != digest:
        raise WeightsError(
            f"{tensors} is corrupt or truncated (sha256 differs from config.json); "
            "download or export it again"
        )
    read_safetensors_header(tensors)
    return cfg


# ---------------------------------------------------------------- architecture registry


def builder_for(architecture: str) -> Callable[..., Any]:
    """The `from_folder` callable registered for `architecture` (imported on first use)."""
    target = ARCHITECTURES.get(architecture)
    if target is None:
        raise WeightsError(
            f"unknown architecture {architecture!r} (known: {', '.join(sorted(ARCHITECTURES))})"
        )
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise WeightsError(
            f"architecture {architecture!r} is not available in this build ({e})"
        ) from None
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def register_architecture(name: str, target: str) -> None:
    """Register "module:Attr.path" as the loader of folders declaring `name`."""
    if ":" not in target:
        raise ValueError("target must look like 'package.module:Class.from_folder'")
    ARCHITECTURES[name] = target


def load_module(
    folder: str | Path,
    expected_architecture: str,
    builder: Callable[[dict], nn.Module],
    *,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Build `builder(config)` and load the folder's tensors into it, strictly, in eval mode.

    Checks format version, checksum, architecture, and every key and shape before copying,
    so a mismatch is reported as one line naming the first offending key. Tensors are cast
    to the module's dtypes (an fp16 folder loads into an fp32 module and vice versa).
    """
    from vidmatte.models.weights.folder import load_model_folder
    from vidmatte.models.weights.state_dict import load_state_strict

    folder = Path(folder)
    cfg = read_config(folder)
    check_architecture(cfg, expected_architecture, folder)
    cfg, state = load_model_folder(folder)
    module = builder(cfg)
    load_state_strict(module, state, folder)
    return module.to(device).eval()


def load_model(
    name: str = "trimapnet",
    explicit: str | Path | None = None,
    *,
    allow_download: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[Any, ResolvedWeights]:
    """Resolve `name` and build it through its registered architecture: (module, resolved)."""
    res = resolve_weights(name, explicit, allow_download=allow_download)
    module = builder_for(res.architecture)(res.folder)
    if hasattr(module, "to"):
        module = module.to(device)
    return module, res


# ---------------------------------------------------------------- resolution


def _model_folder_in(path: Path, name: str) -> Path | None:
    """`path` itself if it is a model folder, else `path/<name>` if that is one, else None."""
    if (path / CONFIG_NAME).is_file():
        return path
    sub = path / name
    if (sub / CONFIG_NAME).is_file():
        return sub
    return None


def _resolved(name: str, folder: Path, source: str, cfg: dict | None = None) -> ResolvedWeights:
    if cfg is None:
        cfg = read_config(folder)
    check_architecture(cfg, MODEL_ARCHITECTURE[name], folder)
    _check_tensors_file(folder)
    return ResolvedWeights(name, folder, source, str(cfg.get("sha256", "")), cfg)


def _from_path(
    name: str, raw: str | Path, source: str, what: str, *, lenient: bool = False
) -> ResolvedWeights | None:
    path = Path(os.path.expandvars(str(raw))).expanduser()
    if not path.exists():
        raise WeightsError(f"{what} points to {path}, which does not exist")
    folder = _model_folder_in(path, name)
    if folder is None:
        raise WeightsError(
            f"{what} points to {path}, which is not a model folder (no {CONFIG_NAME}) "
            f"and has no {name}/ model folder inside"
        )
    cfg = read_config(folder)
    if lenient and folder == path and cfg["architecture"] != MODEL_ARCHITECTURE[name]:
        return None  # one folder in $VIDMATTE_WEIGHTS serves the model it holds
    return _resolved(name, folder, source, cfg)


def _hub_cached(name: str) -> Path | None:
    """The pinned snapshot folder if the Hub cache holds it (no network); else None."""
    from huggingface_hub import snapshot_download

    repo_id, revision = HUB_REPOS[name]
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=str(hub_cache_dir()),
                local_files_only=True,
                allow_patterns=HUB_FILES,
            )
        )
    except Exception:  # noqa: BLE001 - not cached / incomplete snapshot: "not there" here
        return None
    # an interrupted download (a file or its blob missing) counts as not cached, so that
    # resolve_weights downloads it again instead of failing
    complete = all((folder / n).is_file() for n in (CONFIG_NAME, TENSORS_NAME))
    return folder if complete else None


def _hub_error(name: str, e: BaseException) -> str:
    repo_id, revision = HUB_REPOS[name]
    text = str(e).strip()
    detail = text.splitlines()[0].removeprefix("Got: ")[:160] if text else type(e).__name__
    return f"cannot download {name} weights from the Hub ({repo_id}@{revision}): {detail}"


def find_weights(
    name: str = "trimapnet", explicit: str | Path | None = None
) -> ResolvedWeights | None:
    """Steps 1-4 of the resolution order: never downloads; None when nothing is there.

    A path that was given but is wrong (missing, not a model folder, another architecture)
    raises WeightsError: silently falling back to other weights would hide a typo.
    """
    _check_name(name)
    if explicit is not None and str(explicit) != "":
        return _from_path(name, explicit, "explicit", "--weights")
    for var in (env_var_for(name), ENV_WEIGHTS):
        raw = os.environ.get(var)
        if raw:
            found = _from_path(name, raw, "env", f"${var}", lenient=var == ENV_WEIGHTS)
            if found is not None:
                return found
    assets = assets_weights_dir() / name
    if (assets / CONFIG_NAME).is_file():
        return _resolved(name, assets, "assets")
    if name in HUB_REPOS:
        snap = _hub_cached(name)
        if snap is not None:
            return _resolved(name, snap, "hub-cache")
    return None


def nothing_found_message(name: str) -> str:
    repo_id, revision = HUB_REPOS.get(name, ("(no Hub repo)", ""))
    return (
        f"no {name} weights: none given (--weights, ${ENV_WEIGHTS}), none in "
        f"{assets_weights_dir() / name}, none cached for {repo_id}@{revision} in {hub_cache_dir()}"
    )


def download_weights(name: str, *, force: bool = False) -> ResolvedWeights:
    """Fetch the pinned revision into the Hub cache and verify it fully."""
    _check_name(name)
    if name not in HUB_REPOS:
        raise WeightsError(f"{name} has no Hub repository to download from")
    if hub_offline():
        raise WeightsError(
            f"{nothing_found_message(name)}; downloads are off (HF_HUB_OFFLINE is set)"
        )
    from huggingface_hub import snapshot_download

    repo_id, revision = HUB_REPOS[name]
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=str(hub_cache_dir()),
            allow_patterns=HUB_FILES,
            force_download=force,
        )
    except WeightsError:
        raise
    except Exception as e:  # noqa: BLE001 - network, auth, missing repo: one line for the user
        raise WeightsError(_hub_error(name, e)) from None
    folder = Path(folder)
    cfg = verify_folder(folder, expected_architecture=MODEL_ARCHITECTURE[name])
    return ResolvedWeights(name, folder, "hub", cfg["sha256"], cfg)


def resolve_weights(
    name: str = "trimapnet", explicit: str | Path | None = None, *, allow_download: bool = True
) -> ResolvedWeights:
    """The full resolution order (module docstring). Raises WeightsError (one line, exit 5)."""
    found = find_weights(name, explicit)
    if found is not None:
        return found
    hint = f"run `vidmatte-cli weights download {name}` while online, or pass --weights FOLDER"
    if not allow_download:
        raise WeightsError(f"{nothing_found_message(name)}; {hint}")
    if hub_offline():
        raise WeightsError(
            f"{nothing_found_message(name)}; downloads are off (HF_HUB_OFFLINE is set); {hint}"
        )
    try:
        return download_weights(name)
    except WeightsError as e:
        raise WeightsError(f"{e}; {hint}") from None

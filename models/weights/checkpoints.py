"""Read third-party checkpoints (official SOLOv2, IndexNet, RAFT, ...) without running code.

The one path for every checkpoint that is not one of our model folders: `torch.load` is
called here and nowhere else (tests/test_packaging.py checks that), and the ImageNet
MobileNetV2 `.npz` is read here once for both networks that start from it.

A `.pth` file is a pickle: loading one with plain `torch.load` can run any code its author
put in it. Everything that is not our own safetensors goes through
`load_third_party_checkpoint` (or `load_checkpoint_object` for our trainer's resumable
checkpoints), which only ever calls `torch.load(..., weights_only=True)`
(torch's restricted unpickler: tensors, containers and primitive values, nothing callable
beyond torch's own rebuild functions). The file is sniffed first so that every failure —
not a checkpoint at all, truncated, a TorchScript archive (code), the pre-1.6 tar format,
an object the restricted unpickler refuses — becomes one line in a `WeightsError` (exit 5)
rather than a pickle traceback.

Decisions:
- numpy scalars and arrays are allowlisted (a narrow, fixed set: dtype, scalar,
  ndarray reconstruction, under numpy 1's and 2's module names), because many research
  checkpoints store e.g. `best_loss` as a numpy float or weights as arrays (detectron2's
  {"model": arrays}); numeric arrays become tensors. Nothing else is.
- Checkpoints often wrap the weights (`{"state_dict": ...}`, `{"model": ...}`, mmdet's
  `{"meta", "state_dict"}`); the first mapping of tensors among the usual keys is returned,
  keys unchanged (`module.` prefixes are for the importer: see `strip_prefix`).
"""

from __future__ import annotations

import pickle
import re
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vidmatte.models.errors import WeightsError

#: keys under which checkpoints commonly keep their weights, searched in this order
WRAPPER_KEYS = (
    "state_dict",
    "model",
    "model_state",
    "model_state_dict",
    "params",
    "net",
    "weights",
)

_ZIP_MAGIC = b"PK\x03\x04"


def _sniff(path: Path) -> str:
    """'zip' | 'pickle' | 'tar' | 'safetensors' | 'empty' | 'unknown' from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "empty"
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) > 9:
        (n,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 0 < n < (100 << 20):
            return "safetensors"
    return "unknown"


def _numpy_safe_globals() -> list[Any]:
    """The narrow numpy allowlist (see module docstring); empty if numpy is absent."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        return []
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    allowed: list[Any] = [multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype]
    # pickles written under numpy 1.x name numpy.core, under 2.x numpy._core: accept both
    allowed += [
        (multiarray.scalar, "numpy.core.multiarray.scalar"),
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    ]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [
            getattr(dtypes, n)
            for n in dir(dtypes)
            if n.endswith("DType") and isinstance(getattr(dtypes, n), type)
        ]
    return allowed


def _one_line(msg: str, limit: int = 160) -> str:
    """The first line of torch's (often multi-paragraph) error text, shortened."""
    lines = [ln.strip() for ln in str(msg).splitlines() if ln.strip()]
    return (lines[0] if lines else msg)[:limit]


def _refusal(msg: str) -> str:
    """What the restricted unpickler refused, from its long message."""
    m = re.search(r"GLOBAL ([\w.]+)", msg)
    if m:
        return f"it would import {m.group(1)}"
    m = re.search(r"Unsupported operand (\d+)", msg)
    if m:
        return f"it uses pickle opcode {m.group(1)}"
    for ln in msg.splitlines():
        if "WeightsUnpickler error:" in ln:
            return ln.split("WeightsUnpickler error:", 1)[1].strip()[:120]
    return "unsupported content"


def _to_tensor(v: Any) -> torch.Tensor | None:
    if isinstance(v, torch.Tensor):
        return v
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return None
    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
        return torch.from_numpy(v.copy())
    return None


def _tensor_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    """The tensors of a flat mapping, or None if it holds none."""
    if not isinstance(obj, Mapping):
        return None
    out = {}
    for k, v in obj.items():
        t = _to_tensor(v)
        if t is not None:
            out[str(k)] = t
    return out or None


def extract_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    """Find the weights inside a loaded checkpoint object (see WRAPPER_KEYS)."""
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if key in obj:
                found = extract_state_dict(obj[key])
                if found:
                    return found
    return _tensor_dict(obj)


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove `prefix` (e.g. DataParallel's 'module.') from every key that has it."""
    n = len(prefix)
    return {(k[n:] if k.startswith(prefix) else k): v for k, v in state.items()}


def load_checkpoint_object(path: str | Path) -> Any:
    """`torch.load(path, weights_only=True)` on CPU, every failure mapped to one WeightsError.

    Returns whatever plain object the file holds (a dict of tensors, a trainer's
    {"model", "config", "step"} dict, ...). Safetensors files are read as such.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    kind = _sniff(path)
    if kind == "empty":
        raise WeightsError(f"{path} is empty (0 bytes)")
    if kind == "tar":
        raise WeightsError(
            f"{path} uses PyTorch's pre-1.0 tar format, which cannot be read without running "
            "its pickle; convert it in a sandbox with a current torch first"
        )
    if kind == "unknown":
        raise WeightsError(
            f"{path} is not a PyTorch checkpoint (neither a zip nor a legacy pickle file)"
        )
    if kind == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{path} is corrupt or truncated safetensors ({e})") from None
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise WeightsError(f"{path} is truncated or corrupt ({_one_line(str(e))})") from None
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            raise WeightsError(
                f"{path} is a TorchScript archive (it contains code) and is refused; "
                "only plain state-dict checkpoints can be imported"
            )
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            # weights_only=True passed explicitly: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot
            # override it (torch only lets that variable change an unset argument).
            return torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as e:
        raise WeightsError(
            f"{path} was refused (cannot be loaded safely): {_refusal(str(e))}; only tensors "
            "and plain values are accepted from checkpoints (a pickle can run code)"
        ) from None
    except EOFError:
        raise WeightsError(f"{path} is truncated (the data ends early)") from None
    except RuntimeError as e:
        msg = str(e)
        if any(w in msg for w in ("zip archive", "PytorchStreamReader", "EOF", "corrupt")):
            raise WeightsError(f"{path} is truncated or corrupt ({_one_line(msg)})") from None
        raise WeightsError(f"{path} cannot be read as a checkpoint ({_one_line(msg)})") from None
    except (OSError, ValueError, TypeError, AttributeError, KeyError, struct.error) as e:
        raise WeightsError(
            f"{path} is corrupt or truncated ({type(e).__name__}: {_one_line(str(e))})"
        ) from None


def load_third_party_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a foreign checkpoint's tensors (CPU) without ever executing code from it.

    Raises WeightsError (one line) for a missing, empty, truncated, unrecognised or
    unsafe file, and for one that holds no tensors.
    """
    obj = load_checkpoint_object(path)
    state = extract_state_dict(obj)
    if not state:
        raise WeightsError(f"{path} holds no tensors (found {type(obj).__name__})")
    return state


def read_mobilenet_v2_npz(path: str | Path) -> dict[str, torch.Tensor]:
    """torchvision-named MobileNetV2 ImageNet state from the dequantised `.npz` in ../shared.

    The file (shared/weights/MANIFEST.md 1.2) holds each conv's `features.I.J.weight` and
    the following BN folded into `features.I.J.bias_folded`. The BN comes back as
    identity-plus-bias under its torchvision name `features.I.(J+1).*`: weight 1, bias =
    the folded bias, running mean 0, running var 1 - eps, so BN(conv(x)) = conv(x) + bias.
    Read with allow_pickle=False: no code runs. Tensors are float32 on the CPU.
    """
    import numpy as np

    path = Path(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read backbone weights {path} ({e})") from None
    eps = 1e-5
    out: dict[str, torch.Tensor] = {}
    with npz:
        for k in npz.files:
            if not (k.startswith("features.") and k.endswith(".weight")):
                continue
            conv = k[: -len(".weight")]
            if conv + ".bias_folded" not in npz.files:
                raise WeightsError(f"{path} lacks {conv}.bias_folded (not the MobileNetV2 npz)")
            head, last = conv.rsplit(".", 1)
            bn = f"{head}.{int(last) + 1}"
            b = torch.from_numpy(npz[conv + ".bias_folded"].astype("float32"))
            out[k] = torch.from_numpy(npz[k].astype("float32"))
            out[bn + ".weight"] = torch.ones_like(b)
            out[bn + ".bias"] = b
            out[bn + ".running_mean"] = torch.zeros_like(b)
            out[bn + ".running_var"] = torch.ones_like(b) - eps
    if not out:
        raise WeightsError(f"{path} holds no MobileNetV2 weights (no features.*.weight)")
    return out

"""Device auto-selection: CUDA, then Apple MPS, then CPU.

fp16 is used only on CUDA (autocast): on CPU it is slower and on MPS not reliably faster.
"""

from __future__ import annotations

import torch

from vidmatte.matting.config import DEVICES
from vidmatte.models.errors import UsageError


def select_device(name: str = "auto") -> torch.device:
    """Return the torch device for a user's choice; 'auto' picks the fastest present."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine")
        return torch.device(name)
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError("--device mps: Apple MPS is not available on this machine")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise UsageError(f"--device {name!r}: choose one of {', '.join(DEVICES)}")


def use_fp16(device: torch.device, requested: bool = True) -> bool:
    return requested and device.type == "cuda"

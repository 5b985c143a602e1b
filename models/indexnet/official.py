"""Import the official IndexNet matting checkpoint (poppinace/indexnet_matting,
`indexnet_matting.pth.tar`) into `IndexNetMatting` by key mapping.

The official file is a dict with 'state_dict' saved from nn.DataParallel (keys prefixed
`module.`), model built with output_stride 32, ASPP, std_conv 5x5 decoder, depthwise M2O
nonlinear index blocks with context. Our modules have the same shapes under clearer
names; `OFFICIAL_RULES` maps one onto the other. Read by the one checkpoint reader
(models/weights/checkpoints.py: `torch.load(weights_only=True)`), never unpickled otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from vidmatte.models.errors import WeightsError

# (official regex, our replacement), tried in order; every official key must match one.
OFFICIAL_RULES: list[tuple[str, str]] = [
    (r"^layer0\.(\d)\.", r"stem.\1."),
    (r"^layer([1-7])\.(\d+)\.conv\.", lambda m: f"stages.{int(m[1]) - 1}.{m[2]}.conv."),
    (r"^index(\d)\.indexnet([1-4])\.", lambda m: f"index.l{m[1]}.branches.{int(m[2]) - 1}."),
    (r"^dconv_pp\.aspp([1-4])\.atrous_conv\.", lambda m: f"aspp.branches.{int(m[1]) - 1}."),
    (r"^dconv_pp\.global_avg_pool\.", "aspp.image_pool."),
    (r"^dconv_pp\.bottleneck_conv\.", "aspp.project."),
    (r"^decoder_layer(\d)\.dconv\.", r"decoder.d\1.conv."),
    (r"^pred\.0\.", "head.conv."),
    (r"^pred\.1\.", "head.out."),
]


def map_official_key(key: str) -> str:
    """Our parameter name for an official key (after the `module.` prefix is removed)."""
    for pat, rep in OFFICIAL_RULES:
        new, n = re.subn(pat, rep, key)
        if n:
            return new
    raise WeightsError(f"unknown key in IndexNet checkpoint: {key}")


def convert_official_state_dict(checkpoint: dict) -> dict[str, torch.Tensor]:
    """Official checkpoint dict (or its state_dict) -> our state_dict (shapes unchanged)."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise WeightsError("not an IndexNet checkpoint (no 'state_dict' of tensors)")
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise WeightsError(f"IndexNet checkpoint entry {k} is not a tensor")
        k = k[len("module.") :] if k.startswith("module.") else k
        out[map_official_key(k)] = v
    return out


def load_official_state(model, checkpoint: dict) -> None:
    """Load an official checkpoint dict into `model` strictly (BN counters may be absent)."""
    from vidmatte.models.weights.state_dict import load_state_strict

    state = convert_official_state_dict(checkpoint)
    counters = [k for k in model.state_dict() if k.endswith("num_batches_tracked")]
    load_state_strict(model, state, "IndexNet checkpoint", optional=counters)


def load_official_checkpoint(path: str | Path):
    """Build an IndexNetMatting from the official `indexnet_matting.pth.tar` (eval mode)."""
    from vidmatte.models.indexnet.model import IndexNetMatting
    from vidmatte.models.weights.checkpoints import load_third_party_checkpoint

    model = IndexNetMatting()
    load_official_state(model, load_third_party_checkpoint(path))
    return model.eval()

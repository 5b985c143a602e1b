"""The one strict state-dict check: every key and shape, before anything is copied.

`torch.nn.Module.load_state_dict(strict=True)` raises a multi-line RuntimeError listing
every key; a user who pointed `--weights` at the wrong folder needs one line naming the
first offending tensor (WeightsError, exit 5). Every loader — our model folders
(`resolution.load_module`, `TrimapNet.from_folder`, `IndexNetMatting.from_folder`) and the
third-party imports (AdelaiDet SOLOv2, IndexNet, RAFT-small, backbone initialisations) —
goes through `load_state_strict` after mapping keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from vidmatte.models.errors import WeightsError

if TYPE_CHECKING:  # torch loads lazily: CLIs import the weights package for --help
    import torch
    from torch import nn


def check_state_dict(
    expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor], source: Any
) -> None:
    """Raise WeightsError naming the first missing / wrongly shaped / unexpected key.

    Keys are checked in the module's order, then the file's extras; the counts of each
    kind of mismatch follow, so a wrong architecture is told from one damaged tensor.
    """
    missing = [k for k in expected if k not in got]
    shaped = [k for k in expected if k in got and tuple(got[k].shape) != tuple(expected[k].shape)]
    unexpected = [k for k in got if k not in expected]
    if not (missing or shaped or unexpected):
        return
    first = next(k for k in expected if k in missing or k in shaped) if missing or shaped else None
    if first is not None and first in shaped:
        what = (
            f"tensor {first!r} has shape {tuple(got[first].shape)}, the model expects "
            f"{tuple(expected[first].shape)} (weights for a different configuration?)"
        )
    elif first is not None:
        what = f"missing tensor {first!r}"
    else:
        what = f"unexpected tensor {unexpected[0]!r} (not part of this model)"
    raise WeightsError(
        f"{source} does not fit this model: {what}; {len(missing)} missing, "
        f"{len(shaped)} mis-shaped, {len(unexpected)} unexpected of {len(got)} tensors"
    )


def load_state_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: Any,
    *,
    optional: Iterable[str] = (),
) -> None:
    """Check `state` against `module` (check_state_dict), then load it strictly.

    `optional` names module keys a file may lack (e.g. BN's `num_batches_tracked`, or
    buffers rebuilt from config.json): those keep the module's own values. Tensors are
    cast to the module's dtypes by the copy (an fp16 folder loads into an fp32 module).
    """
    own = module.state_dict()
    full = dict(state)
    for k in optional:
        if k in own and k not in full:
            full[k] = own[k]
    check_state_dict(own, full, source)
    module.load_state_dict(full, strict=True)

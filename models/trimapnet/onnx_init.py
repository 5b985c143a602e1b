"""Initialise a PyTorch module from an ONNX file's initializers, by name; no code runs.

The ONNX file is a protobuf: `onnx.load` parses it, `numpy_helper.to_array` turns each
initializer into an array. Nothing in it is executed (unlike a pickle or TorchScript).

A PyTorch export names a conv's weight and bias initializers after the node only loosely
(`onnx::Conv_1173`) but names the node after the module scope it came from, e.g.
`/backbone/backbone/dark2/dark2.0/dconv/conv/Conv`. `scope_to_module` turns that scope into
the module path `backbone.backbone.dark2.0.dconv.conv` (a Sequential child shows up as
`dark2.0` below `dark2`, so each component keeps only what its parent's name does not
already say); the node's 2nd and 3rd inputs are then that module's weight and bias.
Initializers already named by parameter (`head.cls_preds.0.weight`) map as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidmatte.models.errors import WeightsError


def scope_to_module(node_name: str) -> str:
    """`/a/b/b.0/conv/Conv` -> `a.b.0.conv` (the node's module path; the op name dropped)."""
    parts = [p for p in node_name.split("/") if p][:-1]
    out: list[str] = []
    prev = ""
    for p in parts:
        out.append(p[len(prev) + 1 :] if prev and p.startswith(prev + ".") else p)
        prev = p
    return ".".join(out)


def onnx_parameters(path: str | Path) -> dict[str, np.ndarray]:
    """{module parameter name: array} for every Conv / Gemm weight and bias in the graph."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise WeightsError(
            "reading ONNX weights needs the `onnx` package (pip install 'vidmatte[train]')"
        ) from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError, OSError
        raise WeightsError(f"cannot read ONNX file {path} ({type(e).__name__}: {e})") from None
    inits = {i.name: i for i in model.graph.initializer}
    out: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        module = scope_to_module(node.name)
        for suffix, name in zip(("weight", "bias"), node.input[1:3], strict=False):
            if name in inits:
                out[f"{module}.{suffix}"] = numpy_helper.to_array(inits[name])
    return out


def load_onnx_initializers(
    module: nn.Module, path: str | Path, prefix: str = "", strict: bool = True
) -> int:
    """Copy the ONNX parameters under `prefix` (stripped) into `module`, by name.

    strict: every parameter of `module` must be found with the same shape (a partial
    initialisation would train from half-random weights without anyone noticing).
    Returns the number of tensors loaded.
    """
    from vidmatte.models.weights.state_dict import load_state_strict

    params = {k[len(prefix) :]: v for k, v in onnx_parameters(path).items() if k.startswith(prefix)}
    own = module.state_dict()
    state = {k: torch.from_numpy(np.array(params[k], copy=True)) for k in own if k in params}
    # not strict: what the file lacks keeps the module's own values (a partial init)
    keep = () if strict else [k for k in own if k not in params]
    load_state_strict(module, state, path, optional=keep)
    return len(state)

"""Import official AdelaiDet/detectron2 SOLOv2 checkpoints (e.g. SOLOv2_R50_3x) into TrimapNet.

The checkpoint is read by the one checkpoint reader (models/weights/checkpoints.py,
torch.load(weights_only=True) with a narrow numpy allowlist): detectron2 files are pickled
dicts with a "model" entry of tensors or numpy arrays; numeric arrays become tensors,
anything weights_only refuses is a WeightsError. Floating tensors are read as float32. Keys map by name (see `map_adelaidet_keys`); the network is built in binary
mode with the official head sizes, detectron2's BGR input and pixel mean/std, and a
stride-in-1x1 ResNet (MSRA weights). `trimap_from_binary` then starts trimap mode.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor

from vidmatte.models.errors import WeightsError
from vidmatte.models.trimapnet.model import (
    PostprocessConfig,
    TrimapNet,
    TrimapNetConfig,
    empty_model,
)
from vidmatte.models.weights.checkpoints import load_third_party_checkpoint
from vidmatte.models.weights.state_dict import load_state_strict

#: detectron2 / AdelaiDet SOLOv2 defaults (configs/SOLOv2/Base-SOLOv2.yaml + adet defaults).
D2_PIXEL_MEAN_BGR = (103.530, 116.280, 123.675)
D2_PIXEL_STD_BGR = (1.0, 1.0, 1.0)

_BN = {"weight", "bias", "running_mean", "running_var"}
_SKIP = re.compile(r"(num_batches_tracked$|^pixel_(mean|std)$)")


def _map_norm(rest: str, conv_to_bn: str) -> str | None:
    # "conv1.norm.weight" -> "bn1.weight"; "conv1.weight" -> "conv1.weight"
    parts = rest.split(".")
    if len(parts) == 3 and parts[1] == "norm" and parts[2] in _BN:
        return f"{conv_to_bn}.{parts[2]}"
    return None


def map_adelaidet_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename official SOLOv2 keys to TrimapNet's. Unknown keys raise WeightsError.

    backbone.bottom_up.stem.conv1[.norm]    -> backbone.body.conv1 / bn1
    backbone.bottom_up.res{2..5}.{i}.conv{k}[.norm] -> backbone.body.layer{1..4}.{i}.conv{k} / bn{k}
    ....shortcut[.norm]                      -> ....downsample.0 / downsample.1
    backbone.fpn_lateral{2..5} / fpn_output{2..5} -> fpn.lateral.{0..3} / fpn.output.{0..3}
    ins_head.* and mask_head.*               -> the same names (modules mirror AdelaiDet)
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if _SKIP.search(key):
            continue
        new = _map_key(key)
        if new is None:
            raise WeightsError(f"unexpected key in SOLOv2 checkpoint: {key}")
        out[new] = value
    return out


def _map_key(key: str) -> str | None:
    if key.startswith(("ins_head.", "mask_head.")):
        return key
    m = re.fullmatch(r"backbone\.fpn_(lateral|output)([2-5])\.(weight|bias)", key)
    if m:
        return f"fpn.{m[1]}.{int(m[2]) - 2}.{m[3]}"
    m = re.fullmatch(r"backbone\.bottom_up\.stem\.conv1\.(.+)", key)
    if m:
        if m[1] == "weight":
            return "backbone.body.conv1.weight"
        bn = _map_norm("conv1." + m[1], "bn1")
        return f"backbone.body.{bn}" if bn else None
    m = re.fullmatch(r"backbone\.bottom_up\.res([2-5])\.(\d+)\.(conv[123]|shortcut)\.(.+)", key)
    if not m:
        return None
    prefix = f"backbone.body.layer{int(m[1]) - 1}.{m[2]}"
    conv, rest = m[3], m[4]
    if rest == "weight":
        return f"{prefix}.{'downsample.0' if conv == 'shortcut' else conv}.weight"
    if rest.startswith("norm.") and rest[5:] in _BN:
        bn = "downsample.1" if conv == "shortcut" else f"bn{conv[-1]}"
        return f"{prefix}.{bn}.{rest[5:]}"
    return None


def _resnet_depth(state: dict[str, Tensor]) -> int:
    blocks = {}
    for k in state:
        m = re.match(r"backbone\.bottom_up\.res([2-5])\.(\d+)\.", k)
        if m:
            blocks[int(m[1])] = max(blocks.get(int(m[1]), 0), int(m[2]) + 1)
    bottleneck = any(".conv3." in k for k in state if k.startswith("backbone.bottom_up."))
    counts = tuple(blocks.get(i, 0) for i in (2, 3, 4, 5))
    table = {
        ((2, 2, 2, 2), False): 18,
        ((3, 4, 6, 3), False): 34,
        ((3, 4, 6, 3), True): 50,
        ((3, 4, 23, 3), True): 101,
    }
    depth = table.get((counts, bottleneck))
    if depth is None:
        raise WeightsError(f"unsupported SOLOv2 backbone (ResNet blocks {counts})")
    return depth


def official_config(state: dict[str, Tensor]) -> TrimapNetConfig:
    """Binary-mode config matching an official checkpoint (head sizes read from shapes)."""
    depth = _resnet_depth(state)
    try:
        cate = state["ins_head.cate_pred.weight"]
        kern = state["ins_head.kernel_pred.weight"]
        mask_conv = state["mask_head.convs_all_levels.0.conv0.0.weight"]
        pred = state["mask_head.conv_pred.0.weight"]
        lateral = state["backbone.fpn_lateral2.weight"]
    except KeyError as e:
        raise WeightsError(f"not a SOLOv2 checkpoint: {e.args[0]} is missing") from None
    n_convs = len({k.split(".")[2] for k in state if k.startswith("ins_head.cate_tower.")})
    num_convs = n_convs // 2  # conv + GroupNorm per layer carry parameters
    if int(kern.shape[0]) != int(pred.shape[0]):
        raise WeightsError("kernel_pred and mask conv_pred disagree: not a binary SOLOv2 model")
    return TrimapNetConfig(
        backbone=f"resnet{depth}",
        mode="binary",
        num_classes=int(cate.shape[0]),
        input_short_side=800,
        fpn_channels=int(lateral.shape[0]),
        ins_channels=int(cate.shape[1]),
        num_instance_convs=num_convs,
        mask_channels=int(mask_conv.shape[0]),
        num_masks=int(pred.shape[0]),
        stride_in_1x1=depth >= 50,
        colour_order="BGR",
        pixel_mean=D2_PIXEL_MEAN_BGR,
        pixel_std=D2_PIXEL_STD_BGR,
        postprocess=PostprocessConfig(update_thr=0.05),
    )


def model_from_adelaidet_state(state: dict[str, Tensor], source: str = "state") -> TrimapNet:
    cfg = official_config(state)
    model = empty_model(cfg)
    mapped = map_adelaidet_keys(state)
    mapped["mask_logit_bias"] = torch.zeros_like(model.mask_logit_bias)
    load_state_strict(model, mapped, source)
    return model.eval()


def load_adelaidet_solov2(path: Path) -> TrimapNet:
    """An official AdelaiDet SOLOv2 .pth as a binary-mode TrimapNet (80 COCO classes)."""
    state = load_third_party_checkpoint(path)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return model_from_adelaidet_state(state, str(path))


@torch.no_grad()
def trimap_from_binary(model: TrimapNet, *, unknown_logit: float = -2.0) -> TrimapNet:
    """A trimap-mode TrimapNet initialised from a binary-mode one (persons only).

    With binary mask logit z, the trimap logits start as (bg, unknown, fg) =
    (-z/2, unknown_logit, z/2): softmax then gives P(fg)/P(bg) = exp(z), the binary
    model's odds, and a small "unknown" that fine-tuning grows at the boundaries. The
    category branch keeps the person row (class 0) of the 80 COCO classes.
    """
    src = model.config
    if src.mode != "binary":
        raise ValueError("trimap_from_binary needs a binary-mode model")
    from dataclasses import replace

    cfg = replace(src, mode="trimap", num_classes=1, class_names=("person",))
    new = TrimapNet(cfg)
    state = model.state_dict()
    e = src.num_masks
    kw = state["ins_head.kernel_pred.weight"]
    kb = state["ins_head.kernel_pred.bias"]
    state["ins_head.kernel_pred.weight"] = torch.cat([-0.5 * kw, torch.zeros_like(kw), 0.5 * kw])
    state["ins_head.kernel_pred.bias"] = torch.cat([-0.5 * kb, torch.zeros_like(kb), 0.5 * kb])
    assert state["ins_head.kernel_pred.weight"].shape[0] == 3 * e
    state["ins_head.cate_pred.weight"] = state["ins_head.cate_pred.weight"][:1].clone()
    state["ins_head.cate_pred.bias"] = state["ins_head.cate_pred.bias"][:1].clone()
    bias = float(state["mask_logit_bias"][0])
    state["mask_logit_bias"] = torch.tensor([-bias / 2, unknown_logit, bias / 2])
    new.load_state_dict(state, strict=True)
    return new.to(model.mask_logit_bias.device).train(model.training)

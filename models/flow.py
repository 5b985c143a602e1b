"""Optical flow for the temporal loss (Eq. 4) and for temporal-consistency metrics.

Two estimators behind one convention: a flow field `F` of shape H×W×2 (numpy) or B×2×H×W
(torch), in pixels, channel 0 = x, 1 = y, *from* image 0 *to* image 1, i.e. the pixel at
p in image 0 is found at p + F(p) in image 1.

- `dis_flow`: OpenCV DIS, weight-free, the CPU default (a few ms per 360p pair).
- `RaftSmall`: torchvision's RAFT-small architecture carrying the official princeton-vl
  checkpoint (`shared/weights/optical_flow/raft-small.pth`). The checkpoint's 106 tensors
  map *in order* onto torchvision's state dict (the names differ, the shapes match; see
  shared/weights/MANIFEST.md 1.1). Read by the one checkpoint reader
  (models/weights/checkpoints.py, `weights_only=True`): nothing is unpickled.

`backward_warp` pulls frame t+1 back onto frame t with `grid_sample` (differentiable in x,
so the temporal loss trains through it); `occlusion_weight` is the paper's
V = exp(-|I_t - warp(I_t+1)|).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidmatte.models.errors import InputError, UsageError, WeightsError

if TYPE_CHECKING:  # torch stays out of import time for CLIs' --help
    from torch import Tensor

#: Relative location of the RAFT-small checkpoint inside shared/weights.
RAFT_SMALL_FILE = "optical_flow/raft-small.pth"
DIS_PRESETS = ("ultrafast", "fast", "medium")


def _gray(img: np.ndarray) -> np.ndarray:
    import cv2

    if img.ndim == 2:
        g = img
    elif img.ndim == 3 and img.shape[2] == 3:
        g = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    else:
        raise InputError(f"expected an H×W×3 RGB or H×W grey image, got shape {img.shape}")
    if g.dtype != np.uint8:
        g = np.clip(np.rint(g * 255.0 if g.max() <= 1.0 else g), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(g)


def dis_flow(img0: np.ndarray, img1: np.ndarray, preset: str = "medium") -> np.ndarray:
    """OpenCV DIS flow from img0 to img1: uint8 RGB H×W×3 (or grey) -> H×W×2 float32 pixels.

    DIS needs no weights and runs on one CPU core; "medium" is its quality/speed middle.
    """
    import cv2

    if preset not in DIS_PRESETS:
        raise UsageError(f"unknown DIS preset {preset!r} (choose from {', '.join(DIS_PRESETS)})")
    g0, g1 = _gray(img0), _gray(img1)
    if g0.shape != g1.shape:
        raise InputError(f"flow needs images of one size, got {g0.shape} and {g1.shape}")
    code = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }[preset]
    dis = cv2.DISOpticalFlow_create(code)
    h, w = g0.shape
    ph, pw = max(16 - h, 0), max(16 - w, 0)  # DIS refuses images under 12 px a side
    if ph or pw:
        g0 = cv2.copyMakeBorder(g0, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
        g1 = cv2.copyMakeBorder(g1, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    flow = dis.calc(g0, g1, None)
    return np.ascontiguousarray(flow[:h, :w], dtype=np.float32)


class RaftSmall:
    """torchvision `raft_small` carrying the official RAFT-small (C+T) checkpoint.

    Inputs are B×3×H×W floats in [0, 1]; they are scaled to [-1, 1] (RAFT's convention) and
    edge-padded to multiples of 8, and the flow is cropped back, so any size works.
    Inference only (no_grad): the flow is a fixed target for the temporal loss.
    """

    def __init__(self, model, device="cpu"):
        self.model = model.eval().to(device)
        self.device = device

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device="cpu") -> RaftSmall:
        from torchvision.models.optical_flow import raft_small

        if path is None:
            from vidmatte.models.shared import shared_weights

            root = shared_weights()
            if root is None:
                raise WeightsError(
                    "no RAFT-small checkpoint: pass a path (../shared/weights is not here)"
                )
            path = root / RAFT_SMALL_FILE
        from vidmatte.models.weights.checkpoints import load_third_party_checkpoint
        from vidmatte.models.weights.state_dict import load_state_strict

        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"RAFT-small checkpoint not found: {path}")
        ck = load_third_party_checkpoint(path)
        model = raft_small(weights=None, progress=False)
        names = list(model.state_dict())
        tensors = list(ck.values())
        if len(tensors) != len(names):
            raise WeightsError(
                f"{path} has {len(tensors)} tensors, RAFT-small needs {len(names)}: "
                "not the official raft-small.pth"
            )
        # the official file's names differ from torchvision's, its order does not
        load_state_strict(model, dict(zip(names, tensors, strict=True)), path)
        return cls(model, device)

    def __call__(self, img0: Tensor, img1: Tensor, iters: int = 12) -> Tensor:
        import torch
        import torch.nn.functional as F

        if img0.shape != img1.shape or img0.dim() != 4 or img0.shape[1] != 3:
            raise InputError(
                f"RAFT needs two B×3×H×W tensors of one shape, got {tuple(img0.shape)} "
                f"and {tuple(img1.shape)}"
            )
        h, w = img0.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        x0 = img0.to(self.device, torch.float32) * 2.0 - 1.0
        x1 = img1.to(self.device, torch.float32) * 2.0 - 1.0
        if ph or pw:
            x0 = F.pad(x0, (0, pw, 0, ph), mode="replicate")
            x1 = F.pad(x1, (0, pw, 0, ph), mode="replicate")
        with torch.no_grad():
            flow = self.model(x0, x1, num_flow_updates=iters)[-1]
        return flow[..., :h, :w]


_RAFT_CACHE: dict[str, RaftSmall] = {}


def estimate_flow(img0, img1, method: str = "dis") -> np.ndarray:
    """Flow img0 -> img1 for two uint8 RGB H×W×3 images, H×W×2 float32 pixels.

    method: "dis" (OpenCV DIS medium, default, no weights), "dis-fast", or "raft"
    (RAFT-small from shared weights, cached after the first call, on CPU).
    """
    if method in ("dis", "dis-medium"):
        return dis_flow(img0, img1, "medium")
    if method == "dis-fast":
        return dis_flow(img0, img1, "fast")
    if method == "raft":
        import torch

        raft = _RAFT_CACHE.get("cpu")
        if raft is None:
            raft = _RAFT_CACHE.setdefault("cpu", RaftSmall.from_checkpoint(None, "cpu"))
        t0 = torch.from_numpy(np.ascontiguousarray(img0)).permute(2, 0, 1)[None].float() / 255
        t1 = torch.from_numpy(np.ascontiguousarray(img1)).permute(2, 0, 1)[None].float() / 255
        return raft(t0, t1)[0].permute(1, 2, 0).numpy().astype(np.float32)
    raise UsageError(f"unknown flow method {method!r} (choose dis, dis-fast or raft)")


def _grid(flow: Tensor) -> Tensor:
    """Sampling grid p + flow(p) normalised to [-1, 1] (align_corners=True)."""
    import torch

    b, _, h, w = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=flow.dtype),
        torch.arange(w, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return torch.stack((gx, gy), dim=-1)


def backward_warp(
    x: Tensor, flow: Tensor, mode: str = "bilinear", padding_mode: str = "zeros"
) -> Tensor:
    """Warp x_{t+1} (B×C×H×W) back to frame t with flow_{t->t+1} (B×2×H×W, pixels).

    out(p) = x(p + flow(p)). Pixels whose source lies outside the frame read 0 ("zeros"),
    so `occlusion_weight` is low there too; use `warp_valid_mask` to drop them outright.
    Differentiable in x (and in flow for bilinear sampling).
    """
    import torch.nn.functional as F

    if flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[-2:] != x.shape[-2:]:
        raise InputError(
            f"flow must be B×2×H×W matching x {tuple(x.shape)}, got {tuple(flow.shape)}"
        )
    grid = _grid(flow.to(x.dtype) if x.is_floating_point() else flow.float())
    xf = x if x.is_floating_point() else x.float()
    return F.grid_sample(xf, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def warp_valid_mask(flow: Tensor) -> Tensor:
    """B×1×H×W bool: where p + flow(p) falls inside the frame (the warp read real data)."""
    b, _, h, w = flow.shape
    g = _grid(flow)
    ok = (g[..., 0] >= -1) & (g[..., 0] <= 1) & (g[..., 1] >= -1) & (g[..., 1] <= 1)
    return ok[:, None]


def occlusion_weight(img_t: Tensor, img_t1_warped: Tensor, scale: float = 1.0) -> Tensor:
    """Eq. 4's V = exp(-scale·|I_t - warp(I_t+1)|), averaged over channels -> B×1×H×W.

    The paper writes exp(-|·|) without a scale. Its value depends on the image range: on
    [0, 1] images it barely falls below ~0.4 at occlusions, so callers training on [0, 1]
    images may pass scale ~ 20 (a 0.15 difference then weighs ~0.05). Default = the paper.
    """
    import torch

    d = (img_t.float() - img_t1_warped.float()).abs()
    return torch.exp(-scale * d).mean(dim=1, keepdim=True)


def warp_numpy(x: np.ndarray, flow: np.ndarray, nearest: bool = False) -> np.ndarray:
    """Backward warp for numpy arrays: out(p) = x(p + flow(p)); H×W or H×W×C, flow H×W×2.

    Uses cv2.remap (no torch): labels use nearest sampling so no class is invented.
    Out-of-frame pixels read 0; pair with `valid_numpy`.
    """
    import cv2

    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx = xs + flow[..., 0].astype(np.float32)
    my = ys + flow[..., 1].astype(np.float32)
    src = x
    if src.dtype == bool:
        src = src.astype(np.uint8)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out = cv2.remap(src, mx, my, interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(x.dtype) if x.dtype == bool else out


def valid_numpy(flow: np.ndarray) -> np.ndarray:
    """H×W bool: p + flow(p) lands inside the frame."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx = xs + flow[..., 0]
    my = ys + flow[..., 1]
    return (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)

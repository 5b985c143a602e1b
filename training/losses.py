"""The instance temporal loss (paper Eq. 4; docs/architecture.md) and the total training loss.

    l_tl(I_t, I_t') = mean_n  V · || P_n,t - warp(P_n,t' -> t) ||²,   V = exp(-s·|I_t - warp(I_t')|)

Instances are matched across frames by motion, not by a second detector pass: instance n
has centre c_n and size in the labelled frame t; in the neighbour frame t' its kernel is
taken at c_n + flow_{t->t'}(c_n) (`neighbour_points`), so both frames' trimap logits come
from `model.instance_logits` for "the same person". Both sides get gradients, as in the
paper (the loss pulls the two predictions together, not one towards a fixed target).

Resolution: the trimap logits are at stride 4; the flow is average-pooled to that grid and
its vectors divided accordingly; V is computed from stride-4 images. Pixels whose warp
source leaves the frame, and padded (ignore) regions, are dropped. `s` (occlusion_scale)
sharpens V for [0, 1] images: the paper's exp(-|·|) on [0, 1] barely separates occlusions
(see models/flow.occlusion_weight); s = 20 weighs a 0.15 colour error at ~0.05.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vidmatte.models.flow import backward_warp, occlusion_weight, warp_valid_mask


@dataclass(frozen=True)
class LossConfig:
    temporal_weight: float = 0.1  # lambda (paper)
    occlusion_scale: float = 20.0
    normalise: str = "instance"  # "instance": sum / instance area; "image": mean over pixels
    cate_weight: float = 1.0  # multiplies the model's loss_cate (focal)
    mask_weight: float = 1.0  # multiplies the model's loss_mask (trimap)
    # which neighbours of t the temporal loss pairs it with: "both" (frame_f and frame_b)
    # or "next" (frame_b only: the paper's trimap setting, one consecutive pair; a third
    # fewer frames through the network per step)
    neighbours: str = "both"

    def pairs(self) -> tuple[int, ...]:
        """Triplet positions (1 = frame_f, 2 = frame_b) the temporal loss uses."""
        if self.neighbours not in ("both", "next"):
            raise ValueError(f"[loss] neighbours must be 'both' or 'next', not {self.neighbours!r}")
        return (1, 2) if self.neighbours == "both" else (2,)


def pool_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """B×2×H×W pixel flow -> B×2×h×w flow in the pixels of an h×w grid."""
    h, w = size
    H, W = flow.shape[-2:]
    out = F.adaptive_avg_pool2d(flow, (h, w))
    scale = torch.tensor([w / W, h / H], dtype=out.dtype, device=out.device).view(1, 2, 1, 1)
    return out * scale


def sample_at(field: Tensor, points: Tensor) -> Tensor:
    """Bilinear values of a C×H×W field at (N, 2) xy pixel points -> (N, C)."""
    h, w = field.shape[-2:]
    g = points.to(field.dtype).clone()
    g[:, 0] = g[:, 0] * (2.0 / max(w - 1, 1)) - 1.0
    g[:, 1] = g[:, 1] * (2.0 / max(h - 1, 1)) - 1.0
    out = F.grid_sample(field[None], g.view(1, -1, 1, 2), align_corners=True, padding_mode="border")
    return out[0, :, :, 0].t()


def neighbour_points(centres: Tensor, flow: Tensor) -> Tensor:
    """Where instance centres (N, 2) of frame t are in frame t' given flow_{t->t'} (2×H×W)."""
    if centres.numel() == 0:
        return centres
    h, w = flow.shape[-2:]
    moved = centres + sample_at(flow, centres)
    lim = torch.tensor([w - 1, h - 1], dtype=moved.dtype, device=moved.device)
    return torch.minimum(moved.clamp_min(0), lim)


def instance_temporal_loss(
    logits_t: Tensor, logits_n: Tensor, flow: Tensor, weight: Tensor, area: Tensor | None = None
) -> Tensor:
    """Eq. 4 for one image: logits (N, 3, h, w) at t and t', flow_{t->t'} (2, h, w) on the
    logits' grid, weight (1, h, w) = V x validity.

    area None: the mean over instances and pixels. area (N,) in grid cells: each instance's
    summed error divided by its area, then the mean over instances. The paper's Eq. 4 is a
    plain sum; a whole-image mean makes the pull depend on how much of the frame the
    person fills (a small dancer would get almost none), so by default the sum is
    normalised per instance, as SOLO's dice loss is.
    """
    if logits_t.shape[0] == 0:
        return logits_t.sum() * 0.0
    p_t = logits_t.float().softmax(dim=1)
    p_n = logits_n.float().softmax(dim=1)
    n = p_t.shape[0]
    warped = backward_warp(p_n, flow[None].float().expand(n, -1, -1, -1))
    err = (p_t - warped).pow(2).sum(dim=1) * weight.float()  # (N, h, w)
    if area is None:
        return err.mean()
    return (err.flatten(1).sum(1) / area.float().clamp_min(1.0)).mean()


def instance_area(trimaps: Tensor, size: tuple[int, int], margin: int = 3) -> Tensor:
    """(N,) cells of each instance's non-background trimap on an h x w grid, widened by
    `margin` cells (the band where a person's edge can flicker)."""
    t = trimaps.float()
    roi = ((t > 0) & (t < 255)).float()[:, None]
    roi = F.adaptive_max_pool2d(roi, size) if roi.shape[-2:] != size else roi
    roi = F.max_pool2d(roi, 2 * margin + 1, stride=1, padding=margin)
    return roi.flatten(1).sum(1)


def frame_weight(
    img_t: Tensor, img_n: Tensor, flow: Tensor, valid: Tensor | None, scale: float
) -> Tensor:
    """V × (warp stays in frame) × (not padding), on the flow's grid: B×1×h×w."""
    h, w = flow.shape[-2:]
    a = F.adaptive_avg_pool2d(img_t.float(), (h, w))
    b = F.adaptive_avg_pool2d(img_n.float(), (h, w))
    v = occlusion_weight(a, backward_warp(b, flow.float()), scale=scale)
    v = v * warp_valid_mask(flow.float()).to(v.dtype)
    if valid is not None:
        v = v * (F.adaptive_avg_pool2d(valid.float(), (h, w)) > 0.999).to(v.dtype)
    return v


def temporal_loss(
    model,
    images: Tensor,
    flows: Tensor,
    centres: list[Tensor],
    sizes: list[Tensor],
    use: Tensor,
    valid: Tensor | None = None,
    occlusion_scale: float = 20.0,
    trimaps: list[Tensor] | None = None,
    feats: tuple | None = None,
    pairs: tuple[int, ...] = (1, 2),
) -> Tensor:
    """Mean Eq. 4 over the triplets' two neighbour pairs (t, f) and (t, b).

    images: B×3(frames t, f, b)×3×H×W in [0,1]; flows: B×2(t->f, t->b)×2×H×W pixels;
    centres/sizes: per image, the labelled frame's instances; use: B bool (samples with
    neighbours and at least one instance); valid: B×1×H×W non-padding mask or None;
    trimaps: per image (N, H, W) labels of the labelled frame, for per-instance
    normalisation (None: whole-image mean).
    One `instance_logits` call on the stacked frames keeps batch-norm statistics and DDP
    happy (one forward per step through the wrapper). feats: `model.features` of all
    B×3 frames stacked frame-major (t of every sample, then f, then b), when the caller
    computed them once for the per-frame loss as well; with `pairs` = (2,) only frames t
    and b, stacked in that order.
    """
    keep = [i for i in range(images.shape[0]) if bool(use[i]) and centres[i].shape[0] > 0]
    if not keep:
        return images.new_zeros(())
    imgs, pts, szs = [], [], []
    frames = (0, *pairs)
    for k in frames:
        for i in keep:
            imgs.append(images[i, k])
            c = centres[i].to(images.device)
            pts.append(c if k == 0 else neighbour_points(c, flows[i, k - 1]))
            szs.append(sizes[i].to(images.device))
    sub = None
    if feats is not None:
        b = images.shape[0]
        idx = torch.tensor(
            [p * b + i for p in range(len(frames)) for i in keep], device=images.device
        )
        cates, kernels, mask_feats = feats
        sub = ([c[idx] for c in cates], [x[idx] for x in kernels], mask_feats[idx])
    logits = model.instance_logits(torch.stack(imgs), pts, szs, feats=sub)
    m = len(keep)
    h, w = logits[0].shape[-2:]
    losses = []
    for j, i in enumerate(keep):
        for pos, k in enumerate(pairs, start=1):
            fl = pool_flow(flows[i, k - 1][None].float(), (h, w))
            wt = frame_weight(
                images[i, 0][None],
                images[i, k][None],
                fl,
                None if valid is None else valid[i][None],
                occlusion_scale,
            )
            area = None if trimaps is None else instance_area(trimaps[i], (h, w))
            losses.append(
                instance_temporal_loss(logits[j], logits[pos * m + j], fl[0], wt[0], area)
            )
    return torch.stack(losses).mean()

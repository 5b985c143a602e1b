"""SOLOv2 losses: sigmoid focal loss on grid categories, dice (+ CE) on instance masks.

Binary mode is the official loss: dice on sigmoid masks (weight 3). Trimap mode (the
paper's change) uses dice per trimap class on softmax probabilities, averaged over the
classes present in the target (an absent class has a constant dice of 1 and would only
dilute the mean), plus pixel cross-entropy; 255 marks pixels to ignore. Mask losses
are averaged over positive cells, the focal loss summed and divided by (positives + 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vidmatte.models.trimap import IGNORE
from vidmatte.models.trimapnet.mask_branch import dynamic_conv
from vidmatte.models.trimapnet.targets import LevelTargets


@dataclass
class LossWeights:
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    focal_weight: float = 1.0
    dice_weight: float = 3.0
    ce_weight: float = 1.0


def dice_loss(probs: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """1 - 2|PT| / (|P|^2 + |T|^2) per leading index, over the trailing pixel dims."""
    p = probs.flatten(1)
    t = target.flatten(1).to(p.dtype)
    if valid is not None:
        v = valid.flatten(1).to(p.dtype)
        p, t = p * v, t * v
    a = (p * t).sum(1)
    b = (p * p).sum(1) + 0.001
    c = (t * t).sum(1) + 0.001
    return 1 - 2 * a / (b + c)


def trimap_mask_loss(logits: Tensor, target: Tensor, w: LossWeights) -> Tensor:
    """logits (P, 3, h, w), target (P, h, w) long in {0, 1, 2, 255}."""
    valid = target != IGNORE
    tgt = torch.where(valid, target, torch.zeros_like(target))
    probs = logits.softmax(dim=1)
    onehot = F.one_hot(tgt, logits.shape[1]).permute(0, 3, 1, 2)
    p = probs.flatten(0, 1)
    t = onehot.flatten(0, 1)
    v = valid[:, None].expand_as(onehot).flatten(0, 1)
    dice = dice_loss(p, t, v).view(logits.shape[0], -1)
    present = ((onehot.bool() & valid[:, None]).flatten(2).any(2)).to(dice.dtype)
    dice = (dice * present).sum(1) / present.sum(1).clamp_min(1)
    loss = w.dice_weight * dice.mean()
    if w.ce_weight > 0:
        ce = F.cross_entropy(logits, target, ignore_index=IGNORE)
        if valid.any():
            loss = loss + w.ce_weight * ce
    return loss


def binary_mask_loss(logits: Tensor, target: Tensor, w: LossWeights) -> Tensor:
    """logits (P, 1, h, w), target (P, h, w) in {0, 1} (255 ignored)."""
    valid = target != IGNORE
    return w.dice_weight * dice_loss(logits[:, 0].sigmoid(), target == 1, valid).mean()


def solov2_loss(
    cate_preds: list[Tensor],
    kernel_preds: list[Tensor],
    mask_feats: Tensor,
    level_targets: list[list[LevelTargets]],
    mask_targets: list[Tensor],
    *,
    num_classes: int,
    mask_classes: int,
    mask_bias: Tensor | None,
    weights: LossWeights,
) -> dict[str, Tensor]:
    """Losses for a batch.

    cate_preds[l]: (B, K, S, S); kernel_preds[l]: (B, C*E, S, S); mask_feats: (B, E, h, w);
    level_targets[b][l]: assignment; mask_targets[b]: (N_b, h, w) long at stride 4.
    """
    from torchvision.ops import sigmoid_focal_loss

    logits_all, targets_all = [], []
    for b, per_level in enumerate(level_targets):
        kernels, owners = [], []
        for lvl, t in enumerate(per_level):
            if t.cells.numel():
                k = kernel_preds[lvl][b].flatten(1)[:, t.cells].T
                kernels.append(k)
                owners.append(t.instances)
        if not kernels:
            continue
        logits = dynamic_conv(mask_feats[b], torch.cat(kernels), mask_classes)
        if mask_bias is not None:
            logits = logits + mask_bias.view(1, -1, 1, 1)
        logits_all.append(logits)
        targets_all.append(mask_targets[b][torch.cat(owners)])
    num_pos = sum(int(t.shape[0]) for t in targets_all)
    if num_pos:
        logits = torch.cat(logits_all)
        target = torch.cat(targets_all).long()
        if mask_classes == 1:
            loss_mask = binary_mask_loss(logits, target, weights)
        else:
            loss_mask = trimap_mask_loss(logits, target, weights)
    else:  # keep the graph connected so that DDP and optimisers see every parameter
        loss_mask = sum(k.sum() for k in kernel_preds) * 0.0 + mask_feats.sum() * 0.0

    preds = torch.cat([c.permute(0, 2, 3, 1).reshape(-1, num_classes) for c in cate_preds])
    labels = torch.cat(
        [
            torch.stack([per_level[lvl].cate for per_level in level_targets]).flatten()
            for lvl in range(len(cate_preds))
        ]
    )
    onehot = F.one_hot(labels, num_classes + 1)[:, :num_classes].to(preds.dtype)
    loss_cate = sigmoid_focal_loss(
        preds, onehot, alpha=weights.focal_alpha, gamma=weights.focal_gamma, reduction="sum"
    ) / (num_pos + 1)
    return {"loss_cate": weights.focal_weight * loss_cate, "loss_mask": loss_mask}

"""Every evaluation metric in one import (docs/architecture.md); training/ and bench/ share it.

Split by kind into masks.py (J, boundary F, trimap IoU), alpha.py (MAD, MSE, Grad, Conn,
dtSSD, MESSDdt) and temporal.py (TC); `id_switches` defers to
vidmatte.matting.tracking.id_metrics.count_id_switches (association quality).
"""

from __future__ import annotations

from vidmatte.training.metrics.alpha import (
    alpha_metrics,
    conn_error,
    dtssd,
    evaluation_trimap,
    grad_error,
    messddt,
    to_alpha,
    video_alpha_metrics,
)
from vidmatte.training.metrics.masks import (
    TrimapIoU,
    alpha_to_classes,
    boundary_f,
    check_classes,
    mask_j,
    to_binary,
    trimap_iou,
)
from vidmatte.training.metrics.temporal import (
    sequence_flows,
    temporal_consistency,
    temporal_consistency_pairs,
)

__all__ = [
    "TrimapIoU",
    "alpha_metrics",
    "alpha_to_classes",
    "boundary_f",
    "check_classes",
    "conn_error",
    "dtssd",
    "evaluation_trimap",
    "grad_error",
    "id_switches",
    "mask_j",
    "messddt",
    "sequence_flows",
    "temporal_consistency",
    "temporal_consistency_pairs",
    "to_alpha",
    "to_binary",
    "trimap_iou",
    "video_alpha_metrics",
]


def id_switches(*args, **kwargs):
    """Identity switches of tracked persons against ground truth.

    Thin pass-through to vidmatte.matting.tracking.id_metrics.count_id_switches (written with the
    associator), so that evaluation code imports every metric from here.
    """
    from vidmatte.matting.tracking.id_metrics import count_id_switches

    return count_id_switches(*args, **kwargs)

"""Every evaluation metric in one import (DESIGN.md, Metrics); training/ and bench/ share it.

Split by kind into metrics_masks (J, boundary F, trimap IoU), metrics_alpha (MAD, MSE,
Grad, Conn, dtSSD, MESSDdt) and metrics_temporal (TC); `id_switches` defers to
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
    TRIMAP_NAMES,
    TrimapIoU,
    alpha_to_trimap,
    boundary_f,
    mask_j,
    to_binary,
    to_trimap_classes,
    trimap_iou,
)
from vidmatte.training.metrics.temporal import (
    sequence_flows,
    temporal_consistency,
    temporal_consistency_pairs,
)

__all__ = [
    "TRIMAP_NAMES",
    "TrimapIoU",
    "alpha_metrics",
    "alpha_to_trimap",
    "boundary_f",
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
    "to_trimap_classes",
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

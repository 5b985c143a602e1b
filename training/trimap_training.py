"""Trimap-network training task: data mix, focal + trimap + lambda·temporal loss, evaluation.

The student (models/trimapnet/model.py) computes its own per-frame losses in train mode
({"loss_cate", "loss_mask"}); this task adds the temporal loss (losses.py) on the triplet's
neighbours through `model.instance_logits`, computes RAFT flow on the GPU when asked
(`flow = "raft"`), and evaluates the instance trimaps on a held clip: trimap IoU against the
labels and the paper's temporal consistency TC (training/metrics/__init__.py), both at the GT
instance centres so that detection noise does not mask the trimap head's stability.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidmatte.models.errors import UsageError
from vidmatte.models.trimap import IGNORE, probs_to_classes
from vidmatte.training.data.augment import AugmentConfig
from vidmatte.training.data.datasets import (
    MattingCompositeDataset,
    MixedDataset,
    TripletConfig,
    VideoTripletDataset,
    collate,
)
from vidmatte.training.losses import LossConfig, temporal_loss
from vidmatte.training.release.model_folder import write_model_folder
from vidmatte.training.trainer import from_dict


@dataclass
class DataConfig:
    dataset: str = ""  # pseudo-labelled dataset folder (manifest.json); "" = matting only
    videos: list[str] = field(default_factory=list)  # subset of the manifest's videos
    # more dataset folders (same layout), e.g. human ground truth (training/data/human_gt.py),
    # each sampled `extra_repeat` times per epoch of `dataset`
    extra_datasets: list[str] = field(default_factory=list)
    extra_repeat: int = 1
    out_size: tuple[int, int] = (320, 320)
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip_p: float = 0.5
    colour_jitter: float = 0.25
    window: int = 5
    flow: str = "dis"  # dis | raft | none
    flow_cache_dir: str = ""
    flow_max_side: int = 480
    matting: list[str] = field(default_factory=list)  # NAME/{image,alpha[,fg]} folders
    backgrounds: list[str] = field(default_factory=list)  # folders of background photos
    matting_ratio: float = 0.3
    max_instances: int = 8


@dataclass
class EvalConfig:
    dataset: str = ""  # default: data.dataset
    video: str = ""  # default: the first video
    frames: int = 8
    out_size: tuple[int, int] = (0, 0)  # default: data.out_size


def augment_config(d: DataConfig) -> AugmentConfig:
    j = d.colour_jitter
    return AugmentConfig(
        out_size=tuple(d.out_size),
        scale_range=tuple(d.scale_range),
        flip_p=d.flip_p,
        brightness=j,
        contrast=j,
        saturation=j,
        hue=0.1 * j,
    )


class TrimapLoss(nn.Module):
    """model + losses in one module, so that DDP wraps one forward per step."""

    def __init__(self, model: nn.Module, cfg: LossConfig, flow: str) -> None:
        super().__init__()
        self.model, self.cfg, self.flow = model, cfg, flow
        self._raft = None

    def _flows(self, batch: dict) -> torch.Tensor:
        if self.flow != "raft":
            return batch["flows"]
        if self._raft is None:
            from vidmatte.models.flow import RaftSmall

            self._raft = RaftSmall.from_checkpoint(None, device=batch["images"].device)
        im = batch["images"].float()
        return torch.stack([self._raft(im[:, 0], im[:, k]) for k in (1, 2)], dim=1)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        images = batch["images"]
        targets = [
            {
                "labels": torch.zeros(m.shape[0], dtype=torch.long, device=m.device),
                "masks": m,
                "trimaps": t,
            }
            for m, t in zip(batch["masks"], batch["trimaps"], strict=True)
        ]
        temporal = self.cfg.temporal_weight > 0 and self.flow != "none"
        feats = None
        if temporal and hasattr(self.model, "losses_from_features"):
            # one forward of all 3B frames: the labelled frames' features serve both losses
            b = images.shape[0]
            used = images[:, [0, *self.cfg.pairs()]]  # frame-major: all t, then f / b
            feats = self.model.features(used.transpose(0, 1).reshape(-1, *images.shape[2:]))
            first = ([c[:b] for c in feats[0]], [k[:b] for k in feats[1]], feats[2][:b])
            parts = dict(self.model.losses_from_features(images[:, 0], targets, first))
        else:
            parts = dict(self.model(images[:, 0], targets))
        loss = self.cfg.cate_weight * parts["loss_cate"] + self.cfg.mask_weight * parts["loss_mask"]
        if temporal:
            lt = temporal_loss(
                self.model,
                images,
                self._flows(batch),
                batch["centres"],
                batch["sizes"],
                batch["temporal"],
                batch["valid"],
                self.cfg.occlusion_scale,
                batch["trimaps"] if self.cfg.normalise == "instance" else None,
                feats=feats,
                pairs=self.cfg.pairs(),
            )
            parts["loss_temporal"] = lt
            loss = loss + self.cfg.temporal_weight * lt
        parts["loss"] = loss
        return parts


def trimap_classes_from_logits(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(N, 3, h, w) logits -> (N, H, W) uint8 classes 0/1/2 at the image size."""
    return probs_to_classes(
        F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
    )


@dataclass
class EvalClip:
    images: torch.Tensor  # T×3×H×W
    centres: list[torch.Tensor]
    sizes: list[torch.Tensor]
    tracks: list[list[int]]
    trimaps: list[np.ndarray]  # T × (N, H, W) classes, 255 = ignore
    flows: list[np.ndarray]  # T-1 × H×W×2 (i -> i+1)


def load_eval_clip(root: str, video: str, frames: int, out_size: tuple[int, int]) -> EvalClip:
    """Consecutive labelled frames of one video, centre-cropped, with DIS flows between them."""
    from vidmatte.models.flow import dis_flow

    aug = AugmentConfig(out_size=tuple(out_size))
    ds = VideoTripletDataset(
        root, aug, TripletConfig(flow="none"), train=False, videos=[video] if video else None
    )
    vi = 0
    idx = [k for k, (v, _) in enumerate(ds.items) if v == vi][: max(2, frames)]
    samples = [ds[(0, k)] for k in idx]
    tracks = []
    for k in idx:
        fi = ds.items[k][1]
        insts = ds.videos[vi].frames[fi].instances[: ds.cfg.max_instances]
        tracks.append([i.track_id for i in insts])
    imgs = torch.stack([s["images"][0] for s in samples])
    u8 = (imgs.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    flows = [dis_flow(u8[i], u8[i + 1]) for i in range(len(u8) - 1)]
    return EvalClip(
        images=imgs,
        centres=[s["centres"] for s in samples],
        sizes=[s["sizes"] for s in samples],
        tracks=[t[: s["centres"].shape[0]] for t, s in zip(tracks, samples, strict=True)],
        trimaps=[s["trimaps"].numpy().astype(np.uint8) for s in samples],
        flows=flows,
    )


def track_tc(maps: list[np.ndarray], clip: EvalClip) -> list[float]:
    """TC (%) per run of consecutive frames in which a track is present."""
    from vidmatte.training.metrics import temporal_consistency

    tcs = []
    for tid in sorted({t for ts in clip.tracks for t in ts}):
        seq = [
            m[ts.index(tid)] if tid in ts else None for m, ts in zip(maps, clip.tracks, strict=True)
        ]
        run, flows = [], []
        for i, s in enumerate(seq):
            if s is None:
                continue
            if run and seq[i - 1] is not None:
                flows.append(clip.flows[i - 1])
            elif run:
                if len(run) >= 2:
                    tcs.append(temporal_consistency(run, flows))
                run, flows = [], []
            run.append(s)
        if len(run) >= 2:
            tcs.append(temporal_consistency(run, flows))
    return tcs


@torch.no_grad()
def evaluate_clip(model: nn.Module, clip: EvalClip, device: torch.device) -> dict[str, float]:
    """Metrics of the instance trimaps at the labelled centres: trimap IoU vs the labels,
    TC (%) of the 3-class trimaps and of the person masks (1 - P(bg) > 0.5), and the soft
    warping error of the probabilities (x1e3; what the temporal loss minimises)."""
    from vidmatte.models.flow import backward_warp, warp_valid_mask
    from vidmatte.training.losses import pool_flow
    from vidmatte.training.metrics import TrimapIoU

    h, w = clip.images.shape[-2:]
    preds: list[np.ndarray] = []
    probs: list[torch.Tensor] = []
    for i in range(len(clip.images)):
        logits = model.instance_logits(
            clip.images[i : i + 1].to(device),
            [clip.centres[i].to(device)],
            [clip.sizes[i].to(device)],
        )[0]
        probs.append(logits.float().softmax(1))
        preds.append(
            trimap_classes_from_logits(logits, (h, w))
            if logits.shape[0]
            else np.zeros((0, h, w), np.uint8)
        )
    iou = TrimapIoU()
    for p, g in zip(preds, clip.trimaps, strict=True):
        for n in range(min(len(p), len(g))):
            gt = g[n].copy()
            pred = p[n].copy()
            ign = gt == IGNORE
            gt[ign], pred[ign] = 0, 0
            iou.update(pred, gt)
    tcs = track_tc(preds, clip)
    # the person mask (1 - P(bg) > 0.5), what the matte's support follows
    tcs_mask = track_tc([(p != 0) for p in preds], clip)
    # soft warping error of the trimap probabilities (what the temporal loss minimises), x1e3
    errs = []
    for i in range(len(probs) - 1):
        a, b = clip.tracks[i], clip.tracks[i + 1]
        fl = torch.from_numpy(clip.flows[i]).permute(2, 0, 1)[None].to(device)
        fl = pool_flow(fl.float(), tuple(probs[i].shape[-2:]))
        ok = warp_valid_mask(fl).float()
        for n, tid in enumerate(a):
            if tid in b:
                warped = backward_warp(probs[i + 1][b.index(tid)][None], fl)
                d = (probs[i][n][None] - warped).pow(2).sum(1, keepdim=True)
                errs.append(float((d * ok).sum() / ok.sum().clamp_min(1)))
    out = {f"iou_{k}": float(v) for k, v in iou.compute().items()}
    out["warp_err"] = float(np.mean(errs) * 1e3) if errs else float("nan")
    out["tc"] = float(np.mean(tcs)) if tcs else float("nan")
    out["tc_mask"] = float(np.mean(tcs_mask)) if tcs_mask else float("nan")
    return out


class TrimapTask:
    """Train the trimap network (SOLOv2-style student) on pseudo labels + matting GT."""

    def __init__(
        self,
        config: dict[str, Any],
        model_factory: Callable[[], nn.Module] | None = None,
        seed: int = 0,
    ) -> None:
        self.model_cfg = dict(config.get("model", {}))
        self.data = from_dict(DataConfig, config.get("data"), "data")
        self.loss = from_dict(LossConfig, config.get("loss"), "loss")
        self.eval_cfg = from_dict(EvalConfig, config.get("eval"), "eval")
        if self.loss.normalise not in ("instance", "image"):
            raise UsageError("[loss] normalise must be 'instance' or 'image'")
        try:
            self.loss.pairs()
        except ValueError as e:
            raise UsageError(str(e)) from None
        if self.data.flow not in ("dis", "raft", "none"):
            raise UsageError(f"[data] flow must be dis, raft or none, not {self.data.flow!r}")
        if not self.data.dataset and not self.data.matting:
            raise UsageError("config [data]: give `dataset` (pseudo labels) and/or `matting`")
        self.model_factory = model_factory
        self.seed = seed
        self._clip: EvalClip | None = None

    def build_model(self) -> nn.Module:
        if self.model_factory is not None:
            return self.model_factory()
        cfg = dict(self.model_cfg)
        init = cfg.pop("init", "")
        pretrained = cfg.pop("pretrained_backbone", True)
        arch = cfg.pop("architecture", "trimapnet")
        if arch != "trimapnet":
            raise UsageError(f"[model] architecture {arch!r}: the trimap task trains 'trimapnet'")
        from vidmatte.models.trimapnet import TrimapNet, TrimapNetConfig, build_trimapnet
        from vidmatte.models.trimapnet.backbones import freeze_stages

        freeze = int(cfg.pop("freeze", 0))  # backbone stages without gradients (training only)
        if init:  # fine-tune a model folder (its own architecture settings win)
            model = TrimapNet.from_folder(init)
        else:
            try:
                model = build_trimapnet(
                    TrimapNetConfig.from_dict(cfg), pretrained_backbone=pretrained
                )
            except (TypeError, ValueError) as e:
                raise UsageError(f"config [model]: {e}") from None
        freeze_stages(model.backbone, freeze)
        return model

    def build_train_set(self, rank: int, world: int) -> torch.utils.data.Dataset:
        d = self.data
        aug = augment_config(d)
        video = None
        if d.dataset:
            tc = TripletConfig(
                window=d.window,
                flow="dis" if d.flow == "dis" else "none",
                flow_max_side=d.flow_max_side,
                flow_cache_dir=d.flow_cache_dir or None,
                max_instances=d.max_instances,
            )
            video = primary = VideoTripletDataset(
                d.dataset, aug, tc, seed=self.seed, videos=d.videos or None
            )
            if d.extra_datasets:
                from vidmatte.training.data.datasets import ConcatVideoDataset

                extra = [
                    VideoTripletDataset(
                        x, aug, replace(tc, flow_cache_dir=None), seed=self.seed + 1 + k
                    )
                    for k, x in enumerate(d.extra_datasets)
                ]
                video = ConcatVideoDataset([video, *extra], [1] + [d.extra_repeat] * len(extra))
        matting = None
        if d.matting and (d.matting_ratio > 0 or video is None):
            bgs = []
            if d.backgrounds:
                from vidmatte.training.data.datasets import find_images

                bgs = find_images(d.backgrounds)
            elif video is not None:  # other videos' frames make varied, realistic backgrounds
                bgs = [primary.root / f.file for v in primary.videos for f in v.frames[::10]]
            matting = MattingCompositeDataset(d.matting, aug, bgs, seed=self.seed)
        return MixedDataset(video, matting, d.matting_ratio)

    def collate(self, samples: list) -> dict:
        return collate(samples)

    def loss_module(self, model: nn.Module) -> nn.Module:
        return TrimapLoss(model, self.loss, self.data.flow)

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        e = self.eval_cfg
        root = e.dataset or self.data.dataset
        if not root or e.frames < 2:
            return {}
        if self._clip is None:
            size = tuple(e.out_size) if all(e.out_size) else tuple(self.data.out_size)
            self._clip = load_eval_clip(root, e.video, e.frames, size)
        return evaluate_clip(model, self._clip, device)

    def export(self, model: nn.Module, folder: Path) -> None:
        write_model_folder(model, folder)

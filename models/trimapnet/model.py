"""TrimapNet: SOLOv2 with a 3-class trimap per instance (the paper's change), or binary masks.

backbone -> FPN (P2..P6) -> instance branch (categories + dynamic kernels on S x S grids)
                         -> mask branch (unified features at stride 4)
kernel of each kept cell x mask features -> C logits per instance (C = 3 trimap, 1 binary).

Inputs are B x 3 x H x W RGB in [0, 1]; colour order, scaling to 0..255, mean/std and the
padding to a multiple of 32 happen inside, so imported detectron2 weights (BGR, their pixel
mean) and our own (RGB, ImageNet) take the same input. The caller picks the resolution
(`config.input_short_side` says what the weights were trained for; `detect()` resizes).
Post-processing stays on the device: point NMS, score threshold, dynamic convolution of the
candidates only, mask scoring, Matrix NMS, the caller's person filter, then upsampling of
the kept instances only, each inside its own window (postprocess.upsample_window).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidmatte.models.errors import WeightsError
from vidmatte.models.instances import Instances, window_boxes_and_centres
from vidmatte.models.trimapnet.backbones import build_backbone, init_backbone
from vidmatte.models.trimapnet.config import (
    ARCHITECTURE,
    SIZE_DIVISIBILITY,
    PostprocessConfig,
    TrimapNetConfig,
)
from vidmatte.models.trimapnet.fpn import FPN
from vidmatte.models.trimapnet.heads import SOLOv2InsHead, split_feats
from vidmatte.models.trimapnet.lite_fpn import LiteFPN
from vidmatte.models.trimapnet.loss import solov2_loss
from vidmatte.models.trimapnet.mask_branch import SOLOv2MaskHead, dynamic_conv
from vidmatte.models.trimapnet.postprocess import Selector, matrix_nms, point_nms, upsample_window
from vidmatte.models.trimapnet.targets import assign_targets


class TrimapNet(nn.Module):
    def __init__(self, config: TrimapNetConfig | None = None):
        super().__init__()
        cfg = config or TrimapNetConfig()
        self.config = cfg
        self.backbone = build_backbone(
            cfg.backbone, frozen_bn=cfg.frozen_bn, stride_in_1x1=cfg.stride_in_1x1
        )
        neck = LiteFPN if cfg.neck == "lite" else FPN
        self.fpn = neck(self.backbone.out_channels, cfg.fpn_channels)
        self.ins_head = SOLOv2InsHead(
            in_channels=cfg.fpn_channels,
            channels=cfg.ins_channels,
            num_convs=cfg.num_instance_convs,
            num_classes=cfg.num_classes,
            num_kernels=cfg.num_masks * cfg.mask_classes,
            num_grids=cfg.num_grids,
            prior_prob=cfg.prior_prob,
        )
        self.mask_head = SOLOv2MaskHead(
            in_channels=cfg.fpn_channels, channels=cfg.mask_channels, num_masks=cfg.num_masks
        )
        # Per-class offset of the dynamic mask logits (official SOLOv2 has none: zeros).
        # It lets trimap mode start from binary weights with a low "unknown" logit.
        self.mask_logit_bias = nn.Parameter(torch.zeros(cfg.mask_classes))
        self.register_buffer(
            "pixel_mean", torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(cfg.pixel_std).view(1, 3, 1, 1), persistent=False
        )
        self._cell_strides: dict[torch.device, Tensor] = {}

    # ------------------------------------------------------------------ network
    @property
    def mode(self) -> str:
        return self.config.mode

    def preprocess(self, images: Tensor) -> Tensor:
        """[0, 1] RGB -> normalised, colour order of the weights, padded to /32 (zeros)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be B x 3 x H x W, got {tuple(images.shape)}")
        x = images.to(self.pixel_mean.dtype)
        if self.config.colour_order == "BGR":
            x = x.flip(1)
        x = (x * 255.0 - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        ph = -h % SIZE_DIVISIBILITY
        pw = -w % SIZE_DIVISIBILITY
        return F.pad(x, (0, pw, 0, ph)) if ph or pw else x

    def features(self, images: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """(category logits per level, kernels per level, mask features at stride 4)."""
        p = self.fpn(self.backbone(self.preprocess(images)))
        cates, kernels = self.ins_head(split_feats(p))
        return cates, kernels, self.mask_head(p[:4])

    def forward(
        self, images: Tensor, targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[Instances]:
        """With targets: dict of losses {"loss_cate", "loss_mask"}; without: Instances per image.

        Target dict per image: "labels" (N,) long, "masks" (N, H, W) instance masks (centre
        sampling and scale), and in trimap mode "trimaps" (N, H, W) long in {0, 1, 2},
        255 = ignore. H, W = the input's size (before padding).
        """
        cates, kernels, mask_feats = self.features(images)
        if targets is not None:
            return self._losses(images, targets, cates, kernels, mask_feats)
        return self.postprocess(cates, kernels, mask_feats, tuple(images.shape[-2:]))

    # ------------------------------------------------------------------ training
    def losses_from_features(
        self, images: Tensor, targets: list[dict[str, Tensor]], feats: tuple
    ) -> dict[str, Tensor]:
        """`forward(images, targets)` on features already computed by `features(images)`
        (training shares one forward of the labelled frames with the temporal loss)."""
        return self._losses(images, targets, *feats)

    def _losses(self, images, targets, cates, kernels, mask_feats) -> dict[str, Tensor]:
        cfg = self.config
        if len(targets) != images.shape[0]:
            raise ValueError(f"{len(targets)} targets for {images.shape[0]} images")
        h, w = images.shape[-2:]
        hp, wp = mask_feats.shape[-2] * 4, mask_feats.shape[-1] * 4
        level_targets, mask_targets = [], []
        for t in targets:
            masks = t["masks"].to(mask_feats.device).bool()
            labels = t["labels"].to(mask_feats.device).long()
            if masks.shape[-2:] != (h, w):
                raise ValueError(f"target masks are {tuple(masks.shape[-2:])}, images {(h, w)}")
            masks = F.pad(masks, (0, wp - w, 0, hp - h))
            level_targets.append(
                assign_targets(
                    masks,
                    labels,
                    num_grids=cfg.num_grids,
                    scale_ranges=cfg.scale_ranges,
                    sigma=cfg.sigma,
                    num_classes=cfg.num_classes,
                )
            )
            if cfg.mode == "trimap":
                if "trimaps" not in t:
                    raise ValueError("trimap mode needs 'trimaps' in every target")
                tri = t["trimaps"].to(mask_feats.device).long()
                tri = F.pad(tri, (0, wp - w, 0, hp - h), value=0)
            else:
                tri = masks.long()
            mask_targets.append(tri[:, 2::4, 2::4])
        return solov2_loss(
            cates,
            kernels,
            mask_feats,
            level_targets,
            mask_targets,
            num_classes=cfg.num_classes,
            mask_classes=cfg.mask_classes,
            mask_bias=self.mask_logit_bias,
            weights=cfg.loss,
        )

    # ------------------------------------------------------------------ inference
    def _strides_per_cell(self, device: torch.device) -> Tensor:
        if device not in self._cell_strides:
            cfg = self.config
            self._cell_strides[device] = torch.cat(
                [
                    torch.full((g * g,), float(s))
                    for g, s in zip(cfg.num_grids, cfg.strides, strict=True)
                ]
            ).to(device)
        return self._cell_strides[device]

    def _probs(self, logits: Tensor) -> Tensor:
        """Foreground-ness per instance: sigmoid (binary) or 1 - P(background) (trimap)."""
        if logits.shape[1] == 1:
            return logits[:, 0].sigmoid()
        return 1 - logits.softmax(dim=1)[:, 0]

    @torch.no_grad()
    def postprocess(
        self,
        cates: list[Tensor],
        kernels: list[Tensor],
        mask_feats: Tensor,
        image_size: tuple[int, int],
        output_size: tuple[int, int] | None = None,
        settings: PostprocessConfig | None = None,
        select: Selector | None = None,
    ) -> list[Instances]:
        """Instances per image; masks/trimaps at `output_size` (default: `image_size`).

        `image_size` is the unpadded size of the network input; `output_size` may differ
        (e.g. the original frame), then kept instances are resized straight to it.
        `select(scores, labels) -> indices` (the caller's person filter) picks among the
        kept instances before anything is upsampled: what it drops costs nothing.
        """
        cfg = self.config
        s = settings or cfg.postprocess
        c = cfg.mask_classes
        h, w = image_size
        out_h, out_w = output_size or image_size
        hf, wf = math.ceil(h / 4), math.ceil(w / 4)
        b = mask_feats.shape[0]
        scores_all = torch.cat(
            [
                point_nms(x.sigmoid()).permute(0, 2, 3, 1).reshape(b, -1, cfg.num_classes)
                for x in cates
            ],
            dim=1,
        )
        kernels_all = torch.cat(
            [k.permute(0, 2, 3, 1).reshape(b, -1, k.shape[1]) for k in kernels], dim=1
        )
        cell_strides = self._strides_per_cell(mask_feats.device)
        results = []
        for i in range(b):
            empty = Instances.empty(out_h, out_w, device=mask_feats.device)
            cand = (scores_all[i] > s.score_thr).nonzero()
            if cand.shape[0] == 0:
                results.append(empty)
                continue
            cells, labels = cand[:, 0], cand[:, 1]
            scores = scores_all[i][cells, labels]
            if scores.shape[0] > s.nms_pre:  # cheap pre-cut before any mask is computed
                top = scores.topk(s.nms_pre).indices
                cells, labels, scores = cells[top], labels[top], scores[top]
            feats = mask_feats[i, :, :hf, :wf]
            logits = dynamic_conv(feats, kernels_all[i][cells], c)
            logits = logits + self.mask_logit_bias.view(1, -1, 1, 1)
            probs = self._probs(logits)
            seg = probs > s.mask_thr
            area = seg.flatten(1).sum(1).to(probs.dtype)
            keep = area > cell_strides[cells]
            mask_scores = (probs * seg).flatten(1).sum(1) / area.clamp_min(1)
            scores = torch.where(keep, scores * mask_scores, torch.zeros_like(scores))
            order = scores.argsort(descending=True)[: s.nms_pre]
            scores = matrix_nms(
                seg[order],
                labels[order],
                scores[order],
                sum_masks=area[order],
                sigma=s.nms_sigma,
                kernel=s.nms_kernel,
            )
            keep = (scores >= s.update_thr).nonzero().squeeze(1)
            if keep.shape[0] == 0:
                results.append(empty)
                continue
            keep = keep[scores[keep].argsort(descending=True)][: s.max_per_img]
            if select is not None:
                keep = keep[select(scores[keep], labels[order[keep]]).to(keep.device)]
                if keep.shape[0] == 0:
                    results.append(empty)
                    continue
            idx = order[keep]
            results.append(
                self._instances(logits[idx], scores[keep], labels[idx], (h, w), (out_h, out_w))
            )
        return results

    def _instances(self, logits, scores, labels, image_size, output_size) -> Instances:
        """Kept instances' low-resolution logits -> Instances, each upsampled only inside
        its window (models/instances.py): the same values as upsampling the whole frame."""
        windows, masks, trimaps, boxes, centres = [], [], [], [], []
        logits = logits.float()  # fp16 under autocast: masks and trimaps in float32
        for k in range(logits.shape[0]):
            win, up = upsample_window(logits[k], image_size, output_size)
            if up.shape[0] == 1:
                mask = up[0].sigmoid()
            else:
                probs = up.softmax(dim=0)
                trimaps.append(probs)
                mask = 1 - probs[0]
            box, centre = window_boxes_and_centres(mask, win)
            windows.append(win)
            masks.append(mask)
            boxes.append(box)
            centres.append(centre)
        dev = logits.device
        return Instances(
            scores,
            labels,
            masks,
            torch.stack(boxes) if boxes else torch.zeros(0, 4, device=dev),
            torch.stack(centres) if centres else torch.zeros(0, 2, device=dev),
            trimaps if logits.shape[1] > 1 else None,
            windows=torch.tensor(windows, dtype=torch.long, device=dev).reshape(-1, 4),
            image_size=output_size,
        )

    @torch.no_grad()
    def detect(
        self, images: Tensor, short_side: int | None = None, select: Selector | None = None
    ) -> list[Instances]:
        """Resize (on the device) so the short side is `short_side` (default: the config's),
        rounded to a multiple of 32, run, and return Instances at the images' own size
        (`select`: see `postprocess`)."""
        h, w = images.shape[-2:]
        side = short_side or self.config.input_short_side
        scale = side / min(h, w)
        nh = max(32, round(h * scale / 32) * 32)
        nw = max(32, round(w * scale / 32) * 32)
        x = images
        if (nh, nw) != (h, w):
            x = F.interpolate(images, size=(nh, nw), mode="bilinear", antialias=scale < 1)
        cates, kernels, mask_feats = self.features(x)
        return self.postprocess(
            cates, kernels, mask_feats, (nh, nw), output_size=(h, w), select=select
        )

    # ------------------------------------------------------------------ temporal loss
    def select_levels(self, sizes: Tensor) -> Tensor:
        """FPN level per query size (sqrt area, px): the range whose log-centre is nearest.

        A range's lower bound counts as at least a quarter of its upper one, so the first
        level's (1, 96) is centred at 48 like the others (centre = upper / 2).
        """
        ranges = torch.tensor(self.config.scale_ranges, device=sizes.device, dtype=torch.float32)
        lo = torch.maximum(ranges[:, 0], ranges[:, 1] / 4)
        centres = (lo.log() + ranges[:, 1].log()) / 2
        d = (sizes.float().clamp_min(1).log()[:, None] - centres[None]).abs()
        return d.argmin(dim=1)

    def instance_logits(
        self,
        images: Tensor,
        points: list[Tensor],
        sizes: list[Tensor],
        feats: tuple | None = None,
    ) -> list[Tensor]:
        """Per image b, (N_b, C, ceil(H/4), ceil(W/4)) mask logits of the queried instances.

        points[b]: (N_b, 2) (x, y) in input pixels; sizes[b]: (N_b,) sqrt(area) in pixels.
        Each query takes the kernel of the grid cell containing its point on the level
        chosen by `select_levels`. Differentiable (for the temporal loss). `feats`: the
        output of `features(images)` when the caller already has it.
        """
        cates, kernels, mask_feats = feats if feats is not None else self.features(images)
        h, w = images.shape[-2:]
        hp, wp = mask_feats.shape[-2] * 4, mask_feats.shape[-1] * 4
        hf, wf = math.ceil(h / 4), math.ceil(w / 4)
        grids = torch.tensor(self.config.num_grids, device=mask_feats.device)
        offsets = torch.cat([grids.new_zeros(1), (grids * grids).cumsum(0)[:-1]])
        flat = torch.cat([k.flatten(2) for k in kernels], dim=2)  # (B, C*E, sum S^2)
        out = []
        for b in range(images.shape[0]):
            pts = points[b].to(mask_feats.device).float().reshape(-1, 2)
            lvl = self.select_levels(sizes[b].to(mask_feats.device).reshape(-1))
            g = grids[lvl]
            col = (pts[:, 0] / wp * g).long().clamp(min=0).minimum(g - 1)
            row = (pts[:, 1] / hp * g).long().clamp(min=0).minimum(g - 1)
            idx = offsets[lvl] + row * g + col
            k = flat[b][:, idx].T
            logits = dynamic_conv(mask_feats[b, :, :hf, :wf], k, self.config.mask_classes)
            out.append(logits + self.mask_logit_bias.view(1, -1, 1, 1))
        return out

    # ------------------------------------------------------------------ persistence
    def folder_config(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "architecture": ARCHITECTURE,
            "arch": cfg.to_dict(),
            "classes": list(cfg.class_names),
            "input": {
                "short_side": cfg.input_short_side,
                "size_divisibility": SIZE_DIVISIBILITY,
                "range": [0.0, 1.0],
                "scale": 255.0,
                "mean": list(cfg.pixel_mean),
                "std": list(cfg.pixel_std),
                "colour_order": cfg.colour_order,
            },
            "mode": cfg.mode,
        }

    @classmethod
    def from_folder(cls, folder: str | Path, device: str | torch.device = "cpu") -> TrimapNet:
        from vidmatte.models.weights.folder import load_model_folder
        from vidmatte.models.weights.state_dict import load_state_strict

        cfg, state = load_model_folder(folder)
        if cfg.get("architecture") != ARCHITECTURE:
            raise WeightsError(
                f"{folder} holds a {cfg.get('architecture')!r} model, not {ARCHITECTURE!r}"
            )
        try:
            config = TrimapNetConfig.from_dict(dict(cfg.get("arch") or {}))
        except (TypeError, ValueError) as e:
            raise WeightsError(f"{folder}/config.json: bad 'arch' entry ({e})") from None
        model = empty_model(config)
        load_state_strict(model, state, folder)
        return model.to(device).eval()


def empty_model(config: TrimapNetConfig) -> TrimapNet:
    """A TrimapNet with uninitialised storage, for loading: built on the meta device, so
    the random initialisation of ~50M parameters (seconds on a CPU) is skipped. Every
    parameter and persistent buffer must then come from a strict state-dict load."""
    with torch.device("meta"):
        model = TrimapNet(config)
    model.to_empty(device="cpu")
    model.pixel_mean = torch.tensor(config.pixel_mean).view(1, 3, 1, 1)
    model.pixel_std = torch.tensor(config.pixel_std).view(1, 3, 1, 1)
    return model


def build_trimapnet(
    config: TrimapNetConfig | None = None, *, pretrained_backbone: bool | Path | str = True
) -> TrimapNet:
    """Build a TrimapNet; pretrained_backbone=True finds ImageNet weights in ../shared
    (warns and starts from scratch where there are none), a path loads that file."""
    model = TrimapNet(config)
    init_backbone(model.backbone, model.config.backbone, pretrained_backbone)
    return model

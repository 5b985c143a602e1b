"""IndexNet training on matting composites with the shared trainer (alpha + composition loss).

Deep Image Matting / IndexNet recipe: foreground and background are augmented separately
(same geometry, each its own photometric jitter) and composited *after* augmentation, so
the composition loss compares against the exact image the network saw. The trimap input is
made from the ground-truth alpha (models/trimap.py rules) and fed as {0, 0.5, 1}.
Loss = w_alpha · alpha_prediction_loss + w_comp · composition_loss (0.5 / 0.5 as in DIM),
both over the unknown region (models/indexnet/losses.py). Evaluation: with
`[data] eval_triplets` (a background-matting triplet folder), SAD/MSE/Grad/Conn of the
matter on the held-out triplets and the held-out half of Composition-1k
(training/eval/matting_eval.py), the numbers the README reports; without it, MAD and MSE
(×1e3) over the unknown region on fixed (epoch 0, centre-crop) composites.

Held-out data never trains: a `matting` or `backgrounds` folder that is (or lies in, or is
named like) a validation item (training/configs/validation.toml) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidmatte.models.errors import UsageError
from vidmatte.models.trimap import (
    IGNORE,
    classes_to_trimap,
    classes_to_unit,
    trimap_from_alpha,
    trimap_to_classes,
)
from vidmatte.training.data.augment import (
    AugmentConfig,
    apply_alpha,
    apply_image,
    apply_label,
    jitter_colour,
    sample_params,
)
from vidmatte.training.data.datasets import MattingCompositeDataset, find_images
from vidmatte.training.release.model_folder import write_model_folder
from vidmatte.training.trainer import from_dict


@dataclass
class IndexNetDataConfig:
    matting: list[str] = field(default_factory=list)  # NAME/{image,alpha[,fg]} folders or globs
    backgrounds: list[str] = field(default_factory=list)
    out_size: tuple[int, int] = (320, 320)
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip_p: float = 0.5
    colour_jitter: float = 0.2
    eval_items: int = 4
    eval_triplets: str = ""  # triplet folder: score on its held-out clips (module docstring)


@dataclass
class IndexNetLossConfig:
    alpha_weight: float = 0.5
    composition_weight: float = 0.5


class LayeredComposites(torch.utils.data.Dataset):
    """Samples {image, alpha, fg, bg, trimap} with fg/bg augmented before compositing."""

    def __init__(self, base: MattingCompositeDataset, aug: AugmentConfig, train: bool = True):
        self.base, self.aug, self.train = base, aug, train

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        epoch, idx = key if isinstance(key, tuple | list) else (0, key)
        _, alpha, fg, bg = self.base.composite((epoch, idx))
        rng = np.random.default_rng([self.base.seed, epoch, idx, 3])
        h, w = alpha.shape
        p = sample_params(rng, h, w, self.aug, train=self.train)
        a = apply_alpha(alpha, p)
        f = apply_image(fg, p)  # fg jitter = p's
        q = sample_params(rng, h, w, self.aug, train=self.train)  # bg: its own jitter
        geometry_only = replace(p, brightness=1.0, contrast=1.0, saturation=1.0, hue=0.0)
        b = jitter_colour(apply_image(bg, geometry_only), q)
        tri = apply_label(trimap_to_classes(trimap_from_alpha(alpha)), p, fill=IGNORE)
        tri[tri == IGNORE] = 0  # padding is known background
        ff = torch.from_numpy(f).permute(2, 0, 1).float() / 255
        bb = torch.from_numpy(b).permute(2, 0, 1).float() / 255
        aa = torch.from_numpy(a)[None].clamp(0, 1)
        return {
            "image": ff * aa + bb * (1 - aa),
            "alpha": aa,
            "fg": ff,
            "bg": bb,
            "trimap": torch.from_numpy(classes_to_unit(tri))[None],
        }


def _collate(samples: list[dict]) -> dict:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


class IndexNetLoss(nn.Module):
    def __init__(self, model: nn.Module, cfg: IndexNetLossConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        from vidmatte.models.indexnet.losses import alpha_prediction_loss, composition_loss

        pred = self.model(batch["image"], batch["trimap"]).float().clamp(0, 1)
        la = alpha_prediction_loss(pred, batch["alpha"], batch["trimap"])
        lc = composition_loss(pred, batch["fg"], batch["bg"], batch["image"], batch["trimap"])
        loss = self.cfg.alpha_weight * la + self.cfg.composition_weight * lc
        return {"loss_alpha": la, "loss_comp": lc, "loss": loss}


class IndexNetTask:
    """Task for trainer.Trainer: `task = "indexnet"` in the config."""

    def __init__(self, config: dict[str, Any], seed: int = 0) -> None:
        self.model_cfg = dict(config.get("model", {}))
        self.data = from_dict(IndexNetDataConfig, config.get("data"), "data")
        self.loss = from_dict(IndexNetLossConfig, config.get("loss"), "loss")
        if not self.data.matting:
            raise UsageError("config [data]: IndexNet training needs `matting` folders")
        self.data.matting = _expand(self.data.matting)
        if not self.data.matting:
            raise UsageError("config [data]: the `matting` patterns match no triplet folder")
        _refuse_held_out(self.data.matting, "matting")
        _refuse_held_out(self.data.backgrounds, "backgrounds")
        self.seed = seed
        self._eval: list[dict] | None = None

    def _aug(self) -> AugmentConfig:
        d = self.data
        j = d.colour_jitter
        return AugmentConfig(tuple(d.out_size), tuple(d.scale_range), d.flip_p, j, j, j, 0.1 * j)

    def build_model(self) -> nn.Module:
        from vidmatte.models.indexnet.model import IndexNetMatting, build_indexnet

        cfg = dict(self.model_cfg)
        cfg.pop("architecture", None)
        init = cfg.pop("init", "")
        if init:
            return IndexNetMatting.from_folder(init)
        return build_indexnet(pretrained_backbone=cfg.pop("pretrained_backbone", True))

    def _base(self, train: bool) -> MattingCompositeDataset:
        bgs = find_images(self.data.backgrounds) if self.data.backgrounds else []
        return MattingCompositeDataset(
            self.data.matting, self._aug(), bgs, seed=self.seed, train=train
        )

    def build_train_set(self, rank: int, world: int) -> torch.utils.data.Dataset:
        return LayeredComposites(self._base(True), self._aug(), train=True)

    def collate(self, samples: list) -> dict:
        return _collate(samples)

    def loss_module(self, model: nn.Module) -> nn.Module:
        return IndexNetLoss(model, self.loss)

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        if self.data.eval_triplets:
            return self._evaluate_held_out(model, device)
        from vidmatte.training.metrics import alpha_metrics

        if self._eval is None:
            ds = LayeredComposites(self._base(False), self._aug(), train=False)
            self._eval = [ds[(0, i)] for i in range(min(len(ds), self.data.eval_items))]
        mad, mse = [], []
        for s in self._eval:
            pred = model(s["image"][None].to(device), s["trimap"][None].to(device))
            tri = classes_to_trimap((s["trimap"][0].numpy() * 2).astype(np.uint8))
            m = alpha_metrics(pred[0, 0].float().cpu().numpy(), s["alpha"][0].numpy(), tri)
            mad.append(m["MAD"])
            mse.append(m["MSE"])
        return {"MAD": float(np.mean(mad)), "MSE": float(np.mean(mse))}

    def _evaluate_held_out(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        from vidmatte.models.matters.indexnet import IndexNetMatter
        from vidmatte.models.shared import find_shared
        from vidmatte.training.eval.matting_eval import (
            evaluate_matter,
            held_out_triplets,
            spring_item,
        )

        matter = IndexNetMatter(model, device=str(device))
        out: dict[str, float] = {}
        items = held_out_triplets(self.data.eval_triplets, limit=self.data.eval_items)
        shared = find_shared()
        groups = [("triplets", items)]
        if shared is not None:
            groups.append(("c1k", [spring_item(shared)]))
        was_training = model.training
        model.eval()
        try:
            for name, group in groups:
                if group:
                    r = evaluate_matter(matter, group, speed_items=0)
                    out.update({f"{name}_{k}": v for k, v in r.items() if k != "items"})
        finally:
            model.train(was_training)
        return out

    def export(self, model: nn.Module, folder: Path) -> None:
        write_model_folder(model, folder)


def _expand(entries: list[str]) -> list[str]:
    """Matting folders; an entry with * is a glob of NAME folders (those with an alpha/ that
    are not held out: a pattern may cover a triplet folder's evaluation clips)."""
    import glob

    from vidmatte.training.data.validation import is_held_out

    out: list[str] = []
    for e in entries:
        if "*" not in e:
            out.append(e)
            continue
        for f in sorted(glob.glob(e)):
            p = Path(f)
            if (p / "alpha").is_dir() and any((p / "alpha").iterdir()) and not is_held_out(p):
                out.append(f)
    return out


def _refuse_held_out(folders: list[str], key: str) -> None:
    from vidmatte.training.data.validation import is_held_out

    for f in folders:
        p = Path(f)
        subs = [p] + ([q for q in p.iterdir() if q.is_dir()] if p.is_dir() else [])
        bad = next((q for q in subs if is_held_out(q)), None)
        if bad is not None:
            raise UsageError(f"config [data] {key}: {bad} is held out for validation")

"""`vidmatte-train calibrate MODEL_DIR DATASET`: the person score threshold of trimap weights.

SOLOv2 scores are focal-loss probabilities decayed by Matrix NMS: after a short schedule a
clearly found person may score 0.3, so one fixed threshold for every model (the teacher's
0.5) either drops people or keeps clutter. Each model folder therefore carries its own
`postprocess.person_thr`, which `PipelineConfig.min_score=None` (the CLI's and the app's
default) uses.

How it is chosen: the model runs on labelled frames of a pseudo-labelled dataset (spread
evenly over its videos); detections are matched one-to-one to the labelled people by mask
IoU >= 0.5, greedily by score; every threshold from 0.05 to 0.95 is scored by F2 (recall
counts twice: a missed person is a lost matte, while a spurious instance must also survive
the associator's k-hit confirmation and can be deleted in the app), and the best is
written into config.json (atomically; the tensors and their sha256 are untouched).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidmatte.models.errors import InputError, UsageError

THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)


@dataclass
class Calibration:
    threshold: float
    precision: float
    recall: float
    f2: float
    frames: int
    people: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="trimap-network model folder (config.json is updated)")
    parser.add_argument("dataset", help="pseudo-labelled dataset (manifest.json)")
    parser.add_argument("--frames", type=int, default=80, help="labelled frames to use")
    parser.add_argument("--iou", type=float, default=0.5, help="mask IoU for a match")
    parser.add_argument("--dry-run", action="store_true", help="report; leave config.json")


def _match(masks: np.ndarray, scores: np.ndarray, labels: list[np.ndarray], iou: float):
    """(matched scores, unmatched scores) of the detections against the labelled masks."""
    order = np.argsort(-scores)
    free = list(range(len(labels)))
    hit, miss = [], []
    for i in order:
        best, best_j = 0.0, -1
        for j in free:
            inter = np.count_nonzero(masks[i] & labels[j])
            union = np.count_nonzero(masks[i] | labels[j])
            v = inter / union if union else 0.0
            if v > best:
                best, best_j = v, j
        if best >= iou:
            free.remove(best_j)
            hit.append(float(scores[i]))
        else:
            miss.append(float(scores[i]))
    return hit, miss


def calibrate(
    model_dir: str | Path, dataset: str | Path, frames: int = 80, iou: float = 0.5
) -> Calibration:
    import torch

    from vidmatte.models.trimapnet import TrimapNet
    from vidmatte.training.data.datasets import read_grey, read_manifest, read_rgb

    root = Path(dataset)
    items = [(f, v) for v in read_manifest(root) for f in v.frames if f.labelled]
    if not items:
        raise InputError(f"{root}: no labelled frames to calibrate on")
    pick = np.linspace(0, len(items) - 1, min(frames, len(items))).round().astype(int)
    model = TrimapNet.from_folder(model_dir).eval()
    model.config.postprocess.score_thr = float(THRESHOLDS[0])  # see everything above 0.05
    hits: list[float] = []
    misses: list[float] = []
    people = 0
    with torch.inference_mode():
        for k in sorted(set(pick.tolist())):
            frame, _ = items[k]
            img = read_rgb(root / frame.file)
            labels = [read_grey(root / i.mask) > 127 for i in frame.instances]
            people += len(labels)
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
            det = model.detect(x)[0]
            masks = (det.masks.float().numpy() > 0.5) if len(det) else np.zeros((0, *img.shape[:2]))
            h, m = _match(masks, det.scores.numpy(), labels, iou)
            hits += h
            misses += m
    hit, miss = np.asarray(hits), np.asarray(misses)
    best: Calibration | None = None
    for t in THRESHOLDS:
        tp = int((hit >= t).sum())
        fp = int((miss >= t).sum())
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / people if people else 0.0
        f2 = 5 * p * r / (4 * p + r) if p + r else 0.0
        if best is None or f2 > best.f2 + 1e-9:
            best = Calibration(float(t), p, r, f2, len(set(pick.tolist())), people)
    assert best is not None
    return best


def write_threshold(model_dir: str | Path, threshold: float) -> None:
    """Set arch.postprocess.person_thr in config.json (atomic replace)."""
    from vidmatte.models.weights.folder import CONFIG_NAME, read_config
    from vidmatte.training.data.teacher_dataset import write_json

    cfg = read_config(model_dir)
    cfg.setdefault("arch", {}).setdefault("postprocess", {})["person_thr"] = round(threshold, 2)
    write_json(Path(model_dir) / CONFIG_NAME, cfg)


def run(args: argparse.Namespace) -> int:
    if args.frames < 1 or not 0 < args.iou <= 1:
        raise UsageError("--frames must be >= 1 and --iou in (0, 1]")
    c = calibrate(args.model, args.dataset, args.frames, args.iou)
    print(
        f"person threshold {c.threshold:.2f}: precision {c.precision:.3f}, recall "
        f"{c.recall:.3f}, F2 {c.f2:.3f} on {c.frames} frames / {c.people} labelled people"
    )
    if not args.dry_run:
        write_threshold(args.model, c.threshold)
        print(f"written to {Path(args.model) / 'config.json'}")
    return 0

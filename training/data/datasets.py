"""Training data: pseudo-labelled video triplets, human-matting composites, and their mix.

Sampling follows the paper's random sampling policy: for every labelled frame t a random
earlier frame_f and later frame_b are drawn within `window` frames, and the triplet
(t, f, b) is augmented with one shared transform (augment.py). Human-matting ground truth
(image + alpha) is composited on varied backgrounds (other videos' frames, background
folders, random gradients), with trimaps made from alpha; these samples have no
neighbours, so they carry no temporal loss (`temporal` is False).

Randomness is a pure function of (seed, epoch, index): `dataset[(epoch, i)]` returns the
same sample in any process, with any number of workers, before or after a resume. The
sampler (`ResumableSampler`) yields such keys and can start from any consumed-sample count,
which is what makes resumed runs bit-identical to straight ones.

Sample dict (tensors): images (3, 3, H, W) float [0,1] in order (t, f, b); flows (2, 2, H, W)
pixel flow t->f and t->b (zeros when not computed here); masks (N, H, W) uint8; trimaps
(N, H, W) long {0 bg, 1 unknown, 2 fg, 255 ignore}; centres (N, 2) xy; sizes (N,)
sqrt(area); temporal (bool); valid (1, H, W) bool (not padding); alpha (1, H, W) float for matting samples (else empty).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from vidmatte.matting.io.atomic import atomic_write_text
from vidmatte.models.errors import InputError
from vidmatte.models.trimap import IGNORE, trimap_from_alpha, trimap_to_classes
from vidmatte.training.data.augment import (
    AugmentConfig,
    AugmentParams,
    apply_alpha,
    apply_flow,
    apply_image,
    apply_label,
    apply_valid,
    sample_params,
)
from vidmatte.training.data.flow_cache import FlowCache

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# --------------------------------------------------------------------------- manifest


@dataclass
class InstanceLabel:
    track_id: int
    score: float
    box: list[float]
    mask: str
    trimap: str


@dataclass
class FrameEntry:
    index: int
    file: str
    labelled: bool
    instances: list[InstanceLabel] = field(default_factory=list)


@dataclass
class VideoEntry:
    name: str
    width: int
    height: int
    fps: float
    frames: list[FrameEntry]


def read_manifest(root: str | Path) -> list[VideoEntry]:
    """Parse DATASET/manifest.json (schema 1) written by `vidmatte-train pseudo-label`."""
    root = Path(root)
    path = root / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"no manifest.json in the dataset folder {root}") from None
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != 1:
        raise InputError(f"{path}: unsupported manifest schema {data.get('schema')!r}")
    videos = []
    try:
        for v in data["videos"]:
            frames = [
                FrameEntry(
                    index=int(f["index"]),
                    file=str(f["file"]),
                    labelled=bool(f.get("labelled", False)),
                    instances=[
                        InstanceLabel(
                            track_id=int(i["track_id"]),
                            score=float(i.get("score", 1.0)),
                            box=[float(x) for x in i.get("box", [0, 0, 0, 0])],
                            mask=str(i["mask"]),
                            trimap=str(i["trimap"]),
                        )
                        for i in f.get("instances", [])
                    ],
                )
                for f in v["frames"]
            ]
            frames.sort(key=lambda f: f.index)
            videos.append(
                VideoEntry(
                    name=str(v["name"]),
                    width=int(v["width"]),
                    height=int(v["height"]),
                    fps=float(v.get("fps", 25.0)),
                    frames=frames,
                )
            )
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: malformed manifest ({type(e).__name__}: {e})") from None
    return videos


# --------------------------------------------------------------------------- image I/O


def read_rgb(path: str | Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_grey(path: str | Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"cannot read image {path}")
    if img.ndim == 3:
        img = img[..., 0]
    if img.dtype != np.uint8:
        img = (img.astype(np.float32) * (255.0 / np.iinfo(img.dtype).max)).round().astype(np.uint8)
    return img


def _centre_size(mask: np.ndarray) -> tuple[tuple[float, float], float]:
    ys, xs = np.nonzero(mask)
    return (float(xs.mean()), float(ys.mean())), float(math.sqrt(len(xs)))


def _to_tensor_images(imgs: Sequence[np.ndarray]) -> Tensor:
    arr = np.stack(imgs).astype(np.float32) / 255.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def _key(key: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(key, tuple | list):
        return int(key[0]), int(key[1])
    return 0, int(key)


def _pack_instances(
    masks: list[np.ndarray], trimaps: list[np.ndarray], h: int, w: int, min_area: int
) -> dict[str, Tensor]:
    keep_m, keep_t, centres, sizes = [], [], [], []
    for m, t in zip(masks, trimaps, strict=True):
        if int(m.sum()) < min_area:
            continue  # cropped away or too small to carry a kernel
        c, s = _centre_size(m)
        keep_m.append(m)
        keep_t.append(t)
        centres.append(c)
        sizes.append(s)
    n = len(keep_m)
    return {
        "masks": torch.from_numpy(np.stack(keep_m))
        if n
        else torch.zeros(0, h, w, dtype=torch.uint8),
        "trimaps": (
            torch.from_numpy(np.stack(keep_t).astype(np.int64))
            if n
            else torch.zeros(0, h, w, dtype=torch.long)
        ),
        "centres": torch.tensor(centres, dtype=torch.float32).reshape(n, 2),
        "sizes": torch.tensor(sizes, dtype=torch.float32).reshape(n),
    }


# --------------------------------------------------------------------------- video triplets


@dataclass(frozen=True)
class TripletConfig:
    window: int = 5  # frame_f / frame_b are drawn from 1..window frames away
    flow: str = "dis"  # "dis" (cached, CPU), "raft" (trainer computes on GPU), "none"
    flow_max_side: int = 480
    flow_cache_dir: str | None = None  # default: DATASET/flow_cache
    min_instance_area: int = 16  # pixels in the augmented crop
    max_instances: int = 8


class VideoTripletDataset(torch.utils.data.Dataset):
    """(frame_f, labelled frame t, frame_b) triplets from a pseudo-labelled dataset folder."""

    def __init__(
        self,
        root: str | Path,
        aug: AugmentConfig,
        cfg: TripletConfig = TripletConfig(),
        seed: int = 0,
        train: bool = True,
        videos: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.aug, self.cfg, self.seed, self.train = aug, cfg, int(seed), train
        self.videos = read_manifest(self.root)
        if videos is not None:
            self.videos = [v for v in self.videos if v.name in set(videos)]
        refuse_held_out(self.root, self.videos)
        self.items: list[tuple[int, int]] = [
            (vi, fi)
            for vi, v in enumerate(self.videos)
            for fi, f in enumerate(v.frames)
            if f.labelled and f.instances
        ]
        if not self.items:
            raise InputError(f"{self.root}: the manifest has no labelled frame with a person")
        cache_dir = cfg.flow_cache_dir or (self.root / "flow_cache")
        self.flow_cache = FlowCache(cache_dir, cfg.flow_max_side) if cfg.flow == "dis" else None

    def __len__(self) -> int:
        return len(self.items)

    def frame_path(self, vi: int, fi: int) -> Path:
        return self.root / self.videos[vi].frames[fi].file

    def load_frame(self, vi: int, fi: int) -> np.ndarray:
        return _read_rgb_cached(str(self.frame_path(vi, fi)))

    def neighbours(self, rng: np.random.Generator, vi: int, fi: int) -> tuple[int, int]:
        """Random sampling policy: an earlier and a later frame within the window."""
        n = len(self.videos[vi].frames)
        w = max(1, self.cfg.window)
        before = [fi - k for k in range(1, w + 1) if fi - k >= 0]
        after = [fi + k for k in range(1, w + 1) if fi + k < n]
        # at a clip's ends both neighbours come from the one side there is
        f = int(rng.choice(before)) if before else (int(rng.choice(after)) if after else fi)
        b = int(rng.choice(after)) if after else (int(rng.choice(before)) if before else fi)
        return f, b

    def flow_pairs(self) -> Iterator[tuple[str, int, int]]:
        """Every (video, t, t') pair the sampler can draw, for FlowCache.precompute."""
        w = max(1, self.cfg.window)
        for vi, fi in self.items:
            v = self.videos[vi]
            for k in range(-w, w + 1):
                if k and 0 <= fi + k < len(v.frames):
                    yield v.name, v.frames[fi].index, v.frames[fi + k].index

    def load_by_index(self, video: str, index: int) -> np.ndarray:
        vi = next(i for i, v in enumerate(self.videos) if v.name == video)
        fi = next(i for i, f in enumerate(self.videos[vi].frames) if f.index == index)
        return self.load_frame(vi, fi)

    def flow(self, vi: int, fi: int, fj: int) -> np.ndarray:
        assert self.flow_cache is not None
        v = self.videos[vi]
        return self.flow_cache.get(
            v.name, v.frames[fi].index, v.frames[fj].index, lambda _i: self._by_idx(vi, _i)
        )

    def _by_idx(self, vi: int, index: int) -> np.ndarray:
        fi = next(i for i, f in enumerate(self.videos[vi].frames) if f.index == index)
        return self.load_frame(vi, fi)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, idx = _key(key)
        rng = np.random.default_rng([self.seed, epoch, idx, 0])
        vi, fi = self.items[idx % len(self.items)]
        ff, fb = self.neighbours(rng, vi, fi)
        img_t = self.load_frame(vi, fi)
        h, w = img_t.shape[:2]
        p = sample_params(rng, h, w, self.aug, train=self.train)
        imgs = [apply_image(img_t, p), apply_image(self.load_frame(vi, ff), p)]
        imgs.append(apply_image(self.load_frame(vi, fb), p))
        flows = torch.zeros(2, 2, p.out_h, p.out_w)
        if self.flow_cache is not None:
            for k, fj in enumerate((ff, fb)):
                fl = apply_flow(self.flow(vi, fi, fj), p, (h, w))
                flows[k] = torch.from_numpy(fl).permute(2, 0, 1)
        masks, trimaps = [], []
        for inst in self.videos[vi].frames[fi].instances[: self.cfg.max_instances]:
            m = (read_grey(self.root / inst.mask) > 127).astype(np.uint8)
            t = trimap_to_classes(read_grey(self.root / inst.trimap))
            masks.append(apply_label(m, p, fill=0))
            trimaps.append(apply_label(t, p, fill=IGNORE))
        sample = _pack_instances(masks, trimaps, p.out_h, p.out_w, self.cfg.min_instance_area)
        sample.update(
            images=_to_tensor_images(imgs),
            flows=flows,
            temporal=self.train,
            valid=torch.from_numpy(apply_valid(h, w, p))[None],
            alpha=torch.zeros(0),
            source="video",
        )
        return sample


@lru_cache(maxsize=64)
def _read_rgb_cached(path: str) -> np.ndarray:
    """Frames are reused by neighbouring triplets; keep a few decoded ones per process."""
    img = read_rgb(path)
    img.setflags(write=False)
    return img


# --------------------------------------------------------------------------- matting composites


def find_matting_items(folders: Sequence[str | Path]) -> list[tuple[Path, Path, Path | None]]:
    """(image, alpha, fg or None) triples from folders laid out as NAME/{image,alpha[,fg]}/."""
    items = []
    for folder in folders:
        folder = Path(folder)
        if not (folder / "alpha").is_dir():
            raise InputError(f"matting folder {folder} has no alpha/ sub-folder")
        for a in sorted((folder / "alpha").iterdir()):
            if a.suffix.lower() not in IMAGE_EXTS:
                continue
            img = next(
                (
                    folder / "image" / (a.stem + e)
                    for e in IMAGE_EXTS
                    if (folder / "image" / (a.stem + e)).is_file()
                ),
                None,
            )
            if img is None:
                raise InputError(f"{folder}: no image for alpha {a.name}")
            fg = next(
                (
                    folder / "fg" / (a.stem + e)
                    for e in IMAGE_EXTS
                    if (folder / "fg" / (a.stem + e)).is_file()
                ),
                None,
            )
            items.append((img, a, fg))
    return items


def find_images(folders: Sequence[str | Path]) -> list[Path]:
    out: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"background folder {folder} does not exist")
        out += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    return out


def random_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour gradient with noise: cheap variety when no photos are given."""
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
    ramp = c0[None] * (1 - t[:, None]) + c1[None] * t[:, None]
    img = np.broadcast_to(ramp[None] if len(t) == w else ramp[:, None], (h, w, 3)).copy()
    img += rng.normal(0, 8, (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


class MattingCompositeDataset(torch.utils.data.Dataset):
    """Human-matting ground truth composited on varied backgrounds.

    Without a fg/ folder the image itself stands in for the foreground colours (exact where
    alpha is 0 or 1, a slight colour bleed in semi-transparent hair); with fg/ the composite
    is exact. Background per sample: a photo from `backgrounds` (files), else a random
    gradient. Trimaps come from alpha (models/trimap.py: trimap_from_alpha).
    """

    def __init__(
        self,
        folders: Sequence[str | Path],
        aug: AugmentConfig,
        backgrounds: Sequence[str | Path] = (),
        seed: int = 0,
        train: bool = True,
        min_instance_area: int = 16,
        gradient_p: float = 0.2,
    ) -> None:
        self.items = find_matting_items(folders)
        if not self.items:
            raise InputError("no matting items (image + alpha) in " + ", ".join(map(str, folders)))
        self.backgrounds = [Path(b) for b in backgrounds]
        self.aug, self.seed, self.train = aug, int(seed), train
        self.min_area = min_instance_area
        self.gradient_p = gradient_p if self.backgrounds else 1.0

    def __len__(self) -> int:
        return len(self.items)

    def composite(self, key: int | tuple[int, int]) -> tuple[np.ndarray, ...]:
        """(image, alpha, fg, bg) uint8/float32 at source size for sample `key`."""
        epoch, idx = _key(key)
        rng = np.random.default_rng([self.seed, epoch, idx, 1])
        img_p, alpha_p, fg_p = self.items[idx % len(self.items)]
        fg = _read_rgb_cached(str(fg_p or img_p))
        alpha = read_grey(alpha_p).astype(np.float32) / 255.0
        h, w = alpha.shape
        if rng.random() < self.gradient_p:
            bg = random_background(rng, h, w)
        else:
            bg = _read_rgb_cached(str(self.backgrounds[int(rng.integers(len(self.backgrounds)))]))
            # a random crop of the photo, resized to cover the foreground
            s = max(h / bg.shape[0], w / bg.shape[1]) * rng.uniform(1.0, 1.5)
            bg = cv2.resize(bg, (max(w, round(bg.shape[1] * s)), max(h, round(bg.shape[0] * s))))
            y0 = int(rng.integers(0, bg.shape[0] - h + 1))
            x0 = int(rng.integers(0, bg.shape[1] - w + 1))
            bg = bg[y0 : y0 + h, x0 : x0 + w]
        a3 = alpha[..., None]
        comp = fg.astype(np.float32) * a3 + bg.astype(np.float32) * (1 - a3)
        return np.clip(comp + 0.5, 0, 255).astype(np.uint8), alpha, fg, bg

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, idx = _key(key)
        comp, alpha, fg, bg = self.composite((epoch, idx))
        rng = np.random.default_rng([self.seed, epoch, idx, 2])
        h, w = alpha.shape
        p: AugmentParams = sample_params(rng, h, w, self.aug, train=self.train)
        img = apply_image(comp, p)
        a = apply_alpha(alpha, p)
        tri = apply_label(trimap_to_classes(trimap_from_alpha(alpha)), p, fill=IGNORE)
        sample = _pack_instances(
            [(a > 0.5).astype(np.uint8)], [tri], p.out_h, p.out_w, self.min_area
        )
        sample.update(
            images=_to_tensor_images([img, img, img]),
            flows=torch.zeros(2, 2, p.out_h, p.out_w),
            temporal=False,  # no neighbours: the temporal loss skips these
            valid=torch.from_numpy(apply_valid(h, w, p))[None],
            alpha=torch.from_numpy(a)[None],
            source="matting",
        )
        return sample


def refuse_held_out(root: Path, videos: Sequence[VideoEntry]) -> None:
    """Validation clips (training/configs/validation.toml) never train: refuse a dataset
    that holds one, by name or by the source path its manifest records."""
    from vidmatte.training.data.validation import VALIDATION_FILE, is_held_out

    data = json.loads((root / "manifest.json").read_text())
    sources = {str(v.get("name")): v.get("source") for v in data.get("videos", [])}
    for v in videos:
        src = sources.get(v.name)
        if is_held_out(v.name) or (src and is_held_out(src)):
            raise InputError(
                f"{root}: video {v.name!r} is a validation item ({VALIDATION_FILE.name}); "
                "remove it from the dataset before training"
            )


class ConcatVideoDataset(torch.utils.data.Dataset):
    """Several video datasets as one (pseudo labels + human ground truth), each repeated
    `repeats[i]` times per epoch; keys stay (epoch, index), so resumes stay exact."""

    def __init__(self, parts: Sequence[VideoTripletDataset], repeats: Sequence[int]) -> None:
        if not parts or len(parts) != len(repeats):
            raise InputError("ConcatVideoDataset needs one repeat count per dataset")
        self.parts = list(parts)
        self.index: list[tuple[int, int]] = [
            (k, i) for k, (d, r) in enumerate(zip(parts, repeats, strict=True))
            for _ in range(max(1, int(r))) for i in range(len(d))
        ]  # fmt: skip
        self.root = self.parts[0].root
        self.videos = [v for d in self.parts for v in d.videos]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, idx = _key(key)
        k, i = self.index[idx % len(self.index)]
        return self.parts[k][(epoch, i)]


class MixedDataset(torch.utils.data.Dataset):
    """Video triplets and matting composites at a fixed ratio of matting samples.

    Indices [0, len(video)) are video samples; the following ones cycle through the matting
    set, sized so that matting samples are `matting_ratio` of an epoch. The sampler's
    shuffle interleaves them.
    """

    def __init__(
        self,
        video: torch.utils.data.Dataset | None,
        matting: torch.utils.data.Dataset | None,
        matting_ratio: float = 0.3,
    ) -> None:
        if video is None and matting is None:
            raise InputError("no training data: give a pseudo-labelled dataset or matting data")
        self.video, self.matting = video, matting
        nv = len(video) if video is not None else 0
        if matting is None or matting_ratio <= 0:
            nm = 0
        elif nv == 0:
            nm = len(matting)
        else:
            r = min(matting_ratio, 0.95)
            nm = max(1, round(nv * r / (1 - r)))
        self.nv, self.nm = nv, nm

    def __len__(self) -> int:
        return self.nv + self.nm

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, idx = _key(key)
        if idx < self.nv:
            return self.video[(epoch, idx)]
        return self.matting[(epoch, idx - self.nv)]


# --------------------------------------------------------------------------- sampler & collate


class ResumableSampler(torch.utils.data.Sampler):
    """Endless shuffled keys (epoch, index), split across ranks, startable at any position.

    `start` counts samples this rank has already consumed; the trainer passes
    step * batch_size on resume, so prefetching workers never make the position drift.
    """

    def __init__(
        self,
        length: int,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = True,
        start: int = 0,
    ) -> None:
        if length <= 0:
            raise InputError("the training set is empty")
        self.length, self.seed, self.rank, self.world = length, int(seed), rank, world
        self.shuffle, self.start = shuffle, int(start)
        self.per_rank = math.ceil(length / world)

    def order(self, epoch: int) -> list[int]:
        if self.shuffle:
            perm = np.random.default_rng([self.seed, epoch, 7]).permutation(self.length)
        else:
            perm = np.arange(self.length)
        pad = self.per_rank * self.world - self.length
        perm = np.concatenate([perm, perm[:pad]]) if pad else perm
        return perm[self.rank :: self.world].tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, pos = divmod(self.start, self.per_rank)
        while True:
            order = self.order(epoch)
            for i in order[pos:]:
                yield (epoch, i)
            epoch, pos = epoch + 1, 0

    def __len__(self) -> int:  # an epoch, for progress display only
        return self.per_rank


def collate(samples: list[dict]) -> dict:
    """Stack images/flows; keep per-image targets as lists (variable instance counts)."""
    out: dict = {
        "images": torch.stack([s["images"] for s in samples]),
        "flows": torch.stack([s["flows"] for s in samples]),
        "temporal": torch.tensor([bool(s["temporal"]) for s in samples]),
        "valid": torch.stack([s["valid"] for s in samples]),
        "source": [s["source"] for s in samples],
    }
    for k in ("masks", "trimaps", "centres", "sizes", "alpha"):
        out[k] = [s[k] for s in samples]
    return out


# --------------------------------------------------------------------------- import GT sequences


def import_mask_sequence(
    frames_dir: str | Path,
    masks_dir: str | Path,
    out_root: str | Path,
    name: str,
    max_frames: int | None = None,
    max_side: int | None = None,
    labelled_every: int = 1,
) -> Path:
    """Add a video with per-frame GT masks (DAVIS layout: NNNNN.jpg + NNNNN.png) to a dataset.

    Masks may be binary (0/255) or instance-index PNGs (value k = track k). Trimaps come
    from models/trimap.py: masks_to_trimaps, as the pseudo-labeller makes them, so ground
    truth sequences and teacher labels train the same way. Frames without a mask, or past
    `labelled_every`, are written unlabelled (still usable as frame_f / frame_b).
    """
    from vidmatte.models.trimap import masks_to_trimaps

    frames_dir, masks_dir, out_root = Path(frames_dir), Path(masks_dir), Path(out_root)
    files = sorted(p for p in frames_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if max_frames:
        files = files[:max_frames]
    if not files:
        raise InputError(f"no frames in {frames_dir}")
    for sub in ("frames", "masks", "trimaps"):
        (out_root / sub / name).mkdir(parents=True, exist_ok=True)
    entries = []
    w = h = 0
    for i, fp in enumerate(files):
        img = read_rgb(fp)
        if max_side and max(img.shape[:2]) > max_side:
            s = max_side / max(img.shape[:2])
            img = cv2.resize(
                img,
                (round(img.shape[1] * s), round(img.shape[0] * s)),
                interpolation=cv2.INTER_AREA,
            )
        h, w = img.shape[:2]
        rel = f"frames/{name}/{i:06d}.jpg"
        cv2.imwrite(
            str(out_root / rel),
            cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 95],
        )
        entry = {"index": i, "file": rel, "labelled": False, "instances": []}
        mp = next(
            (
                masks_dir / (fp.stem + e)
                for e in (".png", ".PNG")
                if (masks_dir / (fp.stem + e)).is_file()
            ),
            None,
        )
        if mp is not None and i % max(1, labelled_every) == 0:
            m = cv2.resize(read_grey(mp), (w, h), interpolation=cv2.INTER_NEAREST)
            ids = [int(v) for v in np.unique(m) if v != 0]
            binary = ids == [255] or len(ids) == 1
            masks = np.stack([m > 127] if binary else [m == v for v in ids]) if ids else None
            if masks is not None:
                tris = masks_to_trimaps(masks.astype(np.float32))
                for k, (mk, tr) in enumerate(zip(masks, tris, strict=True)):
                    tid = 1 if binary else ids[k]
                    mrel = f"masks/{name}/{i:06d}_t{tid:02d}.png"
                    trel = f"trimaps/{name}/{i:06d}_t{tid:02d}.png"
                    cv2.imwrite(str(out_root / mrel), mk.astype(np.uint8) * 255)
                    cv2.imwrite(str(out_root / trel), tr)
                    ys, xs = np.nonzero(mk)
                    entry["instances"].append(
                        {
                            "track_id": tid,
                            "score": 1.0,
                            "box": [
                                float(xs.min()),
                                float(ys.min()),
                                float(xs.max() + 1),
                                float(ys.max() + 1),
                            ],
                            "mask": mrel,
                            "trimap": trel,
                        }
                    )
                entry["labelled"] = True
        entries.append(entry)
    mpath = out_root / "manifest.json"
    manifest = (
        json.loads(mpath.read_text())
        if mpath.is_file()
        else {"schema": 1, "teacher": {"name": "ground-truth"}, "settings": {}, "videos": []}
    )
    manifest["videos"] = [v for v in manifest["videos"] if v["name"] != name]
    manifest["videos"].append(
        {
            "name": name,
            "source": str(frames_dir),
            "fps": 24.0,
            "width": w,
            "height": h,
            "frames": entries,
        }
    )
    atomic_write_text(mpath, json.dumps(manifest, indent=1))
    return out_root

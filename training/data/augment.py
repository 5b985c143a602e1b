"""Training augmentation applied identically to every frame of a triplet.

The temporal loss compares a labelled frame with its neighbours through optical flow, so
the three frames (and the flows between them) must go through the *same* geometric and
photometric transform: one `AugmentParams` is drawn per triplet and applied to each image,
label and flow field. Geometry: random scale (0.5-2, as in the paper), horizontal flip and a
crop of a fixed output size (padded where the scaled image is smaller; padded pixels are
marked 255 = ignore in labels). Photometry: brightness, contrast, saturation, hue jitter.

Flows transform with the geometry: a scale multiplies vectors, a flip negates their x
component, a crop/pad only moves them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vidmatte.models.trimap import IGNORE


@dataclass(frozen=True)
class AugmentConfig:
    out_size: tuple[int, int] = (192, 192)  # (H, W) of the training crop
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip_p: float = 0.5
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    hue: float = 0.03  # fraction of the hue circle
    base_scale: float = 1.0  # pre-scale to bring frames near out_size before the random scale


@dataclass(frozen=True)
class AugmentParams:
    scale: float  # total scale (base * random)
    flip: bool
    x0: int  # crop origin in the scaled image (may be negative = pad)
    y0: int
    out_h: int
    out_w: int
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0

    @staticmethod
    def identity(h: int, w: int) -> AugmentParams:
        return AugmentParams(1.0, False, 0, 0, h, w)


def fit_scale(h: int, w: int, out_size: tuple[int, int]) -> float:
    """Scale that makes the shorter image side match the crop's shorter side."""
    return min(out_size) / min(h, w)


def sample_params(
    rng: np.random.Generator, h: int, w: int, cfg: AugmentConfig, train: bool = True
) -> AugmentParams:
    """Draw one transform for an image of size (h, w); deterministic given `rng`."""
    out_h, out_w = cfg.out_size
    base = cfg.base_scale * fit_scale(h, w, cfg.out_size)
    if not train:
        s = base
        sh, sw = round(h * s), round(w * s)
        return AugmentParams(s, False, (sw - out_w) // 2, (sh - out_h) // 2, out_h, out_w)
    lo, hi = cfg.scale_range
    # log-uniform so that shrinking and enlarging are equally likely
    s = base * float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    sh, sw = max(1, round(h * s)), max(1, round(w * s))
    x0 = int(rng.integers(min(0, sw - out_w), max(0, sw - out_w) + 1))
    y0 = int(rng.integers(min(0, sh - out_h), max(0, sh - out_h) + 1))
    return AugmentParams(
        scale=s,
        flip=bool(rng.random() < cfg.flip_p),
        x0=x0,
        y0=y0,
        out_h=out_h,
        out_w=out_w,
        brightness=float(rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)),
        contrast=float(rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)),
        saturation=float(rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)),
        hue=float(rng.uniform(-cfg.hue, cfg.hue)),
    )


def _geometry(x: np.ndarray, p: AugmentParams, interp: int, fill: float) -> np.ndarray:
    if x.ndim == 3 and x.shape[2] > 4:
        chans = [_geometry(x[..., i], p, interp, fill) for i in range(x.shape[2])]
        return np.stack(chans, axis=-1)
    was_3d = x.ndim == 3
    h, w = x.shape[:2]
    sh, sw = max(1, round(h * p.scale)), max(1, round(w * p.scale))
    # one affine warp = resize + crop/pad (+ flip) without an intermediate full-size image
    if interp != cv2.INTER_NEAREST and p.scale < 0.75:
        # area resampling first: a strong bilinear downscale aliases
        x = cv2.resize(x, (sw, sh), interpolation=cv2.INTER_AREA)
        h, w = sh, sw
    sx, sy = sw / w, sh / h
    # pixel centres: x_out = sx * (x + 0.5) - 0.5, mirrored about the scaled image, minus crop
    if p.flip:
        m = np.array([[-sx, 0, sw - 1 - (sx * 0.5 - 0.5) - p.x0], [0, sy, 0]], np.float64)
    else:
        m = np.array([[sx, 0, sx * 0.5 - 0.5 - p.x0], [0, sy, 0]], np.float64)
    m[1, 2] = sy * 0.5 - 0.5 - p.y0
    border = cv2.BORDER_CONSTANT
    out = cv2.warpAffine(
        x, m, (p.out_w, p.out_h), flags=interp, borderMode=border, borderValue=fill
    )
    if was_3d and out.ndim == 2:
        out = out[..., None]
    return out


def apply_image(img: np.ndarray, p: AugmentParams) -> np.ndarray:
    """uint8 HxWx3 RGB -> uint8 out_h x out_w x 3 (geometry, then colour jitter)."""
    out = _geometry(img, p, cv2.INTER_LINEAR, 0)
    return jitter_colour(out, p)


def apply_label(label: np.ndarray, p: AugmentParams, fill: int = IGNORE) -> np.ndarray:
    """Class/instance map (nearest neighbour); pixels outside the source become `fill`."""
    return _geometry(label, p, cv2.INTER_NEAREST, fill)


def apply_alpha(alpha: np.ndarray, p: AugmentParams) -> np.ndarray:
    """Float alpha matte (bilinear); pad = 0."""
    return _geometry(alpha.astype(np.float32), p, cv2.INTER_LINEAR, 0.0)


def apply_valid(h: int, w: int, p: AugmentParams) -> np.ndarray:
    """bool out_h x out_w: pixels that come from inside the source image (not padding)."""
    return _geometry(np.ones((h, w), np.uint8), p, cv2.INTER_NEAREST, 0).astype(bool)


def apply_flow(flow: np.ndarray, p: AugmentParams, src_hw: tuple[int, int]) -> np.ndarray:
    """Flow HxWx2 (pixels of an image of size `src_hw`) -> flow of the augmented frames.

    The flow may be stored at a lower resolution than the frames (cache): it is first
    resized to the frames' size with its vectors rescaled.
    """
    h, w = src_hw
    fh, fw = flow.shape[:2]
    flow = flow.astype(np.float32)
    if (fh, fw) != (h, w):
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= w / fw
        flow[..., 1] *= h / fh
    sx = max(1, round(w * p.scale)) / w
    sy = max(1, round(h * p.scale)) / h
    out = _geometry(flow, p, cv2.INTER_LINEAR, 0.0)
    out[..., 0] *= -sx if p.flip else sx
    out[..., 1] *= sy
    return out


def jitter_colour(img: np.ndarray, p: AugmentParams) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter on uint8 RGB (no-op at identity)."""
    if p.brightness == 1.0 and p.contrast == 1.0 and p.saturation == 1.0 and p.hue == 0.0:
        return img
    x = img.astype(np.float32) * p.brightness
    mean = x.mean()
    x = (x - mean) * p.contrast + mean
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = (x - grey[..., None]) * p.saturation + grey[..., None]
    x = np.clip(x, 0, 255).astype(np.uint8)
    if p.hue != 0.0:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + round(p.hue * 180)) % 180).astype(np.uint8)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return x

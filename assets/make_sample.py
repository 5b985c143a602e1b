"""Rebuild assets/sample.mp4, the clip the quick start mattes.

The source is NASA's public-domain portrait of astronaut Eileen Collins as shipped by
scikit-image (`skimage/data/astronaut.png`, sha256 88431cd9…). A still photo becomes a
3 s clip through a slow synthetic camera move (zoom, pan and a slight roll), so the clip
has real motion and compression while the project owns every right to ship it.

    python -m vidmatte.assets.make_sample /path/to/astronaut.png assets/sample.mp4
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

SIZE = 384
FPS = 25
SECONDS = 3


def camera_frames(photo: np.ndarray, n: int) -> list[np.ndarray]:
    h, w = photo.shape[:2]
    frames = []
    for i in range(n):
        t = i / max(n - 1, 1)
        ease = 0.5 - 0.5 * math.cos(math.pi * t)
        zoom = 1.0 + 0.18 * ease
        angle = 2.0 * math.sin(2 * math.pi * t)
        cx = w / 2 + 18 * math.sin(math.pi * t)
        cy = h / 2 - 10 * ease
        m = cv2.getRotationMatrix2D((cx, cy), angle, zoom * SIZE / min(h, w))
        m[0, 2] += SIZE / 2 - cx
        m[1, 2] += SIZE / 2 - cy
        frames.append(
            cv2.warpAffine(
                photo, m, (SIZE, SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
            )
        )
    return frames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    bgr = cv2.imread(str(args.photo), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {args.photo}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    with av.open(str(args.out), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "slow"}
        for frame in camera_frames(rgb, FPS * SECONDS):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

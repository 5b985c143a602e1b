"""Small line plots drawn with OpenCV (no matplotlib dependency): axes, ticks, labels,
legend. Enough for "TC per frame pair" and "latency per frame" in evaluation reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

_COLOURS = [
    (180, 119, 31),
    (14, 127, 255),
    (44, 160, 44),
    (40, 39, 214),
    (189, 103, 148),
    (75, 86, 140),
    (194, 119, 227),
    (127, 127, 127),
]  # BGR, tab10 order


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** np.floor(np.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = np.ceil(lo / step) * step
    return [
        float(v) for v in np.arange(start, hi + step * 0.5, step) if lo - 1e-9 <= v <= hi + 1e-9
    ]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.3g}"


def line_plot(
    series: Mapping[str, Sequence[float]],
    path: str | Path,
    title: str,
    xlabel: str,
    ylabel: str,
    size: tuple[int, int] = (900, 450),
    y_range: tuple[float, float] | None = None,
) -> Path:
    """Draw one or more series (x = index) into a PNG at `path` (written atomically)."""
    import cv2

    w, h = size
    left, right, top, bottom = 80, 20, 40, 60
    img = np.full((h, w, 3), 255, np.uint8)
    vals = [np.asarray(v, np.float64) for v in series.values() if len(v)]
    finite = np.concatenate([v[np.isfinite(v)] for v in vals]) if vals else np.zeros(1)
    if finite.size == 0:
        finite = np.zeros(1)
    n = max((len(v) for v in vals), default=1)
    if y_range is None:
        lo, hi = float(finite.min()), float(finite.max())
        pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 1.0)
        lo, hi = lo - pad, hi + pad
    else:
        lo, hi = y_range
    x0, x1, y0, y1 = left, w - right, h - bottom, top

    def px(i: float, v: float) -> tuple[int, int]:
        x = x0 + (x1 - x0) * (i / max(n - 1, 1))
        y = y0 - (y0 - y1) * ((v - lo) / (hi - lo))
        return int(round(x)), int(round(y))

    font, grey, black = cv2.FONT_HERSHEY_SIMPLEX, (210, 210, 210), (0, 0, 0)
    for t in _nice_ticks(lo, hi):
        _, y = px(0, t)
        cv2.line(img, (x0, y), (x1, y), grey, 1)
        label = _fmt(t)
        (tw, th), _ = cv2.getTextSize(label, font, 0.45, 1)
        cv2.putText(img, label, (x0 - 8 - tw, y + th // 2), font, 0.45, black, 1, cv2.LINE_AA)
    for t in _nice_ticks(0, max(n - 1, 1), 8):
        x, _ = px(t, lo)
        cv2.line(img, (x, y0), (x, y0 + 5), black, 1)
        label = _fmt(t)
        (tw, th), _ = cv2.getTextSize(label, font, 0.45, 1)
        cv2.putText(img, label, (x - tw // 2, y0 + 8 + th), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y1), (x1, y0), black, 1)
    for k, v in enumerate(series.values()):
        colour = _COLOURS[k % len(_COLOURS)]
        pts = [px(i, float(y)) for i, y in enumerate(v) if np.isfinite(y)]
        if len(pts) == 1:
            cv2.circle(img, pts[0], 3, colour, -1, cv2.LINE_AA)
        elif pts:
            cv2.polylines(img, [np.array(pts, np.int32)], False, colour, 2, cv2.LINE_AA)
    if series:  # legend on a white box, drawn last so lines never hide it
        box = ((x1 - 178, y1 + 4), (x1 - 4, y1 + 10 + 18 * len(series)))
        cv2.rectangle(img, *box, (255, 255, 255), -1)
        cv2.rectangle(img, *box, grey, 1)
    for k, name in enumerate(series):
        colour = _COLOURS[k % len(_COLOURS)]
        ly = y1 + 18 + 18 * k
        cv2.line(img, (x1 - 170, ly - 4), (x1 - 145, ly - 4), colour, 2)
        cv2.putText(img, str(name)[:22], (x1 - 140, ly), font, 0.45, black, 1, cv2.LINE_AA)
    (tw, _), _ = cv2.getTextSize(title, font, 0.6, 1)
    cv2.putText(img, title, ((w - tw) // 2, 26), font, 0.6, black, 1, cv2.LINE_AA)
    (tw, _), _ = cv2.getTextSize(xlabel, font, 0.5, 1)
    cv2.putText(img, xlabel, ((x0 + x1 - tw) // 2, h - 14), font, 0.5, black, 1, cv2.LINE_AA)
    ylab = np.full((30, y0 - y1, 3), 255, np.uint8)
    (tw, _), _ = cv2.getTextSize(ylabel, font, 0.5, 1)
    cv2.putText(ylab, ylabel, (max((y0 - y1 - tw) // 2, 0), 20), font, 0.5, black, 1, cv2.LINE_AA)
    img[y1:y0, 8:38] = np.rot90(ylab)
    return write_png(img, path)


def write_png(img: np.ndarray, path: str | Path) -> Path:
    """Encode and write a PNG atomically (temp name in the same folder, then rename)."""
    import cv2

    from vidmatte.matting.io.atomic import atomic_write_bytes, make_dirs

    path = Path(path)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OSError(f"cannot encode {path}")
    make_dirs(path.parent)
    atomic_write_bytes(path, buf.tobytes())
    return path

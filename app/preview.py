"""The preview: view modes rendered with numpy, shown scaled in a widget.

Rendering is pure numpy (`render()`), so it is tested on arrays and costs one pass per
frame; the widget only scales the image and draws name tags and the empty/error states.
View modes: the original frame, the trimaps of the visible people in their colours
(foreground solid, unknown band lighter), the alpha of the selected person, and the
visible people composited over a checkerboard, a colour or an image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from vidmatte.matting.io.composite import NAMED_COLOURS
from vidmatte.models.trimap import trimap_to_classes

MODES = ("original", "trimap", "alpha", "composite")
MODE_LABELS = {
    "original": "Original",
    "trimap": "Trimaps",
    "alpha": "Alpha (selected)",
    "composite": "Composite",
}
BACKGROUNDS = ("checkerboard", "colour", "image")


@dataclass
class Layer:
    """One person as the preview needs them."""

    track_id: int
    name: str
    colour: tuple[int, int, int]
    box: tuple[float, float, float, float]
    alpha: np.ndarray | None
    trimap: np.ndarray


def checkerboard(h: int, w: int, size: int = 16) -> np.ndarray:
    yy, xx = np.indices((h, w))
    board = ((yy // size + xx // size) % 2).astype(np.uint8)
    out = np.where(board[..., None] == 1, 204, 153).astype(np.uint8)
    return np.broadcast_to(out, (h, w, 3)).copy()


def fit_image(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Scale and centre-crop an RGB image to cover h×w (a background image)."""
    import cv2

    ih, iw = img.shape[:2]
    s = max(h / ih, w / iw)
    nh, nw = max(h, round(ih * s)), max(w, round(iw * s))
    big = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    y0, x0 = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w, :3])


def trimap_overlay(rgb: np.ndarray, layers: list[Layer]) -> np.ndarray:
    if not layers:
        return rgb  # nothing found (yet): the plain frame
    out = rgb.astype(np.float32) * 0.6  # dim the frame so colours read clearly
    for layer in layers:
        c = np.asarray(layer.colour, np.float32)
        classes = trimap_to_classes(layer.trimap)
        fg = classes == 2
        unknown = classes == 1
        out[fg] = out[fg] * 0.35 + c * 0.65
        out[unknown] = out[unknown] * 0.4 + (c * 0.5 + 127.0) * 0.6
    return np.clip(out, 0, 255).astype(np.uint8)


def union_alpha(layers: list[Layer], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for layer in layers:
        a = layer.alpha if layer.alpha is not None else layer.trimap
        np.maximum(out, a, out=out)
    return out


def composite(rgb: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32)[..., None] / 255.0
    return np.clip(rgb * a + bg * (1.0 - a) + 0.5, 0, 255).astype(np.uint8)


def render(
    rgb: np.ndarray,
    mode: str,
    layers: list[Layer],
    selected: int | None = None,
    background: str = "checkerboard",
    colour: tuple[int, int, int] = NAMED_COLOURS["green"],
    image: np.ndarray | None = None,
) -> np.ndarray:
    """The preview frame (uint8 H×W×3) for a view mode."""
    h, w = rgb.shape[:2]
    if mode == "original":
        return rgb
    if mode == "trimap":
        return trimap_overlay(rgb, layers)
    if mode == "alpha":
        chosen = [la for la in layers if la.track_id == selected] or layers[:1]
        a = union_alpha(chosen, (h, w))
        return np.repeat(a[..., None], 3, axis=2)
    if mode == "composite":
        if background == "image" and image is not None:
            bg = fit_image(image, h, w)
        elif background == "colour":
            bg = np.empty((h, w, 3), np.uint8)
            bg[:] = colour
        else:
            bg = checkerboard(h, w)
        return composite(rgb, union_alpha(layers, (h, w)), bg)
    raise ValueError(f"unknown view mode {mode!r}")


def to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage that owns a copy of the pixels (safe after `rgb` is freed)."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class PreviewWidget(QWidget):
    """Shows one rendered frame scaled to fit, name tags over people, or a message."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self._image: QImage | None = None
        self._tags: list[tuple[tuple[float, float, float, float], str, tuple[int, int, int]]] = []
        self._message = ""
        self.setAutoFillBackground(False)

    def set_frame(self, rgb: np.ndarray, layers: list[Layer] | None = None) -> None:
        self._image = to_qimage(rgb)
        self._tags = [(la.box, la.name, la.colour) for la in (layers or [])]
        self._message = ""
        self.update()

    def set_message(self, text: str) -> None:
        """An empty or error state: no frame, just guidance."""
        self._image = None
        self._tags = []
        self._message = text
        self.update()

    @property
    def message(self) -> str:
        return self._message

    def image_rect(self) -> QRectF:
        if self._image is None:
            return QRectF()
        iw, ih = self._image.width(), self._image.height()
        s = min(self.width() / iw, self.height() / ih)
        w, h = iw * s, ih * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(38, 38, 42))
        if self._image is None:
            p.setPen(QColor(200, 200, 205))
            f = QFont(p.font())
            f.setPointSizeF(f.pointSizeF() * 1.25)
            p.setFont(f)
            p.drawText(
                self.rect().adjusted(24, 24, -24, -24),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self._message,
            )
            p.end()
            return
        r = self.image_rect()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.drawImage(r, self._image)
        s = r.width() / self._image.width()
        for box, name, colour in self._tags:
            x0, y0 = r.left() + box[0] * s, r.top() + box[1] * s
            c = QColor(*colour)
            p.setPen(QPen(c, 2))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(x0, y0, (box[2] - box[0]) * s, (box[3] - box[1]) * s))
            fm = p.fontMetrics()
            tag = QRectF(x0, max(r.top(), y0 - fm.height() - 4), fm.horizontalAdvance(name) + 10,
                         fm.height() + 4)  # fmt: skip
            p.fillRect(tag, c)
            p.setPen(QColor(255, 255, 255))
            p.drawText(tag, Qt.AlignmentFlag.AlignCenter, name)
        p.end()

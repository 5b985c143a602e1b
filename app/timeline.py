"""Transport and timeline: play/pause, frame stepping and a slider that seeks to an exact
frame index (the preview decodes that frame with VideoReader.read). The processed range is
drawn under the slider so it is clear which frames have results."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


def timecode(index: int, fps: float) -> str:
    s = index / fps if fps > 0 else 0.0
    return f"{int(s // 60):02d}:{s % 60:05.2f}"


class _RangeBar(QWidget):
    """A thin bar: the processed frames in accent colour over the whole length."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedHeight(5)
        self.total = 0
        self.span: tuple[int, int] | None = None

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(70, 70, 76))
        if self.total > 0 and self.span:
            a, b = self.span
            x0 = int(self.width() * a / self.total)
            x1 = int(self.width() * b / self.total)
            p.fillRect(x0, 0, max(1, x1 - x0), self.height(), QColor(60, 160, 230))
        p.end()


class Timeline(QWidget):
    frameChanged = Signal(int)  # noqa: N815 (Qt style)
    playToggled = Signal(bool)  # noqa: N815

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._fps = 25.0
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 2, 6, 2)
        row = QHBoxLayout()
        self.play_button = QToolButton(self)
        self.play_button.setText("▶")
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.setCheckable(True)
        self.play_button.toggled.connect(self._on_play)
        self.prev_button = QToolButton(self)
        self.prev_button.setText("◀|")
        self.prev_button.setToolTip("Previous frame (Left)")
        self.next_button = QToolButton(self)
        self.next_button.setText("|▶")
        self.next_button.setToolTip("Next frame (Right)")
        self.prev_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(1))
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(self._on_value)
        self.spin = QSpinBox(self)
        self.spin.setRange(0, 0)
        self.spin.setToolTip("Frame number")
        self.spin.valueChanged.connect(self._on_value)
        self.time_label = QLabel("00:00.00", self)
        for w in (self.play_button, self.prev_button, self.next_button):
            row.addWidget(w)
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        row.addWidget(self.time_label)
        outer.addLayout(row)
        self.range_bar = _RangeBar(self)
        outer.addWidget(self.range_bar)
        self.set_length(0, 25.0)

    # -- state -------------------------------------------------------------------------
    def set_length(self, frames: int, fps: float) -> None:
        self._fps = fps or 25.0
        last = max(0, frames - 1)
        for w in (self.slider, self.spin):
            with QSignalBlocker(w):
                w.setRange(0, last)
                w.setValue(0)
        self.range_bar.total = frames
        self.range_bar.span = None
        self.range_bar.update()
        self.setEnabled(frames > 0)
        self._show(0)

    def set_processed(self, span: tuple[int, int] | None) -> None:
        self.range_bar.span = span
        self.range_bar.update()

    @property
    def frame(self) -> int:
        return self.slider.value()

    @property
    def length(self) -> int:
        return self.slider.maximum() + 1 if self.isEnabled() else 0

    def set_frame(self, index: int) -> None:
        """Seek (emits frameChanged when the frame changes)."""
        index = max(0, min(index, self.slider.maximum()))
        self.slider.setValue(index)

    def step(self, delta: int) -> None:
        self.set_frame(self.frame + delta)

    def set_playing(self, playing: bool) -> None:
        self.play_button.setChecked(playing)

    @property
    def playing(self) -> bool:
        return self.play_button.isChecked()

    # -- internals ---------------------------------------------------------------------
    def _on_value(self, value: int) -> None:
        for w in (self.slider, self.spin):
            if w.value() != value:
                with QSignalBlocker(w):
                    w.setValue(value)
        self._show(value)
        self.frameChanged.emit(value)

    def _show(self, value: int) -> None:
        self.time_label.setText(timecode(value, self._fps))

    def _on_play(self, on: bool) -> None:
        self.play_button.setText("❚❚" if on else "▶")
        self.playToggled.emit(on)

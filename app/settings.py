"""User settings kept between runs with QSettings, and the dialog that edits them.

`AppSettings` is a dataclass so the rest of the app reads plain attributes; `load`/`save`
go through a QSettings object (the platform's default store, or an INI file in tests).
The model options map onto PipelineConfig (the CLI's options), so the GUI and
`vidmatte-cli` compute the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from vidmatte.matting.io.formats import ALPHA_FORMATS

DEVICES = ("auto", "cpu", "cuda", "mps")
MATTERS = ("auto", "indexnet", "classical")
MAX_RECENT = 8


@dataclass
class AppSettings:
    device: str = "auto"
    weights: str = ""  # trimap network model folder ("" = default resolution)
    teacher_dir: str = ""  # "" = $VIDMATTE_TEACHER_DIR
    matter: str = "auto"
    matting_weights: str = ""
    min_score: float = 0.0  # 0 = the weights' calibrated threshold (teacher 0.5)
    max_persons: int = 8
    batch_size: int = 4
    max_frames: int = 0  # process at most this many frames from the start (0 = all)
    export_dir: str = ""
    export_format: str = "png"
    composite: str = ""  # "" = none, else a colour or an image path (as --composite)
    recent: list[str] = field(default_factory=list)

    def pipeline_config(self):
        """The PipelineConfig these settings describe (imports torch: call off the GUI path)."""
        from vidmatte.matting.config import PipelineConfig

        return PipelineConfig(
            weights=self.weights or None,
            teacher_dir=self.teacher_dir or None,
            matter=self.matter,
            matting_weights=self.matting_weights or None,
            device=self.device,
            batch_size=self.batch_size,
            max_persons=self.max_persons,
            min_score=self.min_score or None,
        )

    def pipeline_key(self) -> tuple:
        """What identifies loaded models: change any of these and they load again."""
        return (
            self.device,
            self.weights,
            self.teacher_dir,
            self.matter,
            self.matting_weights,
            self.min_score,
            self.max_persons,
            self.batch_size,
        )

    def add_recent(self, path: str) -> None:
        self.recent = [path] + [p for p in self.recent if p != path]
        del self.recent[MAX_RECENT:]

    # -- persistence -------------------------------------------------------------------
    @classmethod
    def load(cls, store: QSettings) -> AppSettings:
        s = cls()
        for f in fields(cls):
            default = getattr(s, f.name)
            raw = store.value(f"settings/{f.name}", None)
            if raw is None:
                continue
            try:
                if isinstance(default, list):
                    items = raw if isinstance(raw, list) else [raw]
                    value = [str(x) for x in items if x not in (None, "")]
                elif isinstance(default, bool):
                    value = str(raw).lower() in ("1", "true", "yes")
                elif isinstance(default, int):
                    value = int(raw)
                elif isinstance(default, float):
                    value = float(raw)
                else:
                    value = str(raw)
            except (TypeError, ValueError):
                continue  # a damaged entry falls back to the default
            setattr(s, f.name, value)
        if s.device not in DEVICES and not s.device.startswith("cuda:"):
            s.device = "auto"
        if s.export_format not in ALPHA_FORMATS:
            s.export_format = "png"
        return s

    def save(self, store: QSettings) -> None:
        for f in fields(self):
            store.setValue(f"settings/{f.name}", getattr(self, f.name))
        store.sync()


def _path_row(edit: QLineEdit, parent: QWidget, title: str) -> QWidget:
    row = QWidget(parent)
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit)
    browse = QPushButton("Browse…", row)

    def pick() -> None:
        d = QFileDialog.getExistingDirectory(parent, title, edit.text())
        if d:
            edit.setText(d)

    browse.clicked.connect(pick)
    lay.addWidget(browse)
    return row


class SettingsDialog(QDialog):
    """Models, device and processing options. `result_settings()` after accept()."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._base = settings
        form = QFormLayout(self)
        self.device = QComboBox(self)
        self.device.addItems(DEVICES)
        self.device.setCurrentText(settings.device)
        form.addRow("Device", self.device)
        self.weights = QLineEdit(settings.weights, self)
        self.weights.setPlaceholderText("default (shipped / downloaded weights)")
        form.addRow("Trimap weights", _path_row(self.weights, self, "Trimap model folder"))
        self.teacher = QLineEdit(settings.teacher_dir, self)
        self.teacher.setPlaceholderText("$VIDMATTE_TEACHER_DIR")
        form.addRow("Teacher folder", _path_row(self.teacher, self, "Teacher files folder"))
        self.matter = QComboBox(self)
        self.matter.addItems(MATTERS)
        self.matter.setCurrentText(settings.matter)
        form.addRow("Matting", self.matter)
        self.min_score = QDoubleSpinBox(self)
        self.min_score.setRange(0.0, 0.99)
        self.min_score.setSingleStep(0.05)
        self.min_score.setSpecialValueText("model default")
        self.min_score.setValue(settings.min_score)
        form.addRow("Detection threshold", self.min_score)
        self.max_persons = QSpinBox(self)
        self.max_persons.setRange(1, 32)
        self.max_persons.setValue(settings.max_persons)
        form.addRow("Max people per frame", self.max_persons)
        self.max_frames = QSpinBox(self)
        self.max_frames.setRange(0, 10_000_000)
        self.max_frames.setSpecialValueText("whole video")
        self.max_frames.setValue(settings.max_frames)
        form.addRow("Process frames", self.max_frames)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def result_settings(self) -> AppSettings:
        from dataclasses import replace

        return replace(
            self._base,
            device=self.device.currentText(),
            weights=self.weights.text().strip(),
            teacher_dir=self.teacher.text().strip(),
            matter=self.matter.currentText(),
            min_score=round(self.min_score.value(), 3),
            max_persons=self.max_persons.value(),
            max_frames=self.max_frames.value(),
        )

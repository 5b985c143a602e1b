"""User settings kept between runs with QSettings, and the dialog that edits them.

`AppSettings` is a dataclass so the rest of the app reads plain attributes; `load`/`save`
go through a QSettings object (the platform's default store, or an INI file in tests).
The model options are a PipelineConfig (matting/config.py, the one list of model settings
that the CLI fills too), so the GUI and `vidmatte-cli` compute the same thing; it also keys
the cache of loaded models (app/session.py `load_pipeline`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields, replace
from typing import Any

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

from vidmatte.matting.config import DEVICES, MATTERS, SOURCES, PipelineConfig
from vidmatte.matting.io.formats import ALPHA_FORMATS

MAX_RECENT = 8


@dataclass
class AppSettings:
    """The app's settings: the model settings are a PipelineConfig (the one list, shared
    with `vidmatte-cli`), the rest is the app's own."""

    model: PipelineConfig = field(default_factory=PipelineConfig)
    max_frames: int = 0  # process at most this many frames from the start (0 = all)
    export_dir: str = ""
    export_format: str = "png"
    composite: str = ""  # "" = none, else a colour or an image path (as --composite)
    recent: list[str] = field(default_factory=list)

    def with_model(self, **changes: Any) -> AppSettings:
        """These settings with some model settings changed (PipelineConfig is frozen)."""
        return replace(self, model=replace(self.model, **changes))

    def add_recent(self, path: str) -> None:
        self.recent = [path] + [p for p in self.recent if p != path]
        del self.recent[MAX_RECENT:]

    # -- persistence -------------------------------------------------------------------
    @classmethod
    def load(cls, store: QSettings) -> AppSettings:
        """Read every setting; a damaged or unknown value falls back to its default."""
        s = cls()
        model: dict[str, Any] = {}
        for f in _model_fields():
            raw = store.value(f"settings/{f.name}", None)
            if raw is not None:
                with contextlib.suppress(TypeError, ValueError):
                    model[f.name] = _parse(raw, _kind(f), optional=f.default is None)
        if model.get("min_score") == 0.0:
            model["min_score"] = None  # settings written before 0.2 kept "model default" as 0
        s.model = replace(s.model, **model)
        for f in fields(cls):
            if f.name == "model":
                continue
            raw = store.value(f"settings/{f.name}", None)
            if raw is None:
                continue
            default = getattr(s, f.name)
            with contextlib.suppress(TypeError, ValueError):
                if isinstance(default, list):
                    items = raw if isinstance(raw, list) else [raw]
                    setattr(s, f.name, [str(x) for x in items if x not in (None, "")])
                else:
                    setattr(s, f.name, _parse(raw, type(default), optional=False))
        device = s.model.device
        if device not in DEVICES and not device.startswith("cuda:"):
            s.model = replace(s.model, device="auto")
        if s.model.source not in SOURCES:
            s.model = replace(s.model, source="auto")
        if s.model.matter not in MATTERS:
            s.model = replace(s.model, matter="auto")
        if s.export_format not in ALPHA_FORMATS:
            s.export_format = "png"
        return s

    def save(self, store: QSettings) -> None:
        for f in _model_fields():
            value = getattr(self.model, f.name)
            store.setValue(f"settings/{f.name}", "" if value is None else value)
        for f in fields(self):
            if f.name != "model":
                store.setValue(f"settings/{f.name}", getattr(self, f.name))
        store.sync()


_KINDS = {"str": str, "int": int, "float": float, "bool": bool}


def _kind(f) -> type | None:
    """str / int / float / bool from a field's annotation ("float | None" -> float)."""
    return _KINDS.get(str(f.type).split("|")[0].strip())


def _model_fields() -> list:
    """The PipelineConfig fields the app keeps: every plain-valued one (persons and the
    association knobs are per run, not settings), under the same names as the CLI's."""
    return [f for f in fields(PipelineConfig) if _kind(f) is not None]


def _parse(raw: Any, kind: type | None, *, optional: bool) -> Any:
    if optional and raw in ("", None):
        return None
    if kind is bool:
        return str(raw).lower() in ("1", "true", "yes")
    return kind(raw) if kind is not None else raw


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
        m = settings.model
        form = QFormLayout(self)
        self.device = QComboBox(self)
        self.device.addItems(DEVICES)
        self.device.setCurrentText(m.device)
        form.addRow("Device", self.device)
        self.weights = QLineEdit(m.weights or "", self)
        self.weights.setPlaceholderText("default (shipped / downloaded weights)")
        form.addRow("Trimap weights", _path_row(self.weights, self, "Trimap model folder"))
        self.teacher = QLineEdit(m.teacher_dir or "", self)
        self.teacher.setPlaceholderText("$VIDMATTE_TEACHER_DIR")
        form.addRow("Teacher folder", _path_row(self.teacher, self, "Teacher files folder"))
        self.matter = QComboBox(self)
        self.matter.addItems(MATTERS)
        self.matter.setCurrentText(m.matter)
        form.addRow("Matting", self.matter)
        self.min_score = QDoubleSpinBox(self)
        self.min_score.setRange(0.0, 0.99)
        self.min_score.setSingleStep(0.05)
        self.min_score.setSpecialValueText("model default")
        self.min_score.setValue(m.min_score or 0.0)
        form.addRow("Detection threshold", self.min_score)
        self.max_persons = QSpinBox(self)
        self.max_persons.setRange(1, 32)
        self.max_persons.setValue(m.max_persons)
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
        score = round(self.min_score.value(), 3)
        return replace(
            self._base.with_model(
                device=self.device.currentText(),
                weights=self.weights.text().strip() or None,
                teacher_dir=self.teacher.text().strip() or None,
                matter=self.matter.currentText(),
                min_score=score or None,  # 0 is the spin box's "model default"
                max_persons=self.max_persons.value(),
            ),
            max_frames=self.max_frames.value(),
        )

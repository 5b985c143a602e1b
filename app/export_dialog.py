"""The export dialog: folder, format, people and composite options; runs the export in a
worker, shows progress, then a summary with "Open folder".

The export replays the session's cache through the CLI's Exporter (session.export_job),
so the output layout and manifest are the ones `vidmatte-cli` writes, with the edited
IDs and names.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vidmatte.app.session import ExportSummary, Session, export_job
from vidmatte.app.settings import AppSettings
from vidmatte.app.workers import GeneratorWorker, error_message
from vidmatte.matting.io.formats import ALPHA_FORMATS, FORMAT_LABELS
from vidmatte.matting.progress import Progress, format_eta
from vidmatte.models.errors import VidmatteError

COMPOSITES = ("none", "colour", "image")


class ExportDialog(QDialog):
    def __init__(self, session: Session, settings: AppSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export mattes")
        self.setMinimumWidth(520)
        self.session = session
        self.settings = settings
        self.worker: GeneratorWorker | None = None
        self.summary: ExportSummary | None = None
        lay = QVBoxLayout(self)
        form = QFormLayout()
        folder_row = QHBoxLayout()
        default = settings.export_dir or str(session.path.parent / f"{session.path.stem}_mattes")
        self.folder = QLineEdit(default, self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        form.addRow("Folder", folder_row)
        self.format = QComboBox(self)
        for f, label in FORMAT_LABELS.items():
            self.format.addItem(label, f)
        self.format.setCurrentIndex(ALPHA_FORMATS.index(settings.export_format))
        form.addRow("Format", self.format)
        self.people = QListWidget(self)
        self.people.setMaximumHeight(120)
        for t in session.tracks():
            item = QListWidgetItem(f"{t.name}  (frames {t.first}–{t.last})", self.people)
            item.setData(Qt.ItemDataRole.UserRole, t.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = t.id not in session.skip_export
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        form.addRow("People", self.people)
        comp_row = QHBoxLayout()
        self.composite = QComboBox(self)
        self.composite.addItems(["No composite", "Over a colour", "Over an image"])
        self.composite_value = QLineEdit(self)
        self.composite_value.setPlaceholderText("green, #00ff00 or an image file")
        spec = settings.composite
        if spec:
            is_file = Path(spec).expanduser().is_file()
            self.composite.setCurrentIndex(2 if is_file else 1)
            self.composite_value.setText(spec)
        self.composite.currentIndexChanged.connect(self._composite_mode)
        comp_row.addWidget(self.composite)
        comp_row.addWidget(self.composite_value, 1)
        form.addRow("Composite video", comp_row)
        self.save_trimaps = QCheckBox("Also save trimaps", self)
        self.overwrite = QCheckBox("Replace an existing export in this folder", self)
        form.addRow("", self.save_trimaps)
        form.addRow("", self.overwrite)
        lay.addLayout(form)
        self.progress = QProgressBar(self)
        self.progress.setVisible(False)
        lay.addWidget(self.progress)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open folder", self)
        self.open_button.setVisible(False)
        self.open_button.clicked.connect(self.open_folder)
        self.export_button = QPushButton("Export", self)
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self._close_or_cancel)
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.close_button)
        lay.addLayout(buttons)
        self._composite_mode()

    # -- options -----------------------------------------------------------------------
    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Export folder", self.folder.text())
        if d:
            self.folder.setText(d)

    def _composite_mode(self) -> None:
        mode = COMPOSITES[self.composite.currentIndex()]
        self.composite_value.setEnabled(mode != "none")
        if mode == "colour" and not self.composite_value.text():
            self.composite_value.setText("green")
        if mode == "image" and not self.composite_value.text():
            f, _ = QFileDialog.getOpenFileName(self, "Background image or video")
            if f:
                self.composite_value.setText(f)

    def chosen_people(self) -> list[int]:
        out = []
        for i in range(self.people.count()):
            item = self.people.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(int(item.data(Qt.ItemDataRole.UserRole)))
        return out

    def composite_spec(self) -> str | None:
        if COMPOSITES[self.composite.currentIndex()] == "none":
            return None
        return self.composite_value.text().strip() or None

    # -- running -----------------------------------------------------------------------
    def start(self) -> None:
        if self.worker is not None and self.worker.is_running:
            return
        self.summary = None
        self.open_button.setVisible(False)
        folder = self.folder.text().strip()
        if not folder:
            self._fail("choose a folder to export into")
            return
        try:
            from vidmatte.matting.io.export import parse_background

            spec = self.composite_spec()
            if spec:
                parse_background(spec)  # a bad colour/path fails here, before any file
            args = self.session.export_job_args(self.chosen_people())
        except VidmatteError as e:
            self._fail(str(e))
            return
        fmt = self.format.currentData()
        self.settings.export_dir = folder
        self.settings.export_format = fmt
        self.settings.composite = spec or ""
        self.worker = GeneratorWorker(
            export_job,
            **args,
            out_dir=Path(folder).expanduser(),
            fmt=fmt,
            composite=spec,
            save_trimaps=self.save_trimaps.isChecked(),
            overwrite=self.overwrite.isChecked(),
        )
        self.worker.progress.connect(self._on_progress)
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(lambda e: self._fail(error_message(e)))
        self.worker.aborted.connect(self._on_aborted)
        self.worker.finished.connect(self._on_finished)
        self.progress.setRange(0, max(1, args["end"] - args["start"]))
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.status.setStyleSheet("")
        self.status.setText("Exporting…")
        self.export_button.setEnabled(False)
        self.close_button.setText("Cancel")
        self.worker.start()

    def cancel(self) -> None:
        if self.worker is not None and self.worker.is_running:
            self.worker.abort()

    def _close_or_cancel(self) -> None:
        if self.worker is not None and self.worker.is_running:
            self.cancel()
        else:
            self.accept()

    def _on_progress(self, p: Progress) -> None:
        self.progress.setValue(p.done)
        self.status.setText(
            f"Exporting: {p.done}/{p.total} frames, {p.fps:.1f} fps, ETA {format_eta(p.eta_s)}"
        )

    def _on_returned(self, summary: ExportSummary) -> None:
        self.summary = summary
        names = ", ".join(t["name"] for t in summary.tracks) or "nobody"
        n = len(summary.tracks)
        self.status.setStyleSheet("color: #2a8c2a")
        self.status.setText(
            f"Exported {n} {'person' if n == 1 else 'people'} ({names}), {summary.frames} frames in "
            f"{summary.seconds:.1f} s to {summary.out_dir}"
        )
        self.open_button.setVisible(True)

    def _on_aborted(self) -> None:
        self.status.setStyleSheet("color: #b07000")
        self.status.setText(
            "Export cancelled; files written so far are kept (tick Replace to redo)."
        )

    def _fail(self, message: str) -> None:
        self.status.setStyleSheet("color: #c0392b")
        self.status.setText(message)

    def _on_finished(self) -> None:
        self.export_button.setEnabled(True)
        self.close_button.setText("Close")

    def open_folder(self) -> bool:
        if self.summary is None:
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.summary.out_dir)))

    def reject(self) -> None:  # Esc / window close: stop a running export first
        if self.worker is not None and self.worker.is_running:
            self.cancel()
            self.worker.wait()
        super().reject()

"""The main window: open a video, process it in a worker, look at and fix who was found,
export.

Layout: a banner for blocking problems (weights missing) over a splitter with the preview
and the people panel; the timeline below; progress, fps and ETA in the status bar.
Everything slow (model loading, processing, export) runs in a GeneratorWorker, so the UI
never waits on it; results arrive per frame and the preview follows them.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QColor, QKeySequence
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from vidmatte.app.people_panel import PeoplePanel
from vidmatte.app.preview import BACKGROUNDS, MODE_LABELS, MODES, Layer, PreviewWidget, render
from vidmatte.app.session import ProcessedFrame, ProcessSummary, Session, colour_of, process_job
from vidmatte.app.settings import AppSettings, SettingsDialog
from vidmatte.app.timeline import Timeline
from vidmatte.app.workers import GeneratorWorker, error_message
from vidmatte.matting.config import DEVICES
from vidmatte.matting.io.composite import NAMED_COLOURS
from vidmatte.matting.progress import Progress, format_eta
from vidmatte.models.errors import VidmatteError, WeightsError

VIDEO_FILTER = (
    "Videos and images (*.mp4 *.mov *.m4v *.mkv *.webm *.avi *.mts *.m2ts *.mpg *.3gp "
    "*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp);;All files (*)"
)
EMPTY_TEXT = "Open a video to start\n\nCtrl+O, File ▸ Open Recent, or drop a file here"
WEIGHTS_HINT = (
    "Set the trimap weights or the teacher folder in Settings (or run "
    "`vidmatte-cli weights download`), then press Process again."
)


class MainWindow(QMainWindow):
    def __init__(self, store: QSettings | None = None) -> None:
        super().__init__()
        self.store = store or QSettings("vidmatte", "vidmatte")
        self.settings = AppSettings.load(self.store)
        self.session: Session | None = None
        self.worker: GeneratorWorker | None = None
        self.last_error = ""
        self.last_summary: ProcessSummary | None = None
        self.view_mode = "trimap"
        self.background = "checkerboard"
        self.bg_colour = NAMED_COLOURS["green"]  # what `--composite green` uses
        self.bg_image = None
        self.selected: int | None = None
        self._follow = False
        self._programmatic_seek = False
        self.setWindowTitle("vidmatte")
        self.setAcceptDrops(True)
        self._build()
        self._restore_window()
        self._update_actions()

    # ================================================================== construction
    def _build(self) -> None:
        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.banner = QFrame(central)
        self.banner.setStyleSheet("QFrame { background: #5c1f1f; } QLabel { color: #ffe9e9; }")
        brow = QHBoxLayout(self.banner)
        self.banner_text = QLabel(self.banner)
        self.banner_text.setWordWrap(True)
        self.banner_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        brow.addWidget(self.banner_text, 1)
        fix = QPushButton("Settings…", self.banner)
        fix.clicked.connect(self.open_settings)
        brow.addWidget(fix)
        self.banner.setVisible(False)
        outer.addWidget(self.banner)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, central)
        self.preview = PreviewWidget(self.splitter)
        self.preview.set_message(EMPTY_TEXT)
        self.people = PeoplePanel(self.splitter)
        self.people.selectionChanged.connect(self._on_person_selected)
        self.people.edited.connect(self.refresh_frame)
        self.people.error.connect(self.show_error)
        self.splitter.addWidget(self.preview)
        self.splitter.addWidget(self.people)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([760, 340])
        outer.addWidget(self.splitter, 1)
        self.timeline = Timeline(central)
        self.timeline.frameChanged.connect(self._on_frame_changed)
        self.timeline.playToggled.connect(self._on_play_toggled)
        outer.addWidget(self.timeline)
        self.setCentralWidget(central)
        self.play_timer = QTimer(self)
        self.play_timer.timeout.connect(self._play_tick)

        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.progress_label = QLabel("", self)
        self.progress_label.setMinimumWidth(260)
        self.statusBar().addPermanentWidget(self.progress_label)
        self.statusBar().addPermanentWidget(self.progress)
        self._build_actions()

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        self.open_action = self._action("&Open…", self.open_dialog, QKeySequence.StandardKey.Open,
                                        "Open a video (Ctrl+O)")  # fmt: skip
        self.sample_action = self._action("Open the &sample clip", self.open_sample)
        self.process_action = self._action("&Process", self.start_processing, "F5",
                                           "Find and matte everyone (F5)")  # fmt: skip
        self.cancel_action = self._action("&Cancel", self.cancel_processing, "Esc",
                                          "Stop processing; results so far are kept")  # fmt: skip
        self.export_action = self._action("&Export…", self.open_export, "Ctrl+E",
                                          "Export mattes (Ctrl+E)")  # fmt: skip
        self.settings_action = self._action("Se&ttings…", self.open_settings, "Ctrl+,")
        quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.play_action = self._action("Play / pause", self.toggle_play, "Space")
        self._action("Next frame", lambda: self.step(1), "Right")
        self._action("Previous frame", lambda: self.step(-1), "Left")
        self._action("Forward 10 frames", lambda: self.step(10), "Shift+Right")
        self._action("Back 10 frames", lambda: self.step(-10), "Shift+Left")
        self._action("First frame", lambda: self.seek(0), "Home")
        self._action("Last frame", lambda: self.seek(self.timeline.length - 1), "End")

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._fill_recent()
        file_menu.addAction(self.sample_action)
        file_menu.addSeparator()
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addAction(quit_action)
        view_menu = menu.addMenu("&View")
        self.mode_group = QActionGroup(self)
        self.mode_actions: dict[str, QAction] = {}
        for i, mode in enumerate(MODES, start=1):
            a = self._action(MODE_LABELS[mode], lambda _=False, m=mode: self.set_view_mode(m),
                             str(i))  # fmt: skip
            a.setCheckable(True)
            a.setChecked(mode == self.view_mode)
            self.mode_group.addAction(a)
            view_menu.addAction(a)
            self.mode_actions[mode] = a
        proc_menu = menu.addMenu("&Process")
        proc_menu.addAction(self.process_action)
        proc_menu.addAction(self.cancel_action)

        tb = self.addToolBar("Main")
        tb.setObjectName("main_toolbar")
        tb.setMovable(False)
        tb.addAction(self.open_action)
        tb.addAction(self.process_action)
        tb.addAction(self.cancel_action)
        tb.addAction(self.export_action)
        tb.addSeparator()
        tb.addWidget(QLabel(" View ", tb))
        self.mode_combo = QComboBox(tb)
        for m in MODES:
            self.mode_combo.addItem(MODE_LABELS[m], m)
        self.mode_combo.setCurrentIndex(MODES.index(self.view_mode))
        self.mode_combo.currentIndexChanged.connect(
            lambda i: self.set_view_mode(self.mode_combo.itemData(i))
        )
        tb.addWidget(self.mode_combo)
        self.bg_combo = QComboBox(tb)
        self.bg_combo.addItems(["Checkerboard", "Colour…", "Image…"])
        self.bg_combo.setToolTip("Background of the composite view")
        self.bg_combo.activated.connect(self._choose_background)
        tb.addWidget(self.bg_combo)
        tb.addSeparator()
        tb.addWidget(QLabel(" Device ", tb))
        self.device_combo = QComboBox(tb)
        self.device_combo.addItems(DEVICES)
        device = self.settings.model.device
        if device not in DEVICES:
            self.device_combo.addItem(device)
        self.device_combo.setCurrentText(device)
        self.device_combo.currentTextChanged.connect(self._on_device)
        tb.addWidget(self.device_combo)

    # ================================================================== window state
    def _restore_window(self) -> None:
        geo = self.store.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        else:
            self.resize(1100, 700)
        state = self.store.value("window/state")
        if state is not None:
            self.restoreState(state)
        sizes = self.store.value("window/splitter")
        if sizes is not None:
            self.splitter.restoreState(sizes)

    def save_state(self) -> None:
        self.store.setValue("window/geometry", self.saveGeometry())
        self.store.setValue("window/state", self.saveState())
        self.store.setValue("window/splitter", self.splitter.saveState())
        self.settings.save(self.store)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.play_timer.stop()
        if self.worker is not None and self.worker.is_running:
            self.worker.abort()
            self.worker.wait(60000)
        self.save_state()
        if self.session is not None:
            self.session.close()
            self.session = None
        super().closeEvent(event)

    # ================================================================== opening
    def open_dialog(self) -> None:
        start = str(Path(self.settings.recent[0]).parent) if self.settings.recent else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a video", start, VIDEO_FILTER)
        if path:
            self.open_video(path)

    def open_sample(self) -> None:
        from vidmatte.assets import SAMPLE_CLIP

        self.open_video(SAMPLE_CLIP)

    def open_video(self, path: str | Path) -> bool:
        """Open a video (or image folder); errors are shown, the current video stays."""
        if self.worker is not None and self.worker.is_running:
            self.show_error("processing is running: cancel it before opening another video")
            return False
        try:
            session = Session(path)
        except VidmatteError as e:
            self.show_error(str(e))
            return False
        except OSError as e:  # e.g. a file that vanished between the dialog and here
            self.show_error(f"{path}: {e.strerror or e}")
            return False
        if self.session is not None:
            self.session.close()
        self.session = session
        self.last_summary = None
        self.selected = None
        self.settings.add_recent(str(session.path))
        self.settings.save(self.store)
        info = session.info
        self.setWindowTitle(f"{session.path.name} — vidmatte")
        self.timeline.set_length(info.frame_count, info.fps)
        self.people.set_session(session)
        self.hide_banner()
        self.statusBar().showMessage(
            f"{info.width}×{info.height}, {info.fps:.2f} fps, {info.frame_count} frames — "
            "press Process (F5) to find people",
        )
        self.refresh_frame()
        self._update_actions()
        return True

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.settings.recent:
            a = self.recent_menu.addAction(p)
            a.triggered.connect(lambda _=False, p=p: self.open_video(p))
        self.recent_menu.setEnabled(bool(self.settings.recent))

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_video(files[0])

    # ================================================================== processing
    def start_processing(self) -> bool:
        if self.session is None:
            self.show_error("open a video first (Ctrl+O)")
            return False
        if self.worker is not None and self.worker.is_running:
            return False
        self.stop_playing()
        self.hide_banner()
        folder = self.session.begin_processing()
        start, end = self.session.process_range(self.settings.max_frames)
        self.people.refresh()
        self.timeline.set_processed(None)
        self.worker = GeneratorWorker(
            process_job, self.session.path, self.settings.model, folder, start, end
        )
        self.worker.progress.connect(self._on_progress)
        self.worker.yielded.connect(self._on_processed)
        self.worker.returned.connect(self._on_process_returned)
        self.worker.errored.connect(self._on_process_error)
        self.worker.aborted.connect(self._on_process_aborted)
        self.worker.finished.connect(self._on_worker_finished)
        self._follow = True
        self._new_people = False
        self.progress.setRange(0, 0)  # busy until the first frame (model loading)
        self.progress.setVisible(True)
        self.progress_label.setText("loading models…")
        self.statusBar().showMessage("Processing… (Esc cancels; results so far are kept)")
        self.worker.start()
        self._update_actions()
        return True

    def cancel_processing(self) -> None:
        if self.worker is not None and self.worker.is_running:
            self.progress_label.setText("cancelling…")
            self.worker.abort()

    @property
    def busy(self) -> bool:
        return self.worker is not None and self.worker.is_running

    def _on_progress(self, p: Progress) -> None:
        if p.stage == "loading models":
            self.progress_label.setText("loading models…")
            return
        if p.total:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
        self.progress_label.setText(
            f"{p.done}/{p.total or '?'} frames  {p.fps:.1f} fps  ETA {format_eta(p.eta_s)}"
        )

    def _on_processed(self, item: ProcessedFrame) -> None:
        if self.session is None:
            return
        if self.session.record(item):
            self.people.refresh()  # someone new: show them at once
        self.timeline.set_processed(self.session.processed)
        if self._follow:
            self._programmatic_seek = True
            try:
                self.session.remember_frame(item.index, item.rgb)
                if self.timeline.frame == item.index:
                    self.refresh_frame()
                else:
                    self.timeline.set_frame(item.index)
            finally:
                self._programmatic_seek = False

    def _on_process_returned(self, summary: ProcessSummary) -> None:
        self.last_summary = summary
        self.session.describe = summary.describe
        self.people.refresh(self._no_person_text(summary))
        fps = summary.frames / summary.seconds if summary.seconds > 0 else 0.0
        n = len(self.session.store)
        self.statusBar().showMessage(
            f"Processed {summary.frames} frames in {summary.seconds:.1f} s ({fps:.1f} fps"
            + (f", models loaded in {summary.load_s:.1f} s" if summary.load_s > 0.5 else "")
            + f"); {n} {'person' if n == 1 else 'people'} found",
        )
        if n == 0:
            self.preview_message_if_empty()
        self.refresh_frame()

    def _no_person_text(self, s: ProcessSummary) -> str:
        return (
            f"No person found in frames {s.start}–{s.end - 1}. Try a lower detection "
            "threshold in Settings, or another part of the video."
        )

    def preview_message_if_empty(self) -> None:
        self.statusBar().showMessage("No person found — see the people panel for what to try")

    def _on_process_error(self, e: BaseException) -> None:
        msg = error_message(e)
        if isinstance(e, WeightsError):
            self.show_banner(f"{msg}\n{WEIGHTS_HINT}")
            self.last_error = msg
            self.people.refresh("Models are missing: see the message above the preview.")
        else:
            self.show_error(msg)
            self.people.refresh("Processing failed: " + msg)
        self.statusBar().showMessage("Processing failed")

    def _on_process_aborted(self) -> None:
        done = self.session.processed if self.session else None
        kept = f"frames {done[0]}–{done[1] - 1} are kept" if done else "nothing was processed"
        self.statusBar().showMessage(f"Processing cancelled; {kept}")
        self.people.refresh()

    def _on_worker_finished(self) -> None:
        self.progress.setVisible(False)
        self.progress_label.setText("")
        self._follow = False
        self._update_actions()

    # ================================================================== preview
    def set_view_mode(self, mode: str) -> None:
        if mode not in MODES:
            return
        self.view_mode = mode
        self.mode_actions[mode].setChecked(True)
        if self.mode_combo.currentIndex() != MODES.index(mode):
            self.mode_combo.setCurrentIndex(MODES.index(mode))
        self.refresh_frame()

    def set_background(self, kind: str, value=None) -> None:
        """kind: checkerboard | colour (value RGB tuple) | image (value RGB array)."""
        if kind not in BACKGROUNDS:
            return
        self.background = kind
        if kind == "colour" and value is not None:
            self.bg_colour = tuple(value)
        if kind == "image" and value is not None:
            self.bg_image = value
        self.bg_combo.setCurrentIndex(BACKGROUNDS.index(kind))
        if self.view_mode != "composite":
            self.set_view_mode("composite")
        else:
            self.refresh_frame()

    def _choose_background(self, index: int) -> None:
        kind = BACKGROUNDS[index]
        if kind == "colour":
            c = QColorDialog.getColor(QColor(*self.bg_colour), self, "Background colour")
            if not c.isValid():
                return
            self.set_background("colour", (c.red(), c.green(), c.blue()))
        elif kind == "image":
            path, _ = QFileDialog.getOpenFileName(
                self, "Background image", "", "Images (*.png *.jpg *.jpeg *.bmp *.webp)"
            )
            if not path:
                return
            from vidmatte.matting.io.video import open_video

            try:
                with open_video(path) as r:
                    self.set_background("image", r.read(0).rgb)
            except (VidmatteError, IndexError) as e:
                self.show_error(str(e))
        else:
            self.set_background("checkerboard")

    def _layers(self, index: int) -> list[Layer]:
        s = self.session
        people = s.people_at(index)
        return [
            Layer(tid, s.store.name(tid), colour_of(tid), p.box, p.alpha, p.trimap)
            for tid, p in people.items()
            if tid not in s.hidden
        ]

    def refresh_frame(self) -> None:
        if self.session is None:
            self.preview.set_message(EMPTY_TEXT)
            return
        index = self.timeline.frame
        try:
            rgb = self.session.read_rgb(index)
            layers = self._layers(index)
        except (VidmatteError, IndexError, OSError) as e:
            self.preview.set_message(f"Frame {index} cannot be shown: {e}")
            return
        selected = self.selected if self.selected in self.session.store else None
        image = render(rgb, self.view_mode, layers, selected, self.background, self.bg_colour,
                       self.bg_image)  # fmt: skip
        tags = layers if self.view_mode in ("original", "trimap") else []
        self.preview.set_frame(image, tags)
        self.people.current_frame = index

    def _on_frame_changed(self, index: int) -> None:
        if not self._programmatic_seek:
            self._follow = False  # the user took over the timeline
        self.people.current_frame = index
        self.refresh_frame()

    def _on_person_selected(self, track_id) -> None:
        self.selected = track_id
        if self.view_mode == "alpha":
            self.refresh_frame()

    # ================================================================== playback
    def seek(self, index: int) -> None:
        self.timeline.set_frame(index)

    def step(self, delta: int) -> None:
        self.stop_playing()
        self.timeline.step(delta)

    def toggle_play(self) -> None:
        self.timeline.set_playing(not self.timeline.playing)

    def stop_playing(self) -> None:
        self.timeline.set_playing(False)

    def _on_play_toggled(self, on: bool) -> None:
        if on and self.session is not None:
            if self.timeline.frame >= self.timeline.length - 1:
                self.seek(0)
            fps = self.session.info.fps or 25.0
            self.play_timer.start(max(1, int(1000 / fps)))
        else:
            self.play_timer.stop()
            if on:
                self.timeline.set_playing(False)

    def _play_tick(self) -> None:
        if self.timeline.frame >= self.timeline.length - 1:
            self.stop_playing()
            return
        self.timeline.step(1)

    # ================================================================== dialogs & state
    def open_export(self):
        from vidmatte.app.export_dialog import ExportDialog

        if self.session is None or not len(self.session.store):
            self.show_error("nothing to export yet: open a video and process it first")
            return None
        if self.busy:
            self.show_error("processing is still running: wait for it or cancel it first")
            return None
        dlg = ExportDialog(self.session, self.settings, self)
        dlg.finished.connect(lambda _=0: self.settings.save(self.store))
        dlg.open()
        self.export_dialog = dlg
        return dlg

    def open_settings(self):
        dlg = SettingsDialog(self.settings, self)

        def accepted() -> None:
            self.apply_settings(dlg.result_settings())

        dlg.accepted.connect(accepted)
        dlg.open()
        self.settings_dialog = dlg
        return dlg

    def apply_settings(self, settings: AppSettings) -> None:
        self.settings = settings
        self.settings.save(self.store)
        if self.device_combo.currentText() != settings.model.device:
            self.device_combo.setCurrentText(settings.model.device)
        self.hide_banner()

    def _on_device(self, device: str) -> None:
        self.settings = self.settings.with_model(device=device)
        self.settings.save(self.store)

    def show_error(self, message: str) -> QMessageBox:
        """The one-line message in a (non-blocking) dialog; also kept for tests/logs."""
        self.last_error = message
        box = QMessageBox(QMessageBox.Icon.Warning, "vidmatte", message, parent=self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self.error_box = box
        return box

    def show_banner(self, text: str) -> None:
        self.banner_text.setText(text)
        self.banner.setVisible(True)

    def hide_banner(self) -> None:
        self.banner.setVisible(False)

    @property
    def banner_message(self) -> str:
        return "" if self.banner.isHidden() else self.banner_text.text()

    def _update_actions(self) -> None:
        has = self.session is not None
        busy = self.busy
        self.process_action.setEnabled(has and not busy)
        self.cancel_action.setEnabled(busy)
        self.export_action.setEnabled(has and not busy)
        self.open_action.setEnabled(not busy)
        self.timeline.setEnabled(has and self.session.frame_count > 0)

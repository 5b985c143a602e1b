"""The people panel: who was found, and the association edits.

One row per track: colour swatch, thumbnail, name (double-click to rename), frame range,
and check boxes for "visible in the preview" and "export". Buttons merge two people,
split the selected one at the current frame, and delete. Edits go to the Session (its
TrackStore); problems (e.g. merging two people seen in the same frame) come back as the
store's one-line UsageError through `error`.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vidmatte.app.preview import to_qimage
from vidmatte.app.session import THUMB, Session, colour_of
from vidmatte.models.errors import VidmatteError

COL_NAME, COL_FRAMES, COL_VISIBLE, COL_EXPORT = range(4)


def _icon(colour: tuple[int, int, int], thumb) -> QIcon:
    """Swatch strip on the left, thumbnail on the right."""
    pm = QPixmap(THUMB + 10, THUMB)
    pm.fill(QColor(0, 0, 0, 0))
    p = QPainter(pm)
    p.fillRect(0, 0, 7, THUMB, QColor(*colour))
    if thumb is not None:
        p.drawImage(10, 0, to_qimage(thumb))
    p.end()
    return QIcon(pm)


class PeoplePanel(QWidget):
    selectionChanged = Signal(object)  # noqa: N815 (track id or None)
    edited = Signal()  # the store changed: refresh the preview
    error = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session: Session | None = None
        self.current_frame = 0
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.title = QLabel("People", self)
        self.title.setStyleSheet("font-weight: bold")
        lay.addWidget(self.title)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Person", "Frames", "Show", "Export"])
        self.tree.setIconSize(QSize(THUMB + 10, THUMB))
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.tree.setColumnWidth(COL_NAME, 170)
        self.tree.setColumnWidth(COL_FRAMES, 80)
        self.tree.setColumnWidth(COL_VISIBLE, 44)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.itemSelectionChanged.connect(self._on_selection)
        lay.addWidget(self.tree, 1)
        self.empty = QLabel(self)
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: #888")
        lay.addWidget(self.empty)
        row = QHBoxLayout()
        self.rename_button = QPushButton("Rename", self)
        self.merge_button = QPushButton("Merge", self)
        self.split_button = QPushButton("Split here", self)
        self.delete_button = QPushButton("Delete", self)
        self.rename_button.setToolTip("Rename the selected person (F2)")
        self.merge_button.setToolTip("Two selected people are one person: join them")
        self.split_button.setToolTip(
            "From the current frame on, the selected person is someone else"
        )
        self.delete_button.setToolTip("Remove the selected person from the results")
        self.rename_button.clicked.connect(self._rename_selected)
        self.merge_button.clicked.connect(self.merge_selected)
        self.split_button.clicked.connect(self.split_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        for b in (self.rename_button, self.merge_button, self.split_button, self.delete_button):
            row.addWidget(b)
        lay.addLayout(row)
        self.set_session(None)

    # -- model -------------------------------------------------------------------------
    def set_session(self, session: Session | None, empty_text: str = "") -> None:
        self.session = session
        self.refresh(empty_text)

    def refresh(self, empty_text: str = "") -> None:
        keep = set(self.selected_ids())
        with QSignalBlocker(self.tree):
            self.tree.clear()
            tracks = self.session.tracks() if self.session else []
            for t in tracks:
                item = QTreeWidgetItem(self.tree)
                item.setData(COL_NAME, Qt.ItemDataRole.UserRole, t.id)
                item.setText(COL_NAME, t.name)
                item.setIcon(COL_NAME, _icon(colour_of(t.id), self.session.thumbnail(t.id)))
                item.setToolTip(COL_NAME, f"id {t.id}, mean score {t.mean_score:.2f}")
                item.setText(COL_FRAMES, f"{t.first}–{t.last}")
                item.setToolTip(COL_FRAMES, f"{t.frames} frames, {t.first} to {t.last}")
                flags = item.flags() | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsUserCheckable
                item.setFlags(flags)
                vis = t.id not in self.session.hidden
                exp = t.id not in self.session.skip_export
                item.setCheckState(
                    COL_VISIBLE, Qt.CheckState.Checked if vis else Qt.CheckState.Unchecked
                )
                item.setCheckState(
                    COL_EXPORT, Qt.CheckState.Checked if exp else Qt.CheckState.Unchecked
                )
                if t.id in keep:
                    item.setSelected(True)
        n = self.tree.topLevelItemCount()
        self.title.setText(f"People ({n})" if n else "People")
        if not n:
            self.empty.setText(
                empty_text
                or ("Process the video to find people." if self.session else "No video open.")
            )
        self.empty.setVisible(not n)
        self._update_buttons()

    def selected_ids(self) -> list[int]:
        return sorted(
            int(i.data(COL_NAME, Qt.ItemDataRole.UserRole)) for i in self.tree.selectedItems()
        )

    def select(self, track_id: int | None) -> None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            item.setSelected(item.data(COL_NAME, Qt.ItemDataRole.UserRole) == track_id)

    def item_for(self, track_id: int) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(COL_NAME, Qt.ItemDataRole.UserRole) == track_id:
                return item
        return None

    # -- edits -------------------------------------------------------------------------
    def _apply(self, fn, *args):
        try:
            out = fn(*args)
        except VidmatteError as e:
            self.error.emit(str(e))
            return None
        self.refresh()
        self.edited.emit()
        return out

    def rename(self, track_id: int, name: str) -> None:
        self._apply(self.session.rename, track_id, name)

    def merge_selected(self) -> None:
        ids = self.selected_ids()
        if len(ids) != 2:
            self.error.emit("select exactly two people to merge (Ctrl+click)")
            return
        self._apply(self.session.merge, ids[0], ids[1])
        self.select(ids[0])

    def split_selected(self) -> int | None:
        ids = self.selected_ids()
        if len(ids) != 1:
            self.error.emit("select one person to split at the current frame")
            return None
        return self._apply(self.session.split, ids[0], self.current_frame)

    def delete_selected(self) -> None:
        ids = self.selected_ids()
        if not ids:
            self.error.emit("select the people to delete")
            return
        for tid in ids:
            self.session.delete(tid)
        self.refresh()
        self.edited.emit()

    def _rename_selected(self) -> None:
        items = self.tree.selectedItems()
        if len(items) == 1:
            self.tree.editItem(items[0], COL_NAME)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self.session is None:
            return
        tid = int(item.data(COL_NAME, Qt.ItemDataRole.UserRole))
        if column == COL_NAME:
            text = item.text(COL_NAME)
            if text != self.session.store.name(tid):
                # After the edit returns: rebuilding the tree inside its own signal is unsafe.
                QTimer.singleShot(0, lambda: self._finish_rename(tid, text))
            return
        on = item.checkState(column) == Qt.CheckState.Checked
        target = self.session.hidden if column == COL_VISIBLE else self.session.skip_export
        if on:
            target.discard(tid)
        else:
            target.add(tid)
        self.edited.emit()

    def _finish_rename(self, tid: int, text: str) -> None:
        if self.session is None or tid not in self.session.store:
            return
        self.rename(tid, text)  # refreshes on success
        if self.session.store.name(tid) != text:  # refused: show the old name again
            self.refresh()

    def _on_selection(self) -> None:
        ids = self.selected_ids()
        self._update_buttons()
        self.selectionChanged.emit(ids[0] if ids else None)

    def _update_buttons(self) -> None:
        n = len(self.selected_ids())
        self.rename_button.setEnabled(n == 1)
        self.merge_button.setEnabled(n == 2)
        self.split_button.setEnabled(n == 1)
        self.delete_button.setEnabled(n >= 1)

"""DetailPanel: the selected photo larger, its caption (editable) and what is known about it.

The panel is UI only: it emits :attr:`DetailPanel.save_requested` and
:attr:`DetailPanel.write_requested`; the window does the database and file
work and hands back the updated record with :meth:`DetailPanel.set_record`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QKeySequence, QPixmap, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from photocap.gui import desktop
from photocap.gui.thumbnails import ThumbnailCache
from photocap.gui.why import format_matched
from photocap.records import Concept, PhotoRecord, SearchHit

PREVIEW_PX = 640


def description_fields(path: str) -> str:
    """Which metadata fields of the photo hold a description, for display."""
    try:
        from photocap.metadata.reader import read_metadata

        report = read_metadata(path)
    except Exception as exc:  # noqa: BLE001 - unreadable metadata is shown, not raised
        return f"unreadable ({exc})"
    who = {"photocap-user": ", yours via photocap", "photocap-model": ", model via photocap"}
    found = [f"{v.tag} ({v.location}{who.get(str(v.owner), '')})"
             for v in report.values if not v.placeholder]
    return "\n".join(found) if found else "none"


def format_date(taken_at: str | None) -> str:
    """``2023-05-01T14:22:05+02:00`` -> ``2023-05-01 14:22`` (what the photo's EXIF says)."""
    if not taken_at:
        return "unknown"
    try:
        return datetime.fromisoformat(taken_at).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return taken_at


def format_bytes(n: int) -> str:
    """1536 -> "1.5 KB" (decimal units, as file managers show)."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def format_source(record: PhotoRecord) -> str:
    if record.source == "user":
        return "yours (the model never replaces it)"
    if record.source == "model":
        return f"model {record.model or ''}".strip()
    return f"none: {record.error}" if record.error else "not captioned yet"


def format_concepts(concepts: Sequence[Concept]) -> str:
    """"dog 97 %, frisbee 41 %": what the model's classifier sees, best first (weak ones left out)."""
    shown = [c for c in concepts if c.score >= 0.05] or list(concepts[:1])
    return ", ".join(f"{c.word} {c.score:.0%}" for c in shown) or "not known (indexed by a model without concepts)"


def format_score(record: PhotoRecord) -> str:
    if record.score is None:
        return "—"
    return f"{record.score:.2f}  (≈{math.exp(record.score):.0%} per word)"


class _Preview(QLabel):
    """The photo, scaled to fit while keeping its aspect ratio."""

    def __init__(self) -> None:
        super().__init__()
        self._pixmap: QPixmap | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(QSize(200, 180))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setObjectName("preview")

    def set_image(self, pixmap: QPixmap | None, text: str = "") -> None:
        self._pixmap = pixmap if pixmap is not None and not pixmap.isNull() else None
        self.setText("" if self._pixmap else text)
        self._rescale()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is None:
            self.setPixmap(QPixmap())
            return
        size = self.contentsRect().size()
        self.setPixmap(self._pixmap.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation))


class DetailPanel(QWidget):
    """The selected photo: preview, editable caption, facts and actions."""

    save_requested = Signal(str, str, bool)  # path, caption, also write it into the file
    write_requested = Signal(str, str)  # path, caption: write it into the file now
    message = Signal(str)  # a short note for the status bar

    def __init__(self, thumbnails: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self.record: PhotoRecord | None = None
        self._saved_text = ""
        thumbnails.ready.connect(self._thumbnail_ready)
        thumbnails.failed.connect(self._thumbnail_failed)
        self._build()
        self.set_record(None)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.preview = _Preview()

        self.editor = QPlainTextEdit()
        self.editor.setObjectName("captionEditor")
        self.editor.setPlaceholderText("No caption yet. Type one and press Save.")
        self.editor.setTabChangesFocus(True)
        self.editor.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.editor.setFixedHeight(self.editor.fontMetrics().lineSpacing() * 4 + 14)
        self.editor.textChanged.connect(self._update_buttons)
        self.editor.setAccessibleName("Caption")

        self.save_button = QPushButton("&Save")
        self.save_button.setToolTip("Keep this caption as yours (Ctrl+S); the model never replaces it.")
        self.save_button.clicked.connect(self.save)
        self.undo_button = QPushButton("&Undo edit")
        self.undo_button.setToolTip("Go back to the saved caption.")
        self.undo_button.clicked.connect(self.undo_edit)
        self.write_button = QPushButton("&Write to file")
        self.write_button.setToolTip("Write the saved caption into the photo as its description and alt text.")
        self.write_button.clicked.connect(self.write_to_file)
        self.write_on_save = QCheckBox("Also write into the photo's file when saving")
        self.write_on_save.setObjectName("writeOnSave")
        QShortcut(QKeySequence.StandardKey.Save, self, self.save,
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)

        edit_row = QHBoxLayout()
        for b in (self.save_button, self.undo_button, self.write_button):
            edit_row.addWidget(b)
        edit_row.addStretch(1)

        self.source_label = self._fact_label()
        self.score_label = self._fact_label()
        self.date_label = self._fact_label()
        self.camera_label = self._fact_label()
        self.size_label = self._fact_label()
        self.path_label = self._fact_label()
        self.fields_label = self._fact_label()
        self.concepts_label = self._fact_label()
        self.concepts_label.setObjectName("concepts")
        self.concepts_label.setToolTip("What the model's image classifier sees in the photo, and how sure it is. "
                                       "Search finds photos by these words too.")
        self.matched_label = self._fact_label()
        self.matched_label.setObjectName("matchedBy")
        self.matched_label.setToolTip("Why the search found this photo: its caption's words, the concepts the "
                                      "model sees, or the meaning of its caption (with how close it is to "
                                      "your search, from 0 to 1).")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        self.form = form
        for name, label in (("Found by", self.matched_label),
                            ("Caption by", self.source_label), ("Sees", self.concepts_label),
                            ("Score", self.score_label),
                            ("Taken", self.date_label), ("Camera", self.camera_label),
                            ("Size", self.size_label), ("File", self.path_label),
                            ("Description in file", self.fields_label)):
            form.addRow(name + ":", label)

        self.open_button = QPushButton("&Open")
        self.open_button.setToolTip("Open in the system's image viewer (Enter).")
        self.open_button.clicked.connect(self.open_photo)
        self.reveal_button = QPushButton("Show in &folder")
        self.reveal_button.clicked.connect(self.reveal_photo)
        self.copy_button = QPushButton("&Copy caption")
        self.copy_button.clicked.connect(self.copy_caption)
        action_row = QHBoxLayout()
        for b in (self.open_button, self.reveal_button, self.copy_button):
            action_row.addWidget(b)
        action_row.addStretch(1)

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.preview, 1)
        caption_title = QLabel("<b>Caption</b>")
        caption_title.setBuddy(self.editor)
        layout.addWidget(caption_title)
        layout.addWidget(self.editor)
        layout.addLayout(edit_row)
        layout.addWidget(self.write_on_save)
        layout.addWidget(line)
        layout.addLayout(form)
        layout.addLayout(action_row)

    @staticmethod
    def _fact_label() -> QLabel:
        label = QLabel()
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        return label

    # ------------------------------------------------------------------ state
    @property
    def dirty(self) -> bool:
        """The caption in the editor differs from the saved one."""
        return self.record is not None and self.caption_text() != self._saved_text

    def caption_text(self) -> str:
        return self.editor.toPlainText().strip()

    def set_record(self, record: PhotoRecord | None, concepts: Sequence[Concept] = (),
                   hit: SearchHit | None = None) -> None:
        """Show ``record`` (None: nothing selected), its ``concepts`` and, when a search found it,
        why (``hit``). An unsaved edit of the same photo is kept."""
        same = record is not None and self.record is not None and record.path == self.record.path
        keep_edit = same and self.dirty
        self.record = record
        enabled = record is not None
        for w in (self.editor, self.write_on_save, self.open_button, self.reveal_button, self.copy_button):
            w.setEnabled(enabled)
        if record is None:
            self._saved_text = ""
            self.editor.setPlainText("")
            self.preview.set_image(None, "Select a photo to see it here.")
            for label in (self.source_label, self.score_label, self.date_label, self.camera_label,
                          self.size_label, self.path_label, self.fields_label, self.concepts_label,
                          self.matched_label):
                label.setText("")
            self.form.setRowVisible(self.matched_label, False)
            self._update_buttons()
            return
        self._saved_text = record.caption or ""
        if not keep_edit:
            self.editor.setPlainText(self._saved_text)
        self.matched_label.setText(format_matched(hit) if hit is not None else "")
        self.form.setRowVisible(self.matched_label, hit is not None)
        self.source_label.setText(format_source(record))
        self.concepts_label.setText(format_concepts(concepts))
        self.score_label.setText(format_score(record))
        self.date_label.setText(format_date(record.taken_at))
        self.camera_label.setText(record.camera or "unknown")
        pixels = f"{record.width} × {record.height} px, " if record.width and record.height else ""
        self.size_label.setText(pixels + format_bytes(record.size))
        self.path_label.setText(record.path)
        self.path_label.setToolTip(record.path)
        if not same:
            self.fields_label.setText(description_fields(record.path))
            self._show_preview()
        self._update_buttons()

    def refresh_fields(self) -> None:
        """Read the photo's metadata again (after writing into it)."""
        if self.record is not None:
            self.fields_label.setText(description_fields(self.record.path))

    def _show_preview(self) -> None:
        assert self.record is not None
        path = self.record.path
        pixmap = self.thumbnails.get(path, PREVIEW_PX)
        if pixmap is None:
            pixmap = self.thumbnails.get(path, 160)  # the grid's, until the large one is ready
        error = self.thumbnails.error(path, PREVIEW_PX)
        self.preview.set_image(pixmap, f"Can't show this photo: {error}" if error else "Loading…")

    def _thumbnail_ready(self, path: str, px: int) -> None:
        if self.record is not None and path == self.record.path and px == PREVIEW_PX:
            self._show_preview()

    def _thumbnail_failed(self, path: str, px: int, _reason: str) -> None:
        if self.record is not None and path == self.record.path and px == PREVIEW_PX:
            self._show_preview()

    def _update_buttons(self) -> None:
        dirty = self.dirty
        self.save_button.setEnabled(dirty and bool(self.caption_text()))
        self.undo_button.setEnabled(dirty)
        self.write_button.setEnabled(self.record is not None and bool(self._saved_text) and not dirty)

    # ---------------------------------------------------------------- actions
    def start_editing(self) -> None:
        """Focus the caption with all of it selected (F2)."""
        if self.record is None:
            return
        self.editor.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.editor.selectAll()

    def save(self) -> None:
        if self.record is None or not self.dirty:
            return
        text = self.caption_text()
        if not text:
            self.message.emit("A caption cannot be empty; use Undo edit to go back.")
            return
        self.save_requested.emit(self.record.path, text, self.write_on_save.isChecked())

    def undo_edit(self) -> None:
        """Drop the unsaved edit."""
        if self.record is not None:
            self.editor.setPlainText(self._saved_text)

    def write_to_file(self) -> None:
        if self.record is not None and self._saved_text:
            self.write_requested.emit(self.record.path, self._saved_text)

    def open_photo(self) -> None:
        if self.record is not None:
            desktop.open_file(self.record.path)

    def reveal_photo(self) -> None:
        if self.record is not None:
            desktop.reveal_in_file_manager(self.record.path)

    def copy_caption(self) -> None:
        if self.record is not None:
            desktop.copy_text(self.caption_text())
            self.message.emit("Caption copied.")

"""MainWindow: search box, thumbnail grid, detail panel, and indexing in the background.

Layout::

    [ search captions... (Ctrl+F)                      ] [Add folder...]
    [ message banner (errors, notices), hidden when empty                 ]
    [ thumbnail grid (QListView, IconMode)      | detail panel            ]
    [ status: result count          indexing label [progress] [Cancel]    ]

The window reads the index through its own :class:`CaptionIndex` connection
on the UI thread (searches are milliseconds); indexing runs in an
:class:`~photocap.gui.workers.IndexWorker` thread with its own connection.

Over 500 lines on purpose: it wires the window's widgets, actions and their slots, one short
method each; what has logic lives elsewhere (models.py, detail.py, workers.py, the library).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from photocap.errors import PhotocapError
from photocap.gui import desktop
from photocap.gui.banner import MessageBanner
from photocap.gui.compat import protect_none
from photocap.gui.delegate import ThumbnailDelegate
from photocap.gui.detail import DetailPanel
from photocap.gui.errors import user_message
from photocap.gui.meaning import EmbedderLoader
from photocap.gui.models import HitRole, RecordRole, ResultSource, ResultsModel
from photocap.gui.thumbnails import ThumbnailCache
from photocap.gui.workers import IndexWorker, ProgressInfo
from photocap.index.store import CaptionIndex
from photocap.library.pipeline import IndexOptions
from photocap.library.summary import IndexSummary, format_index_summary
from photocap.records import Concept, FileOutcome, Outcome, PhotoRecord, SkipReason

SEARCH_DEBOUNCE_MS = 250
SEARCH_MODES = (  # (photocap.library.search.SearchMode value, label, tooltip); the first is the default
    ("hybrid", "Words + meaning", "Photos whose caption has your words, and photos whose caption or "
                                  "concepts mean what you typed (“puppy” finds “a dog …”)."),
    ("words", "Words only", "Only photos whose caption (or the concepts the model sees) has your words."),
    ("meaning", "Meaning only", "Photos ranked by how close their caption and concepts are in meaning "
                                "to what you typed, whatever the words."),
)
REFRESH_THROTTLE_MS = 1000  # while indexing, re-run the current query at most this often
UI_BUSY_TIMEOUT_S = 3.0  # the UI waits this long for a writer before saying "locked"

EMPTY_TEXT = (
    "<h2>No photos indexed yet</h2>"
    "<p>Add a folder of photos. photocap describes each one on this computer "
    "(nothing is uploaded), so you can find photos by what they show and "
    "give them alt text.</p>"
)


class MainWindow(QMainWindow):
    """The photocap window over the index at ``db_path``.

    ``model_path``/``device`` choose the captioning model for "Add folder..."
    (None: the bundled model); ``index_options`` is a ``library.pipeline.IndexOptions``;
    ``thumbnail_dir`` overrides the thumbnail cache folder; ``settings``
    (a QSettings) remembers the window layout and the write-on-save choice.
    """

    def __init__(self, db_path: str | os.PathLike[str], *, model_path: str | os.PathLike[str] | None = None,
                 device: str = "auto", index_options: IndexOptions | None = None, thumbnail_dir: Path | None = None,
                 settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        protect_none()  # before any Qt call from Python (see photocap.gui.compat)
        super().__init__(parent)
        self.db_path = Path(db_path).expanduser()
        self.model_path = Path(model_path) if model_path is not None else None
        self.device = device
        self.index_options = index_options
        self.settings = settings
        self.index: CaptionIndex | None = None
        self.worker: IndexWorker | None = None
        self.last_result: IndexSummary | None = None
        self._refresh_pending = False
        self._said_meaning_off = False
        self.meaning = EmbedderLoader(parent=self)  # one sentence model for the window, loaded off-thread
        self.meaning.ready.connect(self._meaning_ready)
        self.meaning.unavailable.connect(self._meaning_unavailable)

        self.thumbnails = ThumbnailCache(thumbnail_dir, parent=self)
        self.model = ResultsModel(self.thumbnails, parent=self)
        self.setWindowTitle("photocap")
        self.resize(1180, 760)
        self._build_widgets()
        self._build_actions()
        self._restore_settings()

        self.search_timer = QTimer(self)
        self.search_timer.setSingleShot(True)
        self.search_timer.setInterval(SEARCH_DEBOUNCE_MS)
        self.search_timer.timeout.connect(self.run_search)
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setSingleShot(True)
        self.refresh_timer.setInterval(REFRESH_THROTTLE_MS)
        self.refresh_timer.timeout.connect(self.refresh)

        self.open_index()
        self.run_search()

    # ================================================================ building
    def _build_widgets(self) -> None:
        self.search_box = QLineEdit()
        self.search_box.setObjectName("searchBox")
        self.search_box.setPlaceholderText("Search captions, e.g. “dog on a beach”   (Ctrl+F)")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.setAccessibleName("Search captions")
        self.search_box.setMinimumHeight(30)
        self.search_box.textChanged.connect(self._search_text_changed)
        self.search_box.returnPressed.connect(self._search_return)
        self.search_box.installEventFilter(self)

        self.mode_box = QComboBox()
        self.mode_box.setObjectName("searchMode")
        self.mode_box.setAccessibleName("Search by")
        for mode, label, tip in SEARCH_MODES:
            self.mode_box.addItem(label, mode)
            self.mode_box.setItemData(self.mode_box.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.mode_box.setToolTip("How the search box finds photos: by their words, by meaning, or both.")
        self.mode_box.setMinimumHeight(30)
        self.mode_box.currentIndexChanged.connect(self._mode_changed)

        self.add_button = QPushButton("Add folder…")
        self.add_button.setObjectName("addFolderButton")
        self.add_button.setToolTip("Caption every photo in a folder into the index (Ctrl+O).")
        self.add_button.clicked.connect(self.choose_folder)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.search_box, 1)
        top.addWidget(self.mode_box)
        top.addWidget(self.add_button)

        self.banner = MessageBanner()

        # results page: grid | detail
        self.view = QListView()
        self.view.setObjectName("results")
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setWrapping(True)
        self.view.setSpacing(4)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setMouseTracking(True)
        self.view.setItemDelegate(ThumbnailDelegate(parent=self.view))
        self.view.setModel(self.model)
        self.view.setAccessibleName("Photos")
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.view.doubleClicked.connect(lambda _i: self.open_current())
        for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            QShortcut(QKeySequence(key), self.view, self.open_current,
                      context=Qt.ShortcutContext.WidgetShortcut)

        self.no_match = QLabel()
        self.no_match.setObjectName("noMatch")
        self.no_match.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_match.setWordWrap(True)
        self.no_match.hide()

        grid_box = QWidget()
        grid_layout = QVBoxLayout(grid_box)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.addWidget(self.no_match)
        grid_layout.addWidget(self.view, 1)

        self.detail = DetailPanel(self.thumbnails)
        self.detail.setObjectName("detail")
        self.detail.save_requested.connect(self.save_caption)
        self.detail.write_requested.connect(self.write_caption_to_file)
        self.detail.message.connect(lambda text: self.statusBar().showMessage(text, 5000))

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(grid_box)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([700, 440])
        self.splitter.setChildrenCollapsible(False)

        # empty page
        self.empty_state = QWidget()
        self.empty_state.setObjectName("emptyState")
        empty_text = QLabel(EMPTY_TEXT)
        empty_text.setWordWrap(True)
        empty_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        empty_text.setMaximumWidth(520)
        self.empty_add_button = QPushButton("Add folder…")
        self.empty_add_button.setObjectName("emptyAddFolder")
        self.empty_add_button.setMinimumSize(QSize(180, 40))
        self.empty_add_button.clicked.connect(self.choose_folder)
        empty_layout = QVBoxLayout(self.empty_state)
        empty_layout.addStretch(1)
        empty_layout.addWidget(empty_text, 0, Qt.AlignmentFlag.AlignHCenter)
        empty_layout.addSpacing(12)
        empty_layout.addWidget(self.empty_add_button, 0, Qt.AlignmentFlag.AlignHCenter)
        empty_layout.addStretch(2)

        self.pages = QStackedWidget()
        self.pages.addWidget(self.empty_state)
        self.pages.addWidget(self.splitter)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.addLayout(top)
        layout.addWidget(self.banner)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        # status bar: count (left), indexing (right)
        status = self.statusBar()
        self.count_label = QLabel()
        self.count_label.setObjectName("resultCount")
        status.addWidget(self.count_label, 1)
        self.index_label = QLabel()
        self.index_label.setObjectName("indexStatus")
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("indexProgress")
        self.progress_bar.setFixedWidth(220)
        self.progress_bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelIndexing")
        self.cancel_button.setToolTip("Stop indexing after the photos being captioned now (nothing is lost).")
        self.cancel_button.clicked.connect(self.cancel_indexing)
        for w in (self.index_label, self.progress_bar, self.cancel_button):
            status.addPermanentWidget(w)
        self._show_indexing(False)

    def _build_actions(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        self.add_action = self._action("&Add folder…", QKeySequence.StandardKey.Open, self.choose_folder, file_menu)
        file_menu.addSeparator()
        self._action("&Quit", QKeySequence.StandardKey.Quit, self.close, file_menu)

        edit_menu = menu.addMenu("&Edit")
        self.find_action = self._action("&Find", QKeySequence.StandardKey.Find, self.focus_search, edit_menu)
        self.edit_action = self._action("&Edit caption", QKeySequence(Qt.Key.Key_F2), self.edit_caption, edit_menu)
        self._action("&Copy caption", QKeySequence("Ctrl+Shift+C"), self.detail.copy_caption, edit_menu)

        photo_menu = menu.addMenu("&Photo")
        self._action("&Open in viewer", None, self.open_current, photo_menu)
        self._action("Show in &folder", None, self.detail.reveal_photo, photo_menu)

        help_menu = menu.addMenu("&Help")
        self._action("&Keyboard shortcuts", QKeySequence.StandardKey.HelpContents, self.show_shortcuts, help_menu)
        self._action("&About photocap", None, self.show_about, help_menu)

    def _action(self, text: str, shortcut: QKeySequence | QKeySequence.StandardKey | None,
                slot: Any, menu: Any) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        self.addAction(action)
        return action

    # ================================================================ settings
    def _restore_settings(self) -> None:
        if self.settings is None:
            return
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("window/splitter")
        if state is not None:
            self.splitter.restoreState(state)
        self.detail.write_on_save.setChecked(self.settings.value("detail/write_on_save", False, type=bool))
        self.set_search_mode(str(self.settings.value("search/mode", SEARCH_MODES[0][0])))

    def _save_settings(self) -> None:
        if self.settings is None:
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/splitter", self.splitter.saveState())
        self.settings.setValue("detail/write_on_save", self.detail.write_on_save.isChecked())
        self.settings.setValue("search/mode", self.search_mode)

    # ================================================================ the index
    def open_index(self) -> CaptionIndex | None:
        """Open the index if it exists (a missing one is the empty state, not an error)."""
        if self.index is not None:
            return self.index
        if not self.db_path.exists():
            return None
        try:
            self.index = CaptionIndex.open(self.db_path, create=False, busy_timeout=UI_BUSY_TIMEOUT_S)
        except PhotocapError as exc:
            self.show_error(str(exc))
            return None
        return self.index

    def show_error(self, text: str) -> None:
        """Show an error in the window (banner and status bar)."""
        self.banner.show_message(text, "error")
        self.statusBar().showMessage(text.splitlines()[0][:200], 10000)

    def show_info(self, text: str) -> None:
        self.banner.show_message(text, "info")

    # ================================================================ searching
    @property
    def search_mode(self) -> str:
        """What the mode selector asks for: "hybrid", "words" or "meaning"."""
        return str(self.mode_box.currentData())

    def set_search_mode(self, mode: str) -> None:
        """Select ``mode`` (an unknown one, e.g. from old settings, leaves the selector as it is)."""
        i = self.mode_box.findData(mode)
        if i >= 0:
            self.mode_box.setCurrentIndex(i)

    def _mode_changed(self, _i: int) -> None:
        if hasattr(self, "search_timer") and self.search_box.text().strip():
            self.run_search()

    def _search_text_changed(self, text: str) -> None:
        if text.strip() and self.search_mode != "words":
            self.meaning.load()  # ready (off the UI thread) by the time the debounced search runs
        self.search_timer.start()  # restarts: the search runs 250 ms after the last key

    def _embedder(self) -> Any:
        """The sentence model for this search (None: search by words, for now or for good)."""
        if self.search_mode == "words" or not self.search_box.text().strip():
            return None
        embedder = self.meaning.get()
        if embedder is None and self.meaning.error is not None:
            self._meaning_unavailable(self.meaning.error)
        return embedder

    def _meaning_ready(self) -> None:
        if self.search_mode != "words" and self.search_box.text().strip() and not self.search_timer.isActive():
            self.refresh()  # the search typed while it loaded ran by words; keep the selection

    def _meaning_unavailable(self, message: str) -> None:
        """Say once that searching is by words only, and how to turn meaning on."""
        self.mode_box.setToolTip(f"Searching by words only. {message}")
        if not self._said_meaning_off:
            self._said_meaning_off = True
            self.statusBar().showMessage(f"Searching by words only: {message}", 20000)

    def _search_return(self) -> None:
        if self.search_timer.isActive():
            self.search_timer.stop()
            self.run_search()
        self._focus_results()

    def run_search(self) -> None:
        """Show the results for the search box's text (all photos when it is empty)."""
        self.search_timer.stop()
        self._load(keep=self.current_path() if self.detail.dirty else None, clear_detail=True)

    def refresh(self) -> None:
        """Re-run the current query, keeping the selection, loaded rows and scroll position."""
        self.refresh_timer.stop()
        self._refresh_pending = False
        bar = self.view.verticalScrollBar()
        scroll = bar.value()
        self._load(keep=self.current_path(), min_rows=self.model.rowCount())
        bar.setValue(scroll)

    def _load(self, keep: str | None = None, min_rows: int = 0, clear_detail: bool = False) -> None:
        query = self.search_box.text().strip()
        index = self.open_index()
        if index is None:
            self.model.set_source(None)
            self._update_page(query)
            return
        self.thumbnails.cancel_pending()
        try:
            self.model.set_source(ResultSource(index, query, self.search_mode, self._embedder()),
                                  min_rows=min_rows)
        except PhotocapError as exc:
            self.model.set_source(None)
            self.show_error(str(exc))
        self._update_page(query)
        row = self.model.row_of(keep) if keep else None
        if row is not None:
            self.view.setCurrentIndex(self.model.index(row))
            self.view.scrollTo(self.model.index(row))
        elif clear_detail and not self.detail.dirty:
            self.detail.set_record(None)

    def _update_page(self, query: str) -> None:
        total = self.model.total
        library_empty = self.index is None or (not query and total == 0)
        if library_empty and not query:
            self.pages.setCurrentWidget(self.empty_state)
            self.count_label.setText("No photos indexed yet" if self.index is None or total == 0 else "")
            return
        self.pages.setCurrentWidget(self.splitter)
        if query and total == 0:
            self.no_match.setText(f"No photos match “{query}”. Try fewer or other words.")
            self.no_match.show()
        else:
            self.no_match.hide()
        noun = "photo" if total == 1 else "photos"
        if query:
            verb = "matches" if total == 1 else "match"
            source = self.model.source
            ran = source.mode if source is not None else "words"
            how = {"hybrid": "by words and meaning", "meaning": "by meaning"}.get(ran, "by words")
            text = f"{total} {noun} {verb} “{query}”" if total else f"No photos match “{query}”"
            self.count_label.setText(f"{text} (searched {how})")
        else:
            self.count_label.setText(f"{total} {noun} in the index")

    # ================================================================ selection
    def current_path(self) -> str | None:
        rec = self.current_record()
        return rec.path if rec is not None else None

    def current_record(self) -> PhotoRecord | None:
        idx = self.view.currentIndex()
        return idx.data(RecordRole) if idx.isValid() else None

    def _current_changed(self, current: Any, _previous: Any) -> None:
        record = current.data(RecordRole) if current.isValid() else None
        if record is None:
            return
        if self.detail.dirty and self.detail.record is not None and self.detail.record.path != record.path:
            if self.confirm_keep_edit():
                self.detail.save()
        self.detail.set_record(record, self._concepts(record), current.data(HitRole))

    def _concepts(self, record: PhotoRecord) -> tuple[Concept, ...]:
        """What the index knows the model's classifier saw in ``record``'s photo."""
        if self.index is None or record.concepts_model is None:
            return ()
        try:
            return self.index.concepts(record.path)
        except PhotocapError:
            return ()  # a locked or damaged index: the caption is still worth showing

    def confirm_keep_edit(self) -> bool:
        """Ask whether to save the unsaved edit before showing another photo."""
        answer = QMessageBox.question(
            self, "Unsaved caption",
            "You changed the caption of this photo but did not save it. Save it?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard,
            QMessageBox.StandardButton.Save,
        )
        return answer == QMessageBox.StandardButton.Save

    def _focus_results(self) -> None:
        self.view.setFocus(Qt.FocusReason.OtherFocusReason)
        if not self.view.currentIndex().isValid() and self.model.rowCount():
            self.view.setCurrentIndex(self.model.index(0))
            self.view.selectionModel().select(self.model.index(0),
                                              QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.search_box and isinstance(event, QKeyEvent) and event.type() == QEvent.Type.KeyPress:
            key = event.key()
            if key == Qt.Key.Key_Down:
                self._focus_results()
                return True
            if key == Qt.Key.Key_Escape and self.search_box.text():
                self.search_box.clear()
                return True
        return super().eventFilter(obj, event)

    # ================================================================ actions
    def focus_search(self) -> None:
        """Ctrl+F."""
        self.search_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_box.selectAll()

    def edit_caption(self) -> None:
        """F2: edit the selected photo's caption (the first result if none is selected)."""
        if self.detail.record is None:
            self._focus_results()
        self.detail.start_editing()

    def open_current(self) -> None:
        """Enter: open the selected photo in the system viewer."""
        path = self.current_path()
        if path is None:
            return
        if not os.path.exists(path):
            self.show_error(f"{path} is not there any more (moved or deleted?). Index its folder again.")
            return
        if not desktop.open_file(path):
            self.show_error(f"No application could open {path}.")

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts", SHORTCUTS_HTML)

    def show_about(self) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("photocap")
        except PackageNotFoundError:
            v = "development"
        QMessageBox.about(self, "About photocap",
                          f"<b>photocap {v}</b><p>Offline photo captions: search your photos "
                          f"by what they show and write alt text into them.</p><p>Index: {self.db_path}</p>")

    # ================================================================ captions
    def save_caption(self, path: str, text: str, write: bool) -> None:
        """Store ``text`` as the user's caption of ``path``; optionally write it into the file.

        The library does both (``library.edit.set_caption``), exactly as
        ``photocap set-caption`` does.
        """
        from photocap.library import edit, sync

        index = self.open_index()
        if index is None:
            self.show_error("The index cannot be opened, so the caption was not saved.")
            return
        try:
            outcomes = edit.set_caption(index, path, text, write=sync.WriteOptions() if write else None)
        except (PhotocapError, ValueError) as exc:
            self.show_error(f"The caption was not saved: {user_message(exc)}")
            return
        saved = outcomes[0]
        if saved.outcome is not Outcome.SET:
            self.show_error(f"The caption was not saved: {saved.reason}")
            return
        self._show_record(path)
        self.statusBar().showMessage("Saved your caption. The model will not replace it.", 5000)
        if len(outcomes) > 1:
            self._after_write(path, outcomes[1])

    def write_caption_to_file(self, path: str, text: str) -> bool:
        """Write the photo's saved caption into it (description and alt text); True if written."""
        from photocap.library import edit, sync

        index = self.open_index()
        if index is None:
            self.show_error("The index cannot be opened, so nothing was written.")
            return False
        try:
            outcome = edit.write_caption_of(index, path, sync.WriteOptions())
        except PhotocapError as exc:
            self.show_error(f"Could not write the caption into {Path(path).name}: {user_message(exc)}")
            return False
        return self._after_write(path, outcome)

    def _after_write(self, path: str, outcome: FileOutcome) -> bool:
        """Show what a write did; ask before replacing someone else's description."""
        from photocap.library import edit, sync

        if outcome.skip is SkipReason.PERSONS_DESCRIPTION:
            if not self.confirm_replace_description(outcome.reason or ""):
                self.statusBar().showMessage("Not written: the photo keeps its own description.", 8000)
                return False
            index = self.open_index()
            if index is None:
                return False
            try:
                outcome = edit.write_caption_of(index, path, sync.WriteOptions(force=True))
            except PhotocapError as exc:
                self.show_error(f"Could not write the caption into {Path(path).name}: {user_message(exc)}")
                return False
        if outcome.outcome is Outcome.FAILED:
            self.show_error(f"Could not write the caption into {Path(path).name}: {outcome.reason}")
            return False
        if outcome.outcome is Outcome.SKIPPED:
            self.statusBar().showMessage(f"Nothing written into {Path(path).name}: {outcome.reason}.", 8000)
            return False
        report = outcome.write
        assert report is not None
        self.thumbnails.forget(path)
        self._show_record(path)
        self.detail.refresh_fields()
        where = "its XMP sidecar" if report.target == "sidecar" else Path(path).name
        self.statusBar().showMessage(f"Caption written into {where}: {', '.join(report.fields)}.", 8000)
        return True

    def confirm_replace_description(self, reason: str) -> bool:
        """Ask before replacing a description someone else wrote into the photo."""
        answer = QMessageBox.question(
            self, "Replace the description in the photo?",
            f"The photo already has a description ({reason}). Replace it with your caption?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _show_record(self, path: str) -> None:
        """Show the index's record of ``path`` as it is now."""
        if self.index is None:
            return
        record = self.index.get(path)
        if record is not None:
            self.model.update_record(record)
            row = self.model.row_of(path)
            hit = self.model.index(row).data(HitRole) if row is not None else None
            self.detail.set_record(record, self._concepts(record), hit)

    # ================================================================ indexing
    @property
    def indexing(self) -> bool:
        return self.worker is not None

    def choose_folder(self) -> None:
        """"Add folder...": pick a folder and index it."""
        if self.indexing:
            self.statusBar().showMessage("Already indexing; wait for it to finish or cancel it.", 5000)
            return
        start = ""
        if self.settings is not None:
            start = str(self.settings.value("index/last_folder", ""))
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos", start or str(Path.home()))
        if folder:
            if self.settings is not None:
                self.settings.setValue("index/last_folder", folder)
            self.start_indexing([folder])

    def start_indexing(self, roots: list[str | os.PathLike[str]]) -> IndexWorker | None:
        """Index ``roots`` in the background; returns the worker (None if one is running)."""
        if self.worker is not None:
            return None
        self.banner.hide()
        worker = IndexWorker(roots, self.db_path, self.model_path, self.index_options, self.device, parent=self)
        worker.progress.connect(self._on_progress)
        worker.succeeded.connect(self._on_succeeded)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.last_result = None
        self.progress_bar.setRange(0, 0)  # busy until the scan knows the total
        self.index_label.setText(f"Looking for photos in {', '.join(Path(r).name or str(r) for r in roots)}…")
        self._show_indexing(True)
        worker.start()
        return worker

    def cancel_indexing(self) -> None:
        """Cancel: the run stops after the batch being captioned (it is kept)."""
        if self.worker is None:
            return
        self.worker.cancel()
        self.cancel_button.setEnabled(False)
        self.index_label.setText("Cancelling… finishing the photos in progress")

    def _show_indexing(self, on: bool) -> None:
        for w in (self.index_label, self.progress_bar, self.cancel_button):
            w.setVisible(on)
        self.cancel_button.setEnabled(on)
        for w in (self.add_button, self.empty_add_button):
            w.setEnabled(not on)
        if hasattr(self, "add_action"):
            self.add_action.setEnabled(not on)

    def _on_progress(self, info: ProgressInfo) -> None:
        if self.worker is None or self.worker.cancelled:
            return
        if info.phase == "scan" or info.total is None:
            self.index_label.setText(f"Looking for photos… {info.scanned} found")
        elif info.total == 0:
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(1)
            self.index_label.setText(f"{info.scanned} photos found, all up to date")
        else:
            self.progress_bar.setRange(0, info.total)
            self.progress_bar.setValue(info.done)
            failed = f", {info.failed} unreadable" if info.failed else ""
            self.index_label.setText(f"Captioning {info.done} of {info.total}{failed}")
        if info.new_captions and not self.refresh_timer.isActive():
            if self.index is None:
                self.refresh()  # first captions in a new index: show them now
            else:
                self.refresh_timer.start()

    def _on_succeeded(self, result: IndexSummary) -> None:
        self.last_result = result
        self.statusBar().showMessage(format_index_summary(result, one_line=True), 15000)
        if result.failures:
            listed = "\n".join(f"{Path(f.path).name}: {f.reason}" for f in result.failures[:5])
            more = f"\n… and {len(result.failures) - 5} more" if len(result.failures) > 5 else ""
            self.show_info(f"{len(result.failures)} photos could not be read:\n{listed}{more}")

    def _on_failed(self, message: str, details: str) -> None:
        self.show_error(f"Indexing stopped: {message}")
        if details:
            self.banner.label.setToolTip(details)

    def _on_finished(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.deleteLater()
        self._show_indexing(False)
        self.refresh()

    # ================================================================ closing
    def closeEvent(self, event: QCloseEvent) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.index_label.setText("Stopping indexing…")
            self.worker.wait(30000)
        self.thumbnails.shutdown()
        self.meaning.wait()
        self._save_settings()
        if self.index is not None:
            self.index.close()
            self.index = None
        super().closeEvent(event)


SHORTCUTS_HTML = """
<table cellspacing="6">
<tr><td><b>Ctrl+F</b></td><td>search captions</td></tr>
<tr><td><b>↓ / Enter</b> in the search box</td><td>go to the results</td></tr>
<tr><td><b>Arrow keys</b></td><td>move through the results</td></tr>
<tr><td><b>Enter</b></td><td>open the photo in the system viewer</td></tr>
<tr><td><b>F2</b></td><td>edit the caption</td></tr>
<tr><td><b>Ctrl+S</b></td><td>save the caption (as yours)</td></tr>
<tr><td><b>Ctrl+Shift+C</b></td><td>copy the caption</td></tr>
<tr><td><b>Ctrl+O</b></td><td>add a folder</td></tr>
<tr><td><b>Esc</b> in the search box</td><td>clear the search</td></tr>
</table>
"""

"""ResultsModel: the search results (or the whole library) as a lazily paged list model.

The model holds a :class:`ResultSource` (a query over an open
:class:`~photocap.index.store.CaptionIndex`) and loads it a page at a time:
the view asks ``canFetchMore``/``fetchMore`` as the user scrolls, so a
library of tens of thousands of photos costs one page of rows up front.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from photocap.gui.thumbnails import ThumbnailCache
from photocap.gui.why import format_matched
from photocap.index.store import CaptionIndex
from photocap.records import PhotoRecord, SearchHit

PAGE_SIZE = 120
THUMB_PX = 160

RecordRole = Qt.ItemDataRole.UserRole + 1  # the PhotoRecord
PathRole = Qt.ItemDataRole.UserRole + 2  # its path (str)
SnippetRole = Qt.ItemDataRole.UserRole + 3  # the FTS snippet with [matches] marked
ThumbErrorRole = Qt.ItemDataRole.UserRole + 4  # why there is no thumbnail, if it failed
HitRole = Qt.ItemDataRole.UserRole + 5  # the SearchHit (why it matched), None when listing the library

AnyIndex = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Row:
    """One result: the record and, for a search, the caption snippet and the hit (why it matched)."""

    record: PhotoRecord
    snippet: str | None = None
    hit: SearchHit | None = None


class _QueryVector:
    """The window's query embedder, remembering the last query's vector: a source asks for the
    first page (and the count) and then for more pages of one query: one embedding, not one per call."""

    def __init__(self, embed: Callable[[str], Any]) -> None:
        self._embed = embed
        self.model_id = getattr(embed, "model_id", None)  # which text vectors the library compares with
        self._last: tuple[str, Any] | None = None

    def __call__(self, text: str) -> Any:
        if self._last is None or self._last[0] != text:
            self._last = (text, self._embed(text))
        return self._last[1]


class ResultSource:
    """Pages of results for one query, from ``photocap.library.search`` in ``mode``; an empty
    query lists every photo (path order).

    ``embed`` is the window's query embedder (None: not loaded, or meaning is unavailable); then
    the search is by words, whatever ``mode`` asks (:attr:`mode` says which ran).
    """

    def __init__(self, index: CaptionIndex, query: str, mode: str = "hybrid",
                 embed: Callable[[str], Any] | None = None) -> None:
        self.index = index
        self.query = query.strip()
        self.mode = mode if embed is not None else "words"
        self._embed = _QueryVector(embed) if embed is not None else None

    @property
    def is_search(self) -> bool:
        return bool(self.query)

    def first_page(self, limit: int) -> tuple[list[Row], int]:
        """The first ``limit`` rows, and how many rows this source has in all (one search)."""
        if self.is_search:
            from photocap.library import search

            found = search.search_page(self.index, self.query, mode=self.mode, limit=limit, embed=self._embed)
            return [Row(h.record, h.snippet, h) for h in found.hits], found.total
        return self.page(0, limit), self.index.count(include_missing=False)

    def page(self, offset: int, limit: int) -> list[Row]:
        """Rows ``offset`` .. ``offset + limit`` (fewer at the end)."""
        if self.is_search:
            from photocap.library import search

            hits = search.search(self.index, self.query, mode=self.mode, limit=limit, offset=offset,
                                 embed=self._embed)
            return [Row(h.record, h.snippet, h) for h in hits]
        return [Row(r) for r in self.index.list_photos(limit=limit, offset=offset, include_missing=False)]


class ResultsModel(QAbstractListModel):
    """Rows of :class:`Row`, loaded in pages of ``page_size`` on demand."""

    def __init__(self, thumbnails: ThumbnailCache, page_size: int = PAGE_SIZE,
                 thumb_px: int = THUMB_PX, parent: Any = None) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self.page_size = page_size
        self.thumb_px = thumb_px
        self._source: ResultSource | None = None
        self._rows: list[Row] = []
        self._by_path: dict[str, int] = {}
        self._total = 0
        thumbnails.ready.connect(self._thumbnail_changed)
        thumbnails.failed.connect(lambda path, px, _reason: self._thumbnail_changed(path, px))

    # ----------------------------------------------------------------- loading
    def set_source(self, source: ResultSource | None, min_rows: int = 0) -> None:
        """Show ``source`` (None: nothing); load its first page, or ``min_rows`` rows.

        Raises what the index raises (``IndexDatabaseError``); the model is then empty.
        """
        self.beginResetModel()
        try:
            self._source, self._rows, self._by_path, self._total = source, [], {}, 0
            if source is not None:
                rows, self._total = source.first_page(max(self.page_size, min_rows))
                self._append(rows)
        finally:
            self.endResetModel()

    @property
    def source(self) -> ResultSource | None:
        return self._source

    @property
    def total(self) -> int:
        """Rows the source has in all (loaded or not)."""
        return self._total

    def _append(self, rows: list[Row]) -> int:
        added = 0
        for row in rows:
            if row.record.path in self._by_path:
                continue  # the index changed between pages
            self._by_path[row.record.path] = len(self._rows)
            self._rows.append(row)
            added += 1
        return added

    def canFetchMore(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and self._source is not None and len(self._rows) < self._total

    def fetchMore(self, parent: AnyIndex = QModelIndex()) -> None:  # noqa: B008
        if parent.isValid() or self._source is None:
            return
        rows = self._source.page(len(self._rows), self.page_size)
        fresh = [r for r in rows if r.record.path not in self._by_path]
        if not fresh:
            self._total = len(self._rows)  # the source ran out early
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
        self._append(fresh)
        self.endInsertRows()

    # ----------------------------------------------------------------- access
    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        rec = row.record
        if role == Qt.ItemDataRole.DisplayRole:
            return rec.caption or (f"(not captioned: {rec.error})" if rec.error else "(not captioned yet)")
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnails.get(rec.path, self.thumb_px)
        if role == Qt.ItemDataRole.ToolTipRole:
            why = f"\nFound by {format_matched(row.hit)}" if row.hit is not None else ""
            return f"{rec.path}\n{rec.caption or ''}".strip() + why
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return rec.caption or rec.path
        if role == RecordRole:
            return rec
        if role == PathRole:
            return rec.path
        if role == SnippetRole:
            return row.snippet
        if role == HitRole:
            return row.hit
        if role == ThumbErrorRole:
            return self.thumbnails.error(rec.path, self.thumb_px)
        return None

    def record(self, row: int) -> PhotoRecord | None:
        return self._rows[row].record if 0 <= row < len(self._rows) else None

    def row_of(self, path: str) -> int | None:
        """The row showing ``path``, if loaded."""
        return self._by_path.get(path)

    def paths(self) -> list[str]:
        return [r.record.path for r in self._rows]

    def update_record(self, record: PhotoRecord) -> None:
        """Replace the row for ``record.path`` (after an edit) and repaint it."""
        row = self._by_path.get(record.path)
        if row is None:
            return
        old = self._rows[row]
        self._rows[row] = Row(record, old.snippet, old.hit)
        idx = self.index(row)
        self.dataChanged.emit(idx, idx)

    def _thumbnail_changed(self, path: str, px: int) -> None:
        row = self._by_path.get(path)
        if row is not None and px == self.thumb_px:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])

"""Word search's SQL over the captions' FTS5 table: the ranking, then the page's hits.

:class:`~photocap.index.store.CaptionIndex` turns the user's text into an FTS5 expression (see
:mod:`photocap.index.query`) and calls these on its connection, inside its error handling.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from photocap.records import Concept, MatchedBy, PhotoRecord, SearchHit

_MARK_OPEN, _MARK_CLOSE = "\x02", "\x03"  # snippet markers no caption holds (control characters)
# bm25 costs about a microsecond per matching row; a query matching more rows than this
# is ranked among its most recently indexed RANK_WINDOW matches (see CaptionIndex.search).
RANK_WINDOW = 1000


def ranked(conn: sqlite3.Connection, match: str, limit: int, offset: int,
           include_missing: bool) -> list[tuple[int, float]]:
    """``(photo_id, rank)`` of the photos matching the FTS5 expression ``match``, best first
    (see :meth:`~photocap.index.store.CaptionIndex.search` for the ranking)."""
    filters = "" if include_missing else (
        " AND captions_fts.rowid NOT IN (SELECT id FROM photos WHERE missing = 1)"
    )
    # A broad query (more than `window` matches) is ranked among its newest `window`
    # matches, by caption length: with every query word present, bm25 orders such
    # rows by length too, and bm25 itself would first scan each word's whole doclist.
    window = max(RANK_WINDOW, 4 * (offset + limit))
    floor = conn.execute(
        "SELECT rowid FROM captions_fts WHERE captions_fts MATCH ? "
        "ORDER BY rowid DESC LIMIT 1 OFFSET ?",
        (match, window - 1),
    ).fetchone()
    if floor is None:
        # The caption's bm25 (the rank), then, for photos matched by concepts alone, theirs.
        rank, order, join = "captions_fts.rank", "captions_fts.rank, bm25(captions_fts, 0.0, 1.0)", ""
        args: tuple[Any, ...] = (match,)
    else:
        rank, order = "0.0", "length(p.caption), p.id DESC"
        join = " JOIN photos p ON p.id = captions_fts.rowid"
        filters += " AND captions_fts.rowid >= ?"
        args = (match, floor[0])
    return [(int(i), float(r)) for i, r in conn.execute(
        f"SELECT captions_fts.rowid, {rank} FROM captions_fts{join} "
        f"WHERE captions_fts MATCH ?{filters} ORDER BY {order} LIMIT ? OFFSET ?",
        (*args, limit, offset),
    ).fetchall()]


def hits(conn: sqlite3.Connection, match: str, top: list[tuple[int, float]],
         highlight: tuple[str, str]) -> list[SearchHit]:
    """The search hits (record, snippet, why it matched, concepts) of ``top``, in its order."""
    if not top:
        return []
    # Snippets and records for the page only (a snippet costs as much as a rank).
    marks = ",".join("?" * len(top))
    ids = [t[0] for t in top]
    snippet_sql = (
        "SELECT snippet(captions_fts, 0, ?, ?, '…', 16) FROM captions_fts "
        "WHERE captions_fts MATCH ? AND rowid = ?"
    )
    snippets: dict[int, str] = {}
    in_caption: set[int] = set()  # matched in the caption (else only by concept terms)
    for i in ids:  # one seek each; FTS5 does not narrow a MATCH by a rowid IN list
        row = conn.execute(snippet_sql, (_MARK_OPEN, _MARK_CLOSE, match, i)).fetchone()
        if row:
            if _MARK_OPEN in row[0]:
                in_caption.add(i)
            snippets[i] = row[0].replace(_MARK_OPEN, highlight[0]).replace(_MARK_CLOSE, highlight[1])
    records = {
        r[0]: PhotoRecord.from_row(r)
        for r in conn.execute(f"SELECT {PhotoRecord.COLUMNS} FROM photos WHERE id IN ({marks})", ids)
    }
    concepts: dict[int, list[Concept]] = {}
    for photo_id, word, score in conn.execute(
            f"SELECT photo_id, word, score FROM photo_concepts WHERE photo_id IN ({marks}) "
            "ORDER BY photo_id, rank", ids):
        concepts.setdefault(photo_id, []).append(Concept(word, score))
    return [SearchHit(records[i], snippets.get(i, records[i].caption or ""), float(r),
                      (MatchedBy.WORDS,) if i in in_caption else (MatchedBy.CONCEPTS,),
                      tuple(concepts.get(i, ())))
            for i, r in top if i in records]


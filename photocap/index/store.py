"""The caption index: one SQLite file with a row per photo and a full-text index.

(Over 500 lines on purpose: every read and write of the ``photos`` table is here, so one module
owns its columns and its rules; the parser, word-search SQL, vectors and connection are apart.)

``CaptionIndex`` is what the CLI, the watcher and the GUI read and write. It
imports only the standard library and photocap's errors (never torch, Qt or
the metadata package), so opening it and searching is fast.

Concurrency: the database is in WAL mode, so readers (the GUI, ``photocap
search``) never wait for a writer (``photocap index``, the watcher); writers
wait up to ``busy_timeout`` seconds for each other. One ``CaptionIndex`` holds
one SQLite connection: use it from one thread at a time (open one per thread;
opening is cheap).

Search: an FTS5 table over captions (external content, kept in sync by
triggers) with the ``porter unicode61`` tokenizer, so word forms match ("dogs
running" finds "a dog runs"); results are ranked by bm25. User text is turned
into a safe FTS5 query by :func:`~photocap.index.query.fts_query`; no input raises
an SQL error.

Neighbours: the values it takes and gives are in :mod:`photocap.records`; opening the file and
telling its errors in :mod:`~photocap.index.connection`; photo vectors in
:mod:`~photocap.index.vectors` (``index.vectors``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from photocap.errors import IndexDatabaseError, NotIndexedError
from photocap.index.connection import DEFAULT_BUSY_TIMEOUT_S, connect, told
from photocap.index import words
from photocap.index.query import QueryParts, fts_query
from photocap.index.vectors import VectorStore, vector_counts
from photocap.records import CaptionSource, Concept, Fingerprint, PhotoRecord, PhotoUpdate, SearchHit

_COLUMNS = PhotoRecord.COLUMNS


def utc_now() -> str:
    """Current time as ISO 8601 UTC, seconds precision (the index's timestamp format)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_FP_COLUMNS = "size, mtime_ns, missing, (caption IS NOT NULL OR error IS NOT NULL)"


_KEEP_CAPTION = (
    "(excluded.caption IS NULL OR (photos.source = 'user' AND excluded.source = 'model' AND NOT :force))"
)
_UPSERT_SQL = f"""
INSERT INTO photos (path, size, mtime_ns, content_hash, width, height, taken_at, camera,
                    caption, score, model, captioned_at, source, missing, error, indexed_at,
                    write_owed, concepts_model, concept_terms)
VALUES (:path, :size, :mtime_ns, :content_hash, :width, :height, :taken_at, :camera,
        :caption, :score, :model, CASE WHEN :caption IS NULL THEN NULL ELSE :now END,
        CASE WHEN :caption IS NULL THEN NULL ELSE :source END, 0, :error, :now,
        coalesce(:write_owed, 0), :concepts_model, :concept_terms)
ON CONFLICT(path) DO UPDATE SET
    size = excluded.size,
    mtime_ns = excluded.mtime_ns,
    content_hash = coalesce(excluded.content_hash, photos.content_hash),
    width = coalesce(excluded.width, photos.width),
    height = coalesce(excluded.height, photos.height),
    taken_at = coalesce(excluded.taken_at, photos.taken_at),
    camera = coalesce(excluded.camera, photos.camera),
    caption = CASE WHEN {_KEEP_CAPTION} THEN photos.caption ELSE excluded.caption END,
    score = CASE WHEN {_KEEP_CAPTION} THEN photos.score ELSE excluded.score END,
    model = CASE WHEN {_KEEP_CAPTION} THEN photos.model ELSE excluded.model END,
    captioned_at = CASE WHEN {_KEEP_CAPTION} THEN photos.captioned_at ELSE excluded.captioned_at END,
    source = CASE WHEN {_KEEP_CAPTION} THEN photos.source ELSE excluded.source END,
    missing = 0,
    error = excluded.error,
    indexed_at = excluded.indexed_at,
    write_owed = coalesce(:write_owed, photos.write_owed),
    concepts_model = CASE WHEN :has_concepts THEN excluded.concepts_model ELSE photos.concepts_model END,
    concept_terms = CASE WHEN :has_concepts THEN excluded.concept_terms ELSE photos.concept_terms END
"""

def _under_range(under: str | os.PathLike[str]) -> tuple[str, str]:
    """[lo, hi) bounds of the paths strictly below folder ``under`` (index-friendly)."""
    base = os.path.abspath(os.fspath(under)).rstrip(os.sep) + os.sep
    return base, base[:-1] + chr(ord(os.sep) + 1)


class CaptionIndex:
    """The photo/caption database. Open with :meth:`open`; use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.vectors = VectorStore(conn, path, self.transaction)  # embeddings, for search by meaning
        self._last_match: tuple[tuple[str, int, int], str] | None = None  # _match()

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(
        cls,
        db_path: str | os.PathLike[str],
        *,
        create: bool = True,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S,
        readonly_ok: bool = False,
    ) -> CaptionIndex:
        """Open (and create or migrate) the index at ``db_path``.

        Creates the parent folder. With ``create=False`` a missing file is an
        error telling the user to index something first. ``readonly_ok``: the
        caller only reads, so an index it cannot write (a read-only file, folder
        or file system) is opened read-only instead of refused. Raises
        :class:`IndexDatabaseError` with what to do when the file cannot be
        opened, is not a database, is locked, or is from a newer photocap.
        """
        path = Path(db_path).expanduser()
        return cls(connect(path, create=create, busy_timeout=busy_timeout, readonly_ok=readonly_ok), path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> CaptionIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CaptionIndex({str(self.path)!r})"

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection (autocommit mode), for tests and tools."""
        return self._conn

    # ---------------------------------------------------------- transactions
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``).

        Writes made by the methods below inside the block join it; nested use
        joins the outer transaction. An exception rolls everything back.
        """
        if self._conn.in_transaction:
            yield
            return
        with self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        with self._errors():
            self._conn.execute("COMMIT")

    def _errors(self) -> AbstractContextManager[None]:
        return told(self.path)

    # --------------------------------------------------------------- reading
    def get(self, path: str | os.PathLike[str]) -> PhotoRecord | None:
        """The record for ``path`` (made absolute), or ``None``."""
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM photos WHERE path = ?", (_abs(path),)
        ).fetchone()
        return PhotoRecord.from_row(row) if row else None

    def iter_photos(
        self, under: str | os.PathLike[str] | None = None, *, include_missing: bool = True
    ) -> Iterator[PhotoRecord]:
        """All records in path order, or those strictly below folder ``under``."""
        sql = f"SELECT {_COLUMNS} FROM photos"
        where, args = self._under_clause(under)
        if not include_missing:
            where.append("missing = 0")
        if where:
            sql += " WHERE " + " AND ".join(where)
        for row in self._conn.execute(sql + " ORDER BY path", args):
            yield PhotoRecord.from_row(row)

    def list_photos(self, *, limit: int, offset: int = 0, include_missing: bool = True) -> list[PhotoRecord]:
        """One page of all records in path order (the GUI's listing with an empty search)."""
        sql = f"SELECT {_COLUMNS} FROM photos" + ("" if include_missing else " WHERE missing = 0")
        rows = self._conn.execute(sql + " ORDER BY path LIMIT ? OFFSET ?", (max(0, limit), max(0, offset)))
        return [PhotoRecord.from_row(r) for r in rows.fetchall()]

    def fingerprints(self, under: str | os.PathLike[str] | None = None) -> dict[str, Fingerprint]:
        """path -> stored (size, mtime_ns, missing), for the incremental check of a whole tree."""
        sql = f"SELECT path, {_FP_COLUMNS} FROM photos"
        where, args = self._under_clause(under)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return {
            p: Fingerprint(size, mtime_ns, bool(missing), bool(complete))
            for p, size, mtime_ns, missing, complete in self._conn.execute(sql, args)
        }

    def fingerprint(self, path: str | os.PathLike[str]) -> Fingerprint | None:
        """The stored fingerprint of one file, or ``None`` if it is not indexed."""
        row = self._conn.execute(
            f"SELECT {_FP_COLUMNS} FROM photos WHERE path = ?", (_abs(path),)
        ).fetchone()
        return Fingerprint(row[0], row[1], bool(row[2]), bool(row[3])) if row else None

    def find_by_hash(self, content_hash: str) -> list[PhotoRecord]:
        """Records whose content hash is ``content_hash`` (moved, renamed or copied photos)."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM photos WHERE content_hash = ? ORDER BY missing DESC, id",
            (content_hash,),
        ).fetchall()
        return [PhotoRecord.from_row(r) for r in rows]

    def count(self, under: str | os.PathLike[str] | None = None, *, include_missing: bool = True) -> int:
        """How many photos (strictly below folder ``under``, if given)."""
        where, args = self._under_clause(under)
        if not include_missing:
            where.append("missing = 0")
        sql = "SELECT count(*) FROM photos" + (" WHERE " + " AND ".join(where) if where else "")
        return self._conn.execute(sql, args).fetchone()[0]

    def has_captions(self) -> bool:
        """True if any photo has a caption (for "nothing indexed yet" hints)."""
        return self._conn.execute(
            "SELECT 1 FROM photos WHERE caption IS NOT NULL LIMIT 1"
        ).fetchone() is not None

    def owed_writes(self, under: str | os.PathLike[str] | None = None) -> list[str]:
        """Paths (below folder ``under``, or all) whose caption is still to be written into
        the file, in path order (files flagged missing are left for when they are back)."""
        where, args = self._under_clause(under)
        sql = "SELECT path FROM photos WHERE write_owed = 1 AND caption IS NOT NULL AND missing = 0"
        if where:
            sql += " AND " + " AND ".join(where)
        return [r[0] for r in self._conn.execute(sql + " ORDER BY path", args)]

    def _under_clause(self, under: str | os.PathLike[str] | None) -> tuple[list[str], list[Any]]:
        if under is None:
            return [], []
        lo, hi = _under_range(under)
        return ["path >= ? AND path < ?"], [lo, hi]

    # ---------------------------------------------------------------- search
    def search(
        self,
        query: str,
        limit: int = 50,
        offset: int = 0,
        *,
        highlight: tuple[str, str] = ("[", "]"),
        include_missing: bool = False,
    ) -> list[SearchHit]:
        """Photos whose caption matches ``query`` (any user text), best first (bm25).

        ``highlight`` wraps matched words in the snippet, e.g. ``("<b>", "</b>")``
        (captions are not escaped: escape them yourself for HTML, with markers
        you then restore). Missing files are left out unless ``include_missing``.

        Ranking is bm25 (``rank``: lower is better). bm25 first scans the whole
        index entry of every query word, which at a million captions costs tens
        of milliseconds for common words; so a query matching more than
        :data:`~photocap.index.words.RANK_WINDOW` photos (e.g. "dog" in a big library) is instead
        ranked among its most recently indexed RANK_WINDOW matches, shortest
        caption first (what bm25 does when every result holds every word), with
        ``rank`` 0.0. :meth:`count_matches` still counts all matches.
        """
        match = self._match(query)
        if match is None or limit <= 0:
            return []
        with self._errors():
            return words.hits(self._conn, match, words.ranked(self._conn, match, limit, max(0, offset),
                                                              include_missing), highlight)

    def word_ranking(self, query: str, limit: int, *, include_missing: bool = False) -> list[tuple[int, float]]:
        """``(photo_id, rank)`` of :meth:`search`'s first ``limit`` results, without snippets or
        records (what the hybrid ranking fuses; :meth:`word_hits` makes the page's hits)."""
        match = self._match(query)
        if match is None or limit <= 0:
            return []
        with self._errors():
            return words.ranked(self._conn, match, limit, 0, include_missing)

    def word_hits(self, query: str, ranking: list[tuple[int, float]], *,
                  highlight: tuple[str, str] = ("[", "]")) -> list[SearchHit]:
        """:meth:`search`'s hits for those ``(photo_id, rank)`` of :meth:`word_ranking`, in order."""
        match = self._match(query)
        if match is None or not ranking:
            return []
        with self._errors():
            return words.hits(self._conn, match, ranking, highlight)

    def keep_allowed(self, ids: Iterable[int], parts: QueryParts) -> list[int]:
        """Those of ``ids`` (in their order) that a query with ``parts`` allows a photo found by
        meaning: none of its excluded words in the caption or concept terms, and its quoted
        phrases there (all of them; any one if the query has OR)."""
        order = list(dict.fromkeys(int(i) for i in ids))
        if not order or not (parts.phrases or parts.excluded):
            return order
        wanted = "[" + ",".join(map(str, order)) + "]"
        sql = ("SELECT rowid FROM captions_fts WHERE captions_fts MATCH ? "
               "AND rowid IN (SELECT value FROM json_each(?))")
        keep = set(order)
        with self._errors():
            if parts.excluded:
                keep -= {r[0] for r in self._conn.execute(sql, (" OR ".join(parts.excluded), wanted))}
            if parts.phrases and keep:
                joiner = " OR " if parts.has_or else " AND "
                keep &= {r[0] for r in self._conn.execute(sql, (joiner.join(parts.phrases), wanted))}
        return [i for i in order if i in keep]

    def count_matches(self, query: str, *, include_missing: bool = False) -> int:
        """How many photos :meth:`search` would find for ``query`` without a limit."""
        match = self._match(query)
        if match is None:
            return 0
        missing_filter = "" if include_missing else (
            " AND rowid NOT IN (SELECT id FROM photos WHERE missing = 1)"
        )
        with self._errors():
            return self._conn.execute(
                f"SELECT count(*) FROM captions_fts WHERE captions_fts MATCH ?{missing_filter}", (match,)
            ).fetchone()[0]

    def _match(self, query: str) -> str | None:
        """The FTS5 expression for ``query``: the last word is prefix-matched only if,
        as a whole word, it finds nothing (prefix expansion reads every posting of
        every word it expands to, which is slow for common words)."""
        exact = fts_query(query, prefix_last=False)
        expanded = fts_query(query, prefix_last=True)
        if exact is None or exact == expanded:
            return expanded
        with self._errors():
            # One hybrid search asks up to three times; the answer holds while the index is unchanged.
            key = (exact, self._conn.execute("PRAGMA data_version").fetchone()[0], self._conn.total_changes)
            if self._last_match is not None and self._last_match[0] == key:
                return self._last_match[1]
            found = self._conn.execute(
                "SELECT 1 FROM captions_fts WHERE captions_fts MATCH ? LIMIT 1", (exact,)
            ).fetchone()
        self._last_match = (key, exact if found else expanded)
        return self._last_match[1]

    # --------------------------------------------------------------- writing
    def upsert_photos(self, updates: Iterable[PhotoUpdate], *, force: bool = False) -> int:
        """Insert or update many rows by path in one transaction; return how many.

        A model caption never replaces a user caption unless ``force``. Any row
        written is no longer missing.
        """
        now = utc_now()
        n = 0
        with self.transaction(), self._errors():
            for u in updates:
                if u.caption is not None and u.source not in (CaptionSource.MODEL, CaptionSource.USER):
                    raise ValueError(f"caption source must be 'model' or 'user', not {u.source!r}")
                args = asdict(u)
                args["source"] = str(u.source) if u.source is not None else None
                args["write_owed"] = None if u.write_owed is None else int(u.write_owed)
                args["path"] = _abs(u.path)
                args["now"] = now
                args["force"] = 1 if force or u.replaces_user else 0
                args["has_concepts"] = u.concepts is not None
                del args["replaces_user"], args["concepts"]
                self._conn.execute(_UPSERT_SQL, args)
                if u.concepts is not None:
                    self._set_concepts(args["path"], u.concepts)
                n += 1
        return n

    def _set_concepts(self, path: str, concepts: tuple[Concept, ...]) -> None:
        (photo_id,) = self._conn.execute("SELECT id FROM photos WHERE path = ?", (path,)).fetchone()
        self._conn.execute("DELETE FROM photo_concepts WHERE photo_id = ?", (photo_id,))
        self._conn.executemany(
            "INSERT INTO photo_concepts (photo_id, rank, word, score) VALUES (?, ?, ?, ?)",
            [(photo_id, rank, c.word, float(c.score)) for rank, c in enumerate(concepts)],
        )

    def concepts(self, path: str | os.PathLike[str]) -> tuple[Concept, ...]:
        """What the model's classifier sees in the photo at ``path``, best first (empty if nothing is known)."""
        with self._errors():
            rows = self._conn.execute(
                "SELECT c.word, c.score FROM photo_concepts c JOIN photos p ON p.id = c.photo_id "
                "WHERE p.path = ? ORDER BY c.rank", (_abs(path),)).fetchall()
        return tuple(Concept(word, score) for word, score in rows)

    def set_user_caption(
        self, path: str | os.PathLike[str], caption: str, *, write_owed: bool = False
    ) -> PhotoRecord:
        """Store ``caption`` as the user's own for ``path`` (already in the index).

        The model never replaces it unless re-captioning with force. ``write_owed``
        records, in the same transaction, that it is still to be written into the file.
        Raises :class:`NotIndexedError` if the photo is not in the index.
        """
        text = " ".join(caption.split())
        if not text:
            raise ValueError("a caption cannot be empty")
        p = _abs(path)
        with self.transaction(), self._errors():
            cur = self._conn.execute(
                "UPDATE photos SET caption = ?, source = 'user', score = NULL, model = NULL, "
                "captioned_at = ?, error = NULL, write_owed = ? WHERE path = ?",
                (text, utc_now(), int(write_owed), p),
            )
            if cur.rowcount == 0:
                raise NotIndexedError(p)
        record = self.get(p)
        assert record is not None
        return record

    def move_path(self, old: str | os.PathLike[str], new: str | os.PathLike[str]) -> int:
        """Re-key a moved file, or every file below a moved folder; return rows moved.

        Captions (and user edits) stay with the photos. A row already at a
        destination path is replaced by the moved one.
        """
        src, dst = _abs(old), _abs(new)
        if src == dst:
            return 0
        moved = 0
        with self.transaction(), self._errors():
            if self._conn.execute("SELECT 1 FROM photos WHERE path = ?", (src,)).fetchone():
                self._conn.execute("DELETE FROM photos WHERE path = ?", (dst,))
                moved += self._conn.execute(
                    "UPDATE photos SET path = ?, missing = 0 WHERE path = ?", (dst, src)
                ).rowcount
            lo, hi = _under_range(src)
            rows = self._conn.execute(
                "SELECT id, path FROM photos WHERE path >= ? AND path < ?", (lo, hi)
            ).fetchall()
            new_base = dst.rstrip(os.sep) + os.sep
            for photo_id, p in rows:
                target = new_base + p[len(lo):]
                self._conn.execute("DELETE FROM photos WHERE path = ?", (target,))
                self._conn.execute(
                    "UPDATE photos SET path = ?, missing = 0 WHERE id = ?", (target, photo_id)
                )
                moved += 1
        return moved

    def set_write_owed(self, paths: Iterable[str | os.PathLike[str]], owed: bool) -> int:
        """Record that the captions of ``paths`` are (or no longer are) still to be written
        into the files; return rows changed."""
        n = 0
        with self.transaction(), self._errors():
            for p in paths:
                n += self._conn.execute(
                    "UPDATE photos SET write_owed = ? WHERE path = ? AND write_owed != ?",
                    (int(owed), _abs(p), int(owed)),
                ).rowcount
        return n

    def mark_missing(self, paths: Iterable[str | os.PathLike[str]], missing: bool = True) -> int:
        """Flag files (or, with ``missing=False``, unflag them); return rows changed."""
        n = 0
        with self.transaction(), self._errors():
            for p in paths:
                n += self._conn.execute(
                    "UPDATE photos SET missing = ? WHERE path = ? AND missing != ?",
                    (int(missing), _abs(p), int(missing)),
                ).rowcount
        return n

    def delete(self, paths: Iterable[str | os.PathLike[str]]) -> int:
        """Forget photos entirely (their captions too); return how many rows went."""
        n = 0
        with self.transaction(), self._errors():
            for p in paths:
                n += self._conn.execute("DELETE FROM photos WHERE path = ?", (_abs(p),)).rowcount
        return n

    # ------------------------------------------------------------ by photo id
    def records_by_id(self, ids: Iterable[int]) -> dict[int, PhotoRecord]:
        """``{id: record}`` for the photos of ``ids`` still in the index."""
        wanted = "[" + ",".join(str(int(i)) for i in ids) + "]"
        with self._errors():
            return {r[0]: PhotoRecord.from_row(r) for r in self._conn.execute(
                f"SELECT {_COLUMNS} FROM photos WHERE id IN (SELECT value FROM json_each(?))", (wanted,))}

    def concepts_by_id(self, ids: Iterable[int]) -> dict[int, tuple[Concept, ...]]:
        """``{id: concepts, best first}`` for those of ``ids`` that have concepts."""
        wanted = "[" + ",".join(str(int(i)) for i in ids) + "]"
        out: dict[int, list[Concept]] = {}
        with self._errors():
            for photo_id, word, score in self._conn.execute(
                    "SELECT photo_id, word, score FROM photo_concepts WHERE photo_id IN "
                    "(SELECT value FROM json_each(?)) ORDER BY photo_id, rank", (wanted,)):
                out.setdefault(photo_id, []).append(Concept(word, score))
        return {i: tuple(c) for i, c in out.items()}

    def ids_of(self, paths: Iterable[str | os.PathLike[str]]) -> dict[str, int]:
        """``{absolute path: photo id}`` for those of ``paths`` in the index."""
        wanted = [_abs(p) for p in paths]
        out: dict[str, int] = {}
        with self._errors():
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                out.update((p, i) for i, p in self._conn.execute(
                    f"SELECT id, path FROM photos WHERE path IN ({marks})", chunk))
        return out

    # ----------------------------------------------------------- maintenance
    def stats(self) -> dict[str, Any]:
        """Counts (total, by source, uncaptioned, failed, missing), model ids, and file sizes."""
        c = self._conn
        total = c.execute("SELECT count(*) FROM photos").fetchone()[0]
        by_source = dict(
            c.execute(
                "SELECT coalesce(source, 'none'), count(*) FROM photos GROUP BY source"
            ).fetchall()
        )
        models = dict(
            c.execute(
                "SELECT model, count(*) FROM photos WHERE model IS NOT NULL AND source = 'model' "
                "GROUP BY model ORDER BY count(*) DESC"
            ).fetchall()
        )
        missing = c.execute("SELECT count(*) FROM photos WHERE missing = 1").fetchone()[0]
        owed = c.execute("SELECT count(*) FROM photos WHERE write_owed = 1").fetchone()[0]
        with_concepts = c.execute("SELECT count(*) FROM photos WHERE concepts_model IS NOT NULL").fetchone()[0]
        failed = c.execute(
            "SELECT count(*) FROM photos WHERE error IS NOT NULL AND caption IS NULL"
        ).fetchone()[0]
        wal = Path(str(self.path) + "-wal")
        return {
            "path": str(self.path),
            "photos": total,
            "captioned": by_source.get("model", 0) + by_source.get("user", 0),
            "model_captions": by_source.get("model", 0),
            "user_captions": by_source.get("user", 0),
            "uncaptioned": by_source.get("none", 0),
            "failed": failed,
            "missing": missing,
            "write_owed": owed,
            "with_concepts": with_concepts,
            "models": models,
            "db_bytes": self.path.stat().st_size if self.path.exists() else 0,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "schema": [r[0] for r in c.execute("SELECT name FROM schema_migrations ORDER BY rowid")],
            "vectors": vector_counts(c),
        }

    def backup(self, dest: str | os.PathLike[str]) -> Path:
        """Copy the index to ``dest`` with SQLite's online backup (safe while others write)."""
        target = Path(dest).expanduser()
        if target.is_dir():
            target = target / self.path.name
        if target.resolve() == self.path.resolve():
            raise IndexDatabaseError("The backup destination is the index itself; choose another file.")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".partial")
            with sqlite3.connect(tmp) as out:
                self._conn.backup(out)
            out.close()
            os.replace(tmp, target)
        except (OSError, sqlite3.Error) as exc:
            raise IndexDatabaseError(f"Backup to {target} failed: {exc}") from exc
        return target


def _abs(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(path))

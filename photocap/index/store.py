"""The caption index: one SQLite file with a row per photo and a full-text index.

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
into a safe FTS5 query by :func:`fts_query`; no input raises an SQL error (a query
over :data:`MAX_QUERY_CHARS` characters or :data:`MAX_QUERY_TERMS` distinct words is
refused with a QueryError, since FTS5's cost grows with every term).
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from photocap.errors import IndexDatabaseError, NotIndexedError, QueryError
from photocap.index.migrations import MIGRATIONS, migrate
from photocap.index import vectors
from photocap.records import CaptionSource, Concept, MatchedBy, VectorKind

DEFAULT_BUSY_TIMEOUT_S = 10.0
_MARK_OPEN, _MARK_CLOSE = "\x02", "\x03"  # snippet markers no caption holds (control characters)
MIN_PREFIX_LEN = 3  # an unstarred last word is prefix-matched from this length on
# bm25 costs about a microsecond per matching row; a query matching more rows than this
# is ranked among its most recently indexed RANK_WINDOW matches (see CaptionIndex.search).
RANK_WINDOW = 1000
# A search is a few words; these bound what FTS5 is asked to do with pasted text (repeated words
# are merged first, so only distinct ones count). 64 OR'ed words take about 50 ms.
MAX_QUERY_CHARS = 10_000
MAX_QUERY_TERMS = 64
# SQLite reports a full disk as a "disk I/O error" when the WAL index can't grow: with less free
# space than this, that error is told as a full disk.
DISK_FULL_BELOW = 1 << 20
# Words too common in captions to narrow a search; dropped from a query that has other words.
STOPWORDS = frozenset(
    "a an the of on in at to with and is are its it this that by for from near into".split()
)

_COLUMNS = (
    "id, path, size, mtime_ns, content_hash, width, height, taken_at, camera, caption, "
    "score, model, captioned_at, source, missing, error, indexed_at, write_owed, concepts_model"
)


def utc_now() -> str:
    """Current time as ISO 8601 UTC, seconds precision (the index's timestamp format)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class PhotoRecord:
    """One photo as the index knows it."""

    id: int
    path: str  # absolute
    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None
    height: int | None
    taken_at: str | None  # ISO 8601, local camera time (with offset if the EXIF had one)
    camera: str | None
    caption: str | None
    score: float | None  # model score (mean log-prob per token); None for user captions
    model: str | None  # model id for model captions
    captioned_at: str | None  # ISO 8601 UTC
    source: CaptionSource | None  # None while uncaptioned (e.g. it failed)
    missing: bool  # file was not found at the last full index
    error: str | None  # why the last attempt to caption it failed
    indexed_at: str
    write_owed: bool = False  # the caption is still to be written into the file (--write-metadata)
    concepts_model: str | None = None  # the model whose concepts the index holds (None: none yet)

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mtime"] = self.mtime
        d["source"] = str(self.source) if self.source is not None else None
        return d

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> PhotoRecord:
        values = list(row[:19])
        values[13] = CaptionSource(values[13]) if values[13] is not None else None
        values[14] = bool(values[14])
        values[17] = bool(values[17])
        return cls(*values)


# The order MatchedBy values are listed in (SearchHit.matched_by, ``--json``).
MATCH_ORDER = (MatchedBy.WORDS, MatchedBy.CONCEPTS, MatchedBy.MEANING, MatchedBy.PIXELS)


def matched(*reasons: MatchedBy) -> tuple[MatchedBy, ...]:
    """``reasons`` as a SearchHit's ``matched_by``: each once, in :data:`MATCH_ORDER`."""
    return tuple(m for m in MATCH_ORDER if m in reasons)


@dataclass(frozen=True)
class SearchHit:
    """A search result: the photo, a snippet of its caption with matches highlighted, the rank,
    and why it matched: ``matched_by`` holds each reason once, in :data:`MATCH_ORDER` (its
    caption's words, only the concepts its model saw, the meaning of its caption and concepts,
    what its pixels look like)."""

    record: PhotoRecord
    snippet: str
    rank: float  # bm25: lower (more negative) is better; 0.0 when not matched by words
    matched_by: tuple[MatchedBy, ...] = (MatchedBy.WORDS,)
    concepts: tuple[Concept, ...] = ()  # what its model's classifier sees, best first
    meaning_score: float | None = None  # cosine of the query and its text vector, when compared
    pixels_score: float | None = None  # cosine of the query and its image vector, when compared
    fused_score: float | None = None  # the hybrid ranking's score (higher is better), in hybrid mode

    def to_dict(self) -> dict[str, Any]:
        return {**self.record.to_dict(), "snippet": self.snippet, "rank": self.rank,
                "matched_by": [str(m) for m in self.matched_by], "concepts": [c.to_dict() for c in self.concepts],
                "meaning_score": self.meaning_score, "pixels_score": self.pixels_score,
                "fused_score": self.fused_score}


class Fingerprint(NamedTuple):
    """What the index remembers of a file's stat, for the incremental check (a tuple: cheap)."""

    size: int
    mtime_ns: int
    missing: bool
    complete: bool = True  # has a caption or a recorded failure (nothing left to do)


_FP_COLUMNS = "size, mtime_ns, missing, (caption IS NOT NULL OR error IS NOT NULL)"


@dataclass(frozen=True)
class PhotoUpdate:
    """One row to insert or update by path (see :meth:`CaptionIndex.upsert_photos`).

    File facts (size, mtime, hash, dimensions, EXIF) are always written (a
    ``None`` keeps the stored value). ``caption=None`` keeps the stored caption;
    a caption with ``source="model"`` does not replace a ``user`` caption unless
    the upsert is forced.
    """

    path: str
    size: int
    mtime_ns: int
    content_hash: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    camera: str | None = None
    caption: str | None = None
    score: float | None = None
    model: str | None = None
    source: CaptionSource | None = None  # with a caption
    error: str | None = None
    write_owed: bool | None = None  # None keeps the stored flag
    replaces_user: bool = False  # this model caption replaces a user caption (as ``force`` does)
    # What the model's classifier sees (best first), replacing the stored concepts; None keeps them.
    # ``concept_terms``: the words a search matches for them (the library decides which count).
    concepts: tuple[Concept, ...] | None = None
    concepts_model: str | None = None
    concept_terms: str | None = None


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

# One lexical item of a search string: a "quoted phrase", or a word (optionally
# -negated at the start of a word, optionally ending in *). Everything else
# (operators' punctuation, colons, carets, parentheses, a lone quote) is dropped.
_QUERY_TOKEN = re.compile(r'"(?P<phrase>[^"]*)"|(?P<neg>(?:^|(?<=\s))-)?(?P<word>\w+)(?P<star>\*)?')
_WORD = re.compile(r"\w+")


def fts_query(text: str, *, prefix_last: bool = True) -> str | None:
    """Turn free user text into a safe FTS5 MATCH expression, or ``None`` if it has no words.

    Words are ANDed; every word is emitted as a quoted FTS5 string, so nothing
    the user types is parsed as FTS5 syntax. Supported on purpose: ``"exact
    phrase"``, ``word*`` (prefix), ``-word`` (exclude), and ``OR`` between words
    or phrases. With ``prefix_last`` the last plain word is prefix-matched when
    it has at least three letters (search as you type). Common words ("a",
    "the", "on" ...) are dropped when other words remain. Stemming applies to
    every word.
    """
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(
            f"The search is {len(text):,} characters long; photocap searches at most "
            f"{MAX_QUERY_CHARS:,}. Use a few words."
        )
    groups: list[tuple[list[str], list[str]]] = [([], [])]
    pending_not = False
    last_word_slot: tuple[list[str], int] | None = None
    for m in _QUERY_TOKEN.finditer(text):
        phrase, word = m.group("phrase"), m.group("word")
        if word is not None and not m.group("neg") and not m.group("star"):
            if word == "OR":
                if groups[-1][0] or groups[-1][1]:
                    groups.append(([], []))
                continue
            if word == "AND":
                continue
            if word == "NOT":
                pending_not = True
                continue
        if phrase is not None:
            words = _WORD.findall(phrase)
            if not words:
                continue
            term = '"' + " ".join(words).lower() + '"'
            is_plain_word = False
        else:
            term = f'"{word.lower()}"' + ("*" if m.group("star") else "")
            is_plain_word = not m.group("star")
        positive, negative = groups[-1]
        if m.group("neg") or pending_not:
            negative.append(term)
            pending_not = False
            last_word_slot = None
        else:
            positive.append(term)
            last_word_slot = (positive, len(positive) - 1) if is_plain_word else None
    if last_word_slot is not None and not text[-1:].isspace():
        terms, i = last_word_slot
        if len(terms[i]) - 2 >= MIN_PREFIX_LEN:
            if prefix_last:
                terms[i] += "*"
        elif len(terms) > 1 and _bare(terms[i]) not in STOPWORDS:
            terms[i] = ""  # a word still being typed, too short to expand: ignore it for now
    parts: list[str] = []
    terms = 0
    for positive, negative in groups:
        positive[:] = dict.fromkeys(t for t in positive if t)  # "dog dog dog": one term, not three
        positive[:] = [t for t in positive if not (t.endswith("*") and t[:-1] in positive)]  # dog dog*
        negative[:] = dict.fromkeys(negative)
        content = [t for t in positive if _bare(t) not in STOPWORDS]
        if content:
            positive[:] = content  # "a dog on the beach" -> dog beach (phrases keep every word)
        if not positive:
            continue  # FTS5 has no pure negation
        expr = " ".join(positive)
        if negative:
            expr += " NOT " + (negative[0] if len(negative) == 1 else "(" + " OR ".join(negative) + ")")
        if expr not in parts:
            parts.append(expr)
            terms += sum(1 + t.count(" ") for t in (*positive, *negative))  # a phrase: its words
    if terms > MAX_QUERY_TERMS:
        raise QueryError(
            f"The search has {terms} words to match (repeats count once, a phrase each of its "
            f"words); photocap searches at most {MAX_QUERY_TERMS}. Use fewer words."
        )
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return " OR ".join(f"({p})" for p in parts)


@dataclass(frozen=True)
class QueryParts:
    """What a search string says besides its words' meaning: for search by meaning (see
    :func:`query_parts`)."""

    text: str  # the words and phrases' words to embed, operators and excluded words left out
    phrases: tuple[str, ...] = ()  # "quoted phrases", as FTS5 strings
    excluded: tuple[str, ...] = ()  # -word / NOT word, as FTS5 strings (prefix-starred if typed so)
    has_or: bool = False  # alternatives: a photo needs any one of the phrases, not all


def query_parts(text: str) -> QueryParts:
    """Split user text as :func:`fts_query` reads it: the meaning to embed, phrases, exclusions."""
    if len(text) > MAX_QUERY_CHARS:
        fts_query(text)  # raises the QueryError
    words: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    has_or = pending_not = False
    for m in _QUERY_TOKEN.finditer(text):
        phrase, word = m.group("phrase"), m.group("word")
        if word is not None and not m.group("neg") and not m.group("star") and word in ("OR", "AND", "NOT"):
            has_or |= word == "OR"
            pending_not = word == "NOT"
            continue
        if phrase is not None:
            ws = _WORD.findall(phrase)
            if not ws:
                continue
            term = '"' + " ".join(ws).lower() + '"'
        else:
            ws = [word]
            term = f'"{word.lower()}"' + ("*" if m.group("star") else "")
        if m.group("neg") or pending_not:
            excluded.append(term)
            pending_not = False
            continue
        words.extend(ws)
        if phrase is not None:
            phrases.append(term)
    return QueryParts(" ".join(words), tuple(dict.fromkeys(phrases)), tuple(dict.fromkeys(excluded)), has_or)


def _bare(term: str) -> str:
    return term.rstrip("*").strip('"').lower()


def _under_range(under: str | os.PathLike[str]) -> tuple[str, str]:
    """[lo, hi) bounds of the paths strictly below folder ``under`` (index-friendly)."""
    base = os.path.abspath(os.fspath(under)).rstrip(os.sep) + os.sep
    return base, base[:-1] + chr(ord(os.sep) + 1)


class CaptionIndex:
    """The photo/caption database. Open with :meth:`open`; use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._scans: dict[tuple[VectorKind, str], vectors.VectorScan] = {}  # loaded for nearest()
        self._models: tuple[tuple[int, int], dict[str, dict[str, int]]] | None = None  # vector_models()
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
        if not path.exists():
            if not create:
                raise IndexDatabaseError(
                    f"No photo index at {path} yet. Run `photocap index FOLDER` first, "
                    "or point --db / PHOTOCAP_DB at an existing index."
                )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise IndexDatabaseError(
                    f"Cannot create the folder for the index database {path}: "
                    f"{exc.strerror or exc}. Choose another location with --db or PHOTOCAP_DB."
                ) from exc
        if path.is_dir():
            raise IndexDatabaseError(
                f"The index path {path} is a folder. Give --db a file name, e.g. {path / 'index.db'}."
            )
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch to WAL journal mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable in WAL except on power loss
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, MIGRATIONS)
        except IndexDatabaseError:
            if conn is not None:
                conn.close()
            raise
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            error = _database_error(path, exc)
            why = _cannot_write(path) if path.exists() else None
            if why is None:
                raise error from exc
            if readonly_ok:
                return cls(_connect_read_only(path, busy_timeout, error), path)
            raise IndexDatabaseError(
                f"The index {path} can't be written: {why}. `photocap search` and `photocap db "
                "backup` still read it; to change it, make it writable or use --db / PHOTOCAP_DB."
            ) from exc
        return cls(conn, path)

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

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise _database_error(self.path, exc) from exc

    # --------------------------------------------------------------- reading
    def get(self, path: str | os.PathLike[str]) -> PhotoRecord | None:
        """The record for ``path`` (made absolute), or ``None``."""
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM photos WHERE path = ?", (_abs(path),)
        ).fetchone()
        return PhotoRecord.from_row(row) if row else None

    def get_by_id(self, photo_id: int) -> PhotoRecord | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM photos WHERE id = ?", (photo_id,)).fetchone()
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
        :data:`RANK_WINDOW` photos (e.g. "dog" in a big library) is instead
        ranked among its most recently indexed RANK_WINDOW matches, shortest
        caption first (what bm25 does when every result holds every word), with
        ``rank`` 0.0. :meth:`count_matches` still counts all matches.
        """
        match = self._match(query)
        if match is None or limit <= 0:
            return []
        return self._word_hits(match, self._word_top(match, limit, max(0, offset), include_missing), highlight)

    def word_ranking(self, query: str, limit: int, *, include_missing: bool = False) -> list[tuple[int, float]]:
        """``(photo_id, rank)`` of :meth:`search`'s first ``limit`` results, without snippets or
        records (what the hybrid ranking fuses; :meth:`word_hits` makes the page's hits)."""
        match = self._match(query)
        if match is None or limit <= 0:
            return []
        return self._word_top(match, limit, 0, include_missing)

    def word_hits(self, query: str, ranking: list[tuple[int, float]], *,
                  highlight: tuple[str, str] = ("[", "]")) -> list[SearchHit]:
        """:meth:`search`'s hits for those ``(photo_id, rank)`` of :meth:`word_ranking`, in order."""
        match = self._match(query)
        if match is None or not ranking:
            return []
        return self._word_hits(match, ranking, highlight)

    def _word_top(self, match: str, limit: int, offset: int, include_missing: bool) -> list[tuple[int, float]]:
        filters = "" if include_missing else (
            " AND captions_fts.rowid NOT IN (SELECT id FROM photos WHERE missing = 1)"
        )
        with self._errors():
            # A broad query (more than `window` matches) is ranked among its newest `window`
            # matches, by caption length: with every query word present, bm25 orders such
            # rows by length too, and bm25 itself would first scan each word's whole doclist.
            window = max(RANK_WINDOW, 4 * (offset + limit))
            floor = self._conn.execute(
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
            return [(int(i), float(r)) for i, r in self._conn.execute(
                f"SELECT captions_fts.rowid, {rank} FROM captions_fts{join} "
                f"WHERE captions_fts MATCH ?{filters} ORDER BY {order} LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()]

    def _word_hits(self, match: str, top: list[tuple[int, float]], highlight: tuple[str, str]) -> list[SearchHit]:
        if not top:
            return []
        with self._errors():
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
                row = self._conn.execute(snippet_sql, (_MARK_OPEN, _MARK_CLOSE, match, i)).fetchone()
                if row:
                    if _MARK_OPEN in row[0]:
                        in_caption.add(i)
                    snippets[i] = row[0].replace(_MARK_OPEN, highlight[0]).replace(_MARK_CLOSE, highlight[1])
            records = {
                r[0]: PhotoRecord.from_row(r)
                for r in self._conn.execute(f"SELECT {_COLUMNS} FROM photos WHERE id IN ({marks})", ids)
            }
            concepts: dict[int, list[Concept]] = {}
            for photo_id, word, score in self._conn.execute(
                    f"SELECT photo_id, word, score FROM photo_concepts WHERE photo_id IN ({marks}) "
                    "ORDER BY photo_id, rank", ids):
                concepts.setdefault(photo_id, []).append(Concept(word, score))
        return [SearchHit(records[i], snippets.get(i, records[i].caption or ""), float(r),
                          (MatchedBy.WORDS,) if i in in_caption else (MatchedBy.CONCEPTS,),
                          tuple(concepts.get(i, ())))
                for i, r in top if i in records]

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

    # --------------------------------------------------------------- vectors
    def set_vectors(self, rows: Iterable[tuple[int, VectorKind, str, Any]]) -> int:
        """Store ``(photo_id, kind, model_id, vector)`` rows in one transaction (joining an open
        one), replacing each photo's vector of that kind; return how many were stored.

        ``vector``: :data:`~photocap.records.VECTOR_DTYPE` bytes (or a float array), stored at unit
        length. Rows for photos no longer in the index are skipped. A vector becomes owed again when
        its photo's caption or confident concepts change (text) or its content does (pixels): the
        index's triggers delete it.
        """
        with self.transaction(), self._errors():
            return vectors.set_vectors(self._conn, rows)

    def vectors_owed(self, kind: VectorKind, model_id: str, limit: int | None = None, *, after: int = 0,
                     ids: Iterable[int] | None = None) -> list[vectors.OwedVector]:
        """Photos lacking a vector of ``kind`` by ``model_id`` (none, stale, or another model's), in
        id order, with their caption and concepts (what a text vector is made of). ``after`` pages
        (the last id seen); ``ids`` restricts to those photos. Captioned photos only."""
        with self._errors():
            return vectors.vectors_owed(self._conn, kind, model_id, limit, after=after,
                                        ids=None if ids is None else list(ids))

    def count_vectors_owed(self, kind: VectorKind, model_id: str) -> int:
        """How many photos :meth:`vectors_owed` lists without a limit."""
        with self._errors():
            return vectors.count_vectors_owed(self._conn, kind, model_id)

    def nearest(self, kind: VectorKind, model_id: str, query_vector: Any, limit: int, *,
                include_missing: bool = False, exact: bool = False, candidates: Any = None,
                ) -> list[tuple[int, float]]:
        """``(photo_id, cosine)`` of the photos whose ``kind`` vector (by ``model_id``) is nearest
        ``query_vector``, best first. The scan structure is loaded on first use and kept for this
        index object; it is brought up to date (cheaply) at each call. See
        :mod:`photocap.index.vectors` for the method and its measured speed and recall.
        ``candidates``: what ``vector_scan(...).candidates(query_vector, n)`` gave (see there)."""
        scan = self._scan(kind, model_id)
        with self._errors():
            return vectors.nearest(self._conn, scan, query_vector, limit, include_missing=include_missing,
                                   exact=exact, candidates=candidates)

    def vector_scan(self, kind: VectorKind, model_id: str) -> vectors.VectorScan:
        """The loaded scan structure of ``kind`` vectors by ``model_id``, up to date now. Its
        ``candidates(query, n)`` may run in another thread (the search runs it beside the word
        search); pass the result to :meth:`nearest` here."""
        scan = self._scan(kind, model_id)
        with self._errors():
            scan.refresh(self._conn)
        return scan

    def _scan(self, kind: VectorKind, model_id: str) -> vectors.VectorScan:
        k = VectorKind(kind)
        scan = self._scans.get((k, model_id))
        if scan is None:
            scan = self._scans[(k, model_id)] = vectors.VectorScan(k, model_id)
        return scan

    def vector_counts(self) -> dict[str, dict[str, int]]:
        """``{kind: {model_id: how many vectors}}``."""
        with self._errors():
            return vectors.vector_counts(self._conn)

    def has_vectors(self, kind: VectorKind, model_id: str) -> bool:
        """Whether any photo has a ``kind`` vector by ``model_id`` (cheap)."""
        with self._errors():
            return self._conn.execute("SELECT 1 FROM photo_vectors WHERE kind = ? AND model = ? LIMIT 1",
                                      (str(VectorKind(kind)), model_id)).fetchone() is not None

    def vector_models(self, kind: VectorKind) -> list[str]:
        """The model ids of the ``kind`` vectors held, most vectors first (kept until vectors change:
        each search asks)."""
        with self._errors():
            state = vectors.state(self._conn)
            if self._models is None or self._models[0] != state:
                self._models = (state, vectors.vector_counts(self._conn))
        return list(self._models[1].get(str(VectorKind(kind)), {}))

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
            "vectors": vectors.vector_counts(c),
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


def _cannot_write(path: Path) -> str | None:
    """Why the index file cannot be written (WAL needs the file, its folder and the file system)."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "its file system is mounted read-only"
    except OSError:
        pass
    if not os.access(path, os.W_OK):
        return "the file is read-only"
    if not os.access(path.parent, os.W_OK):
        return f"its folder {path.parent} is read-only"
    return None


def _connect_read_only(path: Path, busy_timeout: float, error: IndexDatabaseError) -> sqlite3.Connection:
    """A read-only connection to an index photocap cannot write; ``error`` if even that fails.

    A WAL database needs its ``-shm`` file to be read; where that cannot be created (a read-only
    folder or file system) the file is opened as immutable, which is right there: nothing can
    change it while it is read.
    """
    from urllib.parse import quote

    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    for extra in ("", "&immutable=1"):
        conn = None
        try:
            conn = sqlite3.connect(uri + extra, uri=True, timeout=busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            migrate(conn, MIGRATIONS)  # only checks: an index that needs upgrading can't be read here
            return conn
        except sqlite3.Error:
            if conn is not None:
                conn.close()
    raise error


def _abs(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(path))


def _database_error(path: Path, exc: sqlite3.Error) -> IndexDatabaseError:
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return IndexDatabaseError(
            f"The index {path} is locked by another program (another `photocap index` or "
            "`photocap watch`?). Wait for it to finish or stop it, then try again."
        )
    if "not a database" in low or "malformed" in low or "file is encrypted" in low:
        return IndexDatabaseError(
            f"{path} is not a usable photocap index ({text}). Move it away, restore it from a "
            "backup (`photocap db backup`), or point --db at another file."
        )
    if "readonly" in low or "read-only" in low:
        return IndexDatabaseError(
            f"The index {path} is read-only ({text}). Check its permissions, or use --db."
        )
    if "unable to open" in low:
        return IndexDatabaseError(
            f"Cannot open the index {path} ({text}). Check that the folder exists and is "
            "writable, or use --db / PHOTOCAP_DB."
        )
    if "disk" in low and ("full" in low or "i/o" in low):
        free = _free_bytes(path)
        if "full" in low or (free is not None and free < DISK_FULL_BELOW):
            left = "" if free is None else f" ({free // 1024:,} KiB free)"
            return IndexDatabaseError(
                f"The disk holding the index {path} is full{left}. Nothing already in the index was "
                "lost; free some space and run the command again to continue."
            )
    return IndexDatabaseError(f"Index database error in {path}: {text}")


def _free_bytes(path: Path) -> int | None:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize

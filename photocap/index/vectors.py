"""Photo vectors in the index (:class:`VectorStore`): store them, say which are owed, find the nearest.

Storage (migration ``m006_photo_vectors``): one row per photo and :class:`~photocap.records.VectorKind`
in ``photo_vectors``, with the model id that made the vector, the vector as little-endian float32
bytes (unit length) and its sign bits packed (48 bytes for 384 dimensions). Triggers on ``photos``
own staleness: a changed caption or set of confident concepts deletes the text vector, new file
content deletes the image vector, a deleted photo deletes both.

Search structure, chosen by measurement (figures in ``docs/decisions/vector-storage.md``): an
exact float32 scan of every vector costs ~1.5 GB of memory and >100 ms at 1M photos on 2 cores,
and sqlite-vec's vec0 brute force is slower still. What meets "warm p95 <= 50 ms at 1M" and "cold
search <= 2 s at 100k" is a search in three steps: the sign bits of every vector of one kind and
model are kept in memory (48 MB at 1M photos, column-major uint64) and scanned by Hamming
distance (XOR + ``np.bitwise_count``); the :data:`POOL` x :data:`RERANK` nearest are narrowed to
RERANK by the asymmetric estimate ``query . sign(vector)`` (the query's floats against the
candidates' signs); those are re-ranked by exact cosine on their float vectors, read from SQLite
by primary key. Libraries of at most RERANK photos are therefore searched exactly; above,
recall@10 against exact cosine is what the bench prints.

The loaded bits (:class:`VectorScan`) stay valid while nothing changed: a cheap check per query
(the table's AUTOINCREMENT sequence and the trigger-kept count of deletions) loads only rows added
since (the usual case while indexing new photos), and reloads everything after a deletion.

numpy is imported inside the functions that need it, so importing the index stays light.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photocap.index.connection import told
from photocap.records import VECTOR_DTYPE, Concept, VectorKind

if TYPE_CHECKING:
    import numpy as np

RERANK = 400  # candidates re-ranked by exact cosine (docs/decisions/vector-storage.md)
POOL = 4  # x RERANK nearest by Hamming distance, narrowed to RERANK by the asymmetric estimate
_WORD_BITS = 64


@dataclass(frozen=True)
class OwedVector:
    """A photo lacking a current vector of some kind and model, with what is needed to make one."""

    photo_id: int
    path: str
    caption: str | None
    concepts: tuple[Concept, ...] = ()  # best first (all kept ones: the library decides which count)


def _kind(kind: VectorKind | str) -> VectorKind:
    try:
        return VectorKind(kind)
    except ValueError:
        raise ValueError(f"vector kind must be one of {', '.join(VectorKind)}, not {kind!r}") from None


def as_array(vector: Any) -> np.ndarray:
    """A vector (VECTOR_DTYPE bytes, or any 1-d sequence of numbers) as a float32 unit array.

    Raises ValueError for an empty, non-finite or zero vector.
    """
    import numpy as np

    if isinstance(vector, (bytes, bytearray, memoryview)):
        if len(vector) == 0 or len(vector) % 4:
            raise ValueError(f"a vector is float32 bytes (a multiple of 4 long), not {len(vector)} bytes")
        a = np.frombuffer(bytes(vector), dtype=VECTOR_DTYPE).astype(np.float32)
    else:
        a = np.asarray(vector, dtype=np.float32).reshape(-1)
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError("a vector must be non-empty and finite")
    norm = float(np.linalg.norm(a))
    if norm == 0.0:
        raise ValueError("a vector cannot be all zeros")
    return a / norm if abs(norm - 1.0) > 1e-4 else a


def sign_bits(a: np.ndarray) -> bytes:
    """The packed sign bits of a vector (bit set where the component is > 0), padded to 64 bits."""
    import numpy as np

    words = -(-a.size // _WORD_BITS)
    padded = np.zeros(words * _WORD_BITS, dtype=bool)
    padded[: a.size] = a > 0
    return np.packbits(padded).tobytes()


def vector_counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """``{kind: {model_id: vectors}}`` of what the index holds."""
    out: dict[str, dict[str, int]] = {}
    for kind, model, n in conn.execute(
            "SELECT kind, model, count(*) FROM photo_vectors GROUP BY kind, model ORDER BY kind, count(*) DESC"):
        out.setdefault(kind, {})[model] = n
    return out


def state(conn: sqlite3.Connection) -> tuple[int, int]:
    """(deletions so far, last seq written): changes whenever any vector does (a cheap check)."""
    row = conn.execute(
        "SELECT (SELECT removed FROM vector_state WHERE id = 1), "
        "(SELECT seq FROM sqlite_sequence WHERE name = 'photo_vectors')").fetchone()
    return int(row[0] or 0), int(row[1] or 0)


class VectorScan:
    """The sign bits of every vector of one kind and model, in memory, for :meth:`VectorStore.nearest`.

    One per open index, kind and model (its :class:`VectorStore` keeps them); refreshed by a cheap check at each
    query, on the connection's thread. :meth:`candidates` only reads arrays that :meth:`refresh`
    replaces (never changes in place), so another thread may run it between refreshes.
    """

    def __init__(self, kind: VectorKind | str, model_id: str) -> None:
        import numpy as np

        self.kind = _kind(kind)
        self.model_id = model_id
        self.ids = np.empty(0, dtype=np.int64)
        self.columns: np.ndarray | None = None  # (words, n) uint64, one contiguous row per 64 bits
        self.dim: int | None = None
        self._removed = -1
        self._seq = 0
        self.loads = 0  # full loads (for tests and the bench)

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + (self.columns.nbytes if self.columns is not None else 0))

    def refresh(self, conn: sqlite3.Connection) -> None:
        """Bring the loaded bits up to date with the database (reads only what changed)."""
        import numpy as np

        began = not conn.in_transaction
        if began:
            conn.execute("BEGIN")  # one snapshot for the check and the load
        try:
            removed, seq = state(conn)
            if removed == self._removed and seq == self._seq:
                return
            full = removed != self._removed
            since = 0 if full else self._seq
            rows = conn.execute(  # from the covering index photo_vectors_scan alone
                "SELECT photo_id, bits FROM photo_vectors "
                "WHERE kind = ? AND model = ? AND seq > ? AND seq <= ? ORDER BY seq",
                (str(self.kind), self.model_id, since, seq)).fetchall()
            if rows and self.dim is None:
                self.dim = conn.execute("SELECT length(vector) / 4 FROM photo_vectors WHERE photo_id = ? "
                                        "AND kind = ?", (rows[0][0], str(self.kind))).fetchone()[0]
        finally:
            if began:
                conn.execute("COMMIT")
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if rows:
            words = len(rows[0][1]) // 8
            cols = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint64).reshape(len(rows), words).T
            cols = np.ascontiguousarray(cols)
        else:
            cols = None
        if full or self.columns is None:
            self.ids, self.columns = ids, cols
            self.loads += 1
        elif cols is not None:
            self.ids = np.concatenate([self.ids, ids])
            self.columns = np.concatenate([self.columns, cols], axis=1)
        self._removed, self._seq = removed, seq

    def candidates(self, query: np.ndarray, n: int) -> np.ndarray:
        """Photo ids of the ``n`` vectors most likely nearest ``query``: the POOL * n nearest by Hamming
        distance of sign bits, then the ``n`` of those with the best ``query . sign(vector)``."""
        import numpy as np

        if self.columns is None or self.ids.size == 0:
            return np.empty(0, dtype=np.int64)
        if self.ids.size <= n:
            return self.ids
        q = np.frombuffer(sign_bits(query), dtype=np.uint64)
        if q.size != self.columns.shape[0]:
            raise ValueError(f"the query has {query.size} dimensions; the {self.kind} vectors of "
                             f"{self.model_id} have {self.dim}")
        size = self.ids.size
        dist = np.zeros(size, dtype=np.uint16)
        tmp = np.empty(size, dtype=np.uint64)
        cnt = np.empty(size, dtype=np.uint8)
        for w in range(q.size):
            np.bitwise_xor(self.columns[w], q[w], out=tmp)
            np.bitwise_count(tmp, out=cnt)
            np.add(dist, cnt, out=dist)
        pool = min(size, POOL * n)
        # The distance below which there are fewer than `pool`, from a histogram (cheaper than a partition).
        cum = np.cumsum(np.bincount(dist, minlength=q.size * _WORD_BITS + 1))
        t = int(np.searchsorted(cum, pool))  # cum[t] >= pool: distances <= t give at least pool
        below = np.flatnonzero(dist < t)
        rows = np.concatenate([below, np.flatnonzero(dist == t)[: pool - below.size]])
        # Second step: the query's own floats against the candidates' signs (q . sign(v), the
        # asymmetric estimate, closer to the cosine than the Hamming distance), keeping n. Summed
        # from a table per stored byte (what its 8 bits add), without BLAS: a small matrix product
        # there starts threads that, on a busy 2-core machine, cost more than the product.
        if rows.size > n:
            data = np.ascontiguousarray(self.columns[:, rows].T).view(np.uint8)  # the stored bytes again
            estimate = _byte_tables(query)[np.arange(data.shape[1]), data].sum(axis=1)
            rows = rows[np.argpartition(-estimate, n - 1)[:n]]
        return self.ids[rows]


def _byte_tables(query: np.ndarray) -> np.ndarray:
    """(bytes, 256) float32: for each stored byte position and value, the sum of ``query``'s
    components whose bit is set, doubled, less all 8 (so the rows' sum is ``query . sign(v)``)."""
    import numpy as np

    nbytes = -(-query.size // _WORD_BITS) * 8
    q = np.zeros(nbytes * 8, dtype=np.float32)
    q[: query.size] = query
    q = q.reshape(nbytes, 8)  # np.packbits order: the first component is the byte's high bit
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32)  # (256, 8)
    return np.einsum("vk,bk->bv", 2.0 * bits - 1.0, q)




class VectorStore:
    """The index's photo vectors: store them, say which are owed, find the nearest to a query.

    One per open :class:`~photocap.index.store.CaptionIndex` (its ``vectors``), on its connection:
    use it from that index's thread. Writes join the index's open transaction (or make their own).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path,
                 transaction: Callable[[], AbstractContextManager[None]]) -> None:
        self._conn = conn
        self._path = path
        self._transaction = transaction
        self._scans: dict[tuple[VectorKind, str], VectorScan] = {}  # loaded for nearest()
        self._models: tuple[tuple[int, int], dict[str, dict[str, int]]] | None = None  # models()

    def set(self, rows: Iterable[tuple[int, VectorKind | str, str, Any]]) -> int:
        """Store ``(photo_id, kind, model_id, vector)`` rows in one transaction (joining an open
        one), replacing each photo's vector of that kind; return how many were stored.

        ``vector``: :data:`~photocap.records.VECTOR_DTYPE` bytes (or a float array), stored at unit
        length. Rows for photos no longer in the index are skipped (deleted meanwhile). A vector
        becomes owed again when its photo's caption or confident concepts change (text) or its
        content does (pixels): the index's triggers delete it.
        """
        conn = self._conn
        n = 0
        with self._transaction(), told(self._path):
            for photo_id, kind, model_id, vector in rows:
                k = _kind(kind)
                if not model_id:
                    raise ValueError("a vector needs the id of the model that made it")
                a = as_array(vector)
                if conn.execute("SELECT 1 FROM photos WHERE id = ?", (photo_id,)).fetchone() is None:
                    continue
                # Delete then insert (not REPLACE, which fires no trigger): a new seq, and the deletion is counted.
                conn.execute("DELETE FROM photo_vectors WHERE photo_id = ? AND kind = ?", (photo_id, str(k)))
                conn.execute(
                    "INSERT INTO photo_vectors (photo_id, kind, model, vector, bits) VALUES (?, ?, ?, ?, ?)",
                    (int(photo_id), str(k), str(model_id), a.astype(VECTOR_DTYPE).tobytes(), sign_bits(a)),
                )
                n += 1
        return n

    def owed(self, kind: VectorKind | str, model_id: str, limit: int | None = None, *, after: int = 0,
             ids: Iterable[int] | None = None) -> list[OwedVector]:
        """Photos lacking a vector of ``kind`` by ``model_id`` (none, stale, or another model's), in
        id order, with their caption and concepts (what a text vector is made of).

        Only captioned photos (nothing to embed otherwise; a photo the model could not read has no
        image vector either). ``after``: only photo ids above it (to page through a large index:
        pass the last id seen). ``ids``: only these photos.
        """
        k = _kind(kind)
        where = ["p.id > ?", "(v.model IS NULL OR v.model != ?)", "p.caption IS NOT NULL"]
        args: list[Any] = [str(k), after, model_id]
        if ids is not None:
            where.append("p.id IN (SELECT value FROM json_each(?))")
            args.append("[" + ",".join(str(int(i)) for i in ids) + "]")
        sql = ("SELECT p.id, p.path, p.caption FROM photos p "
               "LEFT JOIN photo_vectors v ON v.photo_id = p.id AND v.kind = ? "
               f"WHERE {' AND '.join(where)} ORDER BY p.id")
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(0, int(limit)))
        concepts: dict[int, list[Concept]] = {}
        with told(self._path):
            rows = self._conn.execute(sql, args).fetchall()
            if rows:
                for photo_id, word, score in self._conn.execute(
                        "SELECT photo_id, word, score FROM photo_concepts WHERE photo_id IN "
                        "(SELECT value FROM json_each(?)) ORDER BY photo_id, rank",
                        ("[" + ",".join(str(r[0]) for r in rows) + "]",)):
                    concepts.setdefault(photo_id, []).append(Concept(word, score))
        return [OwedVector(i, p, c, tuple(concepts.get(i, ()))) for i, p, c in rows]

    def count_owed(self, kind: VectorKind | str, model_id: str) -> int:
        """How many photos :meth:`owed` lists without a limit."""
        k = _kind(kind)
        with told(self._path):
            return self._conn.execute(
                "SELECT count(*) FROM photos p LEFT JOIN photo_vectors v ON v.photo_id = p.id AND v.kind = ? "
                "WHERE (v.model IS NULL OR v.model != ?) AND p.caption IS NOT NULL",
                (str(k), model_id)).fetchone()[0]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{kind: {model_id: how many vectors}}`` of what the index holds."""
        with told(self._path):
            return vector_counts(self._conn)

    def has(self, kind: VectorKind | str, model_id: str) -> bool:
        """Whether any photo has a ``kind`` vector by ``model_id`` (cheap)."""
        with told(self._path):
            return self._conn.execute("SELECT 1 FROM photo_vectors WHERE kind = ? AND model = ? LIMIT 1",
                                      (str(_kind(kind)), model_id)).fetchone() is not None

    def models(self, kind: VectorKind | str) -> list[str]:
        """The model ids of the ``kind`` vectors held, most vectors first (kept until vectors change:
        each search asks)."""
        with told(self._path):
            now = state(self._conn)
            if self._models is None or self._models[0] != now:
                self._models = (now, vector_counts(self._conn))
        return list(self._models[1].get(str(_kind(kind)), {}))

    def scan(self, kind: VectorKind | str, model_id: str) -> VectorScan:
        """The loaded scan structure of ``kind`` vectors by ``model_id``, up to date now. Its
        ``candidates(query, n)`` may run in another thread (the search runs it beside the word
        search); pass the result to :meth:`nearest` here."""
        scan = self._scan(kind, model_id)
        with told(self._path):
            scan.refresh(self._conn)
        return scan

    def _scan(self, kind: VectorKind | str, model_id: str) -> VectorScan:
        k = _kind(kind)
        scan = self._scans.get((k, model_id))
        if scan is None:
            scan = self._scans[(k, model_id)] = VectorScan(k, model_id)
        return scan

    def nearest(self, kind: VectorKind | str, model_id: str, query: Any, limit: int, *,
                include_missing: bool = False, exact: bool = False, rerank: int = RERANK,
                candidates: Any = None) -> list[tuple[int, float]]:
        """``(photo_id, cosine)`` of the ``limit`` photos whose ``kind`` vector by ``model_id`` is
        nearest ``query``, best first.

        Missing photos are left out unless ``include_missing``. ``exact`` compares the query with
        every stored vector (slow at scale: for tests); otherwise the ``max(rerank, limit)`` nearest
        by sign bits are re-ranked by exact cosine. The scan structure is loaded on first use, kept
        by this store and brought up to date (cheaply) at each call. ``candidates``: the photo ids
        ``scan(...).candidates(query, n)`` already chose (in another thread, say).
        """
        import numpy as np

        if limit <= 0:
            return []
        scan = self._scan(kind, model_id)
        q = as_array(query)
        missing = "" if include_missing else " AND p.missing = 0"
        with told(self._path):
            if exact:
                rows = self._conn.execute(
                    "SELECT v.photo_id, v.vector FROM photo_vectors v JOIN photos p ON p.id = v.photo_id "
                    f"WHERE v.kind = ? AND v.model = ?{missing}", (str(scan.kind), scan.model_id)).fetchall()
            else:
                if candidates is None:
                    scan.refresh(self._conn)
                    ids = scan.candidates(q, max(rerank, limit))
                else:
                    ids = np.asarray(candidates, dtype=np.int64)
                if ids.size == 0:
                    return []
                # CROSS JOIN: one primary-key seek per candidate (the planner would rather scan by model).
                rows = self._conn.execute(
                    "SELECT v.photo_id, v.vector FROM json_each(?) AS j CROSS JOIN photo_vectors v "
                    "ON v.photo_id = j.value AND v.kind = ? CROSS JOIN photos p ON p.id = v.photo_id "
                    f"WHERE v.model = ?{missing}",
                    ("[" + ",".join(map(str, ids.tolist())) + "]", str(scan.kind), scan.model_id)).fetchall()
        if not rows:
            return []
        dim = len(rows[0][1]) // 4
        if dim != q.size:
            raise ValueError(f"the query has {q.size} dimensions; the {scan.kind} vectors of "
                             f"{scan.model_id} have {dim}")
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=VECTOR_DTYPE).reshape(len(rows), dim)
        scores = np.einsum("ij,j->i", matrix, q)  # not BLAS: see VectorScan.candidates
        k = min(limit, scores.size)
        top = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(rows[i][0]), float(scores[i])) for i in top]

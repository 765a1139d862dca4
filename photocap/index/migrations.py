"""Named, forward-only schema migrations for the index database.

Each migration is a name and a tuple of SQL statements. Applied names are
recorded in ``schema_migrations``; :func:`migrate` applies the missing ones in
order, all in one ``BEGIN IMMEDIATE`` transaction, so a database is either
fully at the new schema or untouched. Never edit a released migration: add a
new one at the end.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

from photocap.errors import IndexDatabaseError

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name TEXT PRIMARY KEY,
    applied_at TEXT NOT NULL
)
"""

m001_photos = (
    """
    CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,          -- absolute path
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        content_hash TEXT,                  -- photocap.scan.content_hash
        width INTEGER,                      -- as displayed (EXIF orientation applied)
        height INTEGER,
        taken_at TEXT,                      -- EXIF capture time, ISO 8601 (local time)
        camera TEXT,                        -- EXIF make and model
        caption TEXT,
        score REAL,                         -- model score; NULL for user captions
        model TEXT,                         -- model id that wrote the caption
        captioned_at TEXT,                  -- ISO 8601 UTC
        source TEXT CHECK (source IN ('model', 'user')),
        missing INTEGER NOT NULL DEFAULT 0, -- file not found at the last full index
        error TEXT,                         -- why the last attempt failed, if it did
        indexed_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX photos_content_hash ON photos(content_hash)",
)

m002_captions_fts = (
    """
    CREATE VIRTUAL TABLE captions_fts USING fts5(
        caption,
        content='photos',
        content_rowid='id',
        tokenize='porter unicode61'
    )
    """,
    """
    CREATE TRIGGER photos_fts_insert AFTER INSERT ON photos BEGIN
        INSERT INTO captions_fts(rowid, caption) VALUES (new.id, new.caption);
    END
    """,
    """
    CREATE TRIGGER photos_fts_delete AFTER DELETE ON photos BEGIN
        INSERT INTO captions_fts(captions_fts, rowid, caption) VALUES ('delete', old.id, old.caption);
    END
    """,
    """
    CREATE TRIGGER photos_fts_update AFTER UPDATE OF caption ON photos BEGIN
        INSERT INTO captions_fts(captions_fts, rowid, caption) VALUES ('delete', old.id, old.caption);
        INSERT INTO captions_fts(rowid, caption) VALUES (new.id, new.caption);
    END
    """,
    # Index captions already present (a database migrated from m001 alone).
    "INSERT INTO captions_fts(captions_fts) VALUES ('rebuild')",
)

m003_photos_missing_index = (
    # Partial index: listing/pruning missing photos without a table scan.
    "CREATE INDEX photos_missing ON photos(missing) WHERE missing = 1",
)

m004_photos_write_owed = (
    # "Caption stored" and "caption written into the file" are two states: a photo whose
    # caption was committed with --write-metadata owes a write until the file holds it, so a
    # run killed between the commit and the write finishes the write when it is run again.
    "ALTER TABLE photos ADD COLUMN write_owed INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX photos_write_owed ON photos(write_owed) WHERE write_owed = 1",
)

m005_photo_concepts = (
    # What the model's ImageNet classifier sees in each photo, as plain words with scores (best
    # first), and the model that saw it. Kept apart from the caption: a person's caption keeps
    # the photo's concepts, and a new model's concepts replace an old one's.
    """
    CREATE TABLE photo_concepts (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        rank INTEGER NOT NULL,              -- 0 = the most likely
        word TEXT NOT NULL,                 -- "dog", "pizza", "space shuttle"
        score REAL NOT NULL,                -- summed probability of its ImageNet classes, 0..1
        PRIMARY KEY (photo_id, rank)
    ) WITHOUT ROWID
    """,
    "ALTER TABLE photos ADD COLUMN concepts_model TEXT",  # the model id that made photo_concepts
    # The words a search matches for the confident concepts (word, plural, aliases, broader words).
    "ALTER TABLE photos ADD COLUMN concept_terms TEXT",
    # Search gains a second column: the FTS index is rebuilt over caption and concept terms
    # (external content: the text lives in photos, nothing is lost). The rank is the caption's
    # bm25 alone, so every caption match comes before photos matched only by their concepts
    # (those rank 0; CaptionIndex.search orders them by their concepts' bm25).
    "DROP TRIGGER photos_fts_insert",
    "DROP TRIGGER photos_fts_delete",
    "DROP TRIGGER photos_fts_update",
    "DROP TABLE captions_fts",
    """
    CREATE VIRTUAL TABLE captions_fts USING fts5(
        caption,
        concept_terms,
        content='photos',
        content_rowid='id',
        tokenize='porter unicode61'
    )
    """,
    """
    CREATE TRIGGER photos_fts_insert AFTER INSERT ON photos BEGIN
        INSERT INTO captions_fts(rowid, caption, concept_terms) VALUES (new.id, new.caption, new.concept_terms);
    END
    """,
    """
    CREATE TRIGGER photos_fts_delete AFTER DELETE ON photos BEGIN
        INSERT INTO captions_fts(captions_fts, rowid, caption, concept_terms)
            VALUES ('delete', old.id, old.caption, old.concept_terms);
    END
    """,
    """
    CREATE TRIGGER photos_fts_update AFTER UPDATE OF caption, concept_terms ON photos BEGIN
        INSERT INTO captions_fts(captions_fts, rowid, caption, concept_terms)
            VALUES ('delete', old.id, old.caption, old.concept_terms);
        INSERT INTO captions_fts(rowid, caption, concept_terms) VALUES (new.id, new.caption, new.concept_terms);
    END
    """,
    "INSERT INTO captions_fts(captions_fts) VALUES ('rebuild')",
    "INSERT INTO captions_fts(captions_fts, rank) VALUES ('rank', 'bm25(1.0, 0.0)')",
)

m006_photo_vectors = (
    # Search by meaning: one vector per photo and kind ('text': the sentence model's embedding of
    # its caption and concepts; 'pixels': its image vector), with the model that made it (vectors
    # of different models never mix: another model id means the vector is owed again).
    # ``seq`` grows with every write, so a loaded scan structure only reads what is new; deletions
    # are counted in vector_state.removed (by a trigger), which makes it reload.
    """
    CREATE TABLE photo_vectors (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('text', 'pixels')),
        model TEXT NOT NULL,                -- e.g. "all-MiniLM-L6-v2-int8"
        vector BLOB NOT NULL,               -- little-endian float32, unit length
        bits BLOB NOT NULL,                 -- the sign of each component, packed: the fast scan
        UNIQUE (photo_id, kind)
    )
    """,
    # Covering the scan's load (photo_id and bits only): it reads ~70 bytes a photo, not the vectors.
    "CREATE INDEX photo_vectors_scan ON photo_vectors(kind, model, seq, photo_id, bits)",
    "CREATE TABLE vector_state (id INTEGER PRIMARY KEY CHECK (id = 1), removed INTEGER NOT NULL)",
    "INSERT INTO vector_state (id, removed) VALUES (1, 0)",
    """
    CREATE TRIGGER photo_vectors_removed AFTER DELETE ON photo_vectors BEGIN
        UPDATE vector_state SET removed = removed + 1 WHERE id = 1;
    END
    """,
    # The owners of "a vector goes with its photo" and "a vector is stale", so no writer can
    # forget them: a deleted photo loses its vectors (also without PRAGMA foreign_keys); a new
    # caption or other confident concepts make the text vector owed; new file content makes the
    # image vector owed.
    """
    CREATE TRIGGER photos_vectors_delete AFTER DELETE ON photos BEGIN
        DELETE FROM photo_vectors WHERE photo_id = old.id;
    END
    """,
    """
    CREATE TRIGGER photos_text_vector_stale AFTER UPDATE OF caption, concept_terms ON photos
    WHEN old.caption IS NOT new.caption OR old.concept_terms IS NOT new.concept_terms BEGIN
        DELETE FROM photo_vectors WHERE photo_id = new.id AND kind = 'text';
    END
    """,
    """
    CREATE TRIGGER photos_pixel_vector_stale AFTER UPDATE OF content_hash ON photos
    WHEN old.content_hash IS NOT NULL AND old.content_hash IS NOT new.content_hash BEGIN
        DELETE FROM photo_vectors WHERE photo_id = new.id AND kind = 'pixels';
    END
    """,
)

MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("m001_photos", m001_photos),
    ("m002_captions_fts", m002_captions_fts),
    ("m003_photos_missing_index", m003_photos_missing_index),
    ("m004_photos_write_owed", m004_photos_write_owed),
    ("m005_photo_concepts", m005_photo_concepts),
    ("m006_photo_vectors", m006_photo_vectors),
)


def applied(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations recorded in the database, in the order applied."""
    conn.execute(CREATE_LEDGER)
    return [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY rowid")]


def migrate(
    conn: sqlite3.Connection,
    migrations: tuple[tuple[str, tuple[str, ...]], ...] = MIGRATIONS,
) -> list[str]:
    """Apply the migrations not yet recorded; return their names.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises
    :class:`IndexDatabaseError` if the database records a migration this
    version of photocap does not know (it was written by a newer photocap).
    """
    known = [name for name, _ in migrations]
    # Cheap read first: most opens have nothing to do and must not take the write lock.
    done = set(_applied_if_ledger(conn))
    _check_unknown(done, known)
    if all(name in done for name in known):
        return []
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = set(applied(conn))  # again, under the lock: another process may have migrated
        _check_unknown(done, known)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        new: list[str] = []
        for name, statements in migrations:
            if name in done:
                continue
            for sql in statements:
                conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations(name, applied_at) VALUES (?, ?)", (name, now))
            new.append(name)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return new


def _applied_if_ledger(conn: sqlite3.Connection) -> list[str]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return []
    return [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY rowid")]


def _check_unknown(done: set[str], known: list[str]) -> None:
    unknown = sorted(done - set(known))
    if unknown:
        raise IndexDatabaseError(
            "This index was created by a newer version of photocap (it has schema step(s) "
            f"{', '.join(unknown)}). Upgrade photocap, or use another index with --db."
        )

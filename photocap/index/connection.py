"""Opening the index's SQLite file, and telling its errors to people.

:func:`connect` makes the one connection a :class:`~photocap.index.store.CaptionIndex` holds (WAL
mode, busy timeout, migrated); :func:`database_error` turns an ``sqlite3.Error`` into an
:class:`~photocap.errors.IndexDatabaseError` that says what to do.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from photocap.errors import IndexDatabaseError
from photocap.index.migrations import MIGRATIONS, migrate

DEFAULT_BUSY_TIMEOUT_S = 10.0
# SQLite reports a full disk as a "disk I/O error" when the WAL index can't grow: with less free
# space than this, that error is told as a full disk.
DISK_FULL_BELOW = 1 << 20


def connect(path: Path, *, create: bool, busy_timeout: float, readonly_ok: bool) -> sqlite3.Connection:
    """A migrated autocommit connection to the index at ``path`` (see :meth:`CaptionIndex.open`)."""
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
        error = database_error(path, exc)
        why = _cannot_write(path) if path.exists() else None
        if why is None:
            raise error from exc
        if readonly_ok:
            return _connect_read_only(path, busy_timeout, error)
        raise IndexDatabaseError(
            f"The index {path} can't be written: {why}. `photocap search` and `photocap db "
            "backup` still read it; to change it, make it writable or use --db / PHOTOCAP_DB."
        ) from exc
    return conn


@contextmanager
def told(path: Path) -> Iterator[None]:
    """Raise any ``sqlite3.Error`` in the block as :func:`database_error` tells it."""
    try:
        yield
    except sqlite3.Error as exc:
        raise database_error(path, exc) from exc


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


def database_error(path: Path, exc: sqlite3.Error) -> IndexDatabaseError:
    """What went wrong with the index at ``path``, told with what to do about it."""
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

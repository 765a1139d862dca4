"""CaptionIndex on real SQLite files: rows, user captions, moves, missing/prune, stats, backup, errors."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from photocap.errors import IndexDatabaseError
from photocap.index.store import CaptionIndex
from photocap.records import PhotoUpdate


def row(path: Path | str, caption: str | None = None, source: str | None = "model", **kw) -> PhotoUpdate:
    return PhotoUpdate(str(path), kw.pop("size", 10), kw.pop("mtime_ns", 1_000), caption=caption,
                       source=source if caption else None, score=-0.5 if caption and source == "model" else None,
                       model="m1" if caption and source == "model" else None, **kw)


@pytest.fixture
def index(tmp_path: Path):
    with CaptionIndex.open(tmp_path / "deep" / "er" / "index.db") as idx:
        yield idx


def test_open_creates_parent_wal_and_schema(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "i.db"
    with CaptionIndex.open(db) as idx:
        assert db.exists()
        assert idx.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert idx.connection.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        assert idx.stats()["schema"][:2] == ["m001_photos", "m002_captions_fts"]


def test_upsert_get_iter(index: CaptionIndex, tmp_path: Path) -> None:
    a, b = tmp_path / "p" / "a.jpg", tmp_path / "p" / "sub" / "b.jpg"
    n = index.upsert_photos([row(a, "a dog", width=4, height=3, taken_at="2020-01-02T03:04:05",
                                 camera="Canon EOS", content_hash="h1"),
                             row(b, "a cat"), row(tmp_path / "q.jpg")])
    assert n == 3
    rec = index.get(a)
    assert rec is not None and rec.path == str(a) and rec.caption == "a dog" and rec.source == "model"
    assert (rec.width, rec.height, rec.camera, rec.content_hash) == (4, 3, "Canon EOS", "h1")
    assert rec.captioned_at and rec.model == "m1" and rec.missing is False and rec.mtime == 1e-6
    assert [r.path for r in index.iter_photos(tmp_path / "p")] == [str(a), str(b)]
    assert [r.path for r in index.iter_photos(tmp_path / "p" / "sub")] == [str(b)]
    assert len(list(index.iter_photos())) == 3
    # facts update keeps the caption and other facts when None
    index.upsert_photos([PhotoUpdate(str(a), 11, 2_000)])
    rec = index.get(a)
    assert (rec.size, rec.mtime_ns, rec.caption, rec.width, rec.content_hash) == (11, 2_000, "a dog", 4, "h1")


def test_user_caption_is_never_replaced_by_model_unless_forced(index: CaptionIndex, tmp_path: Path) -> None:
    p = tmp_path / "a.jpg"
    index.upsert_photos([row(p, "a dog")])
    rec = index.set_user_caption(p, "  Rex   on the beach ")
    assert rec.caption == "Rex on the beach" and rec.source == "user" and rec.score is None
    index.upsert_photos([row(p, "a brown dog")])
    assert index.get(p).caption == "Rex on the beach"
    assert index.search("rex")[0].record.path == str(p)
    index.upsert_photos([row(p, "a brown dog")], force=True)
    assert index.get(p).caption == "a brown dog" and index.get(p).source == "model"
    with pytest.raises(IndexDatabaseError):
        index.set_user_caption(tmp_path / "unknown.jpg", "x")
    with pytest.raises(ValueError):
        index.set_user_caption(p, "   ")


def test_move_file_and_folder_keeps_captions(index: CaptionIndex, tmp_path: Path) -> None:
    a = tmp_path / "old" / "a.jpg"
    b = tmp_path / "old" / "x" / "b.jpg"
    other = tmp_path / "old2" / "c.jpg"  # shares a prefix, must not move
    index.upsert_photos([row(a, "a dog"), row(b, "a cat"), row(other, "a cow")])
    index.set_user_caption(b, "my cat")
    assert index.move_path(tmp_path / "old", tmp_path / "new") == 2
    assert index.get(tmp_path / "new" / "a.jpg").caption == "a dog"
    moved_b = index.get(tmp_path / "new" / "x" / "b.jpg")
    assert moved_b.caption == "my cat" and moved_b.source == "user"
    assert index.get(other).caption == "a cow"
    assert index.move_path(tmp_path / "new" / "a.jpg", tmp_path / "a2.jpg") == 1
    assert index.get(tmp_path / "a2.jpg").caption == "a dog"
    assert index.search("cat")[0].record.path == str(tmp_path / "new" / "x" / "b.jpg")


def test_missing_search_and_delete(index: CaptionIndex, tmp_path: Path) -> None:
    present = tmp_path / "here.jpg"
    present.write_bytes(b"x")
    gone = tmp_path / "gone.jpg"
    index.upsert_photos([row(present, "a red car"), row(gone, "a red bus")])
    assert index.mark_missing([present, gone]) == 2
    assert index.get(gone).missing
    assert index.search("red") == [] and index.count_matches("red") == 0
    assert len(index.search("red", include_missing=True)) == 2
    assert index.mark_missing([present], missing=False) == 1  # it came back
    assert index.delete([gone]) == 1
    assert index.get(gone) is None
    assert index.get(present).missing is False
    assert index.count_matches("red") == 1


def test_stats_and_find_by_hash(index: CaptionIndex, tmp_path: Path) -> None:
    index.upsert_photos([row(tmp_path / "a.jpg", "x", content_hash="h"), row(tmp_path / "b.jpg", "y"),
                         row(tmp_path / "c.jpg", error="truncated")])
    index.set_user_caption(tmp_path / "b.jpg", "mine")
    index.mark_missing([tmp_path / "a.jpg"])
    s = index.stats()
    assert (s["photos"], s["model_captions"], s["user_captions"], s["failed"], s["missing"]) == (3, 1, 1, 1, 1)
    assert s["models"] == {"m1": 1} and s["db_bytes"] > 0
    assert [r.path for r in index.find_by_hash("h")] == [str(tmp_path / "a.jpg")]
    fp = index.fingerprint(tmp_path / "c.jpg")
    assert fp is not None and fp.complete and fp.size == 10


def test_backup_is_a_working_copy(index: CaptionIndex, tmp_path: Path) -> None:
    index.upsert_photos([row(tmp_path / f"{i}.jpg", f"a dog number {i}") for i in range(50)])
    dest = index.backup(tmp_path / "backups" / "copy.db")
    with CaptionIndex.open(dest) as copy:
        assert copy.count() == 50 and copy.count_matches("dogs") == 50
    with pytest.raises(IndexDatabaseError):
        index.backup(index.path)


def test_open_errors_are_clear(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(IndexDatabaseError, match="not a usable photocap index"):
        CaptionIndex.open(junk)
    with pytest.raises(IndexDatabaseError, match="is a folder"):
        CaptionIndex.open(tmp_path)
    with pytest.raises(IndexDatabaseError, match="No photo index"):
        CaptionIndex.open(tmp_path / "none.db", create=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(IndexDatabaseError, match="Cannot create the folder"):
        CaptionIndex.open(blocker / "sub" / "i.db")


def test_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    CaptionIndex.open(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with CaptionIndex.open(db, busy_timeout=0.2) as idx:  # reading the schema needs a shared lock
            with pytest.raises(IndexDatabaseError, match="locked"):
                idx.upsert_photos([row(tmp_path / "a.jpg", "x")])
    except IndexDatabaseError as exc:
        assert "locked" in str(exc)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_concurrent_read_during_write(tmp_path: Path) -> None:
    """WAL: a reader in another connection searches while a writer holds an open transaction."""
    db = tmp_path / "i.db"
    with CaptionIndex.open(db) as writer:
        writer.upsert_photos([row(tmp_path / f"old{i}.jpg", "a dog on grass") for i in range(100)])
        errors: list[BaseException] = []
        counts: list[int] = []
        stop = threading.Event()

        def read() -> None:
            try:
                with CaptionIndex.open(db) as reader:
                    while not stop.is_set():
                        counts.append(reader.count_matches("dog"))
                        reader.search("dog", limit=5)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        t = threading.Thread(target=read)
        t.start()
        with writer.transaction():  # a long write transaction
            for i in range(300):
                writer.upsert_photos([row(tmp_path / f"new{i}.jpg", "a dog in snow")])
            time.sleep(0.3)
            assert counts and set(counts) == {100}  # readers see the committed state, unblocked
        deadline = time.monotonic() + 5
        while counts[-1] != 400 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        t.join()
        assert not errors and counts[-1] == 400
    # another process can read too
    out = subprocess.run([sys.executable, "-c", f"from photocap.index.store import CaptionIndex; "
                          f"print(CaptionIndex.open({str(db)!r}).count_matches('snow'))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "300"


def test_store_never_imports_torch_or_qt() -> None:
    code = ("import sys; from photocap.index.store import CaptionIndex; import photocap.index.migrations; "
            "bad = [m for m in ('torch', 'PySide6', 'PIL', 'photocap.metadata') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_write_owed_is_kept_with_the_caption_until_cleared(index: CaptionIndex, tmp_path: Path) -> None:
    a, b, c = (tmp_path / "lib" / n for n in ("a.jpg", "b.jpg", "c.jpg"))
    index.upsert_photos([row(a, "x", write_owed=True), row(b, "y"), row(c, "z", write_owed=True)])
    assert index.owed_writes(under=tmp_path / "lib") == [str(a), str(c)]
    index.upsert_photos([row(a, None, size=11)])  # a fingerprint refresh alone keeps the flag
    assert index.get(a).write_owed and index.get(a).size == 11
    index.mark_missing([c])
    assert index.owed_writes() == [str(a)]  # a missing file waits until it is back
    assert index.set_write_owed([a], False) == 1 and index.owed_writes() == []
    index.set_user_caption(b, "mine", write_owed=True)
    assert index.get(b).write_owed and index.stats()["write_owed"] == 2
    assert [r.path for r in index.list_photos(limit=2, offset=1)] == [str(b), str(c)]
    assert [r.path for r in index.list_photos(limit=5, include_missing=False)] == [str(a), str(b)]


def test_a_model_caption_replaces_a_user_caption_only_when_told(index: CaptionIndex, tmp_path: Path) -> None:
    p = tmp_path / "p.jpg"
    index.upsert_photos([row(p, "mine", source="user")])
    index.upsert_photos([row(p, "the model's")])
    assert index.get(p).caption == "mine"
    index.upsert_photos([PhotoUpdate(str(p), 10, 1_000, caption="the model's", source="model", replaces_user=True)])
    assert index.get(p).caption == "the model's" and index.get(p).source == "model"

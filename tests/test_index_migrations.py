"""Schema migrations: from an empty file, from the previous schema with data, and a newer schema."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from photocap.errors import IndexDatabaseError
from photocap.index.migrations import MIGRATIONS, applied, migrate
from photocap.index.store import CaptionIndex
from photocap.records import PhotoRecord


def test_from_empty_file(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    db.touch()  # an empty file is an empty database
    CaptionIndex.open(db).close()
    inspect = sqlite_utils.Database(db)
    assert {"photos", "captions_fts", "schema_migrations"} <= set(inspect.table_names())
    assert {t.name for t in inspect.triggers} == {"photos_fts_insert", "photos_fts_delete", "photos_fts_update",
                                                  "photo_vectors_removed", "photos_vectors_delete",
                                                  "photos_text_vector_stale", "photos_pixel_vector_stale"}
    assert [r["name"] for r in inspect["schema_migrations"].rows] == [name for name, _ in MIGRATIONS]


def test_reopen_is_a_no_op(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    CaptionIndex.open(db).close()
    conn = sqlite3.connect(db, isolation_level=None)
    assert migrate(conn) == []
    conn.close()


def test_from_previous_schema_keeps_data_and_indexes_it(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    assert migrate(conn, MIGRATIONS[:1]) == ["m001_photos"]  # as photocap with only m001 left it
    conn.execute(
        "INSERT INTO photos (path, size, mtime_ns, caption, source, indexed_at) "
        "VALUES ('/p/a.jpg', 1, 1, 'two dogs running on sand', 'user', 'now')"
    )
    conn.close()
    with CaptionIndex.open(db) as idx:
        assert idx.stats()["schema"] == [name for name, _ in MIGRATIONS]
        hits = idx.search("dog runs")
        assert [h.record.path for h in hits] == ["/p/a.jpg"] and hits[0].record.source == "user"


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "i.db", isolation_level=None)
    broken = MIGRATIONS[:1] + (("m002_broken", ("CREATE TABLE ok (x)", "THIS IS NOT SQL")),)
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    assert applied(conn) == []
    assert not {"photos", "ok"} & set(sqlite_utils.Database(conn).table_names())


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    CaptionIndex.open(db).close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("INSERT INTO schema_migrations VALUES ('m999_from_the_future', 'later')")
    conn.close()
    with pytest.raises(IndexDatabaseError, match="newer version of photocap"):
        CaptionIndex.open(db)


def test_the_photo_record_reads_columns_the_schema_has(tmp_path: Path) -> None:
    """PhotoRecord.COLUMNS (what every read selects) names its fields in order, and the migrated
    ``photos`` table has each of them with the type the record expects."""
    assert PhotoRecord.COLUMNS.split(", ") == [f.name for f in dataclasses.fields(PhotoRecord)]
    db = tmp_path / "i.db"
    CaptionIndex.open(db).close()
    columns = sqlite_utils.Database(db)["photos"].columns_dict
    assert {name: columns.get(name) for name in PhotoRecord.COLUMNS.split(", ")} == {
        "id": int, "path": str, "size": int, "mtime_ns": int, "content_hash": str, "width": int, "height": int,
        "taken_at": str, "camera": str, "caption": str, "score": float, "model": str, "captioned_at": str,
        "source": str, "missing": int, "error": str, "indexed_at": str, "write_owed": int, "concepts_model": str}


def test_the_documented_sqlite_utils_commands_read_a_real_index(tmp_path: Path, sample_photos) -> None:
    """docs/commands/indexing.md shows sqlite-utils' command line on the index: those commands, on an
    index `photocap index` wrote, in a process of their own (its installed entry point)."""
    import json
    import shutil
    import subprocess

    from click.testing import CliRunner

    from photocap.cli import cli

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(sample_photos["coffee.jpg"], folder / "coffee.jpg")
    db = tmp_path / "index.db"
    result = CliRunner().invoke(cli, ["index", str(folder), "--db", str(db), "--workers", "0"])
    assert result.exit_code == 0, result.output
    tool = shutil.which("sqlite-utils")
    assert tool, "sqlite-utils is a dependency: its command line is installed with photocap"

    def run(*args: str) -> list[dict]:
        out = subprocess.run([tool, *args], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    counts = {t["table"]: t["count"] for t in run("tables", str(db), "--counts")}
    assert counts["photos"] == 1
    (row,) = run("rows", str(db), "photos", "--limit", "3", "-c", "path", "-c", "caption", "-c", "source")
    assert row["path"].endswith("coffee.jpg") and row["caption"] and row["source"] == "model"
    assert run("query", str(db), "select source, count(*) as n from photos group by source") == [
        {"source": "model", "n": 1}]

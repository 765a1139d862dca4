"""A full disk and a read-only index: clear errors, nothing corrupted, a rerun continues.

The disk is a real 1 MiB tmpfs mounted for the test, filled up; a read-only index is a
file without write permission (or, as root, whom permissions do not stop, a tmpfs
remounted read-only). Mounting needs root with CAP_SYS_ADMIN: where that is not
allowed the tests say so and skip; docs/reliability.md describes the same check
by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostile import corpus

MOUNT_HELP = "see docs/reliability.md for the same check by hand"


def photocap(*args: str, db: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PHOTOCAP_DB": str(db)}
    env.pop("PHOTOCAP_MODEL", None)
    return subprocess.run([sys.executable, "-c", "from photocap.cli import cli; cli(prog_name='photocap')", *args],
                          capture_output=True, text=True, timeout=300, env=env)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "1m") -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip(f"mounting a small tmpfs needs root ({MOUNT_HELP})")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"this machine does not allow a tmpfs mount: {out.stderr.strip()} ({MOUNT_HELP})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the file system under ``folder`` to the last byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
        while out.write(b"\0" * 4096):
            pass
    return filler


def photos_with_descriptions(folder: Path, n: int, seed: int) -> list[Path]:
    """JPEGs carrying a person's description: `photocap index` adopts them without the model."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        packet = corpus.xmp_packet(corpus.description(f"photo {i} of {folder.name}, " + "words " * 30))
        path = folder / f"p{i:04d}.jpg"
        path.write_bytes(corpus.jpeg_bytes(rng, packets=[packet]))
        paths.append(path)
    return paths


def integrity(db: Path) -> tuple[str, int]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0], conn.execute(
            "SELECT count(*) FROM photos WHERE caption IS NOT NULL").fetchone()[0]
    finally:
        conn.close()


def test_index_on_a_full_disk(tmp_path):
    first = photos_with_descriptions(tmp_path / "first", 20, 0)
    second = photos_with_descriptions(tmp_path / "second", 400, 1)
    with tmpfs(tmp_path / "disk", size="3m") as disk:  # 420 photos and their vectors (~1.7 KB each) fit
        db = disk / "index.db"
        out = photocap("index", str(first[0].parent), "--workers", "0", db=db)
        assert out.returncode == 0, out.stderr
        filler = fill(disk)
        out = photocap("index", str(second[0].parent), "--workers", "0", db=db)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert f"The disk holding the index {db} is full" in out.stderr
        filler.unlink()
        assert integrity(db) == ("ok", 20)  # nothing lost or corrupted
        out = photocap("index", str(second[0].parent), "--workers", "0", db=db)
        assert out.returncode == 0, out.stderr
        assert integrity(db) == ("ok", 420)


def test_write_on_a_full_disk(tmp_path):
    with tmpfs(tmp_path / "disk", size="256k") as disk:
        photo = photos_with_descriptions(disk / "photos", 1, 2)[0]
        db = tmp_path / "index.db"
        out = photocap("index", str(photo.parent), "--workers", "0", db=db)
        assert out.returncode == 0, out.stderr
        before = hashlib.sha256(photo.read_bytes()).hexdigest()
        filler = fill(disk)
        out = photocap("write", str(photo), "--force", "--json", db=db)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        (row,) = [json.loads(line) for line in out.stdout.splitlines()]
        assert row["event"] == "failed" and "No space left on device" in row["reason"]
        assert hashlib.sha256(photo.read_bytes()).hexdigest() == before
        assert sorted(p.name for p in photo.parent.iterdir()) == [photo.name]  # no temp file left
        filler.unlink()
        out = photocap("write", str(photo), "--force", "--json", db=db)
        assert out.returncode == 0 and json.loads(out.stdout)["target"] == "embed"


@pytest.fixture
def read_only_index(tmp_path) -> Iterator[tuple[Path, Path]]:
    """(index, a folder of new photos): an index of 20 photos that cannot be written."""
    first = photos_with_descriptions(tmp_path / "first", 20, 3)
    new = photos_with_descriptions(tmp_path / "new", 5, 4)[0].parent
    if os.geteuid() != 0:
        db = tmp_path / "ro" / "index.db"
        assert photocap("index", str(first[0].parent), "--workers", "0", db=db).returncode == 0
        db.chmod(0o444)
        db.parent.chmod(0o555)
        yield db, new
        db.parent.chmod(0o755)
        return
    with tmpfs(tmp_path / "ro", size="4m") as disk:
        db = disk / "index.db"
        assert photocap("index", str(first[0].parent), "--workers", "0", db=db).returncode == 0
        out = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip(f"can't remount the tmpfs read-only: {out.stderr.strip()} ({MOUNT_HELP})")
        yield db, new


def test_a_read_only_index_is_read_and_never_written(read_only_index, tmp_path):
    db, new = read_only_index
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    out = photocap("search", "photo", "--paths-only", "--limit", "100", db=db)
    assert out.returncode == 0 and len(out.stdout.split()) == 20, out.stderr
    out = photocap("db", "status", "--json", db=db)
    assert out.returncode == 0 and json.loads(out.stdout)["photos"] == 20
    copy = tmp_path / "copy.db"
    out = photocap("db", "backup", str(copy), db=db)
    assert out.returncode == 0 and integrity(copy) == ("ok", 20)
    out = photocap("index", str(new), "--workers", "0", db=db)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"The index {db} can't be written" in out.stderr and "read-only" in out.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before

"""Killed for real: SIGKILL an indexer and check what is left behind, and what a rerun does."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from photocap.index.store import CaptionIndex
from photocap.metadata.reader import read_metadata

from test_pipeline import make_photo

HELPER = Path(__file__).resolve().parent / "kill_helpers.py"


def start(mode: str, db: Path, folder: Path) -> subprocess.Popen[str]:
    # The helper imports the photocap these tests import (a checkout on PYTHONPATH, or the installed one).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(HELPER.parent), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.Popen([sys.executable, str(HELPER), mode, str(db), str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def wait_for(cond, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    for i in range(12):
        make_photo(folder / f"p{i:02d}.jpg", i + 100, size=(96, 64))
    return folder


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_no_decode_worker_outlives_a_sigkilled_indexer(tmp_path: Path, photos: Path) -> None:
    proc = start("slow", tmp_path / "index.db", photos)
    try:
        assert proc.stdout is not None
        wait_for(lambda: proc.stdout.readline().strip() == "READY", 60, "the indexer to start decoding")
        # the indexer, the forkserver, two workers (and the resource tracker)
        def started() -> list[int] | None:
            members = group_members(proc.pid)
            return members if len(members) >= 4 else None

        members = wait_for(started, 60, "the decode workers to start")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: not group_members(proc.pid), 20, f"the workers {members} to exit")
        assert proc.stdout.read() == ""  # end of file: nothing holds the pipe any more
    finally:
        if proc.poll() is None:
            proc.kill()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def captions_in_files(db: Path) -> tuple[int, int, int]:
    """(captioned records, of them holding their caption in the file, still owing a write)."""
    with CaptionIndex.open(db) as index:
        records = [r for r in index.iter_photos() if r.caption]
        owed = index.stats()["write_owed"]
    held = sum(1 for r in records if read_metadata(r.path).caption == r.caption)
    return len(records), held, owed


def test_killed_between_commit_and_write_the_rerun_writes_them(tmp_path: Path, photos: Path) -> None:
    db = tmp_path / "index.db"
    killed = start("die-before-write", db, photos)
    killed.wait(120)
    assert killed.returncode == -signal.SIGKILL
    captioned, held, owed = captions_in_files(db)
    assert captioned == 4 and held == 0 and owed == 4  # the first batch: committed, not written
    rerun = start("write", db, photos)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert captions_in_files(db) == (12, 12, 0), out
    third = start("write", db, photos)
    out, _ = third.communicate(timeout=120)
    assert "captioned=0 written=0" in out  # nothing left to do


@pytest.mark.parametrize("trial", range(3))
def test_killed_at_a_random_moment_the_rerun_writes_every_caption(tmp_path: Path, photos: Path, trial: int) -> None:
    db = tmp_path / "index.db"
    proc = start("write", db, photos)
    assert proc.stdout is not None
    wait_for(lambda: proc.stdout.readline().strip() == "STARTED", 60, "the indexer to start")
    time.sleep(random.Random(trial).uniform(0.2, 2.5))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    rerun = start("write", db, photos)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert captions_in_files(db) == (12, 12, 0), out

"""Killed for real: SIGKILL an indexer and check what is left behind, and what a rerun does."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from helpers import captions_in_files, group_members, make_photo, start, wait_for


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
        wait_for(lambda: proc.stdout.readline().strip() == "READY", "the indexer to start decoding", 60)
        # the indexer, the forkserver, two workers (and the resource tracker)
        def started() -> list[int] | None:
            members = group_members(proc.pid)
            return members if len(members) >= 4 else None

        members = wait_for(started, "the decode workers to start", 60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: not group_members(proc.pid), f"the workers {members} to exit", 20)
        assert proc.stdout.read() == ""  # end of file: nothing holds the pipe any more
    finally:
        if proc.poll() is None:
            proc.kill()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


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
    wait_for(lambda: proc.stdout.readline().strip() == "STARTED", "the indexer to start", 60)
    time.sleep(random.Random(trial).uniform(0.2, 2.5))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    rerun = start("write", db, photos)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert captions_in_files(db) == (12, 12, 0), out

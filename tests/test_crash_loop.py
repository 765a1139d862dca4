"""The crash loop: SIGKILL the indexer and the writer at random moments, again and again.

Each trial starts from a fresh folder of JPEGs that carry a camera's EXIF tags, kills a
real process outright at a random moment and checks what the kill left: the index passes
``PRAGMA integrity_check``, no worker process is left running, every photo is either the
file it was (byte for byte) or a complete written one (the same pixels, the camera's tags,
the index's caption), and nothing else is in the folder but photocap's own temp files.
Then a rerun completes: every photo captioned once (the rerun captions only what the killed
run had not committed), written into its file, and no temp file left.

* The indexer is ``index --write-metadata`` with two decode workers, through photocap's
  pipeline with a fast fake captioner (tests/kill_helpers.py: the model is not what is
  tested, and loading it in every trial would cost the loop its length), killed after a
  random number of its outcomes (captioned, written) are reported, a little into the next.
* The writer is the real ``photocap write`` command, killed after a random number of
  its files are reported, a few milliseconds into the next one.

Bounded by default (12 kills of each); ``PHOTOCAP_CRASH_LONG=1`` runs 60 of each.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from photocap.index.store import CaptionIndex
from photocap.metadata import atomic
from photocap.metadata.reader import read_metadata

from helpers import captions_in_files, group_members, make_photo, start, wait_for

KILLS = 60 if os.environ.get("PHOTOCAP_CRASH_LONG") == "1" else 12
PHOTOS = 16
MAKE = "CrashLoopCam"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")]


@dataclass(frozen=True)
class Original:
    data: bytes
    pixels: str  # sha256 of the decoded RGB pixels


def pixels(path: Path) -> str:
    with Image.open(path) as img:
        return hashlib.sha256(img.convert("RGB").tobytes()).hexdigest()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> dict[str, Original]:
    """The photos every trial starts from: 480x320 JPEGs with a camera's EXIF Make and Model."""
    folder = tmp_path_factory.mktemp("template")
    exif = Image.Exif()
    exif[0x010F] = MAKE  # Make
    exif[0x0110] = "Model 7"  # Model
    for i in range(PHOTOS):
        make_photo(folder / f"p{i:02d}.jpg", 300 + i, size=(480, 320), exif=exif.tobytes())
    return {p.name: Original(p.read_bytes(), pixels(p)) for p in sorted(folder.iterdir())}


def fresh(folder: Path, template: dict[str, Original]) -> Path:
    folder.mkdir(parents=True)
    for name, original in template.items():
        (folder / name).write_bytes(original.data)
    return folder


def integrity_ok(db: Path) -> None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def db_captions(db: Path) -> dict[str, str]:
    with CaptionIndex.open(db) as index:
        return {Path(r.path).name: r.caption for r in index.iter_photos() if r.caption}


def check_folder(folder: Path, template: dict[str, Original], db: Path) -> tuple[int, int, int]:
    """(photos written, photos untouched, temp files) after a kill; fails on anything else."""
    captions = db_captions(db)
    written = untouched = temps = 0
    for path in sorted(folder.iterdir()):
        if path.name not in template:
            assert atomic.is_temp_name(path.name), f"a stray file: {path.name}"
            temps += 1
            continue
        original = template[path.name]
        data = path.read_bytes()
        if data == original.data:
            untouched += 1
            continue
        # not the original: then a complete write, never half of one
        assert pixels(path) == original.pixels, f"{path.name}: the pixels changed"
        with Image.open(path) as img:
            assert img.getexif().get(0x010F) == MAKE, f"{path.name}: the camera's EXIF is gone"
        assert read_metadata(path).caption == captions.get(path.name), f"{path.name}: not the index's caption"
        written += 1
    return written, untouched, temps


def no_process_left(pgid: int) -> None:
    wait_for(lambda: not group_members(pgid), f"the processes of the killed run ({pgid}) to exit", 20)


def kill_after(proc: subprocess.Popen[str], lines: int, seconds: float) -> float:
    """SIGKILL ``proc`` once it has printed ``lines`` more lines and ``seconds`` more have passed;
    wait until every process of its run is gone. Returns the moment of the kill."""
    assert proc.stdout is not None
    for _ in range(lines):
        if not proc.stdout.readline():
            break
    time.sleep(seconds)
    os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    proc.wait(30)
    no_process_left(proc.pid)
    return killed_at


def let_temps_age(killed_at: float, temps: int) -> None:
    """A temp file younger than atomic.STALE_AFTER_S may be a live writer's before its lock:
    the rerun removes a killed write's temp file only once it is that old."""
    if temps:
        time.sleep(max(0.0, atomic.STALE_AFTER_S + 0.1 - (time.monotonic() - killed_at)))


def exiftool_agrees(folder: Path, captions: dict[str, str]) -> None:
    """Every photo holds the index's caption and the camera's Make, as exiftool reads them."""
    if shutil.which("exiftool") is None:
        return  # photocap's own reader checked them above; CI installs exiftool
    out = subprocess.run(["exiftool", "-j", "-XMP-dc:Description", "-EXIF:ImageDescription", "-EXIF:Make",
                          str(folder)], capture_output=True, text=True, timeout=120)
    rows = {Path(r["SourceFile"]).name: r for r in json.loads(out.stdout)}
    assert set(rows) == set(captions)
    for name, row in rows.items():
        assert row["Make"] == MAKE and row["Description"] == captions[name] == row["ImageDescription"], row


def photocap_write(folder: Path, db: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PHOTOCAP_DB": str(db)}
    return subprocess.Popen([sys.executable, "-c", "from photocap.cli import cli; cli(prog_name='photocap')",
                             "write", str(folder), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)


def outcome_lines(proc: subprocess.Popen[str]) -> int:
    """Read a `loop` run's output to its end; how many outcomes it reported."""
    assert proc.stdout is not None
    return sum(1 for line in proc.stdout if line.startswith("OUTCOME "))


@pytest.fixture(scope="module")
def indexer_outcomes(tmp_path_factory, template) -> int:
    """How many outcomes one whole `loop` run reports here: kills land among them."""
    root = tmp_path_factory.mktemp("calibrate")
    proc = start("loop", root / "index.db", fresh(root / "photos", template))
    count = outcome_lines(proc)
    assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
    assert count == 2 * PHOTOS  # each photo captioned, then written
    return count


@pytest.mark.parametrize("trial", range(KILLS))
def test_the_indexer_killed_at_a_random_moment(tmp_path, template, indexer_outcomes, trial) -> None:
    rng = random.Random(f"indexer-{trial}")
    db, folder = tmp_path / "index.db", fresh(tmp_path / "photos", template)
    proc = start("loop", db, folder)
    assert proc.stdout is not None
    wait_for(lambda: proc.stdout.readline().strip() == "STARTED", "the indexer to start", 60)
    killed_at = kill_after(proc, rng.randrange(indexer_outcomes), rng.uniform(0.0, 0.05))

    if db.exists():
        integrity_ok(db)
        before = db_captions(db)
    else:
        before = {}
    written, untouched, temps = check_folder(folder, template, db) if db.exists() else (0, PHOTOS, 0)
    assert written + untouched == PHOTOS

    let_temps_age(killed_at, temps)
    rerun = start("write", db, folder)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert f"captioned={PHOTOS - len(before)} " in out, (out, len(before))  # each photo captioned once
    integrity_ok(db)
    after = db_captions(db)
    assert {k: after[k] for k in before} == before  # what the killed run committed is kept
    assert check_folder(folder, template, db) == (PHOTOS, 0, 0)  # every photo written, no temp file
    assert captions_in_files(db) == (PHOTOS, PHOTOS, 0)
    exiftool_agrees(folder, after)


@pytest.mark.parametrize("trial", range(KILLS))
def test_the_writer_killed_at_a_random_moment(tmp_path, template, trial) -> None:
    rng = random.Random(f"writer-{trial}")
    db, folder = tmp_path / "index.db", fresh(tmp_path / "photos", template)
    indexed = start("index-only", db, folder)
    out, err = indexed.communicate(timeout=120)
    assert indexed.returncode == 0 and f"captioned={PHOTOS} written=0" in out, err
    captions = db_captions(db)
    assert check_folder(folder, template, db) == (0, PHOTOS, 0)

    proc = photocap_write(folder, db)
    assert proc.stdout is not None
    reported = rng.randrange(PHOTOS)
    killed_at = kill_after(proc, reported, rng.uniform(0.0, 0.03))

    integrity_ok(db)
    written, untouched, temps = check_folder(folder, template, db)
    assert written + untouched == PHOTOS and written >= reported

    let_temps_age(killed_at, temps)
    rerun = photocap_write(folder, db)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    events = sorted((r["event"], r.get("skip")) for r in rows)
    # the photos the killed run finished are up to date; the rest are written now
    assert events == sorted([("skipped", "up_to_date")] * written + [("written", None)] * untouched), rows
    integrity_ok(db)
    assert db_captions(db) == captions  # writing never changes a caption
    assert check_folder(folder, template, db) == (PHOTOS, 0, 0)
    exiftool_agrees(folder, captions)

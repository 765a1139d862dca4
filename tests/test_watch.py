"""The watcher, for real: a watchdog observer on a temporary folder, a real SQLite index and
the tiny model, run in a thread. Every wait is a poll with a deadline."""

from __future__ import annotations

import errno
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for

from photocap.index.store import CaptionIndex
from photocap.records import PhotoRecord
from photocap.library.pipeline import IndexOptions
from photocap.library.watch import (
    CAPTIONED,
    CAUGHT_UP,
    ERROR,
    FAILED,
    MISSING,
    MOVED,
    STOPPED,
    WRITTEN,
    WatchEvent,
    Watcher,
    WatchOptions,
    inotify_limit_message,
)

SETTLE = 0.3
DEADLINE = 30.0


# --------------------------------------------------------------------------- helpers


class CountingCaptioner:
    """Wraps the real captioner and records every model batch size."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.batches: list[int] = []

    @property
    def model_id(self) -> str:
        return self.real.model_id

    @property
    def image_size(self) -> int:
        return self.real.image_size

    def describe_images(self, images: Sequence[Any]) -> list[Any]:
        self.batches.append(len(images))
        return self.real.describe_images(images)


@pytest.fixture(scope="module")
def real_captioner(tiny_model_path: Path) -> Any:
    from photocap.captioner import Captioner

    return Captioner(tiny_model_path, device="cpu", beam=1)


@pytest.fixture
def counting(real_captioner: Any) -> CountingCaptioner:
    return CountingCaptioner(real_captioner)


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    folder = tmp_path / "watched"
    folder.mkdir()
    return folder


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "index.db"


class Events:
    """Thread-safe event log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[WatchEvent] = []

    def __call__(self, e: WatchEvent) -> None:
        with self._lock:
            self.items.append(e)

    def of(self, kind: str, path: Path | str | None = None) -> list[WatchEvent]:
        with self._lock:
            return [e for e in self.items if e.kind == kind and (path is None or e.path == str(path))]


@contextmanager
def running(
    roots: Sequence[Path], db: Path, captioner: CountingCaptioner, **opts: Any
) -> Iterator[tuple[Watcher, Events]]:
    index_opts = IndexOptions(batch_size=opts.pop("batch_size", 4), workers=0,
                              write_metadata=opts.pop("write_metadata", False))
    events = Events()
    w = Watcher(roots, db, WatchOptions(index=index_opts, settle=SETTLE, **opts),
                lambda: captioner, events)
    w.start()
    try:
        assert w.wait_ready(DEADLINE), "watcher did not finish its catch-up"
        assert w.error is None, w.error
        yield w, events
    finally:
        w.stop(DEADLINE)
    assert not w.running
    assert events.of(STOPPED)
    assert w.error is None, w.error


def record(db: Path, path: Path) -> PhotoRecord | None:
    with CaptionIndex.open(db) as idx:
        return idx.get(path)


def captioned(db: Path, path: Path) -> PhotoRecord | None:
    r = record(db, path)
    return r if r is not None and r.caption else None


_JPEGS: dict[int, bytes] = {}


def jpeg_bytes(sample_photos: dict[str, Path], seed: int) -> bytes:
    """A distinct real JPEG (a sample photo with a coloured square), so hashes differ."""
    if seed not in _JPEGS:
        from PIL import Image, ImageDraw

        names = sorted(sample_photos)
        with Image.open(sample_photos[names[seed % len(names)]]) as src:
            img = src.convert("RGB").resize((160, 120))
        ImageDraw.Draw(img).rectangle((0, 0, 20, 20), fill=(seed * 37 % 256, seed * 91 % 256, seed * 13 % 256))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        _JPEGS[seed] = buf.getvalue()
    return _JPEGS[seed]


# --------------------------------------------------------------------------- tests


def test_new_photo_is_captioned_into_the_index(watched, db, counting, sample_photos):
    with running([watched], db, counting) as (_, events):
        photo = watched / "new.jpg"
        photo.write_bytes(jpeg_bytes(sample_photos, 1))
        rec = wait_for(lambda: captioned(db, photo), "the new photo's caption")
        assert rec.source == "model" and rec.size == photo.stat().st_size
        wait_for(lambda: events.of(CAPTIONED, photo), "the captioned event")
        (ev,) = events.of(CAPTIONED, photo)
        assert ev.caption == rec.caption and ev.batch == 1
        assert counting.batches == [1]


def test_slowly_written_file_is_captioned_once_and_only_when_complete(watched, db, counting, sample_photos):
    data = jpeg_bytes(sample_photos, 2)
    photo = watched / "slow.jpg"
    # A long grace: only the settle time and the decode check may hold the file back here.
    with running([watched], db, counting, incomplete_grace=10.0) as (w, events):
        pieces = [data[i : i + len(data) // 4 + 1] for i in range(0, len(data), len(data) // 4 + 1)]
        with open(photo, "wb") as f:
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(SETTLE + 0.2)  # longer than the settle time: only decoding tells
                f.write(piece)
                f.flush()
                complete_at = time.time()
        rec = wait_for(lambda: captioned(db, photo), "the slow photo's caption")
        wait_for(w.idle, "the watcher to be idle")
        assert rec.size == len(data) and rec.error is None
        evs = events.of(CAPTIONED, photo)
        assert len(evs) == 1 and evs[0].time >= complete_at
        assert not events.of(FAILED)
        assert counting.batches == [1]


def test_burst_is_captioned_in_batches(watched, db, counting, sample_photos, tmp_path):
    n = 10
    staging = tmp_path / "staging"
    staging.mkdir()
    for i in range(n):
        (staging / f"burst{i:02d}.jpg").write_bytes(jpeg_bytes(sample_photos, 10 + i))
    with running([watched], db, counting, batch_size=4) as (_, events):
        for i in range(n):  # dropped in at once
            os.rename(staging / f"burst{i:02d}.jpg", watched / f"burst{i:02d}.jpg")
        wait_for(lambda: len(events.of(CAPTIONED)) >= n, f"{n} captions")
        assert sum(counting.batches) == n
        assert max(counting.batches) > 1, counting.batches
        assert max(e.batch or 0 for e in events.of(CAPTIONED)) > 1
        with CaptionIndex.open(db) as idx:
            assert all(idx.get(watched / f"burst{i:02d}.jpg").caption for i in range(n))


def test_moves_keep_captions_and_deletions_are_recorded(watched, db, counting, sample_photos):
    with running([watched], db, counting) as (_, events):
        a = watched / "a.jpg"
        a.write_bytes(jpeg_bytes(sample_photos, 3))
        sub = watched / "album"
        sub.mkdir()
        c = sub / "c.jpg"
        c.write_bytes(jpeg_bytes(sample_photos, 4))
        cap_a = wait_for(lambda: captioned(db, a), "a.jpg captioned").caption
        cap_c = wait_for(lambda: captioned(db, c), "album/c.jpg captioned").caption
        done = sum(counting.batches)

        b = watched / "b.jpg"
        a.rename(b)  # a file rename
        assert wait_for(lambda: captioned(db, b), "b.jpg to carry a.jpg's caption").caption == cap_a
        assert record(db, a) is None
        assert wait_for(lambda: events.of(MOVED, a), "a moved event")[0].dest == str(b)

        moved = watched / "album 2020"
        sub.rename(moved)  # a whole-folder move
        c2 = moved / "c.jpg"
        assert wait_for(lambda: captioned(db, c2), "album/c.jpg to follow its folder").caption == cap_c
        assert record(db, c) is None

        b.unlink()  # a deletion
        wait_for(lambda: (r := record(db, b)) is not None and r.missing, "b.jpg flagged missing")
        wait_for(lambda: events.of(MISSING, b), "a missing event")
        assert record(db, b).caption == cap_a  # kept, in case it comes back

        outside = watched.parent / "elsewhere"
        shutil.move(str(moved), str(outside))  # a folder moved out of the watched tree
        wait_for(lambda: record(db, c2).missing, "album 2020/c.jpg flagged missing")
        assert sum(counting.batches) == done  # no photo was captioned again


def test_folders_moved_or_copied_in_are_scanned(watched, db, counting, sample_photos, tmp_path):
    card = tmp_path / "card"
    (card / "DCIM").mkdir(parents=True)
    for i in range(3):
        (card / "DCIM" / f"IMG_{i}.jpg").write_bytes(jpeg_bytes(sample_photos, 30 + i))
    trip = tmp_path / "trip"
    (trip / "day1").mkdir(parents=True)
    for i in range(2):
        (trip / "day1" / f"P{i}.jpg").write_bytes(jpeg_bytes(sample_photos, 40 + i))
    with running([watched], db, counting):
        shutil.move(str(card), str(watched / "card"))  # a folder moved in from outside
        shutil.copytree(trip, watched / "trip")  # a folder copied in
        targets = [watched / "card" / "DCIM" / f"IMG_{i}.jpg" for i in range(3)]
        targets += [watched / "trip" / "day1" / f"P{i}.jpg" for i in range(2)]
        wait_for(lambda: all(captioned(db, t) for t in targets), "photos of the folders moved/copied in")
        assert sum(counting.batches) == 5


def test_corrupt_and_truncated_files_are_reported_and_skipped(watched, db, counting, sample_photos):
    with running([watched], db, counting, incomplete_grace=1.0) as (w, events):
        bad = watched / "bad.jpg"
        bad.write_bytes(b"this is not a JPEG at all" * 100)
        cut = watched / "cut.jpg"
        cut.write_bytes(jpeg_bytes(sample_photos, 5)[:3000])
        good = watched / "good.jpg"
        good.write_bytes(jpeg_bytes(sample_photos, 6))
        wait_for(lambda: events.of(FAILED, bad) and events.of(FAILED, cut), "failures reported")
        wait_for(lambda: captioned(db, good), "the good photo still captioned")
        for p in (bad, cut):
            (ev,) = events.of(FAILED, p)
            assert ev.reason
            r = record(db, p)
            assert r is not None and r.caption is None and r.error
        assert cut.read_bytes() == jpeg_bytes(sample_photos, 5)[:3000]  # never written to
        assert counting.batches == [1]


def test_own_metadata_writes_trigger_nothing(watched, db, counting, sample_photos):
    """--write-metadata: the photo's own rewrite and the XMP sidecar are not new work."""
    from PIL import Image

    from photocap.metadata.reader import read_metadata

    photo, bmp = watched / "meta.jpg", watched / "pic.bmp"
    with running([watched], db, counting, write_metadata=True) as (w, events):
        photo.write_bytes(jpeg_bytes(sample_photos, 7))
        Image.open(io.BytesIO(jpeg_bytes(sample_photos, 17))).save(bmp)  # BMP: a sidecar is written
        rec = wait_for(lambda: captioned(db, photo), "the photo's caption")
        wait_for(lambda: captioned(db, bmp), "the BMP's caption")
        wait_for(lambda: read_metadata(photo).caption == rec.caption, "the caption written into the photo")
        sidecar = watched / "pic.bmp.xmp"
        wait_for(sidecar.exists, "the BMP's XMP sidecar")
        written = photo.read_bytes()
        assert written != jpeg_bytes(sample_photos, 7)
        # The rename over the photo is an event; the watcher must see it and recognise its own write.
        wait_for(lambda: w.stats["known"] >= 1, "the watcher to recognise its own write")
        wait_for(w.idle, "the watcher to be idle")
        assert sum(counting.batches) == 2
        assert len(events.of(CAPTIONED, photo)) == 1 and len(events.of(CAPTIONED, bmp)) == 1
        assert photo.read_bytes() == written  # written once, not again
        assert sorted(os.listdir(watched)) == ["meta.jpg", "pic.bmp", "pic.bmp.xmp"]  # no temp files
        assert not events.of(FAILED)
        assert all(e.path != str(sidecar) for e in events.items)
        assert len(events.of(WRITTEN, photo)) == 1
    from photocap.library.pipeline import index_folders

    def no_model():  # type: ignore[no-untyped-def]
        raise AssertionError("the model must not be loaded")

    with CaptionIndex.open(db) as idx:  # the watcher's writes left nothing for `photocap index`
        s = index_folders([watched], idx, no_model, IndexOptions(workers=0))
        assert (s.unchanged, s.changed, s.new, s.captioned) == (2, 0, 0, 0)
        assert idx.stats()["write_owed"] == 0


def test_restart_catches_up(watched, db, counting, sample_photos):
    first, second, third = (watched / n for n in ("first.jpg", "second.jpg", "third.jpg"))
    with running([watched], db, counting):
        first.write_bytes(jpeg_bytes(sample_photos, 8))
        wait_for(lambda: captioned(db, first), "first.jpg captioned")
    second.write_bytes(jpeg_bytes(sample_photos, 9))  # while stopped
    (watched / "later").mkdir()
    third = watched / "later" / "third.jpg"
    third.write_bytes(jpeg_bytes(sample_photos, 20))
    first.unlink()
    with running([watched], db, counting) as (_, events):
        assert events.of(CAUGHT_UP)  # the catch-up ran before wait_ready returned
        assert captioned(db, second) and captioned(db, third)
        assert record(db, first).missing
        assert events.of(MISSING, first) and events.of(CAPTIONED, second)


def test_vanished_folder_is_reported_and_the_rest_still_watched(tmp_path, db, counting, sample_photos):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    with running([one, two], db, counting) as (_, events):
        shutil.rmtree(one)
        wait_for(lambda: [e for e in events.of(ERROR, one) if "disappeared" in (e.reason or "")],
                 "the vanished folder reported")
        photo = two / "still.jpg"
        photo.write_bytes(jpeg_bytes(sample_photos, 21))
        wait_for(lambda: captioned(db, photo), "a photo in the other folder captioned")
        one.mkdir()  # back (e.g. remounted)
        back = one / "back.jpg"
        back.write_bytes(jpeg_bytes(sample_photos, 22))
        wait_for(lambda: captioned(db, back), "a photo in the returned folder captioned")


def test_watch_limit_gives_a_clear_message(tmp_path, db, counting, sample_photos, monkeypatch):
    import watchdog.observers

    limited, fine = tmp_path / "limited", tmp_path / "fine"
    limited.mkdir()
    fine.mkdir()
    real = watchdog.observers.Observer

    class LimitedObserver(real):  # type: ignore[misc, valid-type]
        def schedule(self, handler: Any, path: Any, **kw: Any) -> Any:
            if str(path) == str(limited):
                raise OSError(errno.ENOSPC, "inotify watch limit reached")
            return super().schedule(handler, path, **kw)

    monkeypatch.setattr(watchdog.observers, "Observer", LimitedObserver)
    with running([limited, fine], db, counting) as (_, events):
        (ev,) = events.of(ERROR, limited)
        assert "fs.inotify.max_user_watches" in ev.reason and "sysctl" in ev.reason
        photo = fine / "ok.jpg"
        photo.write_bytes(jpeg_bytes(sample_photos, 23))
        wait_for(lambda: captioned(db, photo), "the other folder still watched")


def test_helpers():
    msg = inotify_limit_message(OSError(errno.ENOSPC, "inotify watch limit reached"), "/x")
    assert msg and "fs.inotify.max_user_watches" in msg
    assert inotify_limit_message(OSError(errno.EACCES, "denied"), "/x") is None
    assert WatchEvent("moved", path="/a", dest="/b").to_dict()["event"] == "moved"


def test_cli_prints_captions_and_stops_on_sigterm(tmp_path, db, tiny_model_path, sample_photos):
    watched = tmp_path / "cli"
    watched.mkdir()
    cmd = [sys.executable, "-c", "from photocap.cli import cli; cli()", "watch", str(watched),
           "--db", str(db), "--model", str(tiny_model_path), "--device", "cpu", "--settle", str(SETTLE),
           "--workers", "0", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import json

        lines: list[dict] = []

        def read_until(kind: str) -> dict:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(json.loads(line))
                if lines[-1]["event"] == kind:
                    return lines[-1]
            pytest.fail(f"no {kind} event; got {lines}; stderr: {proc.stderr.read()}")

        read_until("caught_up")
        photo = watched / "cli.jpg"
        photo.write_bytes(jpeg_bytes(sample_photos, 24))
        ev = read_until("captioned")
        assert ev["path"] == str(photo) and ev["caption"]
        proc.send_signal(signal.SIGTERM)
        assert read_until("stopped")["reason"] == "stopped"
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_symlinked_folder_is_watched_as_its_target(tmp_path, db, counting, sample_photos):
    target = tmp_path / "data" / "photos"
    target.mkdir(parents=True)
    link = tmp_path / "Pictures"
    link.symlink_to(target, target_is_directory=True)
    with running([link], db, counting) as (w, _):
        assert [r.path for r in w.roots] == [str(target)]
        (link / "via-link.jpg").write_bytes(jpeg_bytes(sample_photos, 25))
        rec = wait_for(lambda: captioned(db, target / "via-link.jpg"), "the photo under its resolved path")
        assert rec.path == str(target / "via-link.jpg") and record(db, link / "via-link.jpg") is None

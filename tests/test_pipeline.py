"""The indexing pipeline end to end: real image files, a real SQLite index and the real tiny model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from helpers import EXAMPLES, make_photo
from photocap.index.store import CaptionIndex
from photocap.library.pipeline import (
    IndexOptions,
    Progress,
    index_files,
    index_folders,
)


@pytest.fixture(scope="session")
def captioner(tiny_model_path):
    from photocap.captioner import Captioner

    return Captioner(tiny_model_path, device="cpu")


class Factory:
    """A captioner factory that counts how often the pipeline asked for the model."""

    def __init__(self, captioner) -> None:
        self.captioner = captioner
        self.calls = 0
        self.images = 0

    def __call__(self):
        self.calls += 1
        outer = self

        class Counting:
            model_id = self.captioner.model_id
            image_size = self.captioner.image_size

            def describe_images(self, images):
                outer.images += len(images)
                return outer.captioner.describe_images(images)

        return Counting()


def no_model():
    raise AssertionError("the model must not be loaded")


@pytest.fixture
def lib(tmp_path: Path, sample_photos) -> Path:
    root = tmp_path / "lib"
    for name, src in sample_photos.items():
        (root / "samples").mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, root / "samples" / name)
    make_photo(root / "made" / "a.png", 1, fmt="PNG")
    make_photo(root / "made" / "b.jpg", 2)
    return root


@pytest.fixture
def index(tmp_path: Path):
    with CaptionIndex.open(tmp_path / "index.db") as idx:
        yield idx


OPT = IndexOptions(batch_size=4, workers=0)


def test_first_index_then_unchanged_reindex_reads_nothing(lib: Path, index: CaptionIndex, captioner) -> None:
    factory = Factory(captioner)
    s = index_folders([lib], index, factory, OPT)
    assert (s.new, s.unchanged, s.failed, s.captioned) == (6, 0, 0, 6)
    assert factory.calls == 1 and s.model == captioner.model_id
    rec = index.get(lib / "samples" / "rocket.jpg")
    assert rec.caption and rec.source == "model" and rec.content_hash and rec.width == 640
    assert rec.score is not None and rec.score <= 0 and rec.captioned_at
    s2 = index_folders([lib], index, no_model, OPT)
    assert (s2.new, s2.changed, s2.unchanged, s2.captioned) == (0, 0, 6, 0)


def test_unchanged_reindex_never_imports_torch(lib: Path, index: CaptionIndex, captioner) -> None:
    index_folders([lib], index, Factory(captioner), OPT)
    code = (
        "import sys; from photocap.index.store import CaptionIndex; "
        "from photocap.library.pipeline import index_folders; from photocap.library.captioning import default_captioner_factory; "
        f"s = index_folders([{str(lib)!r}], CaptionIndex.open({str(index.path)!r}), default_captioner_factory()); "
        "print(s.unchanged, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["6", "False"]


def test_touched_file_keeps_caption_changed_content_is_recaptioned(lib: Path, index: CaptionIndex, captioner) -> None:
    index_folders([lib], index, Factory(captioner), OPT)
    rocket = lib / "samples" / "rocket.jpg"
    before = index.get(rocket)
    os.utime(rocket, ns=(before.mtime_ns + 10**9, before.mtime_ns + 10**9))  # touched, same bytes
    s = index_folders([lib], index, no_model, OPT)
    assert (s.changed, s.kept, s.captioned) == (1, 1, 0)
    after = index.get(rocket)
    assert after.caption == before.caption and after.mtime_ns == before.mtime_ns + 10**9

    shutil.copy2(lib / "samples" / "chelsea.jpg", rocket)  # new content at the same path
    factory = Factory(captioner)
    s = index_folders([lib], index, factory, OPT)
    assert (s.changed, s.captioned, factory.images) == (1, 1, 1)
    assert index.get(rocket).caption == index.get(lib / "samples" / "chelsea.jpg").caption


def test_user_caption_survives_change_move_and_recaption(lib: Path, index: CaptionIndex, captioner) -> None:
    index_folders([lib], index, Factory(captioner), OPT)
    cat = lib / "samples" / "chelsea.jpg"
    index.set_user_caption(cat, "Chelsea the cat, 2019")
    shutil.copy2(lib / "samples" / "coffee.jpg", cat)  # content changes: still the user's caption
    factory = Factory(captioner)
    index_folders([lib], index, factory, OPT)
    assert index.get(cat).caption == "Chelsea the cat, 2019" and factory.images == 0

    moved = lib / "renamed" / "our-cat.jpg"
    moved.parent.mkdir()
    cat.rename(moved)
    s = index_folders([lib], index, no_model, OPT)
    assert (s.moved, s.new, s.missing) == (1, 0, 0)
    rec = index.get(moved)
    assert rec.caption == "Chelsea the cat, 2019" and rec.source == "user"
    assert index.get(cat) is None

    s = index_folders([lib], index, Factory(captioner), IndexOptions(batch_size=4, workers=0, recaption=True))
    assert s.captioned == 5 and index.get(moved).caption == "Chelsea the cat, 2019"
    s = index_folders([lib], index, Factory(captioner),
                      IndexOptions(batch_size=4, workers=0, recaption=True, force=True))
    assert s.captioned == 6 and index.get(moved).source == "model"


def test_copy_reuses_caption_without_the_model(lib: Path, index: CaptionIndex, captioner) -> None:
    index_folders([lib], index, Factory(captioner), OPT)
    shutil.copy2(lib / "samples" / "coffee.jpg", lib / "copy-of-coffee.jpg")
    s = index_folders([lib], index, no_model, OPT)
    assert (s.new, s.copied, s.moved) == (1, 1, 0)
    assert index.get(lib / "copy-of-coffee.jpg").caption == index.get(lib / "samples" / "coffee.jpg").caption


def test_deleted_files_go_missing_then_pruned(lib: Path, index: CaptionIndex, captioner) -> None:
    index_folders([lib], index, Factory(captioner), OPT)
    gone = lib / "samples" / "rocket.jpg"
    caption = index.get(gone).caption
    gone.unlink()
    s = index_folders([lib], index, no_model, OPT)
    assert s.missing == 1 and index.get(gone).missing
    assert all(h.record.path != str(gone) for h in index.search(caption))
    s = index_folders([lib], index, no_model, OPT)
    assert s.pruned == 1 and index.get(gone) is None
    # an excluded file is not "missing": it is still there
    s = index_folders([lib], index, no_model, IndexOptions(workers=0, exclude=("made",)))
    assert s.missing == 0 and index.get(lib / "made" / "a.png").missing is False


def test_missing_file_that_returns_is_unflagged(lib: Path, index: CaptionIndex, captioner) -> None:
    index_folders([lib], index, Factory(captioner), OPT)
    p = lib / "made" / "b.jpg"
    p.rename(lib.parent / "aside.jpg")
    index_folders([lib], index, no_model, OPT)
    assert index.get(p).missing
    (lib.parent / "aside.jpg").rename(p)
    s = index_folders([lib], index, no_model, OPT)
    assert s.unchanged == 6 and index.get(p).missing is False


def test_bad_files_fail_with_reasons_and_the_run_goes_on(lib: Path, index: CaptionIndex, captioner) -> None:
    (lib / "bad").mkdir()
    (lib / "bad" / "text.jpg").write_text("not a photo")
    good = (lib / "samples" / "rocket.jpg").read_bytes()
    (lib / "bad" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (lib / "bad" / "empty.png").write_bytes(b"")
    s = index_folders([lib], index, Factory(captioner), OPT)
    assert s.captioned == 6 and s.failed == 3
    reasons = {Path(f.path).name: f.reason for f in s.failures}
    assert "Pillow cannot read" in reasons["text.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    rec = index.get(lib / "bad" / "truncated.jpg")
    assert rec.caption is None and rec.error == reasons["truncated.jpg"]
    s = index_folders([lib], index, no_model, OPT)  # not retried while unchanged
    assert (s.unchanged, s.failed) == (9, 0)


def test_stop_loses_at_most_the_batch_in_flight_and_rerun_resumes(tmp_path: Path, index: CaptionIndex,
                                                                     captioner) -> None:
    root = tmp_path / "many"
    for i in range(10):
        make_photo(root / f"p{i:02d}.jpg", i + 3)
    factory = Factory(captioner)
    opt = IndexOptions(batch_size=3, workers=0)
    s = index_folders([root], index, factory, opt, should_stop=lambda: factory.images >= 3)
    assert s.stopped and s.captioned == 3 and s.missing == 0
    assert sum(1 for r in index.iter_photos() if r.caption) == 3

    def interrupt(p: Progress) -> None:  # Ctrl-C arriving right after the next batch commits
        if p.summary.captioned >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        index_folders([root], index, Factory(captioner), opt, on_progress=interrupt)
    assert sum(1 for r in index.iter_photos() if r.caption) == 6
    factory = Factory(captioner)
    s = index_folders([root], index, factory, opt)
    assert (s.unchanged, s.new, s.captioned, factory.images) == (6, 4, 4, 4)
    assert index.count() == 10 and all(r.caption for r in index.iter_photos())


def test_worker_processes_and_progress(tmp_path: Path, index: CaptionIndex, captioner) -> None:
    root = tmp_path / "big"
    for i in range(14):
        make_photo(root / f"d{i // 5}" / f"p{i:02d}.jpg", i + 40)
    make_photo(root / "anim.gif", 7, fmt="GIF")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    events: list[Progress] = []
    factory = Factory(captioner)
    s = index_folders([root], index, factory, IndexOptions(batch_size=4, workers=2), on_progress=events.append)
    assert (s.new, s.captioned, s.failed) == (15, 15, 1)
    assert factory.images == 15
    phases = [e.phase for e in events]
    assert phases[-1] == "done" and "index" in phases
    last = events[-1]
    assert last.total == 16 and last.done == 16
    assert sum(1 for e in events for o in e.outcomes if o.outcome == "captioned") == 15


def test_exif_stored_in_index(tmp_path: Path, index: CaptionIndex, captioner) -> None:
    exif = Image.Exif()
    exif[272] = "Pixel 7"
    exif.get_ifd(0x8769)[36867] = "2023:01:02 03:04:05"
    p = make_photo(tmp_path / "x" / "e.jpg", 5, size=(96, 64), exif=exif.tobytes())
    index_folders([tmp_path / "x"], index, Factory(captioner), OPT)
    rec = index.get(p)
    assert (rec.taken_at, rec.camera, rec.width, rec.height) == ("2023-01-02T03:04:05", "Pixel 7", 96, 64)


def test_human_description_becomes_the_user_caption(tmp_path: Path, index: CaptionIndex) -> None:
    exif = Image.Exif()
    exif[270] = "Grandma's roses in the back garden"  # EXIF ImageDescription, written by a person
    p = make_photo(tmp_path / "x" / "roses.jpg", 9, exif=exif.tobytes())
    s = index_folders([tmp_path / "x"], index, no_model, OPT)
    assert (s.new, s.adopted, s.captioned) == (1, 1, 0)
    rec = index.get(p)
    assert rec.caption == "Grandma's roses in the back garden" and rec.source == "user"
    assert index.search("rose garden")[0].record.path == str(p)


def test_index_files_for_the_watcher(tmp_path: Path, index: CaptionIndex, captioner) -> None:
    a = make_photo(tmp_path / "w" / "a.jpg", 11)
    b = make_photo(tmp_path / "w" / "b.png", 12, fmt="PNG")
    (tmp_path / "w" / "a.jpg.xmp").write_text("<x/>")
    factory = Factory(captioner)
    s = index_files([a, b, tmp_path / "w" / "a.jpg.xmp", a], index, factory, OPT)
    assert (s.new, s.captioned) == (2, 2)
    s = index_files([a], index, no_model, OPT)
    assert s.unchanged == 1
    a.unlink()
    s = index_files([a], index, no_model, OPT)
    assert s.missing == 1 and index.get(a).missing
    assert index.get(b).missing is False


def test_missing_root_is_a_clear_error(tmp_path: Path, index: CaptionIndex) -> None:
    from photocap.errors import MissingRootError

    with pytest.raises(MissingRootError, match="no such file or folder"):
        index_folders([tmp_path / "unmounted"], index, no_model, OPT)


def test_write_metadata_refreshes_fingerprint(tmp_path: Path, index: CaptionIndex, captioner) -> None:
    p = tmp_path / "m" / "w.jpg"
    p.parent.mkdir()
    shutil.copy2(EXAMPLES / "rocket.jpg", p)
    s = index_folders([tmp_path / "m"], index, Factory(captioner),
                      IndexOptions(workers=0, write_metadata=True))
    assert s.written == 1, s.write_failures
    from photocap.metadata.reader import read_metadata

    assert read_metadata(p).caption == index.get(p).caption
    s = index_folders([tmp_path / "m"], index, no_model, OPT)  # our own write is not a change
    assert s.unchanged == 1


class Recording:
    """A captioner that records, at each batch, how many photos had been decoded (or handed to
    the decoder) by then, and how many more were while it captioned its first batch."""

    def __init__(self, captioner, decoded: list[str], hold: float = 0.0, wait_first: float = 0.0) -> None:
        self.captioner = captioner
        self.model_id = captioner.model_id
        self.image_size = captioner.image_size
        self.decoded = decoded
        self.hold = hold  # seconds each batch takes at least (a slow model)
        self.wait_first = wait_first  # the first batch waits up to this long for another decode
        self.given = 0
        self.ahead: list[int] = []  # decoded but not yet given to the model, at each batch
        self.decoded_while_captioning = 0  # during the first batch

    def describe_images(self, images):
        import time

        first = self.given == 0
        self.given += len(images)
        self.ahead.append(len(self.decoded) - self.given)
        if first and self.wait_first:
            before = len(self.decoded)
            deadline = time.monotonic() + self.wait_first
            while time.monotonic() < deadline and len(self.decoded) == before:
                time.sleep(0.01)
            self.decoded_while_captioning = len(self.decoded) - before
        time.sleep(self.hold)
        return self.captioner.describe_images(images)


@pytest.fixture
def counted_decodes(monkeypatch) -> list[str]:
    """The paths the pipeline decoded, in order (inline decoding, so the count is live)."""
    import photocap.library.pipeline as pipeline

    decoded: list[str] = []
    real = pipeline.decode_file

    def decode(path: str, size: int):
        decoded.append(path)
        return real(path, size)

    monkeypatch.setattr(pipeline, "decode_file", decode)
    return decoded


def test_photos_are_decoded_while_the_model_captions(tmp_path: Path, index: CaptionIndex, captioner) -> None:
    import time
    from concurrent.futures import ThreadPoolExecutor

    from photocap.library.photofile import decode_file
    from photocap.library.workers import DecodePool

    class ThreadPool(DecodePool):
        """One decode worker, as a thread, whose decodes take 0.1 s: the test sees each job
        handed to it."""

        def __init__(self) -> None:
            super().__init__(workers=1)
            self.thread = ThreadPoolExecutor(1)
            self.jobs: list[str] = []

        def submit(self, fn, *args):
            self.jobs.append(args[0])
            if fn is decode_file:
                return self.thread.submit(slow_decode, *args), self.generation
            return self.thread.submit(fn, *args), self.generation

        def shutdown(self, wait: bool = True) -> None:
            self.thread.shutdown(wait)

    def slow_decode(path: str, size: int):
        time.sleep(0.1)
        return decode_file(path, size)

    root = tmp_path / "overlap"
    for i in range(24):
        make_photo(root / f"p{i:02d}.jpg", i + 60)
    pool = ThreadPool()
    model = Recording(captioner, pool.jobs, wait_first=5.0)
    try:
        s = index_folders([root], index, lambda: model, IndexOptions(batch_size=4), pool=pool)
    finally:
        pool.shutdown()
    assert s.captioned == 24
    # The first batch waited (up to 5 s) for another job to be handed to the decoder: that only
    # happens when the indexing thread goes on handing out probes and decodes while the model is
    # busy (it used to wait for the model, and the worker ran dry).
    assert model.decoded_while_captioning > 0


def test_decoded_photos_waiting_for_a_slow_model_are_bounded(tmp_path: Path, index: CaptionIndex, captioner,
                                                             counted_decodes: list[str]) -> None:
    root = tmp_path / "slow"
    for i in range(30):
        make_photo(root / f"p{i:02d}.jpg", i + 80)
    model = Recording(captioner, counted_decodes, hold=0.1)
    s = index_folders([root], index, lambda: model, IndexOptions(batch_size=2, workers=0))
    assert s.captioned == 30 and model.given == 30
    # decoding is far faster than this model (unbounded, nearly all 30 would be decoded ahead of
    # its second batch); but no work is handed out while a full batch waits, so what is decoded
    # ahead stays within two scheduler caps (2 * batch + 2 * workers each) and a batch
    cap = 2 * 2 + 2
    assert 2 <= max(model.ahead) <= 2 * cap + 2, model.ahead

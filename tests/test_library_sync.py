"""The library keeps files, index and metadata in step: real photos, a real index, the tiny
model (or a fake captioner where the model is not the point), files re-read by photocap's
reader and by exiftool."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from photocap.cli import cli
from photocap.index.store import CaptionIndex
from photocap.library import edit, sync
from photocap.library.pipeline import IndexOptions, Progress, index_folders
from photocap.library.scan import normalise_roots
from photocap.metadata import atomic, jpeg
from photocap.metadata.provenance import Owner
from photocap.metadata.reader import read_metadata
from photocap.metadata.writer import write_caption
from photocap.records import CaptionSource, FileChange, Outcome, PhotoUpdate, SkipReason, Stage

from kill_helpers import FakeCaptioner
from metadata_samples import exiftool, needs_exiftool
from helpers import make_photo

OPT = IndexOptions(batch_size=4, workers=0)


def fake() -> FakeCaptioner:
    return FakeCaptioner()


def no_model():  # type: ignore[no-untyped-def]
    raise AssertionError("the model must not be loaded")


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def index(tmp_path: Path):  # type: ignore[no-untyped-def]
    with CaptionIndex.open(tmp_path / "index.db") as idx:
        yield idx


# --------------------------------------------------------------------------- write then index


def test_index_write_index_recaptions_nothing(tmp_path: Path, photo_dir: Path, tiny_model_path: Path) -> None:
    """The three commands of issue 16, through the CLI with the real (tiny) model."""
    db = str(tmp_path / "i.db")
    model = ("--model", str(tiny_model_path), "--device", "cpu", "--workers", "0")
    first = run("index", str(photo_dir), "--db", db, *model)
    assert "4 new" in first.output and "4 captioned" in first.output, first.output
    written = run("write", str(photo_dir), "--db", db)
    assert written.exit_code == 0 and "4 written" in written.output, written.output
    third = run("index", str(photo_dir), "--db", db, *model)
    assert "0 new, 0 changed, 4 unchanged" in third.output, third.output
    assert "captioned" not in third.output
    for name in ("rocket.jpg", "coffee.jpg"):
        info = read_metadata(photo_dir / name)
        assert info.caption_owner is Owner.PHOTOCAP_MODEL and info.photocap_model == "tiny-show-attend-tell"


def test_index_write_metadata_and_gui_style_edits_leave_nothing_to_redo(tmp_path: Path, index: CaptionIndex) -> None:
    folder = tmp_path / "lib"
    for i in range(5):
        make_photo(folder / f"p{i}.jpg", i + 300, size=(96, 64))
    s = index_folders([folder], index, fake, IndexOptions(workers=0, write_metadata=True))
    assert (s.captioned, s.written) == (5, 5)
    outcomes = edit.set_caption(index, folder / "p0.jpg", "our garden in May", write=sync.WriteOptions())
    assert [o.outcome for o in outcomes] == [Outcome.SET, Outcome.WRITTEN]
    again = index_folders([folder], index, no_model, OPT)
    assert (again.unchanged, again.changed, again.captioned) == (5, 0, 0)
    assert index.stats()["write_owed"] == 0


# --------------------------------------------------------------------------- outcomes


def test_the_outcomes_of_one_run_match_what_the_database_holds(tmp_path: Path, index: CaptionIndex) -> None:
    folder = tmp_path / "lib"
    for i in range(6):
        make_photo(folder / f"p{i}.jpg", i + 200, size=(96, 64))
    index_folders([folder], index, fake, OPT)
    (folder / "p0.jpg").rename(folder / "moved.jpg")  # a move
    shutil.copy2(folder / "p1.jpg", folder / "copy.jpg")  # a copy
    (folder / "p2.jpg").unlink()  # a deletion
    (folder / "broken.jpg").write_bytes(b"not a photo")
    make_photo(folder / "new.jpg", 250, size=(96, 64))
    person = make_photo(folder / "person.jpg", 251, size=(96, 64))
    write_caption(person, "Grandma's roses in the back garden", source=CaptionSource.USER)
    os.utime(folder / "p3.jpg", ns=(10**18, 10**18))  # touched, same content
    seen = []

    def collect(p: Progress) -> None:
        seen.extend(p.outcomes)

    s = index_folders([folder], index, fake, OPT, on_progress=collect)
    by_path = {o.path: o for o in seen if o.stage is Stage.INDEX}
    assert by_path[str(folder / "moved.jpg")].outcome is Outcome.MOVED
    assert by_path[str(folder / "moved.jpg")].previous == str(folder / "p0.jpg")
    assert by_path[str(folder / "copy.jpg")].outcome is Outcome.COPIED
    assert by_path[str(folder / "p2.jpg")].outcome is Outcome.MISSING
    assert by_path[str(folder / "broken.jpg")].outcome is Outcome.FAILED
    assert by_path[str(folder / "new.jpg")].outcome is Outcome.CAPTIONED
    assert by_path[str(folder / "new.jpg")].change is FileChange.NEW
    assert by_path[str(folder / "person.jpg")].outcome is Outcome.ADOPTED
    assert by_path[str(folder / "p3.jpg")].outcome is Outcome.KEPT
    assert by_path[str(folder / "p4.jpg")].outcome is Outcome.UNCHANGED
    for o in by_path.values():  # every outcome is what the index now says
        r = index.get(o.path)
        assert r is not None, o
        if o.outcome is Outcome.MISSING:
            assert r.missing
        elif o.outcome is Outcome.FAILED:
            assert r.error == o.reason and r.caption is None
        else:
            assert not r.missing and r.caption is not None
            if o.caption is not None:
                assert (r.caption, r.source) == (o.caption, o.source), o
    assert index.get(folder / "person.jpg").source is CaptionSource.USER
    assert (s.moved, s.copied, s.missing, s.failed, s.captioned, s.adopted, s.kept) == (1, 1, 1, 1, 1, 1, 1)
    assert s.scanned == len([o for o in by_path.values() if o.outcome is not Outcome.MISSING])


# --------------------------------------------------------------------------- whose words


def test_a_persons_caption_survives_a_lost_index_and_index_write_metadata(tmp_path: Path) -> None:
    folder = tmp_path / "lib"
    photo = make_photo(folder / "garden.jpg", 400, size=(96, 64))
    make_photo(folder / "other.jpg", 401, size=(96, 64))
    db = tmp_path / "index.db"
    with CaptionIndex.open(db) as idx:
        index_folders([folder], idx, fake, OPT)
        outcomes = edit.set_caption(idx, photo, "Dad's tomatoes, summer 2021", write=sync.WriteOptions())
        assert outcomes[-1].outcome is Outcome.WRITTEN
    assert read_metadata(photo).caption_owner is Owner.PHOTOCAP_USER
    db.unlink()  # the index is lost
    before = photo.read_bytes()
    with CaptionIndex.open(db) as idx:
        s = index_folders([folder], idx, fake, IndexOptions(workers=0, write_metadata=True))
        record = idx.get(photo)
    assert (s.adopted, s.captioned, s.written) == (1, 1, 1)
    assert record.caption == "Dad's tomatoes, summer 2021" and record.source is CaptionSource.USER
    assert photo.read_bytes() == before  # nothing written over the person's words


def test_a_models_caption_never_replaces_a_persons_words_in_the_file(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.jpg", 402, size=(96, 64))
    write_caption(photo, "Our first flat", source=CaptionSource.USER)
    report = write_caption(photo, "a model's caption", source=CaptionSource.MODEL)
    assert report.skip is SkipReason.PERSONS_DESCRIPTION and report.conflicts
    assert write_caption(photo, "Our first flat, 2009", source=CaptionSource.USER).skip is None  # the person
    assert write_caption(photo, "a model's caption", force=True).skip is None
    assert read_metadata(photo).caption_owner is Owner.PHOTOCAP_MODEL


@needs_exiftool
def test_a_description_from_photocap_0_1_is_read_as_the_models(tmp_path: Path) -> None:
    """0.1.0 wrote its version as the source (and no Writer); such files stay updatable in place."""
    photo = make_photo(tmp_path / "old.jpg", 403, size=(96, 64))
    side = Path(write_caption(photo, "a dog on a beach", target="sidecar").written_path or "")
    old = side.read_text().replace("<photocap:DescriptionSource>model<", "<photocap:DescriptionSource>photocap 0.1.0<")
    side.write_text(old.replace("   <photocap:Writer>photocap 0.1.0</photocap:Writer>\n", ""))
    info = read_metadata(photo)
    assert info.caption_owner is Owner.PHOTOCAP_MODEL and info.photocap_source is CaptionSource.MODEL
    assert write_caption(photo, "a dog runs on the beach", target="sidecar").skip is None
    assert exiftool(side)["XMP-photocap:DescriptionSource"] == "model"


def test_set_and_clear_caption_commands(tmp_path: Path, tiny_model_path: Path) -> None:
    folder = tmp_path / "lib"
    a = make_photo(folder / "a.jpg", 500, size=(96, 64))
    b = make_photo(folder / "b.jpg", 501, size=(96, 64))
    db = str(tmp_path / "i.db")
    r = run("set-caption", "The old mill at Elsdorf", str(a), str(b), "--db", db, "--write-metadata")
    assert r.exit_code == 0, r.output
    assert r.output.count("set ") == 2 and r.output.count("wrote ") == 2
    with CaptionIndex.open(db) as idx:
        assert idx.get(a).source is CaptionSource.USER and idx.get(a).caption == "The old mill at Elsdorf"
    assert read_metadata(a).caption_owner is Owner.PHOTOCAP_USER
    listing = tmp_path / "captions.tsv"
    listing.write_text(f"{a}\tThe mill in winter\n{b}\tThe mill pond\n")
    r = run("set-caption", "--from", str(listing), "--db", db, "--json", "--write-metadata")
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert [row["caption"] for row in rows if row["event"] == "set"] == ["The mill in winter", "The mill pond"]
    assert [row["event"] for row in rows].count("written") == 2
    r = run("clear-caption", str(a), "--db", db, "--model", str(tiny_model_path), "--device", "cpu",
            "--write-metadata")
    assert r.exit_code == 0, r.output
    assert "cleared" in r.output and "model" in r.output and "wrote" in r.output
    with CaptionIndex.open(db) as idx:
        assert idx.get(a).source is CaptionSource.MODEL and idx.get(b).source is CaptionSource.USER
        caption = idx.get(a).caption
    info = read_metadata(a)
    assert info.caption == caption and info.caption_owner is Owner.PHOTOCAP_MODEL
    r = run("clear-caption", str(a), "--db", db, "--model", str(tiny_model_path), "--device", "cpu")
    assert "not one a person set" in r.output
    # The person's words in the file are replaced only when they are the ones withdrawn:
    r = run("set-caption", "The pond, frozen", str(b), "--db", db)  # index only; the file keeps "The mill pond"
    r = run("clear-caption", str(b), "--db", db, "--model", str(tiny_model_path), "--device", "cpu",
            "--write-metadata")
    assert "a person's description is already there" in r.output
    assert read_metadata(b).caption == "The mill pond"
    assert run("set-caption", "   ", str(a), "--db", db).exit_code != 0


# --------------------------------------------------------------------------- roots, temp files, gone


def test_a_symlinked_root_and_its_target_are_one_library(tmp_path: Path, index: CaptionIndex) -> None:
    data = tmp_path / "data" / "photos"
    for i in range(3):
        make_photo(data / f"p{i}.jpg", i + 600, size=(96, 64))
    link = tmp_path / "Pictures"
    link.symlink_to(data, target_is_directory=True)
    s = index_folders([link], index, fake, OPT)
    assert s.captioned == 3
    assert {r.path for r in index.iter_photos()} == {str(data / f"p{i}.jpg") for i in range(3)}
    assert index_folders([data], index, no_model, OPT).unchanged == 3  # the same library
    db = str(index.path)
    for root in (link, data):
        r = run("write", str(root), "--db", db)
        assert r.exit_code == 0 and "no indexed photos" not in r.output, r.output
    assert index_folders([link], index, no_model, OPT).unchanged == 3


def test_records_stored_under_a_link_name_are_rekeyed(tmp_path: Path, index: CaptionIndex) -> None:
    data = tmp_path / "data"
    p = make_photo(data / "p.jpg", 610, size=(96, 64))
    link = tmp_path / "Pictures"
    link.symlink_to(data, target_is_directory=True)
    st = p.stat()
    index.upsert_photos([PhotoUpdate(str(link / "p.jpg"), st.st_size, st.st_mtime_ns, caption="kept",
                                     source=CaptionSource.USER)])  # as an older photocap stored it
    s = index_folders([link], index, no_model, OPT)
    assert s.unchanged == 1 and index.get(link / "p.jpg") is None
    assert index.get(p).caption == "kept"
    assert normalise_roots([link])[0].alias == str(link)


def test_stale_temp_files_of_killed_writes_are_removed(tmp_path: Path, index: CaptionIndex, monkeypatch) -> None:
    import fcntl

    folder = tmp_path / "lib"
    make_photo(folder / "p.jpg", 620, size=(96, 64))
    stale = folder / ".p.jpg.0badf00d.photocap-tmp"
    stale.write_bytes(b"half a photo")
    live = folder / ".p.jpg.1234abcd.photocap-tmp"
    live.write_bytes(b"being written")
    other = folder / ".notes.photocap-tmp"  # not one of photocap's names
    other.write_bytes(b"x")
    s = index_folders([folder], index, fake, OPT)
    assert s.temp_removed == 0 and stale.exists()  # too fresh to be judged stale
    monkeypatch.setattr(atomic, "STALE_AFTER_S", 0.0)
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a writer still at work holds its lock
        s = index_folders([folder], index, no_model, OPT)
    assert s.temp_removed == 1 and not stale.exists() and live.exists() and other.exists()
    stale.write_bytes(b"again")
    r = run("write", str(folder), "--db", str(index.path))
    assert "2 stale temp files removed" in r.output  # the "writer" of the other let go of it too
    assert not stale.exists() and not live.exists()


def test_unreadable_folder_is_not_gone(tmp_path: Path, index: CaptionIndex) -> None:
    folder = tmp_path / "lib"
    make_photo(folder / "locked" / "p.jpg", 630, size=(96, 64))
    make_photo(folder / "p.jpg", 631, size=(96, 64))
    index_folders([folder], index, fake, OPT)
    (folder / "locked").chmod(0o000)
    try:
        if os.access(folder / "locked", os.R_OK):
            assert sync.is_gone(str(folder / "nothing-here.jpg"))  # as root: the rule itself
        else:
            s = index_folders([folder], index, no_model, OPT)
            assert s.missing == 0 and not index.get(folder / "locked" / "p.jpg").missing
    finally:
        (folder / "locked").chmod(0o755)
    assert not sync.is_gone(str(folder / "p.jpg"))


# --------------------------------------------------------------------------- the decode pool


def test_a_file_that_crashes_the_decoder_is_the_only_one_to_fail(tmp_path: Path) -> None:
    from photocap.library.schedule import Scheduler, Step
    from photocap.library.workers import DecodePool

    from kill_helpers import crash_on_bad

    pool = DecodePool(2)
    sched: Scheduler[str] = Scheduler(pool, 6)
    names = [f"good{i}" for i in range(8)] + ["bad"] + [f"good{i}" for i in range(8, 12)]
    for name in names:
        sched.add(name, Step.PROBE, crash_on_bad, name)
    results = {}
    deadline = time.monotonic() + 120
    try:
        while sched.busy and time.monotonic() < deadline:
            for done in sched.poll(0.25):
                results[done.item] = "crashed" if done.crashed else done.result
    finally:
        pool.shutdown()
    assert results.pop("bad") == "crashed"
    assert results == {n: n.upper() for n in names if n != "bad"}
    assert pool.replaced >= 1


# --------------------------------------------------------------------------- a replaced photo (issue 31)


@needs_exiftool
def test_a_replaced_photo_never_gets_the_old_photos_caption(tmp_path: Path) -> None:
    """Issue 31's steps through the CLI: index, replace the photo, write, index again."""
    folder, db = tmp_path / "d", str(tmp_path / "x.db")
    photo = make_photo(folder / "a.jpg", 1)
    with CaptionIndex.open(db) as idx:
        index_folders([folder], idx, fake, OPT)
        old_caption = idx.get(str(photo)).caption
    make_photo(folder / "other.jpg", 2)
    os.replace(folder / "other.jpg", photo)  # another photo under the same name
    out = run("write", str(folder), "--db", db, "--json")
    lines = [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]
    assert [(o["event"], o["skip"]) for o in lines] == [("skipped", "photo_changed")], out.output
    assert "changed since it was captioned" in out.output
    assert "XMP-dc:Description" not in exiftool(photo, "-XMP-dc:Description")
    with CaptionIndex.open(db) as idx:
        again = index_folders([folder], idx, fake, OPT)
        assert (again.changed, again.captioned, again.adopted) == (1, 1, 0)
        assert idx.get(str(photo)).caption != old_caption


@needs_exiftool
def test_a_photo_replaced_during_an_index_run_is_not_written(tmp_path: Path, index: CaptionIndex) -> None:
    """The file is swapped between its probe and its write (the model's caption is of the old
    photo): ``index --write-metadata`` skips it, and the next run captions the new photo."""
    folder = tmp_path / "lib"
    photo = make_photo(folder / "a.jpg", 1)
    swap = make_photo(tmp_path / "swap.jpg", 2)

    class Swapping(FakeCaptioner):
        def describe_images(self, images):  # type: ignore[no-untyped-def]
            os.replace(swap, photo)
            return super().describe_images(images)

    s = index_folders([folder], index, Swapping, IndexOptions(workers=0, write_metadata=True))
    assert (s.captioned, s.written, s.write_skipped, s.write_failed) == (1, 0, 1, 0)
    assert "XMP-dc:Description" not in exiftool(photo, "-XMP-dc:Description")
    assert index.get(str(photo)).write_owed  # the new photo's caption is still owed to it
    again = index_folders([folder], index, fake, IndexOptions(workers=0, write_metadata=True))
    assert (again.changed, again.captioned, again.written) == (1, 1, 1)
    assert exiftool(photo, "-XMP-dc:Description")["XMP-dc:Description"] == index.get(str(photo)).caption


@needs_exiftool
def test_a_touched_photo_is_still_written(tmp_path: Path, index: CaptionIndex) -> None:
    """Same content, new mtime: the same photo (its content hash says so): written."""
    folder = tmp_path / "lib"
    photo = make_photo(folder / "a.jpg", 1)
    index_folders([folder], index, fake, OPT)
    os.utime(photo, ns=(1_000_000_000, 1_000_000_000))
    outcome = sync.write_record(index, index.get(str(photo)), sync.WriteOptions())
    assert outcome.outcome is Outcome.WRITTEN
    assert exiftool(photo, "-XMP-dc:Description")["XMP-dc:Description"] == index.get(str(photo)).caption


@needs_exiftool
def test_a_model_caption_written_for_another_photo_is_never_adopted(tmp_path: Path, index: CaptionIndex) -> None:
    """The written XMP names the pixels its caption describes: a sidecar left beside a replaced
    photo, or a photo's metadata copied onto another, is not that photo's caption."""
    folder = tmp_path / "lib"
    heic_like = make_photo(folder / "a.png", 1)
    first = write_caption(heic_like, "a man in a red shirt", target="sidecar", model="m1")
    side = Path(first.written_path or "")
    assert exiftool(side, "-XMP-photocap:ImageDigest")["XMP-photocap:ImageDigest"]
    donor = make_photo(tmp_path / "donor.jpg", 3)
    write_caption(donor, "a man in a red shirt", model="m1")
    cat = make_photo(folder / "b.jpg", 2)
    packet = jpeg.parse(donor.read_bytes()).get(jpeg.APP1, jpeg.XMP_ID)  # the whole packet, copied
    cat.write_bytes(jpeg.rebuild(cat.read_bytes(), xmp=packet))
    assert exiftool(cat, "-XMP-dc:Description")["XMP-dc:Description"] == "a man in a red shirt"
    make_photo(folder / "new.png", 4)
    os.replace(folder / "new.png", heic_like)  # the sidecar stays beside another photo
    info = read_metadata(cat)
    assert info.caption is None and info.values[0].stock == "a model's caption photocap wrote for another photo"
    s = index_folders([folder], index, fake, IndexOptions(workers=0, write_metadata=True))
    assert (s.new, s.captioned, s.adopted, s.written) == (2, 2, 0, 2)
    for path in (cat, heic_like):
        record = index.get(str(path))
        assert record.caption != "a man in a red shirt" and record.source is CaptionSource.MODEL
    assert exiftool(cat, "-XMP-dc:Description")["XMP-dc:Description"] == index.get(str(cat)).caption
    # the photo it was written for still adopts it (an index lost, or copied to another machine)
    assert read_metadata(donor).caption_owner is Owner.PHOTOCAP_MODEL


def test_a_failed_write_is_reported_once_per_run(tmp_path: Path, index: CaptionIndex) -> None:
    """A photo in a read-only folder: one ``failed`` write outcome, not one per write pass."""
    folder = tmp_path / "lib"
    make_photo(folder / "a.jpg", 1)
    events = []
    folder.chmod(0o555)
    try:
        s = index_folders([folder], index, fake, IndexOptions(workers=0, write_metadata=True),
                          on_progress=lambda p: events.extend(o for o in p.outcomes if o.stage is Stage.WRITE))
    finally:
        folder.chmod(0o755)
    assert (s.captioned, s.write_failed) == (1, 1)
    assert [o.outcome for o in events] == [Outcome.FAILED] and "read-only" in (events[0].reason or "")
    assert index.get(str(folder / "a.jpg")).write_owed  # a later run tries again


def test_a_write_killed_before_the_index_heard_of_it_is_not_a_changed_photo(tmp_path: Path, index: CaptionIndex) -> None:
    """The file holds this caption as photocap wrote it, for these pixels: up to date, not
    ``photo_changed`` (the crash loop's writer killed between rename and settle)."""
    folder = tmp_path / "lib"
    photo = make_photo(folder / "a.jpg", 1)
    index_folders([folder], index, fake, OPT)
    record = index.get(str(photo))
    write_caption(photo, record.caption, model=record.model)  # the index never settled this write
    outcome = sync.write_record(index, record, sync.WriteOptions())
    assert (outcome.outcome, outcome.skip) == (Outcome.SKIPPED, SkipReason.UP_TO_DATE)
    write_caption(photo, "another caption", model=record.model)  # not this caption: not this photo's
    assert sync.write_record(index, record, sync.WriteOptions()).skip is SkipReason.PHOTO_CHANGED

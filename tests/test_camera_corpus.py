"""Only a person's words count as a person's: the camera corpus (camera_corpus.py) through
``index --write-metadata``, checked with photocap's reader and exiftool."""

from __future__ import annotations

from pathlib import Path

import pytest

from photocap.index.store import CaptionIndex
from photocap.library.pipeline import IndexOptions, index_folders
from photocap.metadata.provenance import Owner
from photocap.metadata.reader import read_metadata
from photocap.metadata.stock import stock_reason
from photocap.records import CaptionSource, PhotoUpdate

from camera_corpus import ARMY, BROKEN, HEX_DIGEST, SAMPLES, XIAOMI, build, jpeg_image_data
from kill_helpers import FakeCaptioner
from metadata_samples import exiftool, lost_tags, needs_exiftool

pytestmark = needs_exiftool


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict, dict]:
    """The corpus, indexed with --write-metadata: (folder, samples, exiftool before, bytes before)."""
    folder = tmp_path_factory.mktemp("corpus")
    samples = build(folder)
    before = {name: exiftool(folder / name) for name in samples}
    data = {p.name: p.read_bytes() for p in folder.iterdir()}
    with CaptionIndex.open(folder.parent / f"{folder.name}.db") as index:
        s = index_folders([folder], index, FakeCaptioner, IndexOptions(workers=0, write_metadata=True))
    assert s.failed == len(BROKEN) and s.write_failed == 0, (s.failures, s.write_failures)
    return folder, samples, before, data


def record(folder: Path, name: str):  # type: ignore[no-untyped-def]
    with CaptionIndex.open(folder.parent / f"{folder.name}.db") as index:
        return index.get(folder / name)


def test_people_keep_their_words_and_nothing_is_written_over_them(corpus) -> None:
    folder, samples, _, data = corpus
    people = [s for s in samples.values() if s.person]
    assert len(people) == 7
    for s in people:
        r = record(folder, s.name)
        assert (r.caption, r.source) == (s.person, CaptionSource.USER), s.name
        assert (folder / s.name).read_bytes() == data[s.name], f"{s.name} was changed"
        assert not (folder / f"{s.name}.xmp").exists()


def test_no_camera_stock_text_or_machine_string_becomes_a_caption(corpus) -> None:
    folder, samples, _, _ = corpus
    stock = [s for s in samples.values() if not s.person]
    assert len(stock) == 19
    for s in stock:
        r = record(folder, s.name)
        assert r.source is CaptionSource.MODEL and r.model == FakeCaptioner.model_id, (s.name, r.caption)
        info = read_metadata(folder / s.name)  # written (embedded here: every one is a JPEG/TIFF)
        assert info.caption == r.caption and info.caption_owner is Owner.PHOTOCAP_MODEL, s.name
        assert not r.write_owed


def test_zero_tags_lost_and_zero_image_bytes_changed(corpus) -> None:
    folder, samples, before, data = corpus
    for name, s in samples.items():
        after = exiftool(folder / name)
        assert lost_tags(before[name], after) == {}, name
        new = (folder / name).read_bytes()
        if name.endswith(".jpg"):
            assert jpeg_image_data(new) == jpeg_image_data(data[name]), name
        else:  # TIFF: every byte that was there is still there (the new directory is appended)
            assert new[8:len(data[name])] == data[name][8:], name
        if s.user_comment is not None:
            assert after.get("ExifIFD:UserComment") == before[name].get("ExifIFD:UserComment"), name


def test_broken_files_are_never_touched(corpus) -> None:
    folder, _, _, data = corpus
    for name in BROKEN:
        assert (folder / name).read_bytes() == data[name]
        assert not (folder / f"{name}.xmp").exists()
        r = record(folder, name)
        assert r.caption is None and r.error
    assert not [p for p in folder.iterdir() if p.name.endswith(".photocap-tmp")]


def test_iptc_digest_matches_the_new_iptc_data(corpus) -> None:
    """Where Caption-Abstract changes, Photoshop's IPTCDigest is updated (exiftool computes
    CurrentIPTCDigest from the IPTC data itself)."""
    folder, _, before, _ = corpus
    name = "iptc-stock.jpg"
    assert before[name]["Photoshop:IPTCDigest"] == before[name]["File:CurrentIPTCDigest"]  # a valid start
    after = exiftool(folder / name)
    assert after["IPTC:Caption-Abstract"] == record(folder, name).caption
    assert after["IPTC:Keywords"] == "corpus"
    assert after["Photoshop:IPTCDigest"] == after["File:CurrentIPTCDigest"]
    assert after["Photoshop:IPTCDigest"] != before[name]["Photoshop:IPTCDigest"]


def test_recaption_fixes_a_library_indexed_under_the_old_rule(tmp_path: Path) -> None:
    """Before the stock-text rule, "SANYO DIGITAL CAMERA" and a camera's own name were
    adopted as the user's caption; ``index --recaption`` lets the model caption those."""
    folder = tmp_path / "old"
    samples = build(folder)
    db = tmp_path / "old.db"
    with CaptionIndex.open(db) as index:
        rows = []
        for s in samples.values():  # what the old rule stored
            old = s.person or {"sanyo.jpg": "SANYO DIGITAL CAMERA", "gt5.jpg": "Gran Turismo 5",
                               "huawei-digest.jpg": HEX_DIGEST, "xiaomi.jpg": XIAOMI}.get(s.name)
            if old is None:
                continue
            st = (folder / s.name).stat()
            rows.append(PhotoUpdate(str(folder / s.name), st.st_size, st.st_mtime_ns,
                                    caption=" ".join(old.split()), source=CaptionSource.USER))
        index.upsert_photos(rows)
        plain = index_folders([folder], index, FakeCaptioner, IndexOptions(workers=0))
        assert index.get(folder / "sanyo.jpg").caption == "SANYO DIGITAL CAMERA"  # unchanged files: not read
        s = index_folders([folder], index, FakeCaptioner, IndexOptions(workers=0, recaption=True))
        for name in ("sanyo.jpg", "gt5.jpg", "huawei-digest.jpg", "xiaomi.jpg"):
            r = index.get(folder / name)
            assert r.source is CaptionSource.MODEL, (name, r.caption)
        assert index.get(folder / "army.jpg").caption == ARMY  # a person's words stay
        assert index.get(folder / "army.jpg").source is CaptionSource.USER
    assert plain.captioned == len(samples) - len(rows) and s.captioned >= 4


@pytest.mark.parametrize("text, make, model, prose_only, why", [
    ("SANYO DIGITAL CAMERA", None, None, False, "stock"),
    ("  OLYMPUS DIGITAL CAMERA  \x00", None, None, False, "stock"),
    ("FUJIFILM DIGITAL CAMERA", None, None, False, "stock"),
    ("WWL", "WWL", "X", False, "make or model"),
    ("gran turismo 5", "Sony", "Gran Turismo 5", False, "make or model"),
    ("Canon EOS 5D Mark II", "Canon", "Canon EOS 5D Mark II", False, "make or model"),
    (HEX_DIGEST, None, None, False, "digest"),
    ("f47ac10b-58cc-4372-a567-0e02b2c3d479", None, None, False, "digest"),
    (XIAOMI, None, None, False, "settings"),
    ("IMG_1234.JPG", None, None, False, "file name"),
    ("P1010001", None, None, False, "no words"),
    ("DSC_0042", None, None, False, "file name"),
    ("oplus_1048576", None, None, False, "identifier"),
    ("Shot on iPhone 12 Pro", None, None, False, "stock"),
    ("Beach", None, None, True, "sentence"),
    ("0000:00:00", None, None, False, "no words"),
])
def test_stock_texts(text: str, make: str | None, model: str | None, prose_only: bool, why: str) -> None:
    reason = stock_reason(text, make=make, model=model, prose_only=prose_only)
    assert reason is not None and why in reason


@pytest.mark.parametrize("text", [
    ARMY, "Mum", "Grandma's roses", "富士山と桜", "猫", "Katze auf dem Sofa", "my old digital camera",
    "shot on the beach at sunset", "Canon EOS 5D Mark II on a tripod", "Gran Turismo 5 night race",
])
def test_a_persons_words_are_not_stock(text: str) -> None:
    assert stock_reason(text, make="Canon", model="Gran Turismo 5") is None
    assert stock_reason(text, prose_only=False) is None


def test_every_sample_is_classified_as_the_corpus_says() -> None:
    """The rule on the corpus's texts alone, as the reader applies it (field by field)."""
    for s in SAMPLES:
        for text, prose_only in ((s.description, False), (s.xmp_description, False),
                                 (s.iptc_caption, False), (s.xp_comment, False)):
            if text is not None:
                assert (stock_reason(text, make=s.make, model=s.model, prose_only=prose_only) is None) == (
                    text == s.person), (s.name, text)

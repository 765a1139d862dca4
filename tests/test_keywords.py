"""``photocap write --keywords``: a photo's confident concepts travel with it as keywords.

Real JPEG, TIFF, PNG and WebP files and an XMP sidecar, re-read with exiftool: the concepts
are added after a person's keywords (kept first, unchanged), none twice (ignoring case), a
second run changes no byte, every other tag is kept and the pixels are unchanged.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from photocap.cli import cli
from photocap.index.store import CaptionIndex
from photocap.library.concepts import SEARCH_MIN_SCORE, keywords, with_concepts
from photocap.metadata import fields, iptc, xmp
from photocap.metadata.reader import read_metadata
from photocap.metadata.writer import write_caption
from photocap.records import Concept, PhotoUpdate, SkipReason

from metadata_samples import exiftool, exiftool_set, gradient, lost_tags, needs_exiftool

pytestmark = needs_exiftool

CAPTION = "a cat asleep on a sofa"
CONCEPTS = (
    Concept("cat", 0.9),  # a person already has "Cat": not added again
    Concept("sofa", 0.5),
    Concept("table", SEARCH_MIN_SCORE),  # exactly sure enough
    Concept("pizza", SEARCH_MIN_SCORE / 2),  # not sure enough: never a keyword
)
PERSONS = ["Holiday", "Cat", "Oma's house"]
EXPECTED = [*PERSONS, "sofa", "table"]
CHANGED = {"XMP-dc:Subject", "IPTC:Keywords"}


def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        return CliRunner()


def _person_tags(extra: tuple[str, ...] = ()) -> list[str]:
    return [*(f"-XMP-dc:Subject={w}" for w in PERSONS), "-XMP-xmp:Rating=4",
            "-XMP-photoshop:City=Porto", *extra]


def make_sample(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """(photo, the file that will change): a photo whose keywords a person already set."""
    if kind == "sidecar":
        photo = tmp_path / "raw.jpg"
        gradient((48, 32)).save(photo, "JPEG", quality=90)
        side = tmp_path / "raw.jpg.xmp"
        subprocess.run(["exiftool", "-q", *_person_tags(), str(side)], check=True, capture_output=True,
                       timeout=60)
        assert side.exists()
        return photo, side
    photo = tmp_path / {"jpeg": "photo.jpg", "tiff": "scan.tif", "png": "image.png", "webp": "pic.webp"}[kind]
    image = gradient((48, 32))
    if kind == "jpeg":
        image.save(photo, "JPEG", quality=90)
        extra = ("-IPTC:Keywords=Holiday", "-IPTC:Keywords=CAT", "-IPTC:City=Lisbon", "-IPTCDigest=new",
                 "-IFD0:Artist=Ana Núñez")
    elif kind == "tiff":
        image.save(photo, compression="tiff_lzw")
        extra = ("-IFD0:Artist=Scanner Person",)
    elif kind == "png":
        image.save(photo)
        extra = ("-PNG:Author=Someone",)
    else:
        image.save(photo, "WEBP", quality=80)
        extra = ("-IFD0:Make=Pixel",)
    exiftool_set(photo, *_person_tags(extra))
    return photo, photo


def make_index(db: Path, photo: Path, caption: str = CAPTION) -> None:
    st = photo.stat()
    update = PhotoUpdate(str(photo.resolve()), st.st_size, st.st_mtime_ns, caption=caption, source="model",
                         model="test-model")
    with CaptionIndex.open(db) as idx:
        idx.upsert_photos([with_concepts(update, CONCEPTS, "test-model")])


def pixels(photo: Path) -> bytes:
    with Image.open(photo) as im:
        return im.convert("RGBA").tobytes()


def write(db: Path, photo: Path, *args: str) -> dict:
    result = runner().invoke(cli, ["write", str(photo), "--db", str(db), "--json", *args])
    assert result.exit_code == 0, result.output + result.stderr
    [row] = [json.loads(line) for line in result.stdout.splitlines()]
    return row


def as_list(value: object) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


def test_the_keywords_are_the_confident_concepts() -> None:
    assert keywords(CONCEPTS) == ("cat", "sofa", "table")
    assert keywords(()) == ()


@pytest.mark.parametrize("kind", ["jpeg", "tiff", "png", "webp", "sidecar"])
def test_write_keywords_merges_after_a_persons_and_keeps_everything(tmp_path: Path, kind: str) -> None:
    photo, changed = make_sample(tmp_path, kind)
    db = tmp_path / "index.db"
    make_index(db, photo)
    before = exiftool(changed)
    photo_bytes, old_pixels = photo.read_bytes(), pixels(photo)
    target = ("--target", "sidecar") if kind == "sidecar" else ()

    row = write(db, photo, "--keywords", *target)
    assert row["event"] == "written", row
    assert "XMP-dc:Subject" in row["fields"]
    after = exiftool(changed)
    assert as_list(after["XMP-dc:Subject"]) == EXPECTED  # a person's first, unchanged; no "pizza"
    if kind == "jpeg":
        assert "IPTC:Keywords" in row["fields"]
        assert as_list(after["IPTC:Keywords"]) == ["Holiday", "CAT", "sofa", "table"]
        assert after["File:CurrentIPTCDigest"] == after["Photoshop:IPTCDigest"]
    else:
        assert "IPTC:Keywords" not in after and "IPTC:Keywords" not in row["fields"]  # no IPTC block added
    assert after.get("XMP-dc:Description") == CAPTION
    assert {k: v for k, v in lost_tags(before, after).items() if k not in CHANGED} == {}
    assert pixels(photo) == old_pixels
    if kind == "sidecar":
        assert photo.read_bytes() == photo_bytes  # the photo itself is never touched

    # Keywords agree with exiftool's -XMP-dc:Subject -IPTC:Keywords reading (no group names)
    plain = json.loads(subprocess.run(["exiftool", "-j", "-XMP-dc:Subject", "-IPTC:Keywords", str(changed)],
                                      capture_output=True, check=True, timeout=60).stdout)[0]
    assert as_list(plain["Subject"]) == EXPECTED

    # A second run: up to date, not one byte changes; nor does a write without --keywords.
    written = changed.read_bytes()
    again = write(db, photo, "--keywords", *target)
    assert again["event"] == "skipped" and again["skip"] == str(SkipReason.UP_TO_DATE), again
    assert changed.read_bytes() == written
    plain_write = write(db, photo, *target)
    assert plain_write["skip"] == str(SkipReason.UP_TO_DATE)
    assert changed.read_bytes() == written

    report = read_metadata(photo)
    assert report.keywords[: len(EXPECTED)] == EXPECTED
    assert report.keyword_values[0].tag == fields.XMP_SUBJECT


def test_a_new_caption_without_keywords_keeps_the_keywords(tmp_path: Path) -> None:
    photo, _ = make_sample(tmp_path, "jpeg")
    db = tmp_path / "index.db"
    make_index(db, photo)
    write(db, photo, "--keywords")
    with CaptionIndex.open(db) as idx:  # the model captions it again: a new caption is owed
        st = photo.stat()
        idx.upsert_photos([PhotoUpdate(str(photo.resolve()), st.st_size, st.st_mtime_ns, caption="a sleepy cat",
                                       source="model", model="test-model")])
    row = write(db, photo)
    assert row["event"] == "written" and "XMP-dc:Subject" not in row["fields"]
    after = exiftool(photo)
    assert after["XMP-dc:Description"] == "a sleepy cat"
    assert as_list(after["XMP-dc:Subject"]) == EXPECTED
    assert as_list(after["IPTC:Keywords"]) == ["Holiday", "CAT", "sofa", "table"]


def test_a_photo_without_keywords_gets_a_bag(tmp_path: Path) -> None:
    photo = tmp_path / "plain.jpg"
    gradient((32, 24)).save(photo, "JPEG")
    report = write_caption(photo, CAPTION, keywords=["cat", "Cat ", "", "sofa"])
    assert fields.XMP_SUBJECT in report.fields and fields.IPTC_KEYWORDS not in report.fields
    after = exiftool(photo)
    assert after["XMP-dc:Subject"] == ["cat", "sofa"]
    assert "IPTC:Keywords" not in after  # no IPTC block is created
    old = photo.read_bytes()
    assert write_caption(photo, CAPTION, keywords=["CAT", "sofa"]).skip is SkipReason.UP_TO_DATE
    assert photo.read_bytes() == old


def test_keywords_must_be_a_list_not_one_string(tmp_path: Path) -> None:
    from photocap.errors import MetadataError

    photo = tmp_path / "plain.jpg"
    gradient((32, 24)).save(photo, "JPEG")
    with pytest.raises(MetadataError):
        write_caption(photo, CAPTION, keywords="cat")


def test_xmp_lists_keep_their_items_and_shape() -> None:
    prop = fields.XMP_PROPERTIES[fields.XMP_SUBJECT]
    packet = (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
              b"<rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/' dc:subject='Holiday'/>"
              b"</rdf:RDF></x:xmpmeta>")
    doc = xmp.parse(packet)
    assert xmp.get_list(doc, prop) == ["Holiday"]
    xmp.add_to_list(doc, prop, ["cat"])
    again = xmp.parse(xmp.serialize(doc))
    assert xmp.get_list(again, prop) == ["Holiday", "cat"]
    assert xmp.get_list(xmp.new_doc("t"), prop) is None


def test_iptc_keywords_are_appended_after_the_ones_there() -> None:
    datasets = [(1, 90, iptc.UTF8_CHARSET), (2, 25, b"Oma"), (2, 90, b"Lisbon")]
    block = iptc.IptcBlock([iptc.Resource(b"8BIM", iptc.RESOURCE_IPTC, b"\x00\x00", iptc.encode_iim(datasets))],
                           datasets)
    payload = iptc.updated(block, keywords=("café", "sofa"))
    assert payload is not None
    new = iptc.load(payload)
    assert new is not None and new.keywords == ["Oma", "café", "sofa"]
    assert new.datasets[-1] == (2, 90, b"Lisbon")  # still in dataset order
    assert iptc.updated(block, keywords=("x" * 65,)) is None  # too long for IIM


def test_index_keywords_needs_write_metadata(tmp_path: Path) -> None:
    result = runner().invoke(cli, ["index", str(tmp_path), "--db", str(tmp_path / "i.db"), "--keywords"])
    assert result.exit_code == 2 and "--write-metadata" in (result.output + (result.stderr or ""))


def test_help_shows_keywords_with_an_example() -> None:
    out = runner().invoke(cli, ["write", "--help"]).output
    assert "--keywords" in out and "photocap write ~/Pictures --keywords" in out
    out = runner().invoke(cli, ["index", "--help"]).output
    assert "--write-metadata --keywords" in out


def test_read_shows_keywords(tmp_path: Path) -> None:
    photo, _ = make_sample(tmp_path, "png")
    result = runner().invoke(cli, ["read", str(photo)])
    assert result.exit_code == 0
    assert "keywords: Holiday, Cat, Oma's house" in result.output
    result = runner().invoke(cli, ["read", str(photo), "--json"])
    data = json.loads(result.stdout.splitlines()[0])
    assert data["keywords"] == PERSONS
    assert data["keyword_values"][0]["tag"] == "XMP-dc:Subject"


def test_index_write_metadata_keywords_with_a_real_model(tmp_path: Path, photo_dir: Path,
                                                          tiny_concept_model_path: Path) -> None:
    db = tmp_path / "index.db"
    cat = photo_dir / "chelsea.jpg"
    exiftool_set(cat, "-XMP-dc:Subject=Chelsea", "-XMP-dc:Subject=CAT")
    result = runner().invoke(cli, ["index", str(photo_dir), "--db", str(db), "--model", str(tiny_concept_model_path),
                                   "--write-metadata", "--keywords", "--json"])
    assert result.exit_code == 0, result.output + (result.stderr or "")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    written = {Path(r["path"]).name: r for r in rows if r["event"] == "written"}
    assert "XMP-dc:Subject" in written["chelsea.jpg"]["fields"]
    with CaptionIndex.open(db) as idx:
        words = keywords(idx.concepts(cat))
        coffee = keywords(idx.concepts(photo_dir / "coffee.jpg"))
    assert words and words[0] == "cat"
    subject = as_list(exiftool(cat)["XMP-dc:Subject"])
    assert subject[:2] == ["Chelsea", "CAT"]  # a person's first; "cat" not added twice
    assert subject[2:] == [w for w in words if w != "cat"]
    assert as_list(exiftool(photo_dir / "coffee.jpg").get("XMP-dc:Subject")) == list(coffee)
    result = runner().invoke(cli, ["write", str(photo_dir), "--db", str(db), "--keywords", "--json"])
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["skip"] for line in result.stdout.splitlines()} == {"up_to_date"}


def test_iptc_in_a_latin1_block_takes_only_what_latin1_can_hold() -> None:
    datasets = [(2, 25, "Café".encode("latin-1"))]  # an 8-bit block with no declared charset
    block = iptc.IptcBlock([iptc.Resource(b"8BIM", iptc.RESOURCE_IPTC, b"\x00\x00", iptc.encode_iim(datasets))],
                           datasets)
    assert iptc.updated(block, keywords=("咖啡",)) is None
    payload = iptc.updated(block, keywords=("crème",))
    assert payload is not None
    new = iptc.load(payload)
    assert new is not None and new.keywords == ["Café", "crème"]


def test_a_keyword_iptc_cannot_hold_still_goes_to_xmp(tmp_path: Path) -> None:
    photo, _ = make_sample(tmp_path, "jpeg")
    report = write_caption(photo, CAPTION, keywords=["cat", "k" * 80])
    assert fields.XMP_SUBJECT in report.fields and fields.IPTC_KEYWORDS not in report.fields
    assert fields.IPTC_CAPTION in report.fields
    after = exiftool(photo)
    assert as_list(after["XMP-dc:Subject"]) == [*PERSONS, "k" * 80]
    assert as_list(after["IPTC:Keywords"]) == ["Holiday", "CAT"]
    assert after["IPTC:Caption-Abstract"] == CAPTION
    old = photo.read_bytes()
    assert write_caption(photo, CAPTION, keywords=["cat", "k" * 80]).skip is SkipReason.UP_TO_DATE
    assert photo.read_bytes() == old

"""Where captions go and when they are not written: sidecars, human descriptions, errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from photocap.errors import MetadataError
from photocap.metadata import jpeg
from photocap.metadata.reader import read_metadata
from photocap.metadata.writer import write_caption
from photocap.records import SkipReason

from metadata_samples import (
    CAPTION,
    copy_example,
    exiftool,
    exiftool_set,
    gradient,
    lost_tags,
    make_exif_jpeg,
    needs_exiftool,
)

SIDECAR_XMP = """<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmp:Rating="5" xmp:CreatorTool="Darktable 4.6" crs:Exposure2012="+0.35">
   <!-- a comment that should survive -->
   <dc:subject><rdf:Bag><rdf:li>mountain</rdf:li><rdf:li>snow</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end='w'?>"""


# --- sidecars ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
def test_unwritable_format_gets_an_ext_sidecar(tmp_path: Path, fmt: str) -> None:
    photo = tmp_path / f"anim.{fmt.lower()}"
    gradient((20, 10)).save(photo, fmt)
    old = photo.read_bytes()
    report = write_caption(photo, CAPTION)
    assert report.target == "sidecar"
    side = tmp_path / f"anim.{fmt.lower()}.xmp"
    assert report.written_path == str(side) and side.is_file()
    assert photo.read_bytes() == old
    info = read_metadata(photo)
    assert info.caption == CAPTION and info.written_by_photocap and info.caption_location == "sidecar"
    with pytest.raises(MetadataError, match="embed"):
        write_caption(photo, CAPTION, target="embed")


@needs_exiftool
def test_sidecar_readable_by_exiftool_and_base_naming(tmp_path: Path) -> None:
    photo = tmp_path / "IMG_0001.heic"
    photo.write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)  # stand-in: never opened
    report = write_caption(photo, CAPTION, sidecar_name="base")
    side = tmp_path / "IMG_0001.xmp"
    assert report.written_path == str(side)
    info = exiftool(side)
    assert info["XMP-dc:Description"] == CAPTION
    assert info["XMP-iptcCore:AltTextAccessibility"] == CAPTION
    assert info["XMP-photocap:DescriptionSource"] == "model"
    assert info["XMP-photocap:Writer"].startswith("photocap ")


@needs_exiftool
@pytest.mark.parametrize("name", ["IMG_0002.xmp", "IMG_0002.CR2.xmp"])
def test_existing_sidecar_is_merged_keeping_everything(tmp_path: Path, name: str) -> None:
    photo = tmp_path / "IMG_0002.CR2"
    photo.write_bytes(b"II*\x00\x08\x00\x00\x00" + b"\x00" * 32)  # raw stand-in: TIFF inside
    side = tmp_path / name
    side.write_text(SIDECAR_XMP, encoding="utf-8")
    before = exiftool(side)
    old_photo = photo.read_bytes()
    report = write_caption(photo, CAPTION)  # default "ext" naming, but an existing one wins
    assert report.target == "sidecar" and report.written_path == str(side)
    assert not (tmp_path / ("IMG_0002.CR2.xmp" if name == "IMG_0002.xmp" else "IMG_0002.xmp")).exists()
    after = exiftool(side)
    assert lost_tags(before, after) == {}
    assert after["XMP-xmp:CreatorTool"] == "Darktable 4.6"
    assert after["XMP-dc:Description"] == CAPTION
    assert "a comment that should survive" in side.read_text(encoding="utf-8")
    assert photo.read_bytes() == old_photo  # a raw file is never rewritten


def test_read_only_file_gets_a_sidecar(tmp_path: Path) -> None:
    photo = copy_example(tmp_path)
    old = photo.read_bytes()
    photo.chmod(0o444)
    try:
        report = write_caption(photo, CAPTION)
        assert report.target == "sidecar"
        assert photo.read_bytes() == old
        assert Path(report.written_path).name == "coffee.jpg.xmp"
        with pytest.raises(MetadataError, match="read-only"):
            write_caption(photo, "another", target="embed")
    finally:
        photo.chmod(0o644)


def test_read_only_folder_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    photo = copy_example(folder)
    old = photo.read_bytes()
    folder.chmod(0o555)
    try:
        with pytest.raises(MetadataError, match="read-only"):
            write_caption(photo, CAPTION)
        assert photo.read_bytes() == old
        assert sorted(p.name for p in folder.iterdir()) == ["coffee.jpg"]
    finally:
        folder.chmod(0o755)


# --- human descriptions and updates ---------------------------------------------------------


@needs_exiftool
def test_user_description_is_not_overwritten_without_force(tmp_path: Path) -> None:
    photo = copy_example(tmp_path)
    exiftool_set(photo, "-XMP-dc:Description=Grandma's 80th birthday")
    old = photo.read_bytes()
    info = read_metadata(photo)
    assert info.has_user_description and not info.written_by_photocap
    assert info.caption == "Grandma's 80th birthday"
    report = write_caption(photo, CAPTION)
    assert report.target == "none" and report.skipped and "XMP-dc:Description" in report.skipped
    assert photo.read_bytes() == old
    report = write_caption(photo, CAPTION, force=True)
    assert report.target == "embed"
    assert exiftool(photo)["XMP-dc:Description"] == CAPTION


@needs_exiftool
def test_user_exif_description_counts_but_camera_placeholder_does_not(tmp_path: Path) -> None:
    photo = copy_example(tmp_path)
    exiftool_set(photo, "-EXIF:ImageDescription=OLYMPUS DIGITAL CAMERA         ")
    assert not read_metadata(photo).has_user_description
    assert write_caption(photo, CAPTION).target == "embed"
    assert exiftool(photo)["IFD0:ImageDescription"] == CAPTION
    other = copy_example(tmp_path, dest="other.jpg")
    exiftool_set(other, "-EXIF:ImageDescription=Our house in winter")
    assert write_caption(other, CAPTION).skipped


@needs_exiftool
def test_photocap_description_is_updated_in_place(tmp_path: Path) -> None:
    photo = make_exif_jpeg(tmp_path / "p.jpg")
    write_caption(photo, "a first caption", model="tiny-v1")
    info = read_metadata(photo)
    assert info.written_by_photocap and not info.has_user_description
    assert info.photocap_model == "tiny-v1"
    before = exiftool(photo)
    report = write_caption(photo, CAPTION)
    assert report.target == "embed" and not report.skipped
    after = exiftool(photo)
    assert after["XMP-dc:Description"] == after["IFD0:ImageDescription"] == CAPTION
    assert lost_tags(before, after) == {}
    again = write_caption(photo, CAPTION)
    assert again.skipped == "already up to date"


@needs_exiftool
def test_description_edited_by_a_person_after_photocap_is_theirs(tmp_path: Path) -> None:
    photo = copy_example(tmp_path)
    write_caption(photo, "a cup of coffee")
    exiftool_set(photo, "-XMP-dc:Description=My morning espresso in Rome")
    info = read_metadata(photo)
    assert info.has_user_description
    assert info.caption == "My morning espresso in Rome" and not info.written_by_photocap
    assert write_caption(photo, CAPTION).skipped


# --- never lose anything ----------------------------------------------------------------------


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    photo = copy_example(tmp_path)
    old = photo.read_bytes()
    report = write_caption(photo, CAPTION, dry_run=True)
    assert report.dry_run and report.target == "embed" and "EXIF:ImageDescription" in report.fields
    assert photo.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coffee.jpg"]


def test_mode_and_mtime_kept_by_default(tmp_path: Path) -> None:
    photo = copy_example(tmp_path)
    photo.chmod(0o640)
    os.utime(photo, ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    write_caption(photo, CAPTION)
    st = photo.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime_ns == 1_600_000_000_123_456_789
    write_caption(photo, "something else", keep_mtime=False)
    assert photo.stat().st_mtime_ns != 1_600_000_000_123_456_789


@pytest.mark.parametrize(
    "damage",
    ["truncated", "no-eoi", "bad-segment-length", "garbage-header", "not-an-image"],
)
def test_corrupt_jpeg_is_an_error_and_untouched(tmp_path: Path, damage: str) -> None:
    photo = copy_example(tmp_path)
    data = photo.read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "no-eoi":
        data = data[:-2]
    elif damage == "bad-segment-length":
        data = data[:4] + b"\xff\xff" + data[6:]
    elif damage == "garbage-header":
        data = data[:2] + b"\x00garbage" + data[10:]
    else:
        data = b"\xff\xd8\xff" + b"hello, not a jpeg at all"
    photo.write_bytes(data)
    with pytest.raises(MetadataError) as err:
        write_caption(photo, CAPTION)
    assert str(photo) in str(err.value)
    assert photo.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coffee.jpg"]


def test_corrupt_scan_data_fails_verification_and_leaves_no_temp(tmp_path: Path) -> None:
    photo = copy_example(tmp_path)
    data = bytearray(photo.read_bytes())
    sos = data.index(b"\xff\xda")
    data[sos + 2 : sos + 4] = b"\x00\x03"  # an impossible SOS header: structure parses, decode fails
    photo.write_bytes(bytes(data))
    with pytest.raises(MetadataError, match="decode"):
        write_caption(photo, CAPTION)
    assert photo.read_bytes() == bytes(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coffee.jpg"]


@needs_exiftool
def test_xmp_too_big_for_one_segment_goes_to_a_sidecar(tmp_path: Path) -> None:
    """Issue 31: ``--target auto`` promises a sidecar where embedding is not possible; ``embed``
    is a clear error. The photo is left byte for byte as it was either way."""
    photo = copy_example(tmp_path)
    keywords = "".join(f"<rdf:li>keyword number {i:05d} padding padding</rdf:li>" for i in range(1200))
    packet = (
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
        "<rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/'>"
        f"<dc:subject><rdf:Bag>{keywords}</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()
    assert len(packet) < jpeg.MAX_XMP
    photo.write_bytes(jpeg.rebuild(photo.read_bytes(), xmp=packet))
    old = photo.read_bytes()
    with pytest.raises(MetadataError, match="extended XMP.*--target sidecar"):
        write_caption(photo, CAPTION, target="embed")
    assert photo.read_bytes() == old
    report = write_caption(photo, CAPTION)
    assert report.target == "sidecar" and photo.read_bytes() == old
    side = Path(report.written_path or "")
    assert exiftool(side, "-XMP-dc:Description")["XMP-dc:Description"] == CAPTION
    assert read_metadata(photo).caption == CAPTION
    assert write_caption(photo, CAPTION).skip is SkipReason.UP_TO_DATE


def test_bad_arguments(tmp_path: Path) -> None:
    photo = copy_example(tmp_path)
    with pytest.raises(MetadataError):
        write_caption(photo, "   ")
    with pytest.raises(MetadataError):
        write_caption(photo, "bell\x07")
    with pytest.raises(MetadataError):
        write_caption(photo, CAPTION, target="cloud")
    with pytest.raises(MetadataError):
        write_caption(tmp_path / "missing.jpg", CAPTION)
    with pytest.raises(MetadataError):
        write_caption(photo, CAPTION, sidecar_name="weird")


def test_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    photo = copy_example(tmp_path)
    link = tmp_path / "link.jpg"
    link.symlink_to(photo)
    write_caption(link, CAPTION)
    assert link.is_symlink()
    assert read_metadata(photo).caption == CAPTION

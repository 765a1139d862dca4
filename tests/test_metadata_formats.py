"""Captions written into real JPEG/PNG/TIFF/WebP files, read back with exiftool.

Every written field must hold the caption, every tag exiftool saw before must be
there after with the same value, and the image data must be byte-identical.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from PIL import Image

from photocap.metadata import png, webp
from photocap.metadata.reader import read_metadata
from photocap.metadata.writer import write_caption

from metadata_samples import (
    CAPTION,
    copy_example,
    exiftool,
    exiftool_set,
    gradient,
    jpeg_scan_data,
    lost_tags,
    make_exif_jpeg,
    make_iptc_jpeg,
    make_xmp_jpeg,
    needs_exiftool,
)

pytestmark = needs_exiftool

XMP_FIELDS = ("XMP-dc:Description", "XMP-iptcCore:AltTextAccessibility")


def write_and_check(
    path: Path, *, fields: tuple[str, ...], caption: str = CAPTION, allow: frozenset[str] = frozenset(), **kw
) -> tuple[dict, dict]:
    """Write, then check with exiftool: fields hold the caption, nothing else changed."""
    before_bytes = path.read_bytes()
    before = exiftool(path)
    with Image.open(path) as im:
        before_pixels = im.convert("RGBA").tobytes()
    report = write_caption(path, caption, **kw)
    assert report.target == "embed", report
    assert report.written_path == str(path)
    after = exiftool(path)
    for tag in fields:
        assert after.get(tag) == caption, (tag, after.get(tag))
    assert after.get("XMP-photocap:DescriptionSource") == str(kw.get("source", "model"))
    assert after.get("XMP-photocap:Writer", "").startswith("photocap ")
    assert "ExifTool:Warning" not in after or after["ExifTool:Warning"] == before.get("ExifTool:Warning")
    assert {k: v for k, v in lost_tags(before, after).items() if k not in allow} == {}
    with Image.open(path) as im:
        assert im.convert("RGBA").tobytes() == before_pixels
    assert path.read_bytes() != before_bytes
    return before, after


def test_jpeg_without_metadata(tmp_path: Path) -> None:
    path = copy_example(tmp_path)
    old = path.read_bytes()
    write_and_check(path, fields=(*XMP_FIELDS, "IFD0:ImageDescription"))
    assert jpeg_scan_data(path.read_bytes()) == jpeg_scan_data(old)
    assert "IPTC:Caption-Abstract" not in exiftool(path)  # no IPTC block is created


def test_jpeg_with_camera_exif_keeps_every_tag_and_makernote(tmp_path: Path) -> None:
    path = make_exif_jpeg(tmp_path / "camera.jpg")
    old = path.read_bytes()
    before, after = write_and_check(path, fields=(*XMP_FIELDS, "IFD0:ImageDescription"))
    for tag in ("IFD0:Make", "IFD0:Model", "IFD0:Orientation", "ExifIFD:DateTimeOriginal",
                "GPS:GPSLatitude", "GPS:GPSLongitude", "IFD1:ThumbnailLength"):
        assert tag in before and after[tag] == before[tag]
    assert jpeg_scan_data(path.read_bytes()) == jpeg_scan_data(old)
    makernote = exiftool(path, "-b", "-MakerNoteUnknownBinary", "-MakerNote")
    assert "PHOTOCAP-TEST-MAKERNOTE" in str(makernote) or before.get("ExifIFD:MakerNoteUnknownText") == after.get(
        "ExifIFD:MakerNoteUnknownText"
    )
    import piexif

    exif = piexif.load(str(path))
    assert exif["Exif"][piexif.ExifIFD.MakerNote].startswith(b"PHOTOCAP-TEST-MAKERNOTE")
    assert exif["0th"][piexif.ImageIFD.ImageDescription] == CAPTION.encode("utf-8")
    assert exif["thumbnail"]  # the thumbnail is still reachable


def test_jpeg_with_existing_xmp_keeps_other_properties(tmp_path: Path) -> None:
    path = make_xmp_jpeg(tmp_path / "lightroom.jpg")
    old = path.read_bytes()
    before, after = write_and_check(path, fields=(*XMP_FIELDS, "IFD0:ImageDescription"))
    assert after["XMP-dc:Subject"] == ["holiday", "beach"]
    assert after["XMP-xmp:Rating"] == 4
    assert after["XMP-xmp:CreatorTool"] == "Adobe Lightroom Classic 13.0"  # not overwritten
    assert after["XMP-dc:Creator"] == ["Ana Núñez"]
    assert jpeg_scan_data(path.read_bytes()) == jpeg_scan_data(old)


def test_jpeg_with_iptc_updates_caption_abstract(tmp_path: Path) -> None:
    path = make_iptc_jpeg(tmp_path / "iptc.jpg")
    old = path.read_bytes()
    before, after = write_and_check(
        path, fields=(*XMP_FIELDS, "IFD0:ImageDescription", "IPTC:Caption-Abstract")
    )
    assert after["IPTC:Keywords"] == "x" and after["IPTC:By-line"] == "y"
    assert after["IPTC:City"] == "Lisbon"
    assert jpeg_scan_data(path.read_bytes()) == jpeg_scan_data(old)
    # Photoshop's IPTC digest matches the new IPTC data (exiftool computes CurrentIPTCDigest from
    # the IPTC block itself), so no app warns that the IPTC was changed behind its back.
    assert before["Photoshop:IPTCDigest"] == before["File:CurrentIPTCDigest"]
    assert after["File:CurrentIPTCDigest"] == after["Photoshop:IPTCDigest"]
    assert after["Photoshop:IPTCDigest"] != before["Photoshop:IPTCDigest"]


def test_jpeg_windows_fields_optional(tmp_path: Path) -> None:
    path = make_exif_jpeg(tmp_path / "win.jpg")
    # exiftool 12.x decodes XPComment as UCS-2, so keep this caption in the BMP (no emoji).
    write_and_check(
        path,
        fields=(*XMP_FIELDS, "IFD0:ImageDescription", "IFD0:XPComment", "ExifIFD:UserComment"),
        caption="Café au lait, 咖啡 — Ελληνικά",
        write_windows_fields=True,
    )
    plain = copy_example(tmp_path, dest="plain.jpg")
    write_caption(plain, CAPTION)
    after = exiftool(plain)
    assert "IFD0:XPComment" not in after and "ExifIFD:UserComment" not in after


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_png_gets_itxt_xmp_with_pixels_unchanged(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"image {mode}.png"
    image = gradient((40, 30), "RGBA" if mode == "RGBA" else "RGB")
    (image.convert("P") if mode == "P" else image).save(path, pnginfo=None)
    exiftool_set(path, "-XMP-dc:Subject=kept", "-PNG:Author=Someone")
    old = path.read_bytes()
    before, after = write_and_check(path, fields=XMP_FIELDS)
    assert after["XMP-dc:Subject"] in ("kept", ["kept"])
    assert png.image_chunks(path.read_bytes()) == png.image_chunks(old)


def test_tiff_appends_and_keeps_strips(tmp_path: Path) -> None:
    path = tmp_path / "scan.tif"
    gradient((50, 40)).save(path, compression="tiff_lzw", dpi=(300, 300))
    exiftool_set(path, "-XMP-dc:Subject=archive", "-IFD0:Artist=Scanner Person", "-IFD0:Copyright=CC0")
    old = path.read_bytes()
    before, after = write_and_check(path, fields=(*XMP_FIELDS, "IFD0:ImageDescription"))
    new = path.read_bytes()
    assert new[8 : len(old)] == old[8:]  # only the IFD0 offset changed before the appended data
    assert after["IFD0:Artist"] == "Scanner Person"
    assert after["XMP-dc:Subject"] in ("archive", ["archive"])


@pytest.mark.parametrize("kind", ["lossy", "lossless-alpha", "with-exif"])
def test_webp(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.webp"
    if kind == "lossy":
        gradient((64, 48)).save(path, "WEBP", quality=80)
    elif kind == "lossless-alpha":
        gradient((64, 48), "RGBA").save(path, "WEBP", lossless=True)
    else:
        gradient((64, 48)).save(path, "WEBP", quality=80)
        exiftool_set(path, "-IFD0:Make=Pixel", "-ExifIFD:DateTimeOriginal=2024:01:02 03:04:05")
    old = path.read_bytes()
    # A simple-format file legitimately becomes "Extended WEBP" (a VP8X header is added).
    write_and_check(path, fields=(*XMP_FIELDS, "IFD0:ImageDescription"), allow=frozenset({"File:FileType", "RIFF:WebP_Flags"}))
    if kind == "lossless-alpha":
        with Image.open(path) as im:
            assert im.mode == "RGBA"
    assert webp.image_chunks(path.read_bytes()) == webp.image_chunks(old)
    data = path.read_bytes()
    assert struct.unpack("<I", data[4:8])[0] + 8 == len(data)


def test_unicode_path_with_spaces(tmp_path: Path) -> None:
    folder = tmp_path / "Été 2024 ✈ 旅行"
    folder.mkdir()
    path = copy_example(folder, "rocket.jpg", dest="launch day 🚀.jpg")
    write_and_check(path, fields=(*XMP_FIELDS, "IFD0:ImageDescription"))
    assert read_metadata(path).caption == CAPTION


def test_mpf_offsets_follow_a_grown_segment(tmp_path: Path) -> None:
    """A multi-picture JPEG (phone style): the secondary image must stay reachable."""
    import io

    primary, secondary = io.BytesIO(), io.BytesIO()
    gradient((48, 32)).save(primary, "JPEG")
    gradient((24, 16)).save(secondary, "JPEG")
    prim, sec = primary.getvalue(), secondary.getvalue()

    def mpf_segment(second_offset: int, first_size: int) -> bytes:
        entries = struct.pack(">IIIHH", 0x030000, first_size, 0, 0, 0)
        entries += struct.pack(">IIIHH", 0x010000, len(sec), second_offset, 0, 0)
        ifd = struct.pack(">H", 3)
        ifd += struct.pack(">HHI", 0xB000, 7, 4) + b"0100"
        ifd += struct.pack(">HHII", 0xB001, 4, 1, 2)
        ifd += struct.pack(">HHII", 0xB002, 7, 32, 8 + 2 + 3 * 12 + 4)
        ifd += struct.pack(">I", 0)
        payload = b"MPF\x00" + b"MM\x00*" + struct.pack(">I", 8) + ifd + entries
        return b"\xff\xe2" + struct.pack(">H", len(payload) + 2) + payload

    xmp = b"http://ns.adobe.com/xap/1.0/\x00" + (
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
        b"<rdf:Description rdf:about='' xmlns:xmp='http://ns.adobe.com/xap/1.0/' xmp:Rating='3'/>"
        b"</rdf:RDF></x:xmpmeta>"
    )
    xmp_seg = b"\xff\xe1" + struct.pack(">H", len(xmp) + 2) + xmp
    size_guess = len(mpf_segment(0, 0))
    header_pos = 2 + size_guess - (size_guess - 4 - 4)  # offset of the MPF TIFF header
    body = prim[2:]
    first_size = 2 + size_guess + len(xmp_seg) + len(body)
    second_offset = first_size - header_pos
    data = b"\xff\xd8" + mpf_segment(second_offset, first_size) + xmp_seg + body + sec
    path = tmp_path / "phone.jpg"
    path.write_bytes(data)
    import base64

    def preview() -> bytes:
        value = exiftool(path, "-b", "-MPImage2:PreviewImage").get("MPImage2:PreviewImage", "")
        return base64.b64decode(value[len("base64:"):]) if value.startswith("base64:") else b""

    assert preview() == sec
    write_caption(path, CAPTION)
    assert preview() == sec  # MPF offsets were moved with the grown XMP segment
    after = exiftool(path)
    assert after["XMP-xmp:Rating"] == 3 and after["XMP-dc:Description"] == CAPTION


def test_png_with_exif_chunk_gets_image_description_too(tmp_path: Path) -> None:
    import piexif

    path = tmp_path / "exif.png"
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"Fujifilm", piexif.ImageIFD.Software: b"x"}})
    gradient((30, 20)).save(path, exif=exif[6:] if exif.startswith(b"Exif") else exif)
    before, after = write_and_check(path, fields=(*XMP_FIELDS, "IFD0:ImageDescription"))
    assert after["IFD0:Make"] == "Fujifilm"


def test_tiff_with_exif_ifd_and_windows_fields(tmp_path: Path) -> None:
    path = tmp_path / "camera.tiff"
    gradient((30, 20)).save(path)
    exiftool_set(path, "-ExifIFD:DateTimeOriginal=2020:02:02 02:02:02", "-ExifIFD:ISO=400", "-IFD0:Make=Nikon")
    before, after = write_and_check(
        path,
        caption="Un café, 咖啡",
        fields=(*XMP_FIELDS, "IFD0:ImageDescription", "IFD0:XPComment", "ExifIFD:UserComment"),
        write_windows_fields=True,
    )
    assert after["ExifIFD:DateTimeOriginal"] == "2020:02:02 02:02:02" and after["ExifIFD:ISO"] == 400

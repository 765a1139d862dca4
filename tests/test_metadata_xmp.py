"""XMP parsing and merging: untrusted packets, lang-alt, prefixes, and the field table."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from photocap.errors import MetadataError
from photocap.metadata import fields, xmp
from photocap.metadata.reader import read_metadata
from photocap.metadata.writer import write_caption

from photocap.records import SkipReason

from metadata_samples import (
    CAPTION,
    exiftool,
    needs_exiftool,
    XMP_WITH_ENTITIES,
    jpeg_with_xmp_packet,
    xmp_with_external_entity,
)

DESC = fields.XMP_PROPERTIES[fields.XMP_DESCRIPTION]
ALT = fields.XMP_PROPERTIES[fields.XMP_ALT_TEXT]


@pytest.mark.timeout(30)
def test_billion_laughs_neither_hangs_nor_expands(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(MetadataError, match="DTD|entit"):
        xmp.parse(XMP_WITH_ENTITIES)
    photo = jpeg_with_xmp_packet(tmp_path / "lol.jpg", XMP_WITH_ENTITIES)
    old = photo.read_bytes()
    info = read_metadata(photo)
    assert info.caption is None and any("XMP" in w for w in info.warnings)
    with pytest.raises(MetadataError):
        write_caption(photo, CAPTION, target="embed")
    report = write_caption(photo, CAPTION)  # auto: the packet can't be merged -> sidecar
    assert report.target == "sidecar"
    assert photo.read_bytes() == old
    assert time.monotonic() - start < 10


def test_external_entity_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT", encoding="utf-8")
    packet = xmp_with_external_entity(secret)
    with pytest.raises(MetadataError):
        xmp.parse(packet)
    photo = jpeg_with_xmp_packet(tmp_path / "xxe.jpg", packet)
    info = read_metadata(photo)
    assert "TOP-SECRET-CONTENT" not in repr(info.to_dict())
    side = tmp_path / "other.gif.xmp"
    (tmp_path / "other.gif").write_bytes(b"GIF89a")
    side.write_bytes(packet)
    with pytest.raises(MetadataError, match="sidecar"):
        write_caption(tmp_path / "other.gif", CAPTION)
    assert side.read_bytes() == packet  # a sidecar photocap can't read is never replaced


def test_malformed_packet_is_reported_not_fatal(tmp_path: Path) -> None:
    photo = jpeg_with_xmp_packet(tmp_path / "bad.jpg", b"<x:xmpmeta><unclosed>")
    info = read_metadata(photo)
    assert info.warnings and info.caption is None


def test_lang_alt_set_keeps_other_languages_and_puts_x_default_first() -> None:
    packet = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
    <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:description><rdf:Alt><rdf:li xml:lang="de">Eine Tasse</rdf:li></rdf:Alt></dc:description>
    </rdf:Description></rdf:RDF></x:xmpmeta>"""
    doc = xmp.parse(packet)
    assert xmp.get(doc, DESC) == "Eine Tasse"
    xmp.set_value(doc, DESC, "A cup")
    again = xmp.parse(xmp.serialize(doc))
    assert xmp.get(again, DESC) == "A cup"
    text = xmp.serialize(again).decode()
    assert text.index('xml:lang="x-default"') < text.index('xml:lang="de"')


def test_attribute_form_and_prefixes_are_kept() -> None:
    packet = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
    <rdf:Description rdf:about="" xmlns:xap="http://ns.adobe.com/xap/1.0/" xap:Rating="2"
      xmlns:myns="http://example.com/ns/" myns:Thing="a &amp; b &lt;c&gt; &quot;d&quot;"/>
    </rdf:RDF></x:xmpmeta>"""
    doc = xmp.parse(packet)
    before = xmp.properties(doc)
    xmp.set_value(doc, DESC, 'quotes " & <tags> 🎉')
    xmp.set_value(doc, ALT, "alt")
    out = xmp.serialize(doc, padding=100)
    assert b"xap:Rating" in out and b"myns:Thing" in out  # the packet's own prefixes
    again = xmp.parse(out)
    after = xmp.properties(again)
    for key, value in before.items():
        assert after[key] == value
    assert xmp.get(again, DESC) == 'quotes " & <tags> 🎉'
    assert out.startswith(b"<?xpacket begin='\xef\xbb\xbf'") and out.endswith(b"<?xpacket end='w'?>")


def test_xmp_without_xmpmeta_wrapper() -> None:
    packet = b"""<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description
      rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="image/jpeg"/></rdf:RDF>"""
    doc = xmp.parse(packet)
    xmp.set_value(doc, DESC, "x")
    again = xmp.parse(xmp.serialize(doc))
    assert xmp.get(again, DESC) == "x"
    assert xmp.properties(again)["{http://purl.org/dc/elements/1.1/}format"] == "image/jpeg"


def test_field_table() -> None:
    jpeg_tags = fields.tags_for("jpeg", block_present={"IPTC": True}, windows=False)
    assert jpeg_tags == [
        fields.XMP_DESCRIPTION,
        fields.XMP_ALT_TEXT,
        fields.EXIF_DESCRIPTION,
        fields.IPTC_CAPTION,
    ]
    assert fields.IPTC_CAPTION not in fields.tags_for("jpeg", block_present={}, windows=False)
    assert fields.tags_for("png", block_present={}, windows=True) == [fields.XMP_DESCRIPTION, fields.XMP_ALT_TEXT]
    assert fields.EXIF_DESCRIPTION in fields.tags_for("png", block_present={"EXIF": True}, windows=False)
    assert fields.tags_for("sidecar", block_present={}, windows=True) == [fields.XMP_DESCRIPTION, fields.XMP_ALT_TEXT]
    assert fields.EXIF_XP_COMMENT in fields.tags_for("webp", block_present={}, windows=True)
    assert fields.TAG_SPECS[fields.EXIF_USER_COMMENT].prose_only
    assert not fields.TAG_SPECS[fields.EXIF_DESCRIPTION].prose_only


def test_metadata_package_imports_nothing_heavy() -> None:
    code = (
        "import sys, photocap.metadata.writer, photocap.metadata.reader\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'PySide6', 'torchvision')"
        " or m.startswith(('photocap.index', 'photocap.cli', 'photocap.gui', 'photocap.model'))]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


RATED = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
         b'xmlns:xmp="http://ns.adobe.com/xap/1.0/"><rdf:Description rdf:about=""><xmp:Rating>3</xmp:Rating>'
         b'</rdf:Description></rdf:RDF></x:xmpmeta>')


@needs_exiftool
@pytest.mark.parametrize("wrapper", [b'xmlns:x="adobe:ns:meta/BROKEN"', b'xmlns:x="urn:not-xmp"'])
def test_a_corrupt_xmpmeta_namespace_is_put_right_so_other_tools_read_the_caption(
        tmp_path: Path, wrapper: bytes) -> None:
    """Issue 31: merged into the packet as it was, the caption was hidden from exiftool."""
    photo = jpeg_with_xmp_packet(tmp_path / "p.jpg", RATED.replace(b'xmlns:x="adobe:ns:meta/"', wrapper))
    assert "XMP-dc:Description" not in exiftool(photo, "-XMP:all")
    report = write_caption(photo, CAPTION)
    assert report.target == "embed"
    seen = exiftool(photo, "-XMP:all")
    assert seen["XMP-dc:Description"] == CAPTION and seen["XMP-xmp:Rating"] == 3  # the rating kept
    assert write_caption(photo, CAPTION).skip is SkipReason.UP_TO_DATE


@needs_exiftool
def test_a_corrupt_wrapper_holding_more_than_rdf_goes_to_a_sidecar(tmp_path: Path) -> None:
    packet = RATED.replace(b'xmlns:x="adobe:ns:meta/">', b'xmlns:x="urn:x"><x:other>kept</x:other>')
    photo = jpeg_with_xmp_packet(tmp_path / "p.jpg", packet)
    before = photo.read_bytes()
    report = write_caption(photo, CAPTION)
    assert report.target == "sidecar" and photo.read_bytes() == before
    assert exiftool(Path(report.written_path or ""), "-XMP-dc:Description")["XMP-dc:Description"] == CAPTION
    with pytest.raises(MetadataError, match="wrapper"):
        write_caption(photo, CAPTION, target="embed")


def test_a_non_standard_wrapper_is_replaced_keeping_every_property() -> None:
    doc = xmp.parse(RATED.replace(b'xmlns:x="adobe:ns:meta/"', b'xmlns:x="urn:x"'))
    before = xmp.properties(doc)
    assert not xmp.is_standard(doc) and xmp.wrapper_problem(doc) is None
    assert xmp.make_standard(doc) and xmp.is_standard(doc) and xmp.properties(doc) == before
    again = xmp.parse(xmp.serialize(doc))
    assert xmp.is_standard(again) and xmp.properties(again) == before

"""Sample photos and exiftool helpers for the metadata tests (imported by test_metadata_*)."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "photos"
CAPTION = "Une tasse de café ☕ on a table, 咖啡杯 🍵"

# Tags that may legitimately differ after a write (besides the ones written).
VOLATILE_GROUPS = ("System:", "ExifTool:", "SourceFile")
VOLATILE_TAGS = {
    "IFD0:ImageDescription",
    "IFD0:XPComment",
    "ExifIFD:UserComment",
    "ExifIFD:ExifVersion",
    "XMP-dc:Description",
    "XMP-iptcCore:AltTextAccessibility",
    "IPTC:Caption-Abstract",
    "IPTC:CodedCharacterSet",
    "Photoshop:IPTCDigest",
    "File:CurrentIPTCDigest",
    "File:ExifByteOrder",
    "XMP-x:XMPToolkit",
}

needs_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")


def exiftool(path: Path, *args: str) -> dict:
    out = subprocess.run(
        ["exiftool", "-j", "-G1", "-struct", *args, str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout.decode("utf-8"))[0]


def exiftool_set(path: Path, *assignments: str) -> None:
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-charset", "iptc=UTF8", *assignments, str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )


def lost_tags(before: dict, after: dict) -> dict:
    """Tags exiftool saw before that are missing or changed after (volatile ones ignored)."""
    lost = {}
    for key, value in before.items():
        if key.startswith(VOLATILE_GROUPS) or key in VOLATILE_TAGS or key.startswith("XMP-photocap:"):
            continue
        if after.get(key) != value:
            lost[key] = (value, after.get(key))
    return lost


def jpeg_scan_data(data: bytes) -> bytes:
    """Everything from the first SOS marker on, found by an independent marker walk."""
    assert data[:2] == b"\xff\xd8"
    pos = 2
    while True:
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        if marker == 0xDA:
            return data[pos:]
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        pos += 2 + length


def copy_example(tmp_path: Path, name: str = "coffee.jpg", dest: str | None = None) -> Path:
    target = tmp_path / (dest or name)
    shutil.copyfile(EXAMPLES / name, target)
    return target


def gradient(size: tuple[int, int] = (64, 48), mode: str = "RGB"):
    from PIL import Image

    image = Image.new(mode, size)
    pixels = image.load()
    for y in range(size[1]):
        for x in range(size[0]):
            value = (x * 4 % 256, y * 5 % 256, (x + y) * 3 % 256, 128 + (x % 2) * 100)
            pixels[x, y] = value[: len(mode)] if len(mode) > 1 else value[0]
    return image


def make_exif_jpeg(path: Path) -> Path:
    """A JPEG with camera EXIF made by piexif: Make/Model, dates, GPS, orientation, a thumbnail."""
    import piexif

    thumb = io.BytesIO()
    gradient((16, 12)).save(thumb, "JPEG")
    exif = {
        "0th": {
            piexif.ImageIFD.Make: b"Canon",
            piexif.ImageIFD.Model: b"Canon EOS 5D Mark IV",
            piexif.ImageIFD.Orientation: 6,
            piexif.ImageIFD.Software: b"Firmware 1.0.4",
            piexif.ImageIFD.XResolution: (72, 1),
            piexif.ImageIFD.YResolution: (72, 1),
            piexif.ImageIFD.ResolutionUnit: 2,
        },
        "Exif": {
            piexif.ExifIFD.DateTimeOriginal: b"2023:07:14 15:32:10",
            piexif.ExifIFD.ExposureTime: (1, 250),
            piexif.ExifIFD.FNumber: (56, 10),
            piexif.ExifIFD.ISOSpeedRatings: 200,
            piexif.ExifIFD.MakerNote: b"PHOTOCAP-TEST-MAKERNOTE\x00" + bytes(range(64)),
        },
        "GPS": {
            piexif.GPSIFD.GPSLatitudeRef: b"N",
            piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (2400, 100)),
            piexif.GPSIFD.GPSLongitudeRef: b"E",
            piexif.GPSIFD.GPSLongitude: ((2, 1), (21, 1), (300, 100)),
        },
        "1st": {piexif.ImageIFD.JPEGInterchangeFormat: 0, piexif.ImageIFD.JPEGInterchangeFormatLength: 0},
        "thumbnail": thumb.getvalue(),
    }
    gradient((96, 64)).save(path, "JPEG", quality=90, exif=piexif.dump(exif))
    return path


def make_xmp_jpeg(path: Path) -> Path:
    """A JPEG with an XMP packet holding keywords, a rating and a creator tool (by exiftool)."""
    gradient((80, 60)).save(path, "JPEG", quality=85)
    exiftool_set(
        path,
        "-XMP-dc:Subject=holiday",
        "-XMP-dc:Subject=beach",
        "-XMP-xmp:Rating=4",
        "-XMP-xmp:CreatorTool=Adobe Lightroom Classic 13.0",
        "-XMP-dc:Creator=Ana Núñez",
        "-XMP-photoshop:City=Porto",
    )
    return path


def make_iptc_jpeg(path: Path) -> Path:
    gradient((80, 60)).save(path, "JPEG", quality=85)
    # -IPTCDigest=new: Photoshop's digest of the IPTC data, as Photoshop and Lightroom leave it
    exiftool_set(path, "-IPTC:Keywords=x", "-IPTC:By-line=y", "-IPTC:City=Lisbon", "-IPTCDigest=new")
    return path


XMP_WITH_ENTITIES = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:description><rdf:Alt><rdf:li xml:lang="x-default">&lol9;</rdf:li></rdf:Alt></dc:description>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


def xmp_with_external_entity(secret: Path) -> bytes:
    return f"""<?xml version="1.0"?>
<!DOCTYPE x [ <!ENTITY xxe SYSTEM "file://{secret}"> ]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:description><rdf:Alt><rdf:li xml:lang="x-default">&xxe;</rdf:li></rdf:Alt></dc:description>
</rdf:Description></rdf:RDF></x:xmpmeta>""".encode()


def jpeg_with_xmp_packet(path: Path, packet: bytes) -> Path:
    """A JPEG whose APP1 XMP segment holds ``packet`` verbatim."""
    buf = io.BytesIO()
    gradient((32, 24)).save(buf, "JPEG")
    data = buf.getvalue()
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    path.write_bytes(data[:2] + segment + data[2:])
    return path

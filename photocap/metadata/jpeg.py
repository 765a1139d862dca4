"""JPEG segment surgery: find and replace metadata segments, never touch the image data.

Everything from the first SOS marker to the end of the file (the compressed
image data, EOI, and any trailer such as MPF secondary images) is copied
unchanged.  If a segment after an MPF (multi-picture) segment changes size, the
MPF offsets to the trailing images are adjusted so they still point at them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from photocap.errors import MetadataError
from photocap.metadata import tiff

SOI = b"\xff\xd8"
SOS = 0xDA
EOI = 0xD9
APP0, APP1, APP2, APP13 = 0xE0, 0xE1, 0xE2, 0xED
EXIF_ID = b"Exif\x00\x00"
XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
PHOTOSHOP_ID = b"Photoshop 3.0\x00"
MPF_ID = b"MPF\x00"
MAX_PAYLOAD = 65533
MAX_XMP = MAX_PAYLOAD - len(XMP_ID)
MAX_EXIF = MAX_PAYLOAD - len(EXIF_ID)
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
TAG_MP_ENTRY = 0xB002


@dataclass
class Segment:
    marker: int
    payload: bytes

    def encode(self) -> bytes:
        if self.marker in STANDALONE:
            return bytes((0xFF, self.marker))
        if len(self.payload) > MAX_PAYLOAD:
            raise MetadataError(
                f"a JPEG segment would be {len(self.payload):,} bytes; the limit is {MAX_PAYLOAD:,}"
            )
        return bytes((0xFF, self.marker)) + struct.pack(">H", len(self.payload) + 2) + self.payload


@dataclass
class Jpeg:
    segments: list[Segment]
    image: bytes  # from the first SOS marker to the end of the file

    def find(self, marker: int, ident: bytes) -> int | None:
        for i, seg in enumerate(self.segments):
            if seg.marker == marker and seg.payload.startswith(ident):
                return i
        return None

    def count(self, marker: int, ident: bytes) -> int:
        return sum(1 for s in self.segments if s.marker == marker and s.payload.startswith(ident))

    def get(self, marker: int, ident: bytes) -> bytes | None:
        i = self.find(marker, ident)
        return None if i is None else self.segments[i].payload[len(ident) :]

    def get_all(self, marker: int, ident: bytes) -> list[bytes]:
        return [s.payload[len(ident) :] for s in self.segments if s.marker == marker and s.payload.startswith(ident)]

    def encode(self) -> bytes:
        return SOI + b"".join(seg.encode() for seg in self.segments) + self.image


def parse(data: bytes) -> Jpeg:
    """Split a JPEG into its header segments and the image data (SOS onwards)."""
    if not data.startswith(SOI):
        raise MetadataError("not a JPEG file (no SOI marker)")
    pos, segments = 2, []
    while True:
        if pos + 2 > len(data):
            raise MetadataError("the JPEG is truncated before its image data")
        if data[pos] != 0xFF:
            raise MetadataError(f"the JPEG is corrupt (no marker at byte {pos})")
        while pos + 1 < len(data) and data[pos + 1] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos + 1]
        if marker == SOS:
            break
        if marker == EOI:
            raise MetadataError("the JPEG has no image data")
        if marker in STANDALONE:
            segments.append(Segment(marker, b""))
            pos += 2
            continue
        if pos + 4 > len(data):
            raise MetadataError("the JPEG is truncated")
        length = struct.unpack_from(">H", data, pos + 2)[0]
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise MetadataError("the JPEG is truncated or has a corrupt segment length")
        segments.append(Segment(marker, data[pos + 4 : end]))
        pos = end
    image = data[pos:]
    if image.rfind(b"\xff\xd9") < 0:  # searched from the end, where EOI is: O(1) for an intact file
        raise MetadataError("the JPEG is truncated (no end-of-image marker)")
    return Jpeg(segments, image)


def _insert_at(jpeg: Jpeg) -> int:
    """Where a new APP1 goes: after SOI's JFIF/JFXX APP0 segments and any existing EXIF."""
    i = 0
    while i < len(jpeg.segments) and jpeg.segments[i].marker == APP0:
        i += 1
    exif = jpeg.find(APP1, EXIF_ID)
    if exif is not None and exif >= i:
        i = exif + 1
    return i


def _mpf_entries(payload: bytes) -> tuple[tiff.TiffBlob, int, int] | None:
    """(blob, offset of the MP entry table, image count) of an MPF payload, if it has one."""
    blob = tiff.TiffBlob(payload[len(MPF_ID) :])
    entry = blob.read_ifd(blob.ifd0_offset).entries.get(TAG_MP_ENTRY)
    if entry is None or len(entry.value) < 16:
        return None
    start = struct.unpack(blob.bo + "I", entry.field)[0]
    return blob, start, len(entry.value) // 16


def _shift_mpf(payload: bytes, delta: int) -> bytes:
    found = _mpf_entries(payload)
    if found is None or delta == 0:
        return payload
    blob, start, count = found
    data = bytearray(blob.data)
    for i in range(count):
        pos = start + 16 * i + 8
        offset = struct.unpack_from(blob.bo + "I", data, pos)[0]
        if offset:
            struct.pack_into(blob.bo + "I", data, pos, offset + delta)
    return MPF_ID + bytes(data)


def mpf_targets(data: bytes) -> list[bytes]:
    """The first two bytes at each MPF secondary-image offset (b"\\xff\\xd8" when intact)."""
    jpeg = parse(data)
    i = jpeg.find(APP2, MPF_ID)
    if i is None:
        return []
    try:
        found = _mpf_entries(jpeg.segments[i].payload)
    except MetadataError:
        return []
    if found is None:
        return []
    blob, start, count = found
    header = 2 + sum(len(s.encode()) for s in jpeg.segments[:i]) + 4 + len(MPF_ID)
    targets = []
    for n in range(count):
        offset = struct.unpack_from(blob.bo + "I", blob.data, start + 16 * n + 8)[0]
        if offset:
            targets.append(data[header + offset : header + offset + 2])
    return targets


def rebuild(
    data: bytes,
    *,
    exif: bytes | None = None,
    xmp: bytes | None = None,
    photoshop: bytes | None = None,
) -> bytes:
    """``data`` with the given segment payloads (without their identifiers) set or added.

    ``photoshop`` only replaces an existing Photoshop APP13 segment.
    """
    jpeg = parse(data)
    old_sizes = [len(s.encode()) for s in jpeg.segments]
    old = list(jpeg.segments)
    if exif is not None:
        if len(exif) > MAX_EXIF:
            raise MetadataError(f"the EXIF block would be {len(exif):,} bytes, over JPEG's limit")
        i = jpeg.find(APP1, EXIF_ID)
        if i is None:
            jpeg.segments.insert(_insert_at(jpeg), Segment(APP1, EXIF_ID + exif))
        else:
            jpeg.segments[i] = Segment(APP1, EXIF_ID + exif)
    if xmp is not None:
        if len(xmp) > MAX_XMP:
            raise MetadataError(
                f"the merged XMP packet is {len(xmp):,} bytes, more than one JPEG segment holds "
                f"({MAX_XMP:,}); extended XMP is not supported"
            )
        i = jpeg.find(APP1, XMP_ID)
        if i is None:
            jpeg.segments.insert(_insert_at(jpeg), Segment(APP1, XMP_ID + xmp))
        else:  # the new packet holds every packet's properties: one segment replaces them all
            jpeg.segments[i] = Segment(APP1, XMP_ID + xmp)
            jpeg.segments[i + 1 :] = [
                s for s in jpeg.segments[i + 1 :] if not (s.marker == APP1 and s.payload.startswith(XMP_ID))
            ]
    if photoshop is not None:
        i = jpeg.find(APP13, PHOTOSHOP_ID)
        if i is None:
            raise MetadataError("the JPEG has no Photoshop (IPTC) segment to update")
        jpeg.segments[i] = Segment(APP13, PHOTOSHOP_ID + photoshop)
    _fix_mpf(jpeg, old, old_sizes)
    return jpeg.encode()


def _fix_mpf(jpeg: Jpeg, old: list[Segment], old_sizes: list[int]) -> None:
    """Keep MPF offsets (relative to the MPF segment) pointing at the trailing images."""
    new_i = jpeg.find(APP2, MPF_ID)
    if new_i is None:
        return
    mpf = jpeg.segments[new_i]
    old_i = next(i for i, s in enumerate(old) if s is mpf)
    after_old = sum(old_sizes[old_i + 1 :])
    after_new = sum(len(s.encode()) for s in jpeg.segments[new_i + 1 :])
    delta = after_new - after_old
    if delta:
        jpeg.segments[new_i] = Segment(APP2, _shift_mpf(mpf.payload, delta))

"""A minimal TIFF structure reader and an append-only IFD patcher.

Used for EXIF blobs (JPEG APP1, WebP/PNG EXIF chunks) and for TIFF files.
Changing a tag never moves existing data: the changed IFD is copied to the end
with the new entries, its unchanged out-of-line values keep their offsets, and
only the pointer to that IFD is updated.  MakerNotes, thumbnails, strips and
anything photocap does not understand stay where they were, byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from photocap.errors import MetadataError

BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEFINED, IFD_TYPE = 1, 2, 3, 4, 5, 7, 13
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}

TAG_EXIF_IFD = 0x8769
TAG_GPS_IFD = 0x8825
TAG_INTEROP_IFD = 0xA005
POINTER_TAGS = frozenset({TAG_EXIF_IFD, TAG_GPS_IFD, TAG_INTEROP_IFD})
MAX_IFDS = 64


@dataclass(frozen=True)
class Entry:
    """One IFD entry: its type, count, the value's bytes, and the raw 4-byte value field."""

    tag: int
    type: int
    count: int
    value: bytes
    field: bytes  # the raw value/offset field as stored (kept for unchanged entries)


@dataclass(frozen=True)
class Ifd:
    offset: int
    entries: dict[int, Entry]
    next_offset: int


class TiffBlob:
    """Read-only view of a classic (32-bit offset) TIFF structure."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 8:
            raise MetadataError("TIFF/EXIF data is truncated")
        order = data[:2]
        if order == b"II":
            self.bo = "<"
        elif order == b"MM":
            self.bo = ">"
        else:
            raise MetadataError("TIFF/EXIF data has no valid byte-order mark")
        magic = struct.unpack(self.bo + "H", data[2:4])[0]
        if magic == 43:
            raise MetadataError("BigTIFF files are not supported for embedding")
        if magic != 42:
            raise MetadataError("TIFF/EXIF data has a bad header")
        self.data = data
        self.ifd0_offset = self.u32(4)

    def u16(self, pos: int) -> int:
        return struct.unpack_from(self.bo + "H", self.data, pos)[0]

    def u32(self, pos: int) -> int:
        return struct.unpack_from(self.bo + "I", self.data, pos)[0]

    def read_ifd(self, offset: int) -> Ifd:
        data = self.data
        if offset < 8 or offset + 2 > len(data):
            raise MetadataError(f"TIFF/EXIF directory offset {offset} is outside the data")
        count = self.u16(offset)
        end = offset + 2 + 12 * count
        if end + 4 > len(data):
            raise MetadataError("TIFF/EXIF directory is truncated")
        entries: dict[int, Entry] = {}
        for i in range(count):
            pos = offset + 2 + 12 * i
            tag, typ, n = struct.unpack_from(self.bo + "HHI", data, pos)
            field = data[pos + 8 : pos + 12]
            size = TYPE_SIZES.get(typ, 1) * n
            if size <= 4:
                value = field[:size]
            else:
                start = struct.unpack(self.bo + "I", field)[0]
                if start + size > len(data):
                    raise MetadataError(f"TIFF/EXIF tag 0x{tag:04x} points outside the data")
                value = data[start : start + size]
            entries[tag] = Entry(tag, typ, n, value, field)
        return Ifd(offset, entries, self.u32(end))

    def pointer(self, ifd: Ifd, tag: int) -> int | None:
        entry = ifd.entries.get(tag)
        if entry is None or entry.type not in (LONG, IFD_TYPE, UNDEFINED) or len(entry.value) < 4:
            return None
        offset = struct.unpack(self.bo + "I", entry.value[:4])[0]
        return offset or None

    def directories(self) -> dict[str, Ifd]:
        """IFD0, IFD1..., and the EXIF, GPS and Interop sub-directories, by name."""
        found: dict[str, Ifd] = {}
        seen: set[int] = set()
        offset, index = self.ifd0_offset, 0
        while offset and offset not in seen and index < MAX_IFDS:
            seen.add(offset)
            ifd = self.read_ifd(offset)
            found[f"IFD{index}"] = ifd
            offset, index = ifd.next_offset, index + 1
        ifd0 = found.get("IFD0")
        if ifd0 is not None:
            for name, tag in (("ExifIFD", TAG_EXIF_IFD), ("GPS", TAG_GPS_IFD)):
                sub = self.pointer(ifd0, tag)
                if sub and sub not in seen:
                    seen.add(sub)
                    found[name] = self.read_ifd(sub)
        exif = found.get("ExifIFD")
        if exif is not None:
            sub = self.pointer(exif, TAG_INTEROP_IFD)
            if sub and sub not in seen:
                found["Interop"] = self.read_ifd(sub)
        return found


def fingerprint(data: bytes) -> dict[str, tuple[int, int, bytes]]:
    """Every tag's (type, count, value bytes), keyed "IFD0:0x010e"; pointer tags left out."""
    blob = TiffBlob(data)
    result: dict[str, tuple[int, int, bytes]] = {}
    for name, ifd in blob.directories().items():
        for tag, entry in ifd.entries.items():
            if tag in POINTER_TAGS:
                continue
            result[f"{name}:0x{tag:04x}"] = (entry.type, entry.count, entry.value)
    return result


def empty_blob() -> bytes:
    """A little-endian TIFF header followed by an empty IFD0."""
    return b"II*\x00" + struct.pack("<I", 8) + b"\x00\x00" + b"\x00\x00\x00\x00"


Change = tuple[int, bytes] | None  # (type, value bytes) or None to delete the tag


def _append(buf: bytearray, chunk: bytes) -> int:
    if len(buf) % 2:
        buf.append(0)
    offset = len(buf)
    buf += chunk
    return offset


def _append_ifd(buf: bytearray, bo: str, ifd: Ifd | None, changes: dict[int, Change]) -> int:
    entries: dict[int, tuple[int, int, bytes]] = {}  # tag -> (type, count, field)
    if ifd is not None:
        for tag, entry in ifd.entries.items():
            entries[tag] = (entry.type, entry.count, entry.field)
    for tag, change in changes.items():
        if change is None:
            entries.pop(tag, None)
            continue
        typ, value = change
        size = TYPE_SIZES[typ]
        count = len(value) // size
        if len(value) <= 4:
            field = value.ljust(4, b"\x00")
        else:
            field = struct.pack(bo + "I", _append(buf, value))
        entries[tag] = (typ, count, field)
    table = struct.pack(bo + "H", len(entries))
    for tag in sorted(entries):
        typ, count, field = entries[tag]
        table += struct.pack(bo + "HHI", tag, typ, count) + field
    table += struct.pack(bo + "I", ifd.next_offset if ifd is not None else 0)
    offset = _append(buf, table)
    if offset > 0xFFFFFFFF:
        raise MetadataError("the file is too large for a classic TIFF structure")
    return offset


def patch(
    data: bytes | None,
    ifd0_changes: dict[int, Change],
    exif_changes: dict[int, Change] | None = None,
) -> bytes:
    """Return ``data`` with IFD0 (and the EXIF sub-IFD) entries changed, nothing else moved."""
    if not data:
        data = empty_blob()
    blob = TiffBlob(data)
    bo = blob.bo
    ifd0 = blob.read_ifd(blob.ifd0_offset)
    buf = bytearray(data)
    changes0 = dict(ifd0_changes)
    if exif_changes:
        exif_offset = blob.pointer(ifd0, TAG_EXIF_IFD)
        exif_ifd = blob.read_ifd(exif_offset) if exif_offset else None
        sub_changes = dict(exif_changes)
        if exif_ifd is None:
            sub_changes.setdefault(0x9000, (UNDEFINED, b"0232"))  # ExifVersion
        new_exif = _append_ifd(buf, bo, exif_ifd, sub_changes)
        changes0[TAG_EXIF_IFD] = (LONG, struct.pack(bo + "I", new_exif))
    new_ifd0 = _append_ifd(buf, bo, ifd0, changes0)
    buf[4:8] = struct.pack(bo + "I", new_ifd0)
    return bytes(buf)

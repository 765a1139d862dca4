"""WebP (RIFF) chunk surgery: ``EXIF`` and ``XMP `` chunks; image chunks untouched.

A simple-format file (a lone VP8/VP8L chunk) is turned into the extended format
by adding a ``VP8X`` header chunk, as the WebP container spec requires for metadata.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from photocap.errors import MetadataError

FLAG_ICC, FLAG_ALPHA, FLAG_EXIF, FLAG_XMP, FLAG_ANIM = 0x20, 0x10, 0x08, 0x04, 0x02
IMAGE_CHUNKS = frozenset({b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})
MAX_CHUNK = 0xFFFFFFFE


@dataclass
class Chunk:
    fourcc: bytes
    data: bytes

    def encode(self) -> bytes:
        pad = b"\x00" if len(self.data) % 2 else b""
        return self.fourcc + struct.pack("<I", len(self.data)) + self.data + pad


def parse(data: bytes) -> list[Chunk]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise MetadataError("not a WebP file")
    size = struct.unpack_from("<I", data, 4)[0]
    if size + 8 > len(data):
        raise MetadataError("the WebP file is truncated")
    if size + 8 < len(data):
        raise MetadataError("the WebP file has data after its RIFF container")
    pos, chunks = 12, []
    while pos < size + 8:
        if pos + 8 > len(data):
            raise MetadataError("the WebP file is truncated")
        fourcc, length = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        end = pos + 8 + length
        if end > len(data):
            raise MetadataError("the WebP file is truncated")
        chunks.append(Chunk(fourcc, data[pos + 8 : end]))
        pos = end + (length % 2)
    if not any(c.fourcc in (b"VP8 ", b"VP8L", b"ANMF") for c in chunks):
        raise MetadataError("the WebP file has no image data")
    return chunks


def get(chunks: list[Chunk], fourcc: bytes) -> bytes | None:
    return next((c.data for c in chunks if c.fourcc == fourcc), None)


def get_all(chunks: list[Chunk], fourcc: bytes) -> list[bytes]:
    return [c.data for c in chunks if c.fourcc == fourcc]


def _canvas(chunks: list[Chunk]) -> tuple[int, int, bool]:
    """Width, height and has-alpha of a simple-format file, from its bitstream header."""
    for chunk in chunks:
        if chunk.fourcc == b"VP8 " and len(chunk.data) >= 10 and chunk.data[3:6] == b"\x9d\x01\x2a":
            w, h = struct.unpack_from("<HH", chunk.data, 6)
            return w & 0x3FFF, h & 0x3FFF, False
        if chunk.fourcc == b"VP8L" and len(chunk.data) >= 5 and chunk.data[0] == 0x2F:
            bits = struct.unpack_from("<I", chunk.data, 1)[0]
            w, h = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            return w, h, bool((bits >> 28) & 1)
    raise MetadataError("the WebP bitstream header is corrupt")


def _vp8x(chunks: list[Chunk]) -> Chunk:
    found = next((c for c in chunks if c.fourcc == b"VP8X"), None)
    if found is not None:
        if len(found.data) < 10:
            raise MetadataError("the WebP VP8X header is corrupt")
        return found
    width, height, alpha = _canvas(chunks)
    flags = FLAG_ALPHA if alpha or any(c.fourcc == b"ALPH" for c in chunks) else 0
    data = bytes((flags, 0, 0, 0)) + (width - 1).to_bytes(3, "little")
    data += (height - 1).to_bytes(3, "little")
    vp8x = Chunk(b"VP8X", data)
    chunks.insert(0, vp8x)
    return vp8x


def rebuild(data: bytes, *, exif: bytes | None = None, xmp: bytes | None = None) -> bytes:
    """``data`` with the EXIF and/or XMP chunks set, and the VP8X flags to match."""
    chunks = parse(data)
    vp8x = _vp8x(chunks)
    flags = vp8x.data[0]
    for fourcc, payload, flag in ((b"EXIF", exif, FLAG_EXIF), (b"XMP ", xmp, FLAG_XMP)):
        if payload is None:
            continue
        if len(payload) > MAX_CHUNK:
            raise MetadataError("the metadata chunk is too large for WebP")
        flags |= flag
        index = next((i for i, c in enumerate(chunks) if c.fourcc == fourcc), None)
        if index is not None:
            chunks[index] = Chunk(fourcc, payload)
            if fourcc == b"XMP ":  # the new packet merges every XMP chunk's: it replaces them all
                chunks[index + 1 :] = [c for c in chunks[index + 1 :] if c.fourcc != fourcc]
            continue
        # After the image chunks (and after EXIF, for XMP); unknown chunks stay last.
        last = max(i for i, c in enumerate(chunks) if c.fourcc in IMAGE_CHUNKS | {b"VP8X", b"EXIF"})
        chunks.insert(last + 1, Chunk(fourcc, payload))
    chunks[chunks.index(vp8x)] = Chunk(b"VP8X", bytes((flags,)) + vp8x.data[1:])
    body = b"WEBP" + b"".join(c.encode() for c in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def image_chunks(data: bytes) -> list[bytes]:
    """Every chunk that defines the pixels, in order (for verification)."""
    return [c.encode() for c in parse(data) if c.fourcc in IMAGE_CHUNKS]

"""PNG chunk surgery: the XMP ``iTXt`` chunk (and an existing ``eXIf``); pixels untouched.

Bytes after the ``IEND`` chunk (some tools append data there) are kept as they are.
A file with several XMP chunks gets one merged chunk where the first was.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from photocap.errors import MetadataError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = b"XML:com.adobe.xmp"
MAX_TEXT = 16 * 1024 * 1024
IMAGE_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"tRNS", b"acTL", b"fcTL", b"fdAT"})


@dataclass
class Chunk:
    type: bytes
    data: bytes
    raw: bytes | None = None  # the original bytes (length, type, data, CRC), kept verbatim

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        crc = zlib.crc32(self.type + self.data) & 0xFFFFFFFF
        return struct.pack(">I", len(self.data)) + self.type + self.data + struct.pack(">I", crc)


def parse(data: bytes) -> list[Chunk]:
    if not data.startswith(SIGNATURE):
        raise MetadataError("not a PNG file")
    pos, chunks = len(SIGNATURE), []
    while pos < len(data):
        if pos + 12 > len(data):
            raise MetadataError("the PNG is truncated")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            raise MetadataError("the PNG is truncated")
        chunks.append(Chunk(ctype, data[pos + 8 : pos + 8 + length], data[pos:end]))
        pos = end
        if ctype == b"IEND":
            break
    if not chunks or chunks[0].type != b"IHDR" or chunks[-1].type != b"IEND":
        raise MetadataError("the PNG is truncated or corrupt (missing IHDR or IEND)")
    if not any(c.type == b"IDAT" for c in chunks):
        raise MetadataError("the PNG has no image data")
    return chunks


def _itxt_fields(data: bytes) -> tuple[bytes, bytes] | None:
    """(keyword, text bytes) of an iTXt chunk, decompressing with a size limit."""
    keyword, sep, rest = data.partition(b"\x00")
    if not sep or len(rest) < 2:
        return None
    compressed, _method, rest = rest[0], rest[1], rest[2:]
    parts = rest.split(b"\x00", 2)
    if len(parts) < 3:
        return None
    text = parts[2]
    if compressed:
        inflater = zlib.decompressobj()
        try:
            text = inflater.decompress(text, MAX_TEXT)
        except zlib.error as exc:
            raise MetadataError(f"the PNG's compressed XMP chunk is corrupt ({exc})") from exc
        if inflater.unconsumed_tail:
            raise MetadataError("the PNG's compressed XMP chunk is implausibly large")
    return keyword, text


def _is_xmp(chunk: Chunk) -> bool:
    return chunk.type == b"iTXt" and chunk.data.startswith(XMP_KEYWORD + b"\x00")


def get_xmp(chunks: list[Chunk]) -> list[bytes]:
    """The text of every XMP chunk, in file order (normally one)."""
    packets = []
    for chunk in chunks:
        if _is_xmp(chunk):
            found = _itxt_fields(chunk.data)
            if found:
                packets.append(found[1])
    return packets


def get_exif(chunks: list[Chunk]) -> bytes | None:
    for chunk in chunks:
        if chunk.type == b"eXIf":
            return chunk.data
    return None


def rebuild(data: bytes, *, xmp: bytes | None = None, exif: bytes | None = None) -> bytes:
    """``data`` with the XMP iTXt chunk set (in place, else before IDAT) and eXIf replaced."""
    chunks = parse(data)
    trailer = data[len(SIGNATURE) + sum(len(c.encode()) for c in chunks) :]
    if xmp is not None:
        new = Chunk(b"iTXt", XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp)
        index = next((i for i, c in enumerate(chunks) if _is_xmp(c)), None)
        if index is None:
            first_idat = next(i for i, c in enumerate(chunks) if c.type == b"IDAT")
            chunks.insert(first_idat, new)
        else:
            chunks[index] = new
            chunks[index + 1 :] = [c for c in chunks[index + 1 :] if not _is_xmp(c)]
    if exif is not None:
        index = next((i for i, c in enumerate(chunks) if c.type == b"eXIf"), None)
        if index is None:
            raise MetadataError("the PNG has no eXIf chunk to update")
        chunks[index] = Chunk(b"eXIf", exif)
    return SIGNATURE + b"".join(c.encode() for c in chunks) + trailer


def trailer(data: bytes) -> bytes:
    """The bytes after the IEND chunk."""
    return data[len(SIGNATURE) + sum(len(c.encode()) for c in parse(data)) :]


def image_chunks(data: bytes) -> list[bytes]:
    """The raw bytes of every chunk that defines the pixels, in order (for verification)."""
    return [c.encode() for c in parse(data) if c.type in IMAGE_CHUNKS]

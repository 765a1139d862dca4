"""IPTC IIM inside a JPEG's Photoshop APP13 segment: read and update Caption-Abstract and Keywords.

photocap only updates an IPTC block that already exists (resource 0x0404 in the
Photoshop image-resource block); keywords are only ever added after those there.  Other datasets and resources are copied
verbatim; the IPTC digest (0x0425), when present, is refreshed so that
Photoshop-aware tools see the IIM and XMP as in sync.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

from photocap.errors import MetadataError

RESOURCE_IPTC = 0x0404
RESOURCE_DIGEST = 0x0425
CAPTION = (2, 120)
KEYWORDS = (2, 25)
MAX_KEYWORD = 64  # bytes, per the IIM spec
CHARSET = (1, 90)
UTF8_CHARSET = b"\x1b%G"
MAX_CAPTION = 2000  # bytes, per the IIM spec


@dataclass
class Resource:
    signature: bytes
    id: int
    name: bytes  # the padded Pascal string, verbatim
    data: bytes

    def encode(self) -> bytes:
        pad = b"\x00" if len(self.data) % 2 else b""
        return self.signature + struct.pack(">H", self.id) + self.name + struct.pack(
            ">I", len(self.data)
        ) + self.data + pad


def parse_resources(data: bytes) -> list[Resource]:
    pos, found = 0, []
    while pos + 12 <= len(data):
        signature = data[pos : pos + 4]
        if signature not in (b"8BIM", b"PHUT", b"AgHg", b"DCSR", b"MeSa"):
            raise MetadataError("the Photoshop (IPTC) segment is corrupt")
        rid = struct.unpack_from(">H", data, pos + 4)[0]
        name_len = data[pos + 6]
        name_size = name_len + 1 + ((name_len + 1) % 2)
        name = data[pos + 6 : pos + 6 + name_size]
        size_pos = pos + 6 + name_size
        if size_pos + 4 > len(data):
            raise MetadataError("the Photoshop (IPTC) segment is truncated")
        size = struct.unpack_from(">I", data, size_pos)[0]
        start = size_pos + 4
        if start + size > len(data):
            raise MetadataError("the Photoshop (IPTC) segment is truncated")
        found.append(Resource(signature, rid, name, data[start : start + size]))
        pos = start + size + (size % 2)
    if data[pos:].strip(b"\x00"):
        raise MetadataError("the Photoshop (IPTC) segment has trailing garbage")
    return found


Dataset = tuple[int, int, bytes]  # (record, dataset, value)


def parse_iim(data: bytes) -> list[Dataset]:
    pos, found = 0, []
    while pos < len(data):
        if data[pos] != 0x1C:
            if not data[pos:].strip(b"\x00"):
                break  # padding
            raise MetadataError("the IPTC block is corrupt")
        if pos + 5 > len(data):
            raise MetadataError("the IPTC block is truncated")
        record, number, length = data[pos + 1], data[pos + 2], struct.unpack_from(">H", data, pos + 3)[0]
        pos += 5
        if length & 0x8000:  # extended dataset: the next (length & 0x7fff) bytes hold the length
            n = length & 0x7FFF
            if n > 4 or pos + n > len(data):
                raise MetadataError("the IPTC block has an unsupported extended dataset")
            length = int.from_bytes(data[pos : pos + n], "big")
            pos += n
        if pos + length > len(data):
            raise MetadataError("the IPTC block is truncated")
        found.append((record, number, data[pos : pos + length]))
        pos += length
    return found


def _encode_dataset(record: int, number: int, value: bytes) -> bytes:
    if len(value) > 0x7FFF:
        return bytes((0x1C, record, number)) + struct.pack(">HI", 0x8004, len(value)) + value
    return bytes((0x1C, record, number)) + struct.pack(">H", len(value)) + value


def encode_iim(datasets: list[Dataset]) -> bytes:
    return b"".join(_encode_dataset(*d) for d in datasets)


def _is_utf8(datasets: list[Dataset]) -> bool:
    return any((r, n) == CHARSET and v == UTF8_CHARSET for r, n, v in datasets)


def _insert_sorted(datasets: list[Dataset], dataset: Dataset) -> None:
    """Insert before the first dataset numbered higher (IIM keeps datasets in order)."""
    key = dataset[:2]
    index = next((i for i, d in enumerate(datasets) if d[:2] > key), len(datasets))
    datasets.insert(index, dataset)


def _decode(value: bytes, utf8: bool) -> str:
    if utf8:
        return value.decode("utf-8", errors="replace")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


@dataclass
class IptcBlock:
    """The IPTC part of a Photoshop APP13 payload (without its ``Photoshop 3.0`` id)."""

    resources: list[Resource]
    datasets: list[Dataset]

    @property
    def caption(self) -> str | None:
        utf8 = _is_utf8(self.datasets)
        for record, number, value in self.datasets:
            if (record, number) == CAPTION:
                return _decode(value, utf8).rstrip("\x00").strip()
        return None

    @property
    def keywords(self) -> list[str]:
        """The Keywords (2:25) datasets, in order."""
        utf8 = _is_utf8(self.datasets)
        return [_decode(v, utf8).rstrip("\x00").strip() for r, n, v in self.datasets if (r, n) == KEYWORDS]

    def fingerprint(self) -> dict[str, object]:
        found: dict[str, object] = {}
        seen: dict[tuple[int, int], int] = {}
        for record, number, value in self.datasets:
            n = seen[(record, number)] = seen.get((record, number), -1) + 1
            found[f"IIM:{record}:{number}:{n}"] = value
        for res in self.resources:
            found.setdefault(f"8BIM:{res.signature!r}:{res.id}", res.data)
        return found


def load(photoshop: bytes) -> IptcBlock | None:
    """The IPTC block of a Photoshop payload, or None if it has no IPTC resource."""
    resources = parse_resources(photoshop)
    iim = next((r for r in resources if r.id == RESOURCE_IPTC and r.signature == b"8BIM"), None)
    if iim is None:
        return None
    return IptcBlock(resources, parse_iim(iim.data))


def _encoder(datasets: list[Dataset], texts: list[str]) -> Callable[[str], bytes] | None:
    """How to encode ``texts`` into this block (None if it can't be done losslessly).

    UTF-8 is declared (dataset 1:90, added to ``datasets``) when the block has no character
    set and holds only ASCII; a block in an undeclared 8-bit charset takes only Latin-1 text.
    """
    if _is_utf8(datasets):
        return lambda t: t.encode("utf-8")
    if any((r, n) == CHARSET for r, n, _ in datasets):
        return None  # some other declared charset: leave it alone
    if all(v.isascii() for _, _, v in datasets):
        if not all(t.isascii() for t in texts):
            _insert_sorted(datasets, (*CHARSET, UTF8_CHARSET))
        return lambda t: t.encode("utf-8")
    try:
        for t in texts:
            t.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return lambda t: t.encode("latin-1")


def updated(block: IptcBlock, *, caption: str | None = None, keywords: tuple[str, ...] = ()) -> bytes | None:
    """The Photoshop payload with Caption-Abstract set (``caption``) and ``keywords`` added
    after the Keywords already there (which are kept as they are), or None if it can't be
    done losslessly (a charset photocap can't write, a value too long for IIM)."""
    datasets = list(block.datasets)
    texts = ([caption] if caption is not None else []) + list(keywords)
    encode = _encoder(datasets, texts)
    if encode is None:
        return None
    if caption is not None:
        value = encode(caption)
        if len(value) > MAX_CAPTION:
            return None
        index = next((i for i, d in enumerate(datasets) if (d[0], d[1]) == CAPTION), None)
        if index is None:
            _insert_sorted(datasets, (*CAPTION, value))
        else:
            datasets[index] = (*CAPTION, value)
    for word in keywords:
        value = encode(word)
        if len(value) > MAX_KEYWORD:
            return None
        _insert_sorted(datasets, (*KEYWORDS, value))
    iim = encode_iim(datasets)
    out = []
    for res in block.resources:
        if res.id == RESOURCE_IPTC and res.signature == b"8BIM":
            res = Resource(res.signature, res.id, res.name, iim)
        elif res.id == RESOURCE_DIGEST and res.signature == b"8BIM":
            res = Resource(res.signature, res.id, res.name, hashlib.md5(iim).digest())  # noqa: S324
        out.append(res)
    return b"".join(r.encode() for r in out)

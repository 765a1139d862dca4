"""EXIF text fields: read them from a TIFF-structured EXIF blob, and patch them in.

Writing goes through :mod:`photocap.metadata.tiff`'s append-only patcher rather
than re-serialising the whole EXIF block (as ``piexif.dump`` would), because a
rewrite moves MakerNotes whose internal offsets then point at the wrong bytes.
piexif is still used as an independent reader when verifying a written file.
"""

from __future__ import annotations

from photocap.metadata import fields, tiff

TAG_IMAGE_DESCRIPTION = 0x010E
TAG_XP_COMMENT = 0x9C9C
TAG_USER_COMMENT = 0x9286
TAG_XMP = 0x02BC  # XMLPacket, used in TIFF files
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110

EXIF_HEADER = b"Exif\x00\x00"

# photocap tag name -> (directory, tag number)
TEXT_TAGS: dict[str, tuple[str, int]] = {
    fields.EXIF_DESCRIPTION: ("IFD0", TAG_IMAGE_DESCRIPTION),
    fields.EXIF_XP_COMMENT: ("IFD0", TAG_XP_COMMENT),
    fields.EXIF_USER_COMMENT: ("ExifIFD", TAG_USER_COMMENT),
}


def strip_header(blob: bytes) -> tuple[bytes, bytes]:
    """Split an optional ``Exif\\0\\0`` prefix from the TIFF structure: (prefix, tiff)."""
    if blob.startswith(EXIF_HEADER):
        return EXIF_HEADER, blob[len(EXIF_HEADER) :]
    return b"", blob


def _decode_ascii(raw: bytes) -> str:
    raw = raw.split(b"\x00", 1)[0]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _decode_user_comment(raw: bytes, bo: str) -> str:
    code, body = raw[:8], raw[8:]
    if code.startswith(b"UNICODE"):
        order = "utf-16-le" if bo == "<" else "utf-16-be"
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            order = "utf-16"
        text = body.decode(order, errors="replace")
    elif code.startswith(b"ASCII") or code == b"\x00" * 8:
        text = _decode_ascii(body)
    else:  # JIS or unknown: not something photocap reports as a caption
        return ""
    return text.rstrip("\x00").strip()


def read_text_tags(data: bytes) -> dict[str, str]:
    """The EXIF text fields photocap knows, from a TIFF-structured blob (no ``Exif`` prefix)."""
    blob = tiff.TiffBlob(data)
    dirs = blob.directories()
    found: dict[str, str] = {}
    for name, (where, tag) in TEXT_TAGS.items():
        ifd = dirs.get(where)
        entry = ifd.entries.get(tag) if ifd else None
        if entry is None:
            continue
        if tag == TAG_IMAGE_DESCRIPTION:
            value = _decode_ascii(entry.value).strip()
        elif tag == TAG_XP_COMMENT:
            value = entry.value.decode("utf-16-le", errors="replace").rstrip("\x00").strip()
        else:
            value = _decode_user_comment(entry.value, blob.bo)
        if value:
            found[name] = value
    return found


def read_camera(data: bytes) -> tuple[str | None, str | None]:
    """EXIF Make and Model from IFD0 (for telling a camera's own name from a description)."""
    ifd = tiff.TiffBlob(data).directories().get("IFD0")
    found: list[str | None] = []
    for tag in (TAG_MAKE, TAG_MODEL):
        entry = ifd.entries.get(tag) if ifd else None
        found.append((_decode_ascii(entry.value).strip() or None) if entry is not None else None)
    return found[0], found[1]


def read_xmp(data: bytes) -> bytes | None:
    """The XMP packet stored in IFD0's XMLPacket tag (TIFF files), if any."""
    blob = tiff.TiffBlob(data)
    entry = blob.read_ifd(blob.ifd0_offset).entries.get(TAG_XMP)
    return entry.value if entry is not None else None


def byte_order(data: bytes | None) -> str:
    if data and data[:2] == b"MM":
        return ">"
    return "<"


def encode_changes(
    values: dict[str, str], bo: str
) -> tuple[dict[int, tiff.Change], dict[int, tiff.Change]]:
    """IFD0 and EXIF-IFD changes that set the given photocap text tags."""
    ifd0: dict[int, tiff.Change] = {}
    exif_ifd: dict[int, tiff.Change] = {}
    for name, text in values.items():
        where, tag = TEXT_TAGS[name]
        if tag == TAG_IMAGE_DESCRIPTION:
            change = (tiff.ASCII, text.encode("utf-8") + b"\x00")
        elif tag == TAG_XP_COMMENT:
            change = (tiff.BYTE, text.encode("utf-16-le") + b"\x00\x00")
        elif text.isascii():
            change = (tiff.UNDEFINED, b"ASCII\x00\x00\x00" + text.encode("ascii"))
        else:
            order = "utf-16-le" if bo == "<" else "utf-16-be"
            change = (tiff.UNDEFINED, b"UNICODE\x00" + text.encode(order))
        (ifd0 if where == "IFD0" else exif_ifd)[tag] = change
    return ifd0, exif_ifd


def patch_text_tags(
    data: bytes | None, values: dict[str, str], extra_ifd0: dict[int, tiff.Change] | None = None
) -> bytes:
    """Return the TIFF-structured ``data`` (or a new blob) with the text tags set."""
    bo = byte_order(data)
    ifd0, exif_ifd = encode_changes(values, bo)
    if extra_ifd0:
        ifd0.update(extra_ifd0)
    return tiff.patch(data, ifd0, exif_ifd or None)


def changed_keys(values: dict[str, str]) -> set[str]:
    """Fingerprint keys (see :func:`tiff.fingerprint`) that setting ``values`` may change."""
    keys = set()
    for name in values:
        where, tag = TEXT_TAGS[name]
        keys.add(f"{where}:0x{tag:04x}")
        if where == "ExifIFD":
            keys.add("ExifIFD:0x9000")
    return keys


def piexif_readable(data: bytes) -> bool:
    """Whether piexif (an independent parser) can load the blob."""
    import piexif

    try:
        piexif.load(EXIF_HEADER + data if not data.startswith(EXIF_HEADER) else data)
    except Exception:  # noqa: BLE001 - piexif raises many kinds of errors
        return False
    return True

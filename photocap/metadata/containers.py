"""File formats: recognise them, pull their metadata blocks out, put new ones back.

One small dispatch over the per-format modules (jpeg, png, tiff, webp), so the
reader and writer never need to know a container's layout.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from photocap.errors import MetadataError
from photocap.metadata import exif, jpeg, png, tiff, webp

EMBED_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp"})
RAW_SUFFIXES = frozenset(
    {
        ".3fr", ".ari", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".fff",
        ".iiq", ".k25", ".kdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef",
        ".raf", ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f",
    }
)  # fmt: skip
SIDECAR_SUFFIXES = frozenset({".gif", ".bmp", ".heic", ".heif", ".avif", ".jxl"}) | RAW_SUFFIXES
EMBED_KINDS = frozenset({"jpeg", "png", "tiff", "webp"})
JPEG_XMP_PADDING = 2048


def sniff(head: bytes) -> str:
    """The container kind from a file's first bytes."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(png.SIGNATURE):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:4] in (b"II+\x00", b"MM\x00+"):
        return "bigtiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM":
        return "bmp"
    if head[4:8] == b"ftyp":
        return "heif"
    return "unknown"


def kind_of(path: Path, head: bytes) -> str:
    """What photocap treats the file as: a sniffed kind, "raw" for camera raw files."""
    suffix = path.suffix.lower()
    if suffix in RAW_SUFFIXES:
        return "raw"  # many raw formats are TIFF inside, but are not to be rewritten
    return sniff(head)


def can_embed(path: Path, kind: str) -> bool:
    return kind in EMBED_KINDS and path.suffix.lower() in EMBED_SUFFIXES


def is_photo(path: Path, kind: str) -> bool:
    """Whether photocap writes metadata for this file at all (embedded or sidecar)."""
    suffix = path.suffix.lower()
    return can_embed(path, kind) or suffix in SIDECAR_SUFFIXES or kind in ("gif", "bmp", "heif")


@dataclass
class Embedded:
    """A file's metadata blocks, as stored."""

    kind: str
    exif: bytes | None = None  # TIFF-structured; for TIFF files, the whole file
    exif_prefix: bytes = b""  # an ``Exif\\0\\0`` prefix the chunk had (WebP/PNG)
    xmp: list[bytes] = field(default_factory=list)  # every XMP packet, in file order (normally one)
    photoshop: bytes | None = None  # JPEG APP13 payload, without its identifier
    photoshop_segments: int = 0


def extract(kind: str, data: bytes) -> Embedded:
    """The metadata blocks of a file; MetadataError if the container is corrupt."""
    if kind == "jpeg":
        parsed = jpeg.parse(data)
        return Embedded(
            kind,
            exif=parsed.get(jpeg.APP1, jpeg.EXIF_ID),
            xmp=parsed.get_all(jpeg.APP1, jpeg.XMP_ID),
            photoshop=parsed.get(jpeg.APP13, jpeg.PHOTOSHOP_ID),
            photoshop_segments=parsed.count(jpeg.APP13, jpeg.PHOTOSHOP_ID),
        )
    if kind == "png":
        chunks = png.parse(data)
        raw = png.get_exif(chunks)
        prefix, blob = exif.strip_header(raw) if raw is not None else (b"", None)
        return Embedded(kind, exif=blob, exif_prefix=prefix, xmp=png.get_xmp(chunks))
    if kind == "webp":
        chunks = webp.parse(data)
        raw = webp.get(chunks, b"EXIF")
        prefix, blob = exif.strip_header(raw) if raw is not None else (b"", None)
        return Embedded(kind, exif=blob, exif_prefix=prefix, xmp=webp.get_all(chunks, b"XMP "))
    if kind == "tiff":
        tiff.TiffBlob(data).read_ifd(tiff.TiffBlob(data).ifd0_offset)
        packet = exif.read_xmp(data)
        return Embedded(kind, exif=data, xmp=[] if packet is None else [packet])
    raise MetadataError(f"photocap can't read metadata embedded in {kind} files")


def rebuild(
    kind: str,
    data: bytes,
    embedded: Embedded,
    *,
    exif_values: dict[str, str],
    xmp: bytes | None,
    photoshop: bytes | None = None,
) -> bytes:
    """The file with the EXIF text tags, the XMP packet and the Photoshop block replaced."""
    if kind == "tiff":
        extra = {exif.TAG_XMP: (tiff.BYTE, xmp)} if xmp is not None else None
        return exif.patch_text_tags(data, exif_values, extra)
    new_exif = None
    if exif_values:
        new_exif = embedded.exif_prefix + exif.patch_text_tags(embedded.exif, exif_values)
    if kind == "jpeg":
        return jpeg.rebuild(data, exif=new_exif, xmp=xmp, photoshop=photoshop)
    if kind == "png":
        return png.rebuild(data, xmp=xmp, exif=new_exif)
    if kind == "webp":
        return webp.rebuild(data, exif=new_exif, xmp=xmp)
    raise MetadataError(f"photocap can't embed metadata in {kind} files")


def same_image(kind: str, old: bytes, new: bytes) -> bool:
    """Whether the image data of ``new`` is byte-identical to that of ``old``."""
    if kind == "jpeg":
        return jpeg.parse(old).image == jpeg.parse(new).image
    if kind == "png":
        return png.image_chunks(old) == png.image_chunks(new) and png.trailer(old) == png.trailer(new)
    if kind == "webp":
        return webp.image_chunks(old) == webp.image_chunks(new)
    if kind == "tiff":  # append-only: everything but the IFD0 offset is an unchanged prefix
        return new[:4] == old[:4] and new[8 : len(old)] == old[8:]
    return False


SAMPLE = 1 << 20  # bytes hashed at the start, middle and end of a file photocap never rewrites


def image_digest(kind: str, data: bytes | None, path: Path) -> str | None:
    """A digest of the photo itself, which no metadata write changes: what a model's caption
    was made from (recorded next to it, so the caption is never taken for another photo's).

    JPEG, PNG and WebP: the image data (what :func:`same_image` compares). Files photocap only
    writes sidecars for (RAW, HEIC, GIF ...): the file's size and its first, middle and last MiB.
    None for TIFF (its metadata and pixels share one structure) and for a file that can't be read.
    """
    h = hashlib.blake2b(digest_size=16)
    try:
        if kind in ("jpeg", "png", "webp") and data is not None:
            if kind == "jpeg":
                parts = [jpeg.parse(data).image]
            elif kind == "png":
                parts = [*png.image_chunks(data), png.trailer(data)]
            else:
                parts = webp.image_chunks(data)
            for part in parts:
                h.update(part)
            return f"i1:{h.hexdigest()}"
        if kind == "tiff" or can_embed(path, kind):
            return None
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            h.update(size.to_bytes(8, "little"))
            for offset in dict.fromkeys((0, max(0, (size - SAMPLE) // 2), max(0, size - SAMPLE))):
                f.seek(offset)
                h.update(f.read(SAMPLE))
        return f"f1:{h.hexdigest()}"
    except (MetadataError, OSError):
        return None

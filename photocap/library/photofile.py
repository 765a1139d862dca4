"""One photo file, read without the model: probe it (content hash, EXIF facts, the
description already in it and whose words it is), decode it for the model, check it is
completely written.

These run in the decode workers (``photocap.library.workers``) for the pipeline, in
threads for the watcher (completeness), and in the GUI's thumbnailer (HEIF support).
Never imports torch: decoding goes through ``photocap.imaging.preprocess`` (Pillow and numpy).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from photocap.errors import MetadataError
from photocap.library.scan import content_hash
from photocap.metadata.provenance import Owner
from photocap.imaging.preprocess import describe_image_error

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class FileDescription:
    """The description a photo already carries, and whose words it is."""

    text: str
    owner: Owner  # never STOCK: stock text is not a description
    model: str | None = None  # PHOTOCAP_MODEL: the model photocap recorded


@dataclass(frozen=True)
class ProbeResult:
    """What a worker learnt about a file without decoding its pixels."""

    content_hash: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    camera: str | None = None
    description: FileDescription | None = None  # the description in its metadata, if any
    stock_texts: tuple[str, ...] = ()  # texts in its description fields that no person wrote
    error: str | None = None


@dataclass(frozen=True)
class DecodedImage:
    """A decoded RGB image as raw bytes (cheap to send between processes)."""

    width: int = 0
    height: int = 0
    data: bytes = b""
    error: str | None = None

    def to_pil(self) -> Image.Image:
        from PIL import Image

        return Image.frombytes("RGB", (self.width, self.height), self.data)


def register_heif() -> None:
    """Let Pillow open HEIC/HEIF photos when pillow-heif is installed (idempotent)."""
    try:
        import pillow_heif  # type: ignore[import-not-found]
    except ImportError:
        return
    pillow_heif.register_heif_opener()


def probe_file(path: str, with_description: bool = True) -> ProbeResult:
    """Hash a file and read its header: dimensions, EXIF capture time and camera, and
    (``with_description``) the description in its metadata.

    Never raises for a bad file: the reason is in ``error``.
    """
    try:
        digest = content_hash(path)
        width, height, taken_at, camera = read_exif_facts(path)
    except Exception as exc:  # noqa: BLE001 - any failure is a per-file reason
        return ProbeResult(error=describe_image_error(exc))
    description, stock = read_description(path) if with_description else (None, ())
    return ProbeResult(digest, width, height, taken_at, camera, description, stock)


def decode_file(path: str, size: int) -> DecodedImage:
    """Decode ``path`` for the model (``photocap.imaging.preprocess.open_image``)."""
    from photocap.imaging.preprocess import open_image

    try:
        img = open_image(path, size)
    except Exception as exc:  # noqa: BLE001
        return DecodedImage(error=describe_image_error(exc))
    return DecodedImage(img.width, img.height, img.tobytes())


_EXIF_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_EXIF_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


def read_exif_facts(path: str | os.PathLike[str]) -> tuple[int, int, str | None, str | None]:
    """(width, height, taken_at, camera) from the file header; no pixel decode.

    Width and height are as displayed (EXIF orientation 5-8 swaps them).
    ``taken_at`` is EXIF DateTimeOriginal (else DateTimeDigitized, else
    DateTime) as ISO 8601, with OffsetTimeOriginal when present. ``camera`` is
    "Make Model" without the make repeated.
    """
    from PIL import Image

    register_heif()
    with Image.open(path) as img:
        width, height = img.size
        exif = img.getexif()
    if exif.get(0x0112) in (5, 6, 7, 8):
        width, height = height, width
    sub = exif.get_ifd(0x8769) if exif else {}
    taken_at = None
    for raw in (sub.get(36867), sub.get(36868), exif.get(306)):
        taken_at = _exif_datetime(raw)
        if taken_at:
            break
    if taken_at:
        offset = _clean(sub.get(36881))
        if offset and _EXIF_OFFSET.match(offset):
            taken_at += offset
    make, model = _clean(exif.get(271)), _clean(exif.get(272))
    if make and model and model.casefold().startswith(make.split()[0].casefold()):
        camera: str | None = model
    else:
        camera = " ".join(p for p in (make, model) if p) or None
    return width, height, taken_at, camera


def _clean(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip(" \t\r\n\x00")
    return value or None


def _exif_datetime(raw: Any) -> str | None:
    text = _clean(raw)
    m = _EXIF_DATE.match(text or "")
    if not m or m.group(1) == "0000":
        return None
    y, mo, d, h, mi, s = m.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}"


def read_description(path: str | os.PathLike[str]) -> tuple[FileDescription | None, tuple[str, ...]]:
    """(the description in the photo's metadata or its sidecar, the stock texts found there).

    The description is a person's words if any are there (typed in another app, or saved
    through photocap), else a model's caption photocap wrote; texts that no person wrote
    (:mod:`photocap.metadata.stock`) are never a description. Metadata that cannot be
    read counts as none (the writer reads it again and refuses to write where it cannot).
    """
    from photocap.metadata.reader import read_metadata

    try:
        report = read_metadata(path)
    except (MetadataError, OSError, ValueError, RecursionError):
        return None, ()
    stock = tuple(dict.fromkeys(" ".join(v.value.split()) for v in report.values if v.placeholder))
    if report.caption is None or report.caption_owner is None:
        return None, stock
    model = report.photocap_model if report.caption_owner is Owner.PHOTOCAP_MODEL else None
    return FileDescription(" ".join(report.caption.split()), report.caption_owner, model), stock


def check_complete(path: str) -> str | None:
    """None if ``path`` is a completely written image, else why not (still being written?).

    A JPEG must have its end-of-image marker near the end, and every format
    must decode to the last byte of its pixel data (JPEGs at 1/8 scale, which
    still reads all of the compressed data). Thread-safe.
    """
    try:
        from PIL import Image

        register_heif()
        with open(path, "rb") as f:
            if f.read(3) == b"\xff\xd8\xff":
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - 1024))
                if b"\xff\xd9" not in f.read():
                    return "truncated JPEG (no end-of-image marker yet)"
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft("RGB", (64, 64))
            img.seek(0)
            img.load()
    except Exception as exc:  # noqa: BLE001 - any failure means "not complete (yet)"
        return describe_image_error(exc)
    return None

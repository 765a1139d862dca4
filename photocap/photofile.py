"""One photo file, read without the model: probe it (content hash, EXIF facts, a human
description), decode it for the model, check it is completely written; and the worker
pool that runs these off the main process.

Used by the pipeline (probe, decode), the watcher (completeness) and the GUI's
thumbnails (HEIF support). Never imports torch: decoding goes through
``photocap.model.preprocess``, which is PIL only.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from photocap.model.preprocess import describe_image_error
from photocap.scan import content_hash

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class ProbeResult:
    """What a worker learnt about a file without decoding its pixels."""

    content_hash: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    camera: str | None = None
    description: str | None = None  # a human-written description found in its metadata
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


WORKER_NICENESS = 10


def _init_worker() -> None:
    """Decode workers leave Ctrl-C to the parent, which stops them cleanly.

    They also run at a lower priority: decoding is throughput work that fills
    whatever CPU is idle, while the model's intra-op threads wait on each other,
    so a decoder holding one of their cores stalls them all. (It also keeps a
    background index from slowing the desktop.)
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):
        try:
            os.nice(WORKER_NICENESS)
        except OSError:
            pass
    register_heif()


def register_heif() -> None:
    """Let Pillow open HEIC/HEIF photos when pillow-heif is installed (idempotent)."""
    try:
        import pillow_heif  # type: ignore[import-not-found]
    except ImportError:
        return
    pillow_heif.register_heif_opener()


def probe_file(path: str, read_description: bool = True) -> ProbeResult:
    """Hash a file and read its header: dimensions, EXIF capture time and camera.

    Never raises for a bad file: the reason is in ``error``.
    """
    try:
        digest = content_hash(path)
        width, height, taken_at, camera = read_exif_facts(path)
    except Exception as exc:  # noqa: BLE001 - any failure is a per-file reason
        return ProbeResult(error=describe_image_error(exc))
    description = human_description(path) if read_description else None
    return ProbeResult(digest, width, height, taken_at, camera, description)


def decode_file(path: str, size: int) -> DecodedImage:
    """Decode ``path`` for the model (``photocap.model.preprocess.open_image``)."""
    from photocap.model.preprocess import open_image

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


def human_description(path: str | os.PathLike[str]) -> str | None:
    """A description a person wrote into the photo's metadata, if any (not one photocap wrote).

    Uses ``photocap.metadata.reader.read_metadata`` when that module is
    installed; any failure there means "no description".
    """
    try:
        from photocap.metadata.reader import read_metadata  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        meta = read_metadata(path)
    except Exception:  # noqa: BLE001 - unreadable metadata is simply no description
        return None
    return _description_from(meta)


def _description_from(meta: Any) -> str | None:
    """The human description in a ``photocap.metadata.reader.MetadataReport``, if it has one."""
    if meta is None or not getattr(meta, "has_user_description", False):
        return None
    caption = getattr(meta, "caption", None)
    if isinstance(caption, str) and caption.strip() and not getattr(meta, "written_by_photocap", False):
        return " ".join(caption.split())
    for value in getattr(meta, "values", ()) or ():
        text = getattr(value, "value", None)
        if (isinstance(text, str) and text.strip() and not getattr(value, "by_photocap", False)
                and not getattr(value, "placeholder", False)):
            return " ".join(text.split())
    return None


class InlineExecutor(Executor):
    """Runs tasks at submit time in this process (``workers=0``, tiny jobs, tests)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001
            fut.set_exception(exc)
        return fut


def default_workers() -> int:
    """Decode processes used when not told: one per CPU but one (for the model), at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def make_decode_pool(workers: int | None = None) -> Executor:
    """A process pool for probing and decoding; pass it as ``executor=`` to reuse it across calls.

    Uses ``forkserver`` on Linux (safe when the caller has threads, e.g. Qt),
    else ``spawn``. ``workers=0`` gives an inline executor (no processes).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    n = default_workers() if workers is None else workers
    if n <= 0:
        return InlineExecutor()
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker)


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

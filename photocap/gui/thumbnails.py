"""Thumbnails made off the UI thread, cached on disk and in memory.

:class:`ThumbnailCache` answers :meth:`~ThumbnailCache.get` at once: a
``QPixmap`` when it has one in memory, else ``None`` after queueing a job on
its ``QThreadPool``. A job reads the disk cache (``settings.cache_dir() /
"thumbnails"``) or decodes the photo with Pillow (reduced-size JPEG decode,
EXIF orientation) and writes the cache, then :attr:`~ThumbnailCache.ready`
fires on the UI thread. Disk entries are keyed by the photo's absolute path,
file size, mtime and the thumbnail size, so an edited photo gets a new one.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap

MEMORY_ITEMS = 1500  # pixmaps kept in memory (about 100 KB each at 160 px)
JPEG_QUALITY = 85


def cache_key(path: str, file_size: int, mtime_ns: int, px: int) -> str:
    """The disk-cache key of one thumbnail: photo path + file size + mtime + thumbnail size."""
    raw = f"{os.path.abspath(path)}\0{file_size}\0{mtime_ns}\0{px}".encode("utf-8", "surrogatepass")
    return hashlib.sha1(raw).hexdigest()


def make_thumbnail(path: str, px: int, cache_dir: Path | None) -> QImage:
    """A QImage of ``path`` fitting in ``px`` x ``px``; uses and fills the disk cache.

    Raises OSError/ValueError (and Pillow's errors) for unreadable photos.
    Safe to call from any thread (QImage, not QPixmap).
    """
    st = os.stat(path)
    cached: Path | None = None
    if cache_dir is not None:
        key = cache_key(path, st.st_size, st.st_mtime_ns, px)
        cached = cache_dir / key[:2] / f"{key}.jpg"
        if cached.is_file():
            image = QImage(str(cached))
            if not image.isNull():
                return image
    from PIL import Image, ImageOps

    from photocap.library.photofile import register_heif

    register_heif()
    with Image.open(path) as img:
        img.draft("RGB", (px, px))  # JPEG: decode at 1/2, 1/4 or 1/8 size
        img = ImageOps.exif_transpose(img)
        img = img.convert("RGB")
        img.thumbnail((px, px), Image.Resampling.LANCZOS)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f"{cached.name}.{os.getpid()}.{id(img)}.tmp")
            img.save(tmp, "JPEG", quality=JPEG_QUALITY)
            os.replace(tmp, cached)
        except OSError:
            pass  # an unwritable cache only costs speed
    data = img.tobytes()
    return QImage(data, img.width, img.height, 3 * img.width, QImage.Format.Format_RGB888).copy()


class _Signals(QObject):
    done = Signal(str, int, QImage)
    failed = Signal(str, int, str)


class _Job(QRunnable):
    def __init__(self, path: str, px: int, cache_dir: Path | None, signals: _Signals) -> None:
        super().__init__()
        self.path, self.px, self.cache_dir, self.signals = path, px, cache_dir, signals
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            image = make_thumbnail(self.path, self.px, self.cache_dir)
        except Exception as exc:  # noqa: BLE001 - any failure is "no thumbnail" for this photo
            self.signals.failed.emit(self.path, self.px, str(exc) or type(exc).__name__)
            return
        self.signals.done.emit(self.path, self.px, image)


class ThumbnailCache(QObject):
    """Thumbnails by (path, size): memory LRU -> disk cache -> decode, off the UI thread."""

    ready = Signal(str, int)  # path, px: get(path, px) now returns a pixmap
    failed = Signal(str, int, str)  # path, px, reason

    def __init__(self, cache_dir: Path | None = None, threads: int | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        if cache_dir is None:
            from photocap.settings import cache_dir as default_cache_dir

            cache_dir = default_cache_dir() / "thumbnails"
        self.cache_dir = cache_dir
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads or max(1, min(4, (os.cpu_count() or 2) - 1)))
        self._memory: OrderedDict[tuple[str, int], QPixmap] = OrderedDict()
        self._broken: dict[tuple[str, int], str] = {}
        self._pending: set[tuple[str, int]] = set()
        self._signals = _Signals(self)
        self._signals.done.connect(self._on_done)
        self._signals.failed.connect(self._on_failed)

    def get(self, path: str, px: int) -> QPixmap | None:
        """The pixmap if ready; else ``None`` and the thumbnail is queued (once)."""
        key = (path, px)
        pixmap = self._memory.get(key)
        if pixmap is not None:
            self._memory.move_to_end(key)
            return pixmap
        if key not in self._pending and key not in self._broken:
            self._pending.add(key)
            self.pool.start(_Job(path, px, self.cache_dir, self._signals))
        return None

    def error(self, path: str, px: int) -> str | None:
        """Why the thumbnail of ``path`` could not be made, if it failed."""
        return self._broken.get((path, px))

    def forget(self, path: str) -> None:
        """Drop ``path``'s thumbnails from memory (e.g. after the file changed)."""
        for key in [k for k in (*self._memory, *self._broken) if k[0] == path]:
            self._memory.pop(key, None)
            self._broken.pop(key, None)

    def cancel_pending(self) -> None:
        """Drop queued jobs that have not started (after a new search, say)."""
        self.pool.clear()
        self._pending.clear()

    def wait(self, msecs: int = 5000) -> bool:
        """Block until running jobs end (shutdown, scripts, tests); True if all done."""
        return self.pool.waitForDone(msecs)

    def shutdown(self) -> None:
        """Stop queued work and wait briefly for running jobs."""
        self.cancel_pending()
        self.pool.waitForDone(3000)

    def _on_done(self, path: str, px: int, image: QImage) -> None:
        key = (path, px)
        self._pending.discard(key)
        self._memory[key] = QPixmap.fromImage(image)
        self._memory.move_to_end(key)
        while len(self._memory) > MEMORY_ITEMS:
            self._memory.popitem(last=False)
        self.ready.emit(path, px)

    def _on_failed(self, path: str, px: int, reason: str) -> None:
        key = (path, px)
        self._pending.discard(key)
        self._broken[key] = reason
        self.failed.emit(path, px, reason)

"""EmbedderLoader: the window's one sentence model for search by meaning, loaded off the UI thread.

Loading the model (``photocap.library.search.query_embedder`` over the process's one
``TextEmbedder``, which the window's indexing runs share) takes a few tenths of a second, so the
window asks for it when the user starts typing; the first search(es) before it is ready run by
words, and the window searches again once :attr:`EmbedderLoader.ready` fires. When the model
can't be loaded, :attr:`EmbedderLoader.unavailable` carries the reason (with what to install),
once; searching by words still works.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from photocap.errors import MeaningUnavailable


def _default_factory() -> Any:
    """The library's query embedder over the process's one sentence model (indexing shares it)."""
    from photocap.library.meaning import shared_embedder
    from photocap.library.search import query_embedder

    return query_embedder(shared_embedder)


class _LoadThread(QThread):
    loaded = Signal(object)
    failed = Signal(str)

    def __init__(self, factory: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.factory = factory

    def run(self) -> None:  # the worker thread
        try:
            embedder = self.factory()
        except MeaningUnavailable as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure means "words only", said once
            self.failed.emit(f"Search by meaning could not start ({type(exc).__name__}: {exc}); "
                             "searching by words still works.")
        else:
            self.loaded.emit(embedder)


class EmbedderLoader(QObject):
    """Holds at most one embedder; :meth:`get` returns it, or None while loading or unavailable.

    ``factory`` makes the embedder (default: the library's query embedder over the process's
    shared sentence model); it runs in a worker thread.
    """

    ready = Signal()
    unavailable = Signal(str)

    def __init__(self, factory: Callable[[], Any] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._factory = factory or _default_factory
        self._embedder: Any = None
        self._error: str | None = None
        self._thread: _LoadThread | None = None
        self._lock = threading.Lock()

    @property
    def loading(self) -> bool:
        return self._thread is not None

    @property
    def error(self) -> str | None:
        """Why meaning is unavailable (None: it is, or it is not known yet)."""
        return self._error

    def get(self) -> Any:
        """The embedder if loaded; otherwise start loading it (once) and return None."""
        if self._embedder is None and self._error is None:
            self.load()
        return self._embedder

    def load(self) -> None:
        """Start loading in the background, unless loaded, loading or known unavailable."""
        with self._lock:
            if self._embedder is not None or self._error is not None or self._thread is not None:
                return
            thread = _LoadThread(self._factory, parent=self)
            thread.loaded.connect(self._loaded)
            thread.failed.connect(self._failed)
            thread.finished.connect(self._finished)
            self._thread = thread
        thread.start()

    def wait(self, ms: int = 30_000) -> bool:
        """Block until a load in flight ends (closing the window); True if none is left."""
        thread = self._thread
        return thread is None or thread.wait(ms)

    def _loaded(self, embedder: Any) -> None:
        self._embedder = embedder
        self.ready.emit()

    def _failed(self, message: str) -> None:
        self._error = message
        self.unavailable.emit(message)

    def _finished(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.deleteLater()

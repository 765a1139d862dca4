"""IndexWorker: ``library.pipeline.index_folders`` in a background thread, with progress and cancel.

The worker opens its own :class:`CaptionIndex` connection in its thread (one
connection per thread); the window keeps reading through its own, which WAL
mode allows while the worker writes. Progress reaches the UI thread as
queued signals carrying plain snapshots (never the live summary).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal

from photocap.errors import PhotocapError
from photocap.gui.errors import user_message
from photocap.library.pipeline import IndexOptions, Progress
from photocap.library.summary import IndexSummary
from photocap.records import Outcome


@dataclass(frozen=True)
class ProgressInfo:
    """What the progress bar shows of one ``pipeline.Progress`` (a plain, frozen copy)."""

    phase: str  # "scan" | "index" | "done"
    scanned: int
    total: int | None
    done: int
    captioned: int
    failed: int
    new_captions: int  # photos that got a caption since the previous report
    path: str | None


class IndexWorker(QThread):
    """Index ``roots`` into the database at ``db_path`` with the model at ``model_path``.

    Signals (delivered on the UI thread): ``progress(ProgressInfo)``,
    ``succeeded(IndexSummary)`` (the library's frozen summary) or ``failed(message,
    details)``; QThread's ``finished`` comes last in every case.
    """

    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str, str)

    def __init__(self, roots: Sequence[str | Path], db_path: Path, model_path: Path | None = None,
                 options: IndexOptions | None = None, device: str = "auto",
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.roots = [Path(r) for r in roots]
        self.db_path = Path(db_path)
        self.model_path = model_path
        self.options = options  # None: the defaults
        self.device = device
        self._stop = threading.Event()

    def cancel(self) -> None:
        """Ask the run to stop; it ends after the batch in flight (nothing is lost)."""
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:  # runs in the worker thread
        try:
            result = self._index()
        except PhotocapError as exc:
            self.failed.emit(str(exc), "")
        except Exception as exc:  # noqa: BLE001 - shown in the window, never a crash
            self.failed.emit(user_message(exc), traceback.format_exc())
        else:
            self.succeeded.emit(result)

    def _index(self) -> IndexSummary:
        from photocap.index.store import CaptionIndex
        from photocap.library.captioning import default_captioner_factory
        from photocap.library.pipeline import index_folders

        options = self.options or IndexOptions()
        factory = default_captioner_factory(self.model_path, device=self.device)

        def on_progress(p: Progress) -> None:
            s = p.summary
            fresh = sum(1 for o in p.outcomes if o.caption is not None and o.outcome is not Outcome.UNCHANGED)
            self.progress.emit(ProgressInfo(p.phase, p.scanned, p.total, p.done, s.captioned,
                                            s.failed, fresh, p.path))

        with CaptionIndex.open(self.db_path) as index:
            return index_folders(self.roots, index, factory, options, on_progress=on_progress,
                                 should_stop=self._stop.is_set)

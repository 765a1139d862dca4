"""IndexWorker: ``pipeline.index_folders`` in a background thread, with progress and cancel.

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


@dataclass(frozen=True)
class ProgressInfo:
    """A copy of one ``pipeline.Progress`` that is safe to hand to another thread."""

    phase: str  # "scan" | "index" | "done"
    scanned: int
    total: int | None
    done: int
    captioned: int
    failed: int
    new_captions: int  # captions committed since the previous report
    path: str | None


@dataclass(frozen=True)
class IndexResult:
    """How a run ended: the summary fields the window shows."""

    stopped: bool
    scanned: int
    new: int
    changed: int
    unchanged: int
    moved: int
    failed: int
    captioned: int
    adopted: int
    missing: int
    failures: tuple[tuple[str, str], ...]
    elapsed_s: float

    def describe(self) -> str:
        """One line for the status bar."""
        head = "Indexing cancelled" if self.stopped else "Indexing finished"
        parts = [f"{self.scanned} photos found", f"{self.captioned} captioned"]
        if self.adopted:
            parts.append(f"{self.adopted} kept their own description")
        if self.moved:
            parts.append(f"{self.moved} moved")
        if self.failed:
            parts.append(f"{self.failed} could not be read")
        return f"{head}: " + ", ".join(parts) + f" ({self.elapsed_s:.0f} s)."


class IndexWorker(QThread):
    """Index ``roots`` into the database at ``db_path`` with the model at ``model_path``.

    Signals (delivered on the UI thread): ``progress(ProgressInfo)``,
    ``succeeded(IndexResult)`` or ``failed(message, details)``; QThread's
    ``finished`` comes last in every case.
    """

    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str, str)

    def __init__(self, roots: Sequence[str | Path], db_path: Path, model_path: Path | None = None,
                 options: object | None = None, device: str = "auto",
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.roots = [Path(r) for r in roots]
        self.db_path = Path(db_path)
        self.model_path = model_path
        self.options = options  # a pipeline.IndexOptions, or None for the defaults
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

    def _index(self) -> IndexResult:
        from photocap.index.store import CaptionIndex
        from photocap.pipeline import IndexOptions, Progress, default_captioner_factory, index_folders

        options = self.options if isinstance(self.options, IndexOptions) else IndexOptions()
        factory = default_captioner_factory(self.model_path, device=self.device)

        def on_progress(p: Progress) -> None:
            s = p.summary
            self.progress.emit(ProgressInfo(p.phase, p.scanned, p.total, p.done, s.captioned,
                                            s.failed, len(p.captions), p.path))

        with CaptionIndex.open(self.db_path) as index:
            s = index_folders(self.roots, index, factory, options, on_progress=on_progress,
                              should_stop=self._stop.is_set)
        return IndexResult(
            stopped=s.stopped, scanned=s.scanned, new=s.new, changed=s.changed,
            unchanged=s.unchanged, moved=s.moved, failed=s.failed, captioned=s.captioned,
            adopted=s.adopted, missing=s.missing,
            failures=tuple((f.path, f.reason) for f in s.failures), elapsed_s=s.elapsed_s,
        )

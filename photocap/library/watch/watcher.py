"""The watcher: filesystem events -> settle queue -> the pipeline.

One photo's way through it::

    filesystem event (observer thread) -> raw event queue
      -> worker thread: created/modified -> settle queue (settle.py)
                        moved -> CaptionIndex.move_path (the caption follows)
                        deleted -> sync.flag_gone (flagged missing)
                        folder created/moved in -> scanned, its photos queued
      -> settled files -> pipeline.index_files in batches, model loaded once, decode
         workers kept warm; what happened comes back as FileOutcome values -> WatchEvents

Everything that touches the index or the model runs in one worker thread; the observer
thread only queues events. On start the watcher runs an incremental index of its folders
(catch-up) so files that arrived while it was not running are captioned; it never deletes
index records (a drive that is not mounted yet must not cost anyone their captions).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from photocap.errors import MissingRootError, PhotocapError
from photocap.index.store import CaptionIndex
from photocap.library.captioning import CaptionerFactory, CaptionerLike, default_captioner_factory
from photocap.library.pipeline import IndexOptions, Progress, index_files, index_folders
from photocap.library.scan import normalise_roots
from photocap.library.summary import format_index_summary
from photocap.library.watch.events import (
    CAUGHT_UP,
    ERROR,
    STARTED,
    STOPPED,
    EventKind,
    WatchError,
    WatchEvent,
    event_for,
)
from photocap.library.watch.changes import ChangeHandler
from photocap.library.watch.roots import RawEvent, RootEvents, RootWatcher, WatchedRoot
from photocap.library.watch.settle import SettleQueue, SettleRules
from photocap.library.workers import DecodePool, default_workers
from photocap.records import Outcome, Stage


@dataclass(frozen=True)
class WatchOptions:
    """How a :class:`Watcher` behaves; ``index`` is passed on to the pipeline."""

    index: IndexOptions = field(default_factory=IndexOptions)
    settle: float = 2.0  # seconds a file's size and mtime must stay unchanged
    incomplete_grace: float | None = None  # an unchanged file that still fails to decode after
    #   this long is handed over anyway (the pipeline records it as failed); None = 5 x settle
    catch_up: bool = True  # incremental index of the folders on start
    max_files_per_run: int | None = None  # settled files per pipeline call; None = 8 x batch size
    check_roots_every: float = 2.0  # seconds between checks for vanished / returned folders

    @property
    def settle_rules(self) -> SettleRules:
        grace = self.incomplete_grace if self.incomplete_grace is not None else 5 * self.settle
        chunk = self.max_files_per_run or max(8 * self.index.batch_size, 32)
        return SettleRules(self.settle, grace, self.index.batch_size, chunk)


class _MemoFactory:
    """Calls the real captioner factory once and keeps the model warm for later runs."""

    def __init__(self, factory: CaptionerFactory) -> None:
        self.factory = factory
        self.captioner: CaptionerLike | None = None

    def __call__(self) -> CaptionerLike:
        if self.captioner is None:
            self.captioner = self.factory()
        return self.captioner


class _Reporter:
    """Turns the pipeline's progress snapshots (their outcomes) into watch events."""

    def __init__(self, emit: Callable[[WatchEvent], None]) -> None:
        self.emit = emit

    def __call__(self, p: Progress) -> None:
        batch = sum(1 for o in p.outcomes if o.outcome is Outcome.CAPTIONED and o.stage is Stage.INDEX)
        for o in p.outcomes:
            event = event_for(o, batch or None)
            if event is not None:
                self.emit(event)
        for problem in p.summary.scan_errors if p.phase == "done" else ():
            self.emit(WatchEvent(EventKind.FAILED, problem.path, reason=problem.reason))


class Watcher:
    """Watch folders and caption photos as they arrive, through the pipeline.

    ``start()`` runs it in a background thread; ``stop()`` ends it cleanly (the batch in
    flight is finished or abandoned, never half-written); ``run_forever()`` starts it and
    blocks until it stops, turning Ctrl-C into ``stop()``. Events go to ``on_event`` from
    the worker thread.
    """

    def __init__(
        self,
        roots: Iterable[str | os.PathLike[str]],
        index_path: str | os.PathLike[str],
        options: WatchOptions | None = None,
        captioner_factory: CaptionerFactory | None = None,
        on_event: Callable[[WatchEvent], None] | None = None,
    ) -> None:
        resolved = normalise_roots(roots, must_exist=False)
        if not resolved:
            raise WatchError("Nothing to watch: give at least one folder.")
        self.index_path = Path(index_path)
        self.options = options or WatchOptions()
        self.factory = _MemoFactory(captioner_factory or default_captioner_factory())
        self.on_event = on_event or (lambda e: None)
        self.error: BaseException | None = None  # what ended the watcher, if not stop()
        self._events: queue.Queue[RawEvent] = queue.Queue()
        self._roots = RootWatcher(resolved, self._events, RootEvents(
            error=lambda path, reason: self._emit(ERROR, path=path, reason=reason),
            back=self._root_back, restarted=lambda root: self._catch_up([root])))
        self._stop = threading.Event()
        self._ready = threading.Event()  # set once the catch-up is done and events are handled
        self._processing = False  # settled files being captioned (their outcomes not all reported yet)
        self._thread: threading.Thread | None = None
        self._index: CaptionIndex | None = None
        self._pool: DecodePool | None = None
        self._settle = SettleQueue(self.options.settle_rules)
        self._changes = ChangeHandler(self._roots, self._settle, self.options.index, self._require_index,
                                      self._emit)
        self._next_root_check = 0.0
        # Counters for logs and tests: filesystem events handled, settled files found already
        # indexed as they are (our own metadata writes, touches), pipeline runs.
        self.stats = {"events": 0, "known": 0, "runs": 0}

    @property
    def roots(self) -> list[WatchedRoot]:
        return self._roots.roots

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start watching in a background thread (returns at once)."""
        if self._thread is not None:
            raise RuntimeError("a Watcher can be started once")
        self._thread = threading.Thread(target=self._main, name="photocap-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the watcher to stop and wait for it (the batch in flight ends cleanly)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def request_stop(self) -> None:
        """Ask the watcher to stop without waiting (safe from a signal handler)."""
        self._stop.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the catch-up is done and new events are being handled."""
        return self._ready.wait(timeout)

    def idle(self) -> bool:
        """True when no event is queued, no file is waiting to settle and none is being captioned
        (every outcome of the files seen so far has been reported)."""
        return self._ready.is_set() and self._events.empty() and not len(self._settle) and not self._processing

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run_forever(self) -> None:
        """Start, block until stopped (Ctrl-C stops cleanly), and re-raise a fatal error."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            self.stop()
        if self.error is not None:
            raise self.error

    # ------------------------------------------------------------- the worker thread
    def _emit(self, kind: EventKind, **fields: Any) -> None:
        self._send(WatchEvent(kind, **fields))

    def _send(self, event: WatchEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # noqa: BLE001 - a broken printer must not stop the watcher
            pass

    def _main(self) -> None:
        reason = "stopped"
        checker = None
        try:
            self._index = CaptionIndex.open(self.index_path)
            workers = self.options.index.workers
            if workers != 0:
                # Decode processes kept warm across bursts (they start on first use) ...
                self._pool = DecodePool(workers)
                # ... and completeness checks in threads (Pillow decodes without the GIL).
                checker = ThreadPoolExecutor(workers or default_workers(), "photocap-check")
                self._settle.checker = checker
            self._roots.start()
            if not self._roots.any_usable():
                raise WatchError("None of the folders can be watched: "
                                 + ", ".join(r.path for r in self.roots) + ".")
            for root in self._roots.watching():
                self._emit(STARTED, path=root.path, reason="watching")
            if self.options.catch_up and not self._stop.is_set():
                self._catch_up(self._roots.watching())
            self._ready.set()
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - reported, then re-raised by run_forever
            self.error = exc
            reason = str(exc) if isinstance(exc, PhotocapError) else f"{type(exc).__name__}: {exc}"
            self._emit(ERROR, reason=reason)
        finally:
            self._ready.set()
            self._roots.stop()
            if checker is not None:
                checker.shutdown(wait=True, cancel_futures=True)
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            if self._index is not None:
                self._index.close()
            self._emit(STOPPED, reason=reason)

    def _loop(self) -> None:
        tick = max(0.02, min(0.25, self.options.settle / 4))
        while not self._stop.is_set():
            self._drain(tick)
            now = time.monotonic()
            if now >= self._next_root_check:
                for root in self._roots.check():
                    self._settle.forget_under(root.path)
                self._next_root_check = now + self.options.check_roots_every
            self._processing = True  # before the settled files leave the settle queue
            try:
                ready = self._settle.settled(self._require_index(), now)
                self.stats["known"] = self._settle.known
                if ready:
                    self._process(ready)
            finally:
                self._processing = False

    def _require_index(self) -> CaptionIndex:
        assert self._index is not None
        return self._index

    # ------------------------------------------------------------- events
    def _drain(self, timeout: float) -> None:
        """Handle queued filesystem events; wait up to ``timeout`` for the first."""
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            return
        deadline = time.monotonic() + 0.5  # keep the settle checks going under a flood
        while True:
            self.stats["events"] += 1
            self._changes.handle(*item)
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return

    # ------------------------------------------------------------- the pipeline
    def _process(self, paths: list[str]) -> None:
        self.stats["runs"] += 1
        index_files(paths, self._require_index(), self.factory, self.options.index,
                    on_progress=_Reporter(self._send), should_stop=self._stop.is_set, pool=self._pool)

    def _root_back(self, root: WatchedRoot) -> None:
        self._emit(STARTED, path=root.path, reason="folder is back; watching it again")
        self._catch_up([root])

    def _catch_up(self, roots: list[WatchedRoot]) -> None:
        """Incremental index of ``roots``; files gone meanwhile are flagged missing, never deleted."""
        paths = [r.path for r in roots if self._roots.present(r)]
        if not paths:
            return
        options = replace(self.options.index, prune=False)
        try:
            summary = index_folders(paths, self._require_index(), self.factory, options,
                                    on_progress=_Reporter(self._send), should_stop=self._stop.is_set,
                                    pool=self._pool)
        except MissingRootError as exc:
            self._emit(ERROR, path=exc.path, reason=str(exc))  # vanished just now; the root check follows
            return
        if not summary.stopped:
            self._emit(CAUGHT_UP, reason=format_index_summary(summary, one_line=True))


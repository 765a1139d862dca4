"""The watcher: watchdog events -> settle queue -> the pipeline.

``photocap watch`` keeps the index (and, optionally, the photos' metadata)
current while photos arrive. One photo's way through it::

    filesystem event (observer thread) -> raw event queue
      -> worker thread: created/modified -> settle queue
                        moved -> CaptionIndex.move_path (the caption follows)
                        deleted -> CaptionIndex.mark_missing
                        folder created/moved in -> scanned, its photos queued
      -> settled: size and mtime unchanged for ``settle`` seconds,
         not already known to the index (this is how the watcher ignores
         its own metadata writes: the pipeline refreshes a photo's stored
         fingerprint after writing into it), and it decodes completely
      -> pipeline.index_files(settled files) in batches, model loaded once

Everything that touches the index or the model runs in one worker thread;
the observer thread only queues events. What happens leaves through the
``on_event`` callback as :class:`WatchEvent` objects, so the CLI prints them
and tests run a watcher in a thread.

On start the watcher runs an incremental index of its folders (catch-up) so
files that arrived while it was not running are captioned. It never deletes
index records: files gone while it was stopped are only flagged missing
(a drive that is not mounted yet must not cost anyone their captions).

This module imports watchdog and PIL only when a watcher runs.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import queue
import stat as stat_mod
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photocap.errors import PhotocapError
from photocap.photofile import check_complete, default_workers, make_decode_pool
from photocap.pipeline import (
    INLINE_BELOW,
    CaptionerFactory,
    CaptionerLike,
    IndexOptions,
    IndexSummary,
    Progress,
    index_files,
    index_folders,
)
from photocap.scan import is_image_path, scan, supported_suffixes

if TYPE_CHECKING:
    from photocap.index.store import CaptionIndex

# Event kinds sent to ``on_event``.
STARTED = "started"  # the watcher is running (reason: what it watches)
CAUGHT_UP = "caught_up"  # the start-up incremental index finished (reason: its summary)
CAPTIONED = "captioned"  # a photo got a caption (path, caption; batch: model batch size)
MOVED = "moved"  # a photo or folder moved; its caption(s) followed (path -> dest)
MISSING = "missing"  # a photo was deleted or moved away: flagged missing in the index
FAILED = "failed"  # a photo could not be captioned or written (reason)
SKIPPED = "skipped"  # a photo was indexed without the model (reason), or ignored
ERROR = "error"  # a folder-level problem: folder gone, watch limit, model/database error
STOPPED = "stopped"  # the watcher stopped (reason: why)

EVENT_KINDS = (STARTED, CAUGHT_UP, CAPTIONED, MOVED, MISSING, FAILED, SKIPPED, ERROR, STOPPED)


class WatchError(PhotocapError):
    """The watcher cannot run (no folder can be watched, inotify limits)."""


@dataclass(frozen=True)
class WatchEvent:
    """Something the watcher did or noticed; sent to ``on_event``."""

    kind: str  # one of EVENT_KINDS
    path: str | None = None
    caption: str | None = None
    reason: str | None = None
    dest: str | None = None  # MOVED: the new path
    batch: int | None = None  # CAPTIONED: how many photos the model captioned in that batch
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict without empty fields: ``{"event": kind, ...}``."""
        d = {k: v for k, v in asdict(self).items() if v is not None and k != "kind"}
        return {"event": self.kind, **d}


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
    def grace(self) -> float:
        return self.incomplete_grace if self.incomplete_grace is not None else 5 * self.settle

    @property
    def chunk(self) -> int:
        return self.max_files_per_run or max(8 * self.index.batch_size, 32)


# --------------------------------------------------------------------------- helpers


def inotify_limit_message(exc: OSError, root: str) -> str | None:
    """A user message for an inotify limit error (ENOSPC watches, EMFILE instances), else None."""
    if exc.errno == errno.ENOSPC:
        key, value = "max_user_watches", 524288
        what = "the inotify watch limit was reached (one watch per folder)"
    elif exc.errno == errno.EMFILE and "inotify" in str(exc).lower():
        key, value = "max_user_instances", 512
        what = "the inotify instance limit was reached (too many programs watching files)"
    else:
        return None
    current = _read_sysctl(f"/proc/sys/fs/inotify/{key}")
    now = f" (now {current})" if current else ""
    return (
        f"{root}: cannot watch: {what}{now}. Raise it with\n"
        f"  sudo sysctl fs.inotify.{key}={value}\n"
        f"and make it permanent with\n"
        f"  echo fs.inotify.{key}={value} | sudo tee /etc/sysctl.d/90-photocap-watch.conf"
    )


def _read_sysctl(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def normalise_roots(roots: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Absolute folder paths, deduplicated, without folders nested in another root."""
    out = sorted({os.path.abspath(os.path.expanduser(os.fspath(r))) for r in roots})
    kept: list[str] = []
    for p in out:
        if not any(p.startswith(k.rstrip(os.sep) + os.sep) for k in kept):
            kept.append(p)
    return kept


def _excluded(patterns: tuple[str, ...], root: str, parts: list[str]) -> bool:
    """The scan's ``--exclude`` rule for a path below ``root``: any folder on the way or the
    file matches a glob by name, by path relative to the root, or by absolute path."""
    if not patterns:
        return False
    for i, name in enumerate(parts):
        rel = os.sep.join(parts[: i + 1])
        absolute = os.path.join(root, rel)
        if any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p)
               or fnmatch.fnmatchcase(absolute, p) for p in patterns):
            return True
    return False


def _under(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


class _MemoFactory:
    """Calls the real captioner factory once and keeps the model warm for later runs."""

    def __init__(self, factory: CaptionerFactory) -> None:
        self.factory = factory
        self.captioner: CaptionerLike | None = None

    def __call__(self) -> CaptionerLike:
        if self.captioner is None:
            self.captioner = self.factory()
        return self.captioner


class _Handler:
    """watchdog event handler (duck-typed): forwards the events that matter to a queue."""

    IGNORED = frozenset({"opened", "closed_no_write"})

    def __init__(self, events: queue.Queue[tuple[str, str, str | None, bool]]) -> None:
        self.events = events

    def dispatch(self, event: Any) -> None:
        kind = event.event_type
        if kind in self.IGNORED or (kind in ("modified", "closed", "attrib") and event.is_directory):
            return
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if getattr(event, "dest_path", "") else None
        self.events.put((kind, src, dest, bool(event.is_directory)))


@dataclass
class _Pending:
    """A file waiting to settle."""

    size: int
    mtime_ns: int
    changed_at: float  # monotonic time its stat last changed (or an event came)
    next_check: float = 0.0  # monotonic time of the next decode attempt
    incomplete: str | None = None  # why the last decode attempt failed
    verified: bool = False  # decoded completely at the current size and mtime

    def changed(self, size: int, mtime_ns: int, now: float) -> None:
        self.size, self.mtime_ns, self.changed_at = size, mtime_ns, now
        self.next_check, self.verified = 0.0, False


@dataclass
class _Root:
    path: str
    dev: int | None = None  # st_dev when first seen, to notice an unmounted drive
    watch: Any = None  # watchdog ObservedWatch while watched
    state: str = "new"  # new | watching | lost | failed


# --------------------------------------------------------------------------- the watcher


class Watcher:
    """Watch folders and caption photos as they arrive, through the pipeline.

    ``start()`` runs it in a background thread; ``stop()`` ends it cleanly
    (the batch in flight is finished or abandoned, never half-written);
    ``run_forever()`` starts it and blocks until it stops, turning Ctrl-C
    into ``stop()``. Events go to ``on_event`` from the worker thread.
    """

    def __init__(
        self,
        roots: Iterable[str | os.PathLike[str]],
        index_path: str | os.PathLike[str],
        options: WatchOptions | None = None,
        captioner_factory: CaptionerFactory | None = None,
        on_event: Callable[[WatchEvent], None] | None = None,
    ) -> None:
        from photocap.pipeline import default_captioner_factory

        self.roots = [_Root(p) for p in normalise_roots(roots)]
        if not self.roots:
            raise WatchError("Nothing to watch: give at least one folder.")
        self.index_path = Path(index_path)
        self.options = options or WatchOptions()
        self.factory = _MemoFactory(captioner_factory or default_captioner_factory())
        self.on_event = on_event or (lambda e: None)
        self.error: BaseException | None = None  # what ended the watcher, if not stop()
        self._events: queue.Queue[tuple[str, str, str | None, bool]] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()  # set once the catch-up is done and events are handled
        self._thread: threading.Thread | None = None
        self._observer: Any = None
        self._index: CaptionIndex | None = None
        self._checker: Executor | None = None
        self._pool: Executor | None = None
        self._pending: dict[str, _Pending] = {}
        self._suffixes = supported_suffixes()
        self._next_root_check = 0.0
        # Counters for logs and tests: filesystem events handled, settled files found already
        # indexed as they are (our own metadata writes, touches), pipeline runs.
        self.stats = {"events": 0, "known": 0, "runs": 0}

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
        """True when no event is queued and no file is waiting to settle."""
        return self._ready.is_set() and self._events.empty() and not self._pending

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
    def _emit(self, kind: str, **fields: Any) -> None:
        try:
            self.on_event(WatchEvent(kind, **fields))
        except Exception:  # noqa: BLE001 - a broken printer must not stop the watcher
            pass

    def _main(self) -> None:
        from photocap.index.store import CaptionIndex

        reason = "stopped"
        try:
            self._index = CaptionIndex.open(self.index_path)
            workers = self.options.index.workers
            if workers != 0:
                # Decode processes kept warm across bursts (they start on first use) ...
                self._pool = make_decode_pool(workers)
                # ... and completeness checks in threads (Pillow decodes without the GIL).
                self._checker = ThreadPoolExecutor(workers or default_workers(), "photocap-check")
            self._start_observer()
            for root in self.roots:
                if root.state == "watching":
                    self._emit(STARTED, path=root.path, reason="watching")
            if self.options.catch_up and not self._stop.is_set():
                self._catch_up([r for r in self.roots if r.state == "watching"])
            self._ready.set()
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - reported, then re-raised by run_forever
            self.error = exc
            reason = str(exc) if isinstance(exc, PhotocapError) else f"{type(exc).__name__}: {exc}"
            self._emit(ERROR, reason=reason)
        finally:
            self._ready.set()
            self._shutdown()
            self._emit(STOPPED, reason=reason)

    def _shutdown(self) -> None:
        if self._observer is not None:
            try:
                self._observer.stop()
                self._observer.join(5)
            except Exception:  # noqa: BLE001
                pass
        if self._checker is not None:
            self._checker.shutdown(wait=True, cancel_futures=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._index is not None:
            self._index.close()

    def _loop(self) -> None:
        tick = max(0.02, min(0.25, self.options.settle / 4))
        while not self._stop.is_set():
            self._drain(tick)
            now = time.monotonic()
            if now >= self._next_root_check:
                self._check_roots()
                self._next_root_check = now + self.options.check_roots_every
            ready = self._settled(now)
            if ready:
                self._process(ready)

    # ------------------------------------------------------------- observer and roots
    def _start_observer(self) -> None:
        from watchdog.observers import Observer

        self._observer = Observer()
        self._observer.start()
        for root in self.roots:
            self._watch_root(root, first=True)
        if not any(r.state in ("watching", "lost") for r in self.roots):
            problems = [r.path for r in self.roots]
            raise WatchError(f"None of the folders can be watched: {', '.join(problems)}.")

    def _watch_root(self, root: _Root, first: bool = False) -> bool:
        """Schedule ``root``; report why not. True if it is now watched."""
        try:
            st = os.stat(root.path)
        except OSError:
            root.state = "lost"
            if first:
                self._emit(ERROR, path=root.path, reason="folder not found (drive not mounted?); "
                           "it will be watched when it appears")
            return False
        if root.dev is None:
            root.dev = st.st_dev
        try:
            root.watch = self._observer.schedule(_Handler(self._events), root.path, recursive=True)
        except OSError as exc:
            message = inotify_limit_message(exc, root.path)
            root.state = "failed"
            self._emit(ERROR, path=root.path,
                       reason=message or f"cannot watch: {exc.strerror or exc}")
            return False
        root.state = "watching"
        return True

    def _check_roots(self) -> None:
        """Notice folders that vanished (unmounted) or came back, and watchers that died."""
        for root in self.roots:
            present = self._root_present(root)
            if root.state == "watching":
                emitter_alive = self._emitter_alive(root)
                if present and emitter_alive:
                    continue
                self._unwatch(root)
                if not present:
                    root.state = "lost"
                    self._emit(ERROR, path=root.path,
                               reason="folder disappeared (drive unmounted?); still watching the others, "
                               "and this one again when it is back")
                    continue
                if self._watch_root(root):  # the inotify thread died (e.g. the watch limit)
                    self._catch_up([root])
            elif root.state == "lost" and present:
                if self._watch_root(root):
                    self._emit(STARTED, path=root.path, reason="folder is back; watching it again")
                    self._catch_up([root])

    def _root_present(self, root: _Root) -> bool:
        try:
            st = os.stat(root.path)
        except OSError:
            return False
        return stat_mod.S_ISDIR(st.st_mode) and (root.dev is None or st.st_dev == root.dev)

    def _emitter_alive(self, root: _Root) -> bool:
        for emitter in list(getattr(self._observer, "emitters", ())):
            if emitter.watch == root.watch:
                return emitter.is_alive()
        return False

    def _unwatch(self, root: _Root) -> None:
        if root.watch is not None:
            try:
                self._observer.unschedule(root.watch)
            except Exception:  # noqa: BLE001 - already gone
                pass
            root.watch = None
        for p in [p for p in self._pending if _under(p, root.path)]:
            del self._pending[p]

    def _root_of(self, path: str) -> _Root | None:
        for root in self.roots:
            if path == root.path or _under(path, root.path):
                return root
        return None

    # ------------------------------------------------------------- events
    def _drain(self, timeout: float) -> None:
        """Handle queued filesystem events; wait up to ``timeout`` for the first."""
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            return
        deadline = time.monotonic() + 0.5  # keep the settle checks going under a flood
        while True:
            self._handle(*item)
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return

    def _handle(self, kind: str, src: str, dest: str | None, is_dir: bool) -> None:
        self.stats["events"] += 1
        try:
            if kind == "moved" and dest:
                self._on_moved(src, dest, is_dir)
            elif kind == "deleted":
                self._on_deleted(src, is_dir)
            elif is_dir:
                if kind == "created":
                    self._queue_folder(src)
            else:
                self._touch(src)
        except PhotocapError:
            raise
        except OSError as exc:  # a file that vanished mid-way etc.: the next event sorts it out
            self._emit(SKIPPED, path=src, reason=exc.strerror or str(exc))

    def _wanted(self, path: str) -> bool:
        root = self._root_of(path)
        if root is None or root.state != "watching":
            return False
        if not is_image_path(path, self._suffixes):
            return False
        parts = os.path.relpath(path, root.path).split(os.sep)
        if any(part.startswith(".") for part in parts[:-1]):
            return False  # in a hidden folder
        return not _excluded(self.options.index.exclude, root.path, parts)

    def _touch(self, path: str) -> None:
        """A file was created or written: (re)start its settle time."""
        if not self._wanted(path):
            return
        try:
            st = os.stat(path) if self.options.index.follow_symlinks else os.lstat(path)
        except FileNotFoundError:
            self._pending.pop(path, None)
            return
        if not os.path.isfile(path) or (not self.options.index.follow_symlinks and os.path.islink(path)):
            return
        now = time.monotonic()
        p = self._pending.get(path)
        if p is None:
            self._pending[path] = _Pending(st.st_size, st.st_mtime_ns, now)
        else:
            p.changed(st.st_size, st.st_mtime_ns, now)

    def _queue_folder(self, folder: str) -> None:
        """A folder was created, copied or moved in: queue every photo in it."""
        root = self._root_of(folder)
        if root is None or root.state != "watching":
            return
        rel = os.path.relpath(folder, root.path)
        if any(part.startswith(".") for part in rel.split(os.sep)):
            return
        opt = self.options.index
        for entry in scan([folder], exclude=opt.exclude, follow_symlinks=opt.follow_symlinks):
            self._touch(entry.path)

    def _on_moved(self, src: str, dest: str, is_dir: bool) -> None:
        index = self._require_index()
        if is_dir:
            for p in [p for p in self._pending if _under(p, src)]:
                self._pending.pop(p)
            if self._root_of(src) is None:  # moved in from outside
                self._queue_folder(dest)
                return
            if self._root_of(dest) is None:  # moved out of the watched folders
                self._on_deleted(src, True)
                return
            moved = index.move_path(src, dest)
            if moved:
                self._emit(MOVED, path=src, dest=dest, reason=f"{moved} photo(s)")
            self._queue_folder(dest)  # photos there that the index did not know yet
            return
        was_pending = self._pending.pop(src, None) is not None
        record = index.fingerprint(src) if self._root_of(src) is not None else None
        dest_ok = self._wanted(dest)
        if record is not None and not dest_ok:
            self._on_deleted(src, False)  # renamed to a non-photo name or moved out
            return
        if record is not None and dest_ok and index.move_path(src, dest):
            self._emit(MOVED, path=src, dest=dest)
        if dest_ok or was_pending:
            self._touch(dest)  # checks it is what the index now says (cheap if so)

    def _on_deleted(self, path: str, is_dir: bool) -> None:
        index = self._require_index()
        root = next((r for r in self.roots if r.path == path), None)
        if root is not None:  # a watched folder itself went away
            self._check_roots()
            return
        if self._root_of(path) is None:
            return
        if is_dir:
            for p in [p for p in self._pending if _under(p, path)]:
                del self._pending[p]
            known = index.fingerprints(under=path)
            gone = [p for p, fp in known.items() if not fp.missing and not os.path.lexists(p)]
        else:
            self._pending.pop(path, None)
            fp = index.fingerprint(path)
            gone = [path] if fp is not None and not fp.missing and not os.path.lexists(path) else []
        if gone:
            index.mark_missing(gone)
            for p in gone:
                self._emit(MISSING, path=p)

    def _require_index(self) -> CaptionIndex:
        assert self._index is not None
        return self._index

    # ------------------------------------------------------------- settling
    def _settled(self, now: float) -> list[str]:
        """Files whose stat stayed put for ``settle`` seconds, unknown to the index, complete."""
        index = self._require_index()
        settle, grace = self.options.settle, self.options.grace
        candidates: list[str] = []
        ready: list[str] = []
        waiting_more = False
        for path, p in list(self._pending.items()):
            if now - p.changed_at < settle or now < p.next_check:
                waiting_more = True
                continue
            try:
                st = os.stat(path)
            except OSError:
                del self._pending[path]  # gone before it settled; a delete event follows
                continue
            if (st.st_size, st.st_mtime_ns) != (p.size, p.mtime_ns):
                p.changed(st.st_size, st.st_mtime_ns, now)
                waiting_more = True
                continue
            fp = index.fingerprint(path)
            if fp is not None and fp.complete and not fp.missing and (fp.size, fp.mtime_ns) == (
                st.st_size, st.st_mtime_ns
            ):
                del self._pending[path]  # known as it is: our own write, a touch-less event
                self.stats["known"] += 1
                continue
            if p.incomplete is not None and now - p.changed_at >= grace:
                ready.append(path)  # unchanged for long and still broken: corrupt
                continue
            (ready if p.verified else candidates).append(path)
        complete = self._check_complete(candidates)
        for path, reason in zip(candidates, complete):
            p = self._pending[path]
            if reason is None:
                p.verified = True
                ready.append(path)
            else:
                p.incomplete = reason
                p.next_check = now + settle
                waiting_more = True
        if not ready:
            return []
        if waiting_more and len(ready) < self.options.index.batch_size and not self._stale(ready, now):
            return []  # a burst is still arriving: fill a batch first (bounded by _stale)
        ready.sort(key=lambda q: self._pending[q].changed_at)
        ready = ready[: self.options.chunk]
        for path in ready:
            del self._pending[path]
        return ready

    def _stale(self, ready: list[str], now: float) -> bool:
        oldest = min(self._pending[p].changed_at for p in ready)
        return now - oldest >= 2 * self.options.settle + 0.5

    def _check_complete(self, paths: list[str]) -> list[str | None]:
        if not paths:
            return []
        if self._checker is not None and len(paths) > 1:
            return list(self._checker.map(check_complete, paths))
        return [check_complete(p) for p in paths]

    # ------------------------------------------------------------- the pipeline
    def _process(self, paths: list[str]) -> None:
        index = self._require_index()
        reporter = _Reporter(self._emit)
        self.stats["runs"] += 1
        summary = self._with_pool(
            lambda executor: index_files(paths, index, self.factory, self.options.index,
                                         on_progress=reporter, should_stop=self._stop.is_set,
                                         executor=executor),
            len(paths) >= INLINE_BELOW,
        )
        reporter.finish(summary)
        if summary.stopped:
            return  # what was not done is caught up on the next start
        self._report_leftovers(paths, reporter, summary)

    def _with_pool(self, run: Callable[[Executor | None], IndexSummary], use_pool: bool) -> IndexSummary:
        """Run the pipeline on the warm decode pool; if a worker crashed (a file that kills the
        decoder), replace the pool and rerun once on the pipeline's own pool, which retries
        each file and records the one that crashes it as failed."""
        if not use_pool or self._pool is None:
            return run(None)
        try:
            return run(self._pool)
        except PhotocapError as exc:
            if not isinstance(exc.__context__, BrokenProcessPool):
                raise
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = make_decode_pool(self.options.index.workers)
        return run(None)

    def _report_leftovers(self, paths: Sequence[str], reporter: _Reporter, summary: IndexSummary) -> None:
        """Files the pipeline indexed without the model: a reused or the photo's own caption."""
        index = self._require_index()
        for path in paths:
            if path in reporter.handled:
                continue
            record = index.get(path)
            if record is None:
                continue
            if record.missing:
                self._emit(MISSING, path=path)
            elif record.caption and record.source == "user":
                self._emit(CAPTIONED, path=path, caption=record.caption,
                           reason="kept the description already in the photo")
            elif record.caption:
                self._emit(CAPTIONED, path=path, caption=record.caption,
                           reason="same content as an indexed photo; caption reused")

    def _catch_up(self, roots: list[_Root]) -> None:
        """Incremental index of ``roots``; files gone meanwhile are flagged missing, never deleted."""
        paths = [r.path for r in roots if self._root_present(r)]
        if not paths:
            return
        index = self._require_index()
        options = replace(self.options.index, prune=False)
        reporter = _Reporter(self._emit)
        try:
            summary = self._with_pool(
                lambda executor: index_folders(paths, index, self.factory, options,
                                               on_progress=reporter, should_stop=self._stop.is_set,
                                               executor=executor),
                True,
            )
        except PhotocapError as exc:
            if "no such file" not in str(exc):
                raise
            self._emit(ERROR, reason=str(exc))  # a folder vanished just now; the root check follows
            return
        reporter.finish(summary)
        if summary.stopped:
            return
        gone: list[str] = []
        for root in paths:
            gone += [p for p, fp in index.fingerprints(under=root).items()
                     if not fp.missing and not os.path.lexists(p)]
        if gone:
            summary.missing += index.mark_missing(gone)
            for p in gone:
                self._emit(MISSING, path=p)
        self._emit(CAUGHT_UP, reason=_summary_line(summary))


class _Reporter:
    """Turns the pipeline's progress snapshots into watch events."""

    def __init__(self, emit: Callable[..., None]) -> None:
        self.emit = emit
        self.failures = 0
        self.write_failures = 0
        self.scan_errors = 0
        self.handled: set[str] = set()
        self._summary: IndexSummary | None = None

    def __call__(self, p: Progress) -> None:
        for c in p.captions:
            self.handled.add(c.path)
            self.emit(CAPTIONED, path=c.path, caption=c.caption, batch=len(p.captions))
        self.finish(p.summary)

    def finish(self, summary: IndexSummary) -> None:
        if summary is not self._summary:  # a new run (a rerun after a decoder crash)
            self._summary, self.failures, self.write_failures, self.scan_errors = summary, 0, 0, 0
        for f in summary.failures[self.failures:]:
            self.handled.add(f.path)
            self.emit(FAILED, path=f.path, reason=f.reason)
        self.failures = len(summary.failures)
        for f in summary.write_failures[self.write_failures:]:
            self.emit(FAILED, path=f.path, reason=f"caption not written into the photo: {f.reason}")
        self.write_failures = len(summary.write_failures)
        for path, reason in summary.scan_errors[self.scan_errors:]:
            self.emit(FAILED, path=path, reason=reason)
        self.scan_errors = len(summary.scan_errors)


def _summary_line(s: IndexSummary) -> str:
    parts = [f"{s.scanned} photos", f"{s.new} new", f"{s.changed} changed", f"{s.moved} moved",
             f"{s.missing} missing", f"{s.failed} failed"]
    if s.unsupported:
        parts.append(f"{s.unsupported} skipped for lack of a decoder (HEIC: install pillow-heif)")
    return ", ".join(parts)

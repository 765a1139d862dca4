"""The watched folders: scheduling them on a watchdog observer, and noticing when one
disappears (an unmounted drive), comes back, or its inotify thread dies.

:class:`RootWatcher` reports through a :class:`RootEvents` callback object, so the
watcher decides what a lost or returning folder means (a catch-up, an event).
"""

from __future__ import annotations

import os
import queue
import stat as stat_mod
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from photocap.library.scan import Root
from photocap.library.watch.events import inotify_limit_message

RawEvent = tuple[str, str, str | None, bool]  # kind, src, dest, is_dir


class RootState(Enum):
    NEW = "new"
    WATCHING = "watching"
    LOST = "lost"  # not there (unmounted?): watched again when it is back
    FAILED = "failed"  # could not be watched (inotify limits)


@dataclass
class WatchedRoot:
    root: Root
    dev: int | None = None  # st_dev when first seen, to notice an unmounted drive
    watch: Any = None  # watchdog ObservedWatch while watched
    state: RootState = RootState.NEW

    @property
    def path(self) -> str:
        return self.root.path


class _Handler:
    """watchdog event handler: forwards the events that matter to a queue."""

    IGNORED = frozenset({"opened", "closed_no_write"})

    def __init__(self, events: queue.Queue[RawEvent]) -> None:
        self.events = events

    def dispatch(self, event: Any) -> None:  # a watchdog FileSystemEvent
        kind = event.event_type
        if kind in self.IGNORED or (kind in ("modified", "closed", "attrib") and event.is_directory):
            return
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else None
        self.events.put((kind, src, dest, bool(event.is_directory)))


@dataclass(frozen=True)
class RootEvents:
    """What the root watcher reports (set by the watcher)."""

    error: Callable[[str, str], None]  # (path, reason)
    back: Callable[[WatchedRoot], None]  # watched again after it was lost
    restarted: Callable[[WatchedRoot], None]  # its inotify thread died and was restarted


class RootWatcher:
    """Schedules the roots on one watchdog observer and keeps checking them."""

    def __init__(self, roots: list[Root], events: queue.Queue[RawEvent], report: RootEvents) -> None:
        self.roots = [WatchedRoot(r) for r in roots]
        self.events = events
        self.report = report
        self.observer: Any = None

    def start(self) -> None:
        from watchdog.observers import Observer

        self.observer = Observer()
        self.observer.start()
        for root in self.roots:
            self._watch(root, first=True)

    def stop(self) -> None:
        if self.observer is not None:
            try:
                self.observer.stop()
                self.observer.join(5)
            except Exception:  # noqa: BLE001 - an observer that fails to stop is abandoned
                pass

    def watching(self) -> list[WatchedRoot]:
        return [r for r in self.roots if r.state is RootState.WATCHING]

    def any_usable(self) -> bool:
        return any(r.state in (RootState.WATCHING, RootState.LOST) for r in self.roots)

    def of(self, path: str) -> WatchedRoot | None:
        """The watched root ``path`` is in (or is), if any."""
        for root in self.roots:
            if root.root.contains(path):
                return root
        return None

    def _watch(self, root: WatchedRoot, first: bool = False) -> bool:
        """Schedule ``root``; report why not. True if it is now watched."""
        try:
            st = os.stat(root.path)
        except OSError:
            root.state = RootState.LOST
            if first:
                self.report.error(root.path, "folder not found (drive not mounted?); "
                                  "it will be watched when it appears")
            return False
        if root.dev is None:
            root.dev = st.st_dev
        try:
            root.watch = self.observer.schedule(_Handler(self.events), root.path, recursive=True)
        except OSError as exc:
            root.state = RootState.FAILED
            self.report.error(root.path, inotify_limit_message(exc, root.path)
                              or f"cannot watch: {exc.strerror or exc}")
            return False
        root.state = RootState.WATCHING
        return True

    def present(self, root: WatchedRoot) -> bool:
        try:
            st = os.stat(root.path)
        except OSError:
            return False
        return stat_mod.S_ISDIR(st.st_mode) and (root.dev is None or st.st_dev == root.dev)

    def check(self) -> list[WatchedRoot]:
        """Notice folders that vanished or came back, and watches that died; return the
        folders that vanished just now (their pending files are to be forgotten)."""
        lost = []
        for root in self.roots:
            present = self.present(root)
            if root.state is RootState.WATCHING:
                if present and self._emitter_alive(root):
                    continue
                self._unwatch(root)
                lost.append(root)
                if not present:
                    root.state = RootState.LOST
                    self.report.error(root.path, "folder disappeared (drive unmounted?); still watching "
                                      "the others, and this one again when it is back")
                    continue
                if self._watch(root):  # the inotify thread died (e.g. the watch limit)
                    self.report.restarted(root)
            elif root.state is RootState.LOST and present and self._watch(root):
                self.report.back(root)
        return lost

    def _emitter_alive(self, root: WatchedRoot) -> bool:
        for emitter in list(self.observer.emitters):
            if emitter.watch == root.watch:
                return bool(emitter.is_alive())
        return False

    def _unwatch(self, root: WatchedRoot) -> None:
        if root.watch is not None:
            try:
                self.observer.unschedule(root.watch)
            except Exception:  # noqa: BLE001 - already gone
                pass
            root.watch = None

"""What a filesystem event means for the library: the watcher's translation of watchdog's
created / modified / moved / deleted events into settle-queue entries, caption moves
(``CaptionIndex.move_path``) and missing flags (:func:`photocap.library.sync.flag_gone`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from photocap.errors import PhotocapError
from photocap.index.store import CaptionIndex
from photocap.library import sync
from photocap.library.pipeline import IndexOptions
from photocap.library.scan import scan, wanted
from photocap.library.watch.events import MISSING, MOVED, SKIPPED
from photocap.library.watch.roots import RootState, RootWatcher
from photocap.library.watch.settle import SettleQueue


class ChangeHandler:
    """Handles one filesystem event at a time (in the watcher's worker thread)."""

    def __init__(self, roots: RootWatcher, settle: SettleQueue, options: IndexOptions,
                 index: Callable[[], CaptionIndex], emit: Callable[..., None]) -> None:
        self.roots = roots
        self.settle = settle
        self.options = options
        self.index = index
        self.emit: Callable[..., Any] = emit

    def handle(self, kind: str, src: str, dest: str | None, is_dir: bool) -> None:
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
            self.emit(SKIPPED, path=src, reason=exc.strerror or str(exc))

    def _wanted(self, path: str) -> bool:
        root = self.roots.of(path)
        if root is None or root.state is not RootState.WATCHING:
            return False
        return wanted(path, root.path, exclude=self.options.exclude)

    def _touch(self, path: str) -> None:
        """A file was created or written: (re)start its settle time."""
        if not self._wanted(path):
            return
        follow = self.options.follow_symlinks
        try:
            st = os.stat(path) if follow else os.lstat(path)
        except FileNotFoundError:
            self.settle.forget(path)
            return
        if not os.path.isfile(path) or (not follow and os.path.islink(path)):
            return
        self.settle.touch(path, st.st_size, st.st_mtime_ns)

    def _queue_folder(self, folder: str) -> None:
        """A folder was created, copied or moved in: queue every photo in it."""
        root = self.roots.of(folder)
        if root is None or root.state is not RootState.WATCHING:
            return
        if any(part.startswith(".") for part in os.path.relpath(folder, root.path).split(os.sep)):
            return
        opt = self.options
        for entry in scan([folder], exclude=opt.exclude, follow_symlinks=opt.follow_symlinks):
            self._touch(entry.path)

    def _on_moved(self, src: str, dest: str, is_dir: bool) -> None:
        index = self.index()
        if is_dir:
            self.settle.forget_under(src)
            if self.roots.of(src) is None:  # moved in from outside
                self._queue_folder(dest)
                return
            if self.roots.of(dest) is None:  # moved out of the watched folders
                self._on_deleted(src, True)
                return
            moved = index.move_path(src, dest)
            if moved:
                self.emit(MOVED, path=src, dest=dest, reason=f"{moved} photo(s)")
            self._queue_folder(dest)  # photos there that the index did not know yet
            return
        was_pending = self.settle.forget(src)
        record = index.fingerprint(src) if self.roots.of(src) is not None else None
        dest_ok = self._wanted(dest)
        if record is not None and not dest_ok:
            self._on_deleted(src, False)  # renamed to a non-photo name or moved out
            return
        if record is not None and index.move_path(src, dest):
            self.emit(MOVED, path=src, dest=dest)
        if dest_ok or was_pending:
            self._touch(dest)  # checks it is what the index now says (cheap if so)

    def _on_deleted(self, path: str, is_dir: bool) -> None:
        if any(r.path == path for r in self.roots.roots):  # a watched folder itself went away
            for root in self.roots.check():
                self.settle.forget_under(root.path)
            return
        if self.roots.of(path) is None:
            return
        index = self.index()
        if is_dir:
            self.settle.forget_under(path)
            outcomes = sync.flag_gone_under(index, path)
        else:
            self.settle.forget(path)
            outcomes = sync.flag_gone(index, [path])
        for o in outcomes:
            self.emit(MISSING, path=o.path)

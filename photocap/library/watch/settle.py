"""The settle queue: files that were written recently, waiting until they are complete.

A file is handed to the pipeline once its size and modification time have not changed
for ``settle`` seconds, it is not already indexed as it is (this is how the watcher
ignores its own metadata writes: the library refreshes a photo's stored fingerprint
after writing into it), and it decodes completely. A burst is collected into batches.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from photocap.index.store import CaptionIndex
from photocap.library.photofile import check_complete
from photocap.library.scan import is_under


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


@dataclass(frozen=True)
class SettleRules:
    settle: float  # seconds a file's size and mtime must stay unchanged
    grace: float  # an unchanged file still failing to decode after this long is handed over
    batch: int  # fill a batch of this many before handing over while a burst arrives
    chunk: int  # at most this many files per hand-over


class SettleQueue:
    """Files waiting to settle, keyed by path."""

    def __init__(self, rules: SettleRules, checker: Executor | None = None) -> None:
        self.rules = rules
        self.checker = checker  # threads for completeness checks (Pillow decodes without the GIL)
        self._pending: dict[str, _Pending] = {}
        self.known = 0  # settled files found already indexed as they are (our own writes, touches)

    def __len__(self) -> int:
        return len(self._pending)

    def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """A file was created or written: (re)start its settle time."""
        now = time.monotonic()
        p = self._pending.get(path)
        if p is None:
            self._pending[path] = _Pending(size, mtime_ns, now)
        else:
            p.changed(size, mtime_ns, now)

    def forget(self, path: str) -> bool:
        return self._pending.pop(path, None) is not None

    def forget_under(self, folder: str) -> None:
        for p in [p for p in self._pending if is_under(p, folder)]:
            del self._pending[p]

    def settled(self, index: CaptionIndex, now: float) -> list[str]:
        """Files whose stat stayed put for ``settle`` seconds, unknown to the index, complete."""
        rules = self.rules
        candidates: list[str] = []
        ready: list[str] = []
        waiting_more = False
        for path, p in list(self._pending.items()):
            if now - p.changed_at < rules.settle or now < p.next_check:
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
                self.known += 1
                continue
            if p.incomplete is not None and now - p.changed_at >= rules.grace:
                ready.append(path)  # unchanged for long and still broken: corrupt
                continue
            (ready if p.verified else candidates).append(path)
        for path, reason in zip(candidates, self._check(candidates)):
            p = self._pending[path]
            if reason is None:
                p.verified = True
                ready.append(path)
            else:
                p.incomplete = reason
                p.next_check = now + rules.settle
                waiting_more = True
        if not ready:
            return []
        if waiting_more and len(ready) < rules.batch and not self._stale(ready, now):
            return []  # a burst is still arriving: fill a batch first (bounded by _stale)
        ready.sort(key=lambda q: self._pending[q].changed_at)
        ready = ready[: rules.chunk]
        for path in ready:
            del self._pending[path]
        return ready

    def _stale(self, ready: list[str], now: float) -> bool:
        oldest = min(self._pending[p].changed_at for p in ready)
        return now - oldest >= 2 * self.rules.settle + 0.5

    def _check(self, paths: list[str]) -> list[str | None]:
        check: Callable[[str], str | None] = check_complete
        if self.checker is not None and len(paths) > 1:
            return list(self.checker.map(check, paths))
        return [check(p) for p in paths]

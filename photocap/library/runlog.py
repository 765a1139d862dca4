"""A run's log: counts each outcome and sends progress snapshots to the front end.

Outcomes reach the front end only after the rows they describe are committed, so what a
run reports is what the database holds (the pipeline calls :meth:`RunLog.emit` after its
transactions). Snapshots are plain frozen values (:class:`Progress`); they are throttled
to one every ``PROGRESS_EVERY_S`` unless forced, and carry every outcome since the last.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from photocap.library.summary import IndexSummary, Tally
from photocap.records import FileOutcome

PROGRESS_EVERY_S = 0.1


@dataclass(frozen=True)
class Progress:
    """A snapshot sent to ``on_progress``. ``total`` is None while scanning."""

    phase: str  # "scan" | "index" | "done"
    scanned: int  # image files found so far
    total: int | None  # files that need work (new, changed, ...) once the scan is done
    done: int  # of ``total``, finished (any outcome)
    summary: IndexSummary  # the counts so far
    path: str | None = None  # the file just handled, if any
    outcomes: tuple[FileOutcome, ...] = ()  # what happened since the last snapshot, in order


class RunLog:
    """Counts outcomes (a :class:`Tally`) and throttles progress snapshots."""

    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        self.on_progress = on_progress
        self.tally = Tally()
        self.scanned = 0
        self.total: int | None = None
        self.done = 0
        self.unsupported = 0
        self.temp_removed = 0
        self._fresh: list[FileOutcome] = []
        self._last = 0.0
        self._t0 = time.monotonic()

    def emit(self, outcome: FileOutcome) -> None:
        self.tally.add(outcome)
        if self.on_progress is not None:
            self._fresh.append(outcome)

    def summary(self) -> IndexSummary:
        return self.tally.index_summary(time.monotonic() - self._t0, self.unsupported, self.temp_removed)

    def progress(self, phase: str, path: str | None = None, *, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_EVERY_S:
            return
        self._last = now
        outcomes, self._fresh = tuple(self._fresh), []
        self.on_progress(Progress(phase, self.scanned, self.total, self.done, self.summary(), path, outcomes))

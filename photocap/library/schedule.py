"""Bounded probe/decode work on a :class:`~photocap.library.workers.DecodePool`.

The pipeline hands jobs to a :class:`Scheduler` and takes back :class:`Done` values.
At most ``cap`` jobs are in flight, so memory does not grow with the library. When a
worker crashes, every job that was in flight on that pool is a suspect: suspects are
retried one at a time, alone on a fresh pool, so the file that kills the decoder is the
only one reported as ``crashed`` and the others simply go through.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from photocap.library.workers import DecodePool, is_crash

T = TypeVar("T")


class Step(Enum):
    PROBE = "probe"
    DECODE = "decode"


@dataclass
class _Job(Generic[T]):
    item: T
    step: Step
    fn: Callable[..., Any]
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Done(Generic[T]):
    """A finished job: its result, or the exception its function raised, or ``crashed``."""

    item: T
    step: Step
    result: Any = None
    error: BaseException | None = None
    crashed: bool = False  # this job alone crashed a fresh worker: its file kills the decoder


class Scheduler(Generic[T]):
    """Runs jobs on ``pool`` with at most ``cap`` in flight."""

    def __init__(self, pool: DecodePool, cap: int) -> None:
        self.pool = pool
        self.cap = max(1, cap)
        self._queue: deque[_Job[T]] = deque()
        self._suspects: deque[_Job[T]] = deque()
        self._in_flight: dict[Future[Any], tuple[_Job[T], int]] = {}
        self._isolating = False  # the one job in flight is a suspect, alone

    def add(self, item: T, step: Step, fn: Callable[..., Any], *args: Any, first: bool = False) -> None:
        job = _Job(item, step, fn, args)
        if first:
            self._queue.appendleft(job)
        else:
            self._queue.append(job)

    @property
    def busy(self) -> bool:
        return bool(self._queue or self._suspects or self._in_flight)

    def _fill(self) -> None:
        if self._suspects:
            if not self._in_flight:
                job = self._suspects.popleft()
                self._isolating = True
                self._submit(job)
            return
        self._isolating = False
        while self._queue and len(self._in_flight) < self.cap:
            self._submit(self._queue.popleft())

    def _submit(self, job: _Job[T]) -> None:
        fut, generation = self.pool.submit(job.fn, *job.args)
        self._in_flight[fut] = (job, generation)

    def poll(self, timeout: float, *, submit: bool = True, wake: Future[Any] | None = None) -> list[Done[T]]:
        """Submit what fits (unless ``submit`` is false: the caller has enough results waiting),
        wait up to ``timeout`` for jobs -- or ``wake``, a future of the caller's -- to finish,
        and return the finished jobs."""
        if submit:
            self._fill()
        waiting: list[Future[Any]] = list(self._in_flight)
        if wake is not None:
            waiting.append(wake)
        if not waiting:
            return []
        finished, _ = wait(waiting, timeout=timeout, return_when=FIRST_COMPLETED)
        out: list[Done[T]] = []
        crashed_alone = False
        for fut in finished:
            if fut not in self._in_flight:
                continue  # the caller's own future
            job, generation = self._in_flight.pop(fut)
            if fut.cancelled():  # never ran: a replaced pool dropped it
                self._queue.appendleft(job)
                continue
            exc = fut.exception()
            if exc is None:
                self.pool.got_result()
                out.append(Done(job.item, job.step, result=fut.result()))
            elif not is_crash(exc):
                out.append(Done(job.item, job.step, error=exc))
            elif self._isolating and self.pool.ever_worked:
                crashed_alone = True
                self.pool.replace(generation)
                out.append(Done(job.item, job.step, crashed=True))
            else:
                self.pool.replace(generation)  # once per generation, however many report it
                self._suspects.append(job)
        if crashed_alone:
            self._isolating = False
        return out

    def cancel(self) -> None:
        """Drop queued work and cancel what has not started (the pool stays usable)."""
        for fut in self._in_flight:
            fut.cancel()
        self._in_flight.clear()
        self._queue.clear()
        self._suspects.clear()

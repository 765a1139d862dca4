"""The decode worker processes: started, watched, and replaced in one place.

:class:`DecodePool` runs probe and decode jobs (``photocap.library.photofile``) off the
main process. It is the only code that creates worker processes, replaces a pool whose
worker crashed (a file that kills the image decoder), and gives up with a typed
:class:`~photocap.errors.DecodePoolError` when fresh pools keep breaking.

Workers never outlive the process that started them, even when it is killed outright
(SIGKILL): each pool has a pipe whose only writing end photocap holds, and a thread in each
worker waits on its reading end; when photocap dies the kernel closes the writing end, the
read ends with end-of-file, and the worker exits. (Their parent is the ``forkserver`` on
Linux, which every worker keeps alive, so "my parent died" would never fire.) The
forkserver and the resource tracker then exit as well: a killed ``photocap index --json |
jq`` leaves no process holding the pipe.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from photocap.errors import DecodePoolError
from photocap.library.photofile import register_heif

WORKER_NICENESS = 10
MAX_BARREN_POOLS = 4  # consecutive pools that broke before any job came back: give up


def _init_worker(lifeline: Any) -> None:
    """Set up a decode worker: die with the parent, leave Ctrl-C to it, run at low priority.

    Decoding is throughput work that fills whatever CPU is idle, while the model's
    intra-op threads wait on each other, so a decoder holding one of their cores stalls
    them all (and a lower priority keeps a background index from slowing the desktop).
    """
    _die_with(lifeline)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):
        try:
            os.nice(WORKER_NICENESS)
        except OSError:
            pass
    register_heif()


def _die_with(lifeline: Any) -> None:
    """Exit as soon as ``lifeline`` (the reading end of the pool's pipe) reaches end of file."""

    def watch() -> None:
        try:
            while True:
                lifeline.recv_bytes()
        except (EOFError, OSError):
            os._exit(0)

    threading.Thread(target=watch, name="photocap-lifeline", daemon=True).start()


class InlineExecutor(Executor):
    """Runs tasks at submit time in this process (``workers=0``, tiny jobs, tests)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001
            fut.set_exception(exc)
        return fut


def default_workers() -> int:
    """Decode processes used when not told: one per CPU, at most 8.

    The model runs in photocap's own process at normal priority while the workers decode at a
    lower one (:data:`WORKER_NICENESS`), so they take the CPU time the model leaves: on two cores,
    two workers indexed 4000x3000 JPEGs at 16-20 photos/s, one at 13-15, which left a third of
    the CPU idle (``bench/bench_index.py throughput --workers N``).
    """
    return max(1, min(8, os.cpu_count() or 1))


class _ProcessPool:
    """A process pool of decode workers and the pipe that ties their lives to this process
    (``forkserver`` on Linux: safe when the caller has threads, e.g. Qt; else ``spawn``)."""

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        self._reader, self._writer = ctx.Pipe(duplex=False)  # the writing end never leaves this process
        self.executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                            initargs=(self._reader,))

    def shutdown(self, wait: bool) -> None:
        self.executor.shutdown(wait=wait, cancel_futures=True)
        self._writer.close()  # idle workers that linger exit too
        self._reader.close()


def is_crash(exc: BaseException) -> bool:
    """True when a job failed because its worker process died (not because of its file)."""
    return isinstance(exc, BrokenProcessPool)


class DecodePool:
    """Probe/decode workers that start on first use and are replaced when one crashes.

    ``workers=0`` runs every job inline. Jobs are submitted with :meth:`submit`, which
    returns the future and the pool generation it ran on; when a future fails with a
    crash (:func:`is_crash`), call :meth:`replace` with that generation: the pool is
    replaced once per crash however many futures report it. Reusable across runs (the
    watcher keeps one warm); :meth:`shutdown` ends it.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else max(0, workers)
        self.generation = 0
        self._executor: Executor | None = None
        self._processes: _ProcessPool | None = None
        self._barren = 0  # consecutive generations that broke without a result
        self._results_this_generation = 0
        self.ever_worked = False  # some job came back from a worker: a crash now is a file's fault
        self.replaced = 0  # pools replaced after a crash (for logs and tests)

    @property
    def inline(self) -> bool:
        return self.workers == 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> tuple[Future[Any], int]:
        if self._executor is None:
            if self.inline:
                self._executor = InlineExecutor()
            else:
                self._processes = _ProcessPool(self.workers)
                self._executor = self._processes.executor
        return self._executor.submit(fn, *args), self.generation

    def got_result(self) -> None:
        """A job came back: the current pool works."""
        self._results_this_generation += 1
        self._barren = 0
        self.ever_worked = True

    def replace(self, generation: int) -> None:
        """The pool of ``generation`` crashed: start a fresh one (once per generation).

        Raises :class:`DecodePoolError` when several fresh pools in a row broke before
        any job came back (the workers cannot start here, not a bad file).
        """
        if generation != self.generation:
            return  # already replaced
        self._barren = 0 if self._results_this_generation else self._barren + 1
        self._results_this_generation = 0
        self._close(wait=False)
        self.generation += 1
        self.replaced += 1
        if self._barren >= MAX_BARREN_POOLS:
            raise DecodePoolError(
                "The image decoding worker processes keep failing to start or crashing; "
                "try --workers 0."
            )

    def shutdown(self, wait: bool = True) -> None:
        self._close(wait)

    def _close(self, wait: bool) -> None:
        if self._processes is not None:
            self._processes.shutdown(wait)
        elif self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
        self._executor = self._processes = None

"""The decode worker processes: started, watched, and replaced in one place.

:class:`DecodePool` runs probe and decode jobs (``photocap.library.photofile``) off the
main process. It is the only code that creates worker processes, replaces a pool whose
worker crashed (a file that kills the image decoder), and gives up with a typed
:class:`~photocap.errors.DecodePoolError` when fresh pools keep breaking.

Workers never outlive the process that started them: each one asks the kernel to kill it
when its parent dies (Linux ``PR_SET_PDEATHSIG``) and, everywhere, a watcher thread ends it
as soon as its parent changes. Their parent is the ``forkserver`` on Linux, which exits
when photocap does (even on SIGKILL: its pipe from photocap reaches end of file), so a
killed ``photocap index`` leaves no process behind holding its terminal or pipe.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from photocap.errors import DecodePoolError
from photocap.library.photofile import register_heif

WORKER_NICENESS = 10
PARENT_POLL_S = 0.5
MAX_BARREN_POOLS = 4  # consecutive pools that broke before any job came back: give up
PR_SET_PDEATHSIG = 1


def _init_worker() -> None:
    """Set up a decode worker: die with the parent, leave Ctrl-C to it, run at low priority.

    Decoding is throughput work that fills whatever CPU is idle, while the model's
    intra-op threads wait on each other, so a decoder holding one of their cores stalls
    them all (and a lower priority keeps a background index from slowing the desktop).
    """
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):
        try:
            os.nice(WORKER_NICENESS)
        except OSError:
            pass
    register_heif()


def _die_with_parent() -> None:
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watcher thread below still ends it
    if os.getppid() != parent or parent == 1:
        os._exit(0)  # the parent died while this worker was starting

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="photocap-parent-watch", daemon=True).start()


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
    """Decode processes used when not told: one per CPU but one (for the model), at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def make_process_pool(workers: int) -> Executor:
    """A process pool of decode workers (``forkserver`` on Linux: safe when the caller has
    threads, e.g. Qt; else ``spawn``)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)


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
        self._barren = 0  # consecutive generations that broke without a result
        self._results_this_generation = 0
        self.ever_worked = False  # some job came back from a worker: a crash now is a file's fault
        self.replaced = 0  # pools replaced after a crash (for logs and tests)

    @property
    def inline(self) -> bool:
        return self.workers == 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> tuple[Future[Any], int]:
        if self._executor is None:
            self._executor = InlineExecutor() if self.inline else make_process_pool(self.workers)
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
        old, self._executor = self._executor, None
        self.generation += 1
        self.replaced += 1
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        if self._barren >= MAX_BARREN_POOLS:
            raise DecodePoolError(
                "The image decoding worker processes keep failing to start or crashing; "
                "try --workers 0."
            )

    def shutdown(self, wait: bool = True) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            self._executor = None

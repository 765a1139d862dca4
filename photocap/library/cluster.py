"""Captioning on a Ray cluster: the expensive middle of ``photocap index`` on remote workers.

Only decode, encoder, decoder and the image vectors move: each Ray actor (a *caption worker*)
loads the model once and captions batches of photos by path, reading them itself (from a shared
mount). Scan, probe, decide, the SQLite commits and the metadata writes stay in the one local
process, in :mod:`photocap.library.pipeline`, which sees a :class:`RayCaptioner` as just another
captioner (its :class:`~photocap.library.captioning.PathCaptioner` protocol): the same rules
decide what needs captioning and the same code path commits it.

Ray is an optional extra (``photocap[cluster]``) and is imported here only, inside functions,
so a plain install never loads it. A worker that dies has its batch retried on a restarted worker
(``retries``); past that the run stops with :class:`~photocap.errors.ClusterError` after keeping
everything already committed, and a rerun captions only what is left.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from photocap.errors import ClusterError, ClusterUnavailable
from photocap.records import CaptionFailure, Described

__all__ = ["ClusterOptions", "RayCaptioner", "ray_captioning", "require_ray"]

INSTALL_HINT = "pip install 'photocap[cluster]'"


def require_ray() -> Any:
    """The ``ray`` module, or :class:`ClusterUnavailable` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterUnavailable(f"Captioning on a Ray cluster needs Ray, which is not installed: {INSTALL_HINT}") \
            from exc
    return ray


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how the caption workers run."""

    address: str | None = None  # None: $RAY_ADDRESS or a running local cluster, else start one here
    workers: int | None = None  # caption workers; None: one per GPU of the cluster, else one per CPU
    cpus_per_worker: float = 1.0  # a CPU worker's share (its torch threads)
    retries: int = 2  # times a dead worker is restarted and its batch retried before the run stops
    path_map: tuple[tuple[str, str], ...] = ()  # (prefix here, prefix on the workers) for the shared mount
    model_path: str | None = None  # None: the bundled model of each worker's install
    device: str = "auto"
    backend: str = "auto"
    beam: int | None = None
    num_cpus: int | None = None  # only when a local cluster is started here: its CPUs (None: all)


def map_path(path: str, path_map: Sequence[tuple[str, str]]) -> str:
    """``path`` as the workers see it: the first matching prefix swapped (a folder boundary only)."""
    for here, there in path_map:
        here = here.rstrip(os.sep)
        if path == here or path.startswith(here + os.sep):
            return there.rstrip(os.sep) + path[len(here):]
    return path


@dataclass(frozen=True)
class _NotOnWorker:
    """A photo the driver read but a worker cannot see: the shared mount is missing or mapped wrong.
    The run stops instead of recording it as a failed photo (a rerun would not try it again)."""

    path: str
    seen_as: str
    host: str


class _CaptionWorker:
    """One Ray actor: loads the model once, then decodes and captions batches of paths.

    It runs two calls at once (``max_concurrency=2``) so that one batch is decoded while the model
    captions the one before, as a local run overlaps its decode workers and the model; the model
    itself is used by one call at a time (a Captioner is not thread-safe)."""

    def __init__(self, model_path: str | None, device: str, backend: str, beam: int | None,
                 path_map: tuple[tuple[str, str], ...]) -> None:
        from photocap.library.captioning import default_captioner_factory

        self.captioner = default_captioner_factory(model_path, device=device, beam=beam, backend=backend)()
        self.path_map = path_map
        self.model_lock = threading.Lock()

    def info(self) -> tuple[str, int, str, int]:
        return self.captioner.model_id, self.captioner.image_size, socket.gethostname(), os.getpid()

    def describe_paths(self, paths: Sequence[str]) -> list[Described | CaptionFailure | _NotOnWorker]:
        # the same decode as a local run's workers (draft mode, orientation, squash)
        from photocap.library.photofile import decode_file

        out: list[Described | CaptionFailure | _NotOnWorker | None] = [None] * len(paths)
        images, slots = [], []
        for i, path in enumerate(paths):
            seen_as = map_path(path, self.path_map)
            if not os.path.isfile(seen_as):
                out[i] = _NotOnWorker(path, seen_as, socket.gethostname())
                continue
            decoded = decode_file(seen_as, self.captioner.image_size)
            if decoded.error:
                out[i] = CaptionFailure(path, decoded.error)
            else:
                images.append(decoded.to_pil())
                slots.append(i)
        if images:
            with self.model_lock:
                described = self.captioner.describe_images(images)
            for i, d in zip(slots, described):
                out[i] = d
        return [o for o in out if o is not None]


class RayCaptioner:
    """The pipeline's :class:`~photocap.library.captioning.PathCaptioner` over a set of caption workers."""

    def __init__(self, ray: Any, options: ClusterOptions) -> None:
        self._ray = ray
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if gpus and options.device in ("auto", "cuda"):
            count, cpus, per_gpu = options.workers or gpus, 1.0, 1.0
        else:
            cpus = options.cpus_per_worker
            count, per_gpu = options.workers or max(1, int(resources.get("CPU", 1) // cpus)), 0.0
        actor = ray.remote(num_cpus=cpus, num_gpus=per_gpu, max_restarts=options.retries,
                           max_task_retries=options.retries, max_concurrency=2)(_CaptionWorker)
        self._actors = [actor.remote(options.model_path, options.device, options.backend, options.beam,
                                     options.path_map) for _ in range(count)]
        self._busy = [0] * count
        self._lock = threading.Lock()
        try:
            infos = ray.get([a.info.remote() for a in self._actors])
        except Exception as exc:  # noqa: BLE001 - a worker that cannot load the model: say why
            self.close()
            raise ClusterError(f"the Ray caption workers could not start: {_cause(exc)}") from exc
        ids = {model_id for model_id, _, _, _ in infos}
        if len(ids) != 1:  # different installs on different nodes: captions must come from one model
            self.close()
            raise ClusterError(f"the Ray caption workers loaded different models: {', '.join(sorted(ids))}")
        self._model_id, self._image_size = infos[0][0], infos[0][1]
        self.workers = tuple((host, pid) for _, _, host, pid in infos)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def image_size(self) -> int:
        return self._image_size

    @property
    def slots(self) -> int:
        return 2 * len(self._actors)  # one batch computing and one queued per worker: none waits on the driver

    def submit_paths(self, paths: Sequence[str]) -> Future[list[Described | CaptionFailure]]:
        with self._lock:
            i = min(range(len(self._actors)), key=self._busy.__getitem__)
            self._busy[i] += 1
        ref = self._actors[i].describe_paths.remote(list(paths))
        out: Future[list[Described | CaptionFailure]] = Future()

        def done(f: Future[Any]) -> None:
            with self._lock:
                self._busy[i] -= 1
            exc = f.exception()
            if exc is not None:  # the machinery failed (a worker died past its retries), not the photos
                out.set_exception(ClusterError(f"a Ray caption worker failed: {_cause(exc)}; what was "
                                               "committed is kept, run the same command again to finish"))
                return
            results = f.result()
            unseen = next((r for r in results if isinstance(r, _NotOnWorker)), None)
            if unseen is not None:
                out.set_exception(ClusterError(
                    f"the Ray worker on {unseen.host} cannot read {unseen.seen_as} (the photo {unseen.path}): "
                    "every worker must see the photos on a shared mount, at the same path or mapped with "
                    "--ray-path-map HERE=THERE; what was committed is kept, run the command again"))
            else:
                out.set_result(results)

        ref.future().add_done_callback(done)
        return out

    def close(self) -> None:
        for a in self._actors:
            try:
                self._ray.kill(a)
            except Exception:  # noqa: BLE001, S110 - already gone
                pass
        self._actors = []


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


@contextmanager
def ray_captioning(options: ClusterOptions) -> Iterator[Any]:
    """Connect to (or start) Ray and yield a captioner factory for the pipeline; the workers start
    on the factory's first call (only when something needs captioning) and stop on exit."""
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": options.address, "logging_level": "WARNING",
                                  "log_to_driver": False, "include_dashboard": False}
        if options.num_cpus is not None:
            kwargs["num_cpus"] = options.num_cpus
        try:
            ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - no cluster at that address, and the like
            raise ClusterError(f"could not connect to the Ray cluster{f' at {options.address}' if options.address else ''}"
                               f": {_cause(exc)}") from exc
        started = True
    made: list[RayCaptioner] = []

    def factory() -> RayCaptioner:
        if not made:
            made.append(RayCaptioner(ray, options))
        return made[0]

    try:
        yield factory
    finally:
        for c in made:
            c.close()
        if started:
            ray.shutdown()

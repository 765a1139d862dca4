"""The indexing pipeline: the one place that joins scan -> caption -> index -> metadata.

A photo's way through :func:`index_folders`::

    scan (one stat; unchanged path+size+mtime -> done, nothing read)
      -> probe in a worker process (content hash, size, EXIF, human description; photofile.py)
      -> same content as a known photo? keep its caption (changed in place, moved, copied)
      -> decode in a worker process (reduced-size JPEG decode, EXIF orientation, squash)
      -> batch -> model (loaded on first need, in this process) -> one transaction per batch
      -> (optional) metadata write -> progress callback

Properties the callers rely on:

* A re-index of an unchanged library reads no file and never imports torch:
  the model is created by ``captioner_factory`` only when a photo needs it.
* Work is bounded: at most ``2 * batch_size + 2 * workers`` files are being
  probed or decoded at once, so memory does not grow with the library.
* Interrupt-safe: every batch is committed in its own transaction; Ctrl-C (or
  ``should_stop``) loses at most the batch in flight, and rerunning continues.
* A caption the user wrote (``source='user'``) is never replaced by the model
  unless ``recaption`` and ``force`` are both set.

Progress crosses layers as plain callbacks (:class:`Progress`), so the CLI's
tqdm bar, the GUI's progress bar and the watcher's log share this code.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from photocap.errors import PhotocapError
from photocap.index.store import CaptionIndex, Fingerprint, PhotoRecord, PhotoUpdate
from photocap.model.preprocess import describe_image_error
from photocap.photofile import (
    DecodedImage,
    InlineExecutor,
    ProbeResult,
    decode_file,
    default_workers,
    make_decode_pool,
    probe_file,
)
from photocap.records import CaptionFailure, CaptionResult
from photocap.scan import (
    ScanEntry,
    ScanStats,
    content_hash,
    is_image_path,
    scan,
    supported_suffixes,
)

if TYPE_CHECKING:
    from PIL import Image


class CaptionerLike(Protocol):
    """What the pipeline needs of :class:`photocap.inference.Captioner`."""

    @property
    def model_id(self) -> str: ...

    @property
    def image_size(self) -> int: ...

    def caption_images(self, images: Sequence[Image.Image]) -> list[tuple[str, float]]: ...


CaptionerFactory = Callable[[], CaptionerLike]


def default_captioner_factory(
    model_path: Path | None = None, device: str = "auto", beam: int | None = None
) -> CaptionerFactory:
    """A factory that imports torch and loads the model only when first called."""

    def make() -> CaptionerLike:
        from photocap.inference import Captioner

        return Captioner(model_path, device=device, beam=beam)

    return make


@dataclass(frozen=True)
class IndexOptions:
    """How :func:`index_folders` and :func:`index_files` behave."""

    batch_size: int = 16  # images per model batch (and per database transaction)
    workers: int | None = None  # decode processes; None = CPUs - 1 (max 8); 0 = decode inline
    exclude: tuple[str, ...] = ()  # globs (see photocap.scan)
    follow_symlinks: bool = False
    recaption: bool = False  # caption unchanged photos again (e.g. with a new model)
    force: bool = False  # with recaption: replace user captions too
    write_metadata: bool = False  # write new captions into the photos (photocap.metadata.writer)
    metadata_target: str = "auto"  # embed | sidecar | auto
    adopt_descriptions: bool = True  # a human description found in a new photo becomes its user caption
    prune: bool = True  # full index: flag vanished files missing; delete those already flagged before


@dataclass(frozen=True)
class Progress:
    """A snapshot sent to ``on_progress``. ``total`` is None while scanning."""

    phase: str  # "scan" | "index" | "done"
    scanned: int  # image files found so far
    total: int | None  # files that need work (new, changed, ...) once the scan is done
    done: int  # of ``total``, finished (any outcome)
    summary: IndexSummary
    path: str | None = None  # the file just handled, if any
    captions: tuple[CaptionResult, ...] = ()  # captions committed since the last snapshot


@dataclass
class IndexSummary:
    """What a run did. Each scanned file counts once in new/changed/unchanged/moved/failed."""

    scanned: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    failed: int = 0
    missing: int = 0  # newly flagged missing
    pruned: int = 0  # records deleted (missing since an earlier run)
    captioned: int = 0  # captions the model wrote
    adopted: int = 0  # human descriptions found in files, kept as user captions
    reused: int = 0  # captions copied from identical content (copies, files touched in place)
    written: int = 0  # metadata writes done
    unsupported: int = 0  # files skipped for lack of a decoder (HEIC without pillow-heif)
    failures: list[CaptionFailure] = field(default_factory=list)
    write_failures: list[CaptionFailure] = field(default_factory=list)
    scan_errors: list[tuple[str, str]] = field(default_factory=list)
    model: str | None = None  # model id, if the model was loaded
    stopped: bool = False  # should_stop() ended the run early
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if not isinstance(v, list)}
        d["failures"] = [f.__dict__ for f in self.failures]
        d["write_failures"] = [f.__dict__ for f in self.write_failures]
        d["scan_errors"] = [{"path": p, "reason": r} for p, r in self.scan_errors]
        return d


# --------------------------------------------------------------------------- the run

INLINE_BELOW = 6  # this few files to decode: no worker processes (their start costs more)
FLUSH_EVERY = 500  # pending bookkeeping rows per transaction
PROGRESS_EVERY_S = 0.1


@dataclass
class _Item:
    entry: ScanEntry
    kind: str  # "new" | "changed" | "recaption"
    probe: ProbeResult | None = None
    attempts: int = 0


class _Run:
    """One indexing run; holds the state the helpers share. Not reusable."""

    def __init__(
        self,
        index: CaptionIndex,
        captioner_factory: CaptionerFactory,
        options: IndexOptions,
        on_progress: Callable[[Progress], None] | None,
        should_stop: Callable[[], bool] | None,
        executor: Executor | None,
    ) -> None:
        self.index = index
        self.factory = captioner_factory
        self.opt = options
        self.on_progress = on_progress
        self.should_stop = should_stop or (lambda: False)
        self.external_executor = executor
        self.summary = IndexSummary()
        self.pending: list[PhotoUpdate] = []
        self.batch: list[tuple[_Item, Image.Image]] = []
        self.captioner: CaptionerLike | None = None
        self.claimed: set[str] = set()  # records already moved this run
        self.total: int | None = None
        self.done = 0
        self.fresh: list[CaptionResult] = []
        self._last_progress = 0.0
        self._t0 = time.monotonic()

    # ------------------------------------------------------------- progress
    def progress(self, phase: str, path: str | None = None, force: bool = False) -> None:
        self.summary.elapsed_s = time.monotonic() - self._t0
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and not self.fresh and now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        captions, self.fresh = tuple(self.fresh), []
        self.on_progress(
            Progress(phase, self.summary.scanned, self.total, self.done, self.summary, path, captions)
        )

    def stopped(self) -> bool:
        if self.should_stop():
            self.summary.stopped = True
        return self.summary.stopped

    # ------------------------------------------------------------- classify
    def classify(self, entry: ScanEntry, fp: Fingerprint | None) -> _Item | None:
        """Stat-level decision: None if nothing to do, else a work item."""
        self.summary.scanned += 1
        if fp is not None and fp.size == entry.size and fp.mtime_ns == entry.mtime_ns and fp.complete:
            if fp.missing:
                self.pending.append(self._facts(entry))  # back again: unflag
            if self.opt.recaption:
                return _Item(entry, "recaption")
            self.summary.unchanged += 1
            return None
        return _Item(entry, "changed" if fp is not None else "new")

    # ------------------------------------------------------------- process
    def process(self, work: list[_Item]) -> None:
        """Probe, decode, caption and store every item (bounded, batched)."""
        self.total = len(work)
        self.progress("index", force=True)
        if not work:
            return
        own = self.external_executor is None
        n_workers = default_workers() if self.opt.workers is None else self.opt.workers
        executor = self.external_executor or (
            make_decode_pool(n_workers) if len(work) >= INLINE_BELOW else InlineExecutor()
        )
        cap = 2 * self.opt.batch_size + 2 * max(1, n_workers)
        queue = deque(work)
        in_flight: dict[Future[Any], tuple[str, _Item]] = {}
        progressed = True  # a result came back since the pool last broke
        try:
            while queue or in_flight:
                if self.stopped():
                    break
                while queue and len(in_flight) < cap:
                    item = queue.popleft()
                    fut = executor.submit(probe_file, item.entry.path, self.opt.adopt_descriptions)
                    in_flight[fut] = ("probe", item)
                done, _ = wait(list(in_flight), timeout=0.25, return_when=FIRST_COMPLETED)
                for fut in done:
                    stage, item = in_flight.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool as exc:
                        if not progressed:  # broke again before any file got through: not a file's fault
                            raise PhotocapError(
                                "The image decoding worker processes keep failing to start or "
                                f"crashing ({exc}); try --workers 0."
                            ) from exc
                        progressed = False
                        executor = self._replace_pool(executor, own, n_workers)
                        item.attempts += 1
                        if item.attempts > 1:
                            self.fail(item, "the image decoder crashed on this file")
                        else:
                            queue.appendleft(item)
                        continue
                    except Exception as exc:  # noqa: BLE001 - a bug in a worker: one file fails
                        self.fail(item, describe_image_error(exc))
                        continue
                    progressed = True
                    if stage == "probe":
                        if self.after_probe(item, result):
                            size = self.image_size()
                            in_flight[executor.submit(decode_file, item.entry.path, size)] = ("decode", item)
                    else:
                        self.after_decode(item, result)
                    if len(self.batch) >= self.opt.batch_size:
                        self.caption_batch()
                        if self.stopped():
                            break
                if len(self.pending) >= FLUSH_EVERY:
                    self.flush()
                self.progress("index")
            while not self.summary.stopped and self.batch:
                self.caption_batch()
        finally:
            for fut in in_flight:
                fut.cancel()
            if own:
                executor.shutdown(wait=False, cancel_futures=True)
            self.batch.clear()  # only non-empty when interrupted: that batch is lost

    def _replace_pool(self, executor: Executor, own: bool, n_workers: int) -> Executor:
        if not own:
            raise PhotocapError("The image decoding workers stopped unexpectedly; try again.")
        executor.shutdown(wait=False, cancel_futures=True)
        return make_decode_pool(n_workers)

    def after_probe(self, item: _Item, probe: ProbeResult) -> bool:
        """Decide what a probed file needs; True if it must be decoded and captioned."""
        item.probe = probe
        path = item.entry.path
        if probe.error:
            self.fail(item, probe.error)
            return False
        record = self.index.get(path) if item.kind != "new" else None
        facts = self._facts(item.entry, probe)
        if record is not None and record.source == "user" and not (self.opt.recaption and self.opt.force):
            self._finish(item, facts)  # the user's caption stays
            return False
        if item.kind == "changed" and record is not None and record.caption is not None:
            if record.content_hash == probe.content_hash and not self.opt.recaption:
                self.summary.reused += 1
                self._finish(item, facts)  # touched, same content: keep the caption
                return False
        if item.kind == "new" and probe.content_hash:
            same = [o for o in self.index.find_by_hash(probe.content_hash) if o.caption is not None and o.path != path]
            # A vanished record with the same content was moved here, even if a copy also exists elsewhere.
            gone = next((o for o in same if o.path not in self.claimed
                         and (o.missing or not os.path.lexists(o.path))), None)
            if gone is not None:
                self.index.move_path(gone.path, path)  # caption and user edit go with it
                self.claimed.add(gone.path)
                self.summary.moved += 1
                self.pending.append(facts)
                self._done(item)
                return False
            if same and not self.opt.recaption:  # an identical copy: same caption, no model run
                self.summary.reused += 1
                self._finish(item, _with_caption(facts, same[0]))
                return False
        if (
            self.opt.adopt_descriptions
            and probe.description
            and not (self.opt.recaption and self.opt.force)
        ):
            self.summary.adopted += 1
            self._finish(item, replace(facts, caption=probe.description, source="user"))
            return False
        return True

    def after_decode(self, item: _Item, decoded: DecodedImage) -> None:
        if decoded.error:
            self.fail(item, decoded.error)
            return
        self.batch.append((item, decoded.to_pil()))

    def image_size(self) -> int:
        return self.load_captioner().image_size

    def load_captioner(self) -> CaptionerLike:
        if self.captioner is None:
            self.captioner = self.factory()
            self.summary.model = self.captioner.model_id
        return self.captioner

    def caption_batch(self) -> None:
        """Caption the decoded batch and commit it with the pending bookkeeping rows."""
        captioner = self.load_captioner()
        size = self.opt.batch_size
        batch, self.batch = self.batch[:size], self.batch[size:]
        outputs = captioner.caption_images([img for _, img in batch])
        model_id = captioner.model_id
        updates: list[PhotoUpdate] = []
        results: list[CaptionResult] = []
        captioned: list[tuple[_Item, Image.Image]] = []
        for (item, img), (text, score) in zip(batch, outputs):
            text = " ".join(str(text).split())
            if not text:
                self.fail(item, "the model produced no caption for this image")
                continue
            captioned.append((item, img))
            facts = self._facts(item.entry, item.probe)
            updates.append(
                replace(facts, caption=text, score=float(score), model=model_id, source="model")
            )
            results.append(CaptionResult(item.entry.path, text, float(score), model_id))
        rows, self.pending = self.pending + updates, []
        self.index.upsert_photos(rows, force=self.opt.force)
        for item, _ in captioned:
            self._count(item)
            self._done(item)
        self.summary.captioned += len(results)
        self.fresh.extend(results)
        if self.opt.write_metadata:
            self.write_metadata(results)
        self.progress("index", results[-1].path if results else None, force=True)

    def write_metadata(self, results: list[CaptionResult]) -> None:
        """Write fresh captions into the photos, then refresh their fingerprints."""
        try:
            from photocap.metadata.writer import write_caption  # type: ignore[import-not-found]
        except ImportError as exc:
            raise PhotocapError(
                "Writing metadata needs photocap.metadata.writer, which is not installed."
            ) from exc
        refreshed = []
        for r in results:
            try:
                report = write_caption(r.path, r.caption, target=self.opt.metadata_target)
            except (PhotocapError, OSError, ValueError) as exc:
                self.summary.write_failures.append(CaptionFailure(r.path, str(exc)))
                continue
            if getattr(report, "skipped", None) or getattr(report, "dry_run", False):
                continue
            self.summary.written += 1
            if getattr(report, "written_path", None) in (None, r.path) or report.target == "embed":
                refreshed.append(r.path)
        if refreshed:
            self.index.upsert_photos([u for u in map(fingerprint_update, refreshed) if u is not None])

    def fail(self, item: _Item, reason: str) -> None:
        self.summary.failed += 1
        self.summary.failures.append(CaptionFailure(item.entry.path, reason))
        probe = item.probe or ProbeResult()
        self.pending.append(
            PhotoUpdate(item.entry.path, item.entry.size, item.entry.mtime_ns,
                        content_hash=probe.content_hash, width=probe.width, height=probe.height,
                        taken_at=probe.taken_at, camera=probe.camera, error=reason)
        )
        self._done(item)

    def _finish(self, item: _Item, update: PhotoUpdate) -> None:
        self.pending.append(update)
        self._count(item)
        self._done(item)

    def _count(self, item: _Item) -> None:
        if item.kind == "new":
            self.summary.new += 1
        elif item.kind == "changed":
            self.summary.changed += 1
        else:
            self.summary.unchanged += 1

    def _done(self, item: _Item) -> None:
        self.done += 1
        self.progress("index", item.entry.path)

    def _facts(self, entry: ScanEntry, probe: ProbeResult | None = None) -> PhotoUpdate:
        p = probe or ProbeResult()
        return PhotoUpdate(entry.path, entry.size, entry.mtime_ns, content_hash=p.content_hash,
                           width=p.width, height=p.height, taken_at=p.taken_at, camera=p.camera)

    def flush(self) -> None:
        if self.pending:
            rows, self.pending = self.pending, []
            self.index.upsert_photos(rows)


def _with_caption(facts: PhotoUpdate, other: PhotoRecord) -> PhotoUpdate:
    return replace(facts, caption=other.caption, score=other.score, model=other.model,
                   source=other.source)


def fingerprint_update(path: str | os.PathLike[str]) -> PhotoUpdate | None:
    """A row refreshing a file's stored size, mtime and hash (after photocap changed the file).

    Call it (and ``index.upsert_photos([...])``) after writing metadata into a
    photo, so the next index does not see the photo as changed.
    """
    p = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(p)
        digest = content_hash(p)
    except OSError:
        return None
    return PhotoUpdate(p, st.st_size, st.st_mtime_ns, content_hash=digest)


def _normalise_roots(roots: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Absolute roots, checked to exist, without roots nested in another root."""
    out: list[str] = []
    for root in roots:
        p = os.path.abspath(os.fspath(Path(root).expanduser()))
        if not os.path.exists(p):
            raise PhotocapError(f"{p}: no such file or folder (is the drive mounted?).")
        out.append(p)
    out = sorted(set(out))
    kept: list[str] = []
    for p in out:
        if not any(p.startswith(k.rstrip(os.sep) + os.sep) for k in kept if os.path.isdir(k)):
            kept.append(p)
    return kept


# --------------------------------------------------------------------------- public API


def index_folders(
    roots: Iterable[str | os.PathLike[str]],
    index: CaptionIndex,
    captioner_factory: CaptionerFactory,
    options: IndexOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    executor: Executor | None = None,
) -> IndexSummary:
    """Bring the index up to date with every photo under ``roots`` (folders or files).

    Unchanged files cost one stat; new and changed files are captioned (or keep
    their caption when their content is known); files gone since the last run
    are flagged missing, and those already flagged by an earlier run are pruned
    (``options.prune``). Raises :class:`PhotocapError` for a root that does not
    exist, and lets model/database errors (``ModelError``, ``IndexDatabaseError``)
    through after committing what was done.
    """
    opt = options or IndexOptions()
    run = _Run(index, captioner_factory, opt, on_progress, should_stop, executor)
    stats = ScanStats()
    roots_abs = _normalise_roots(roots)
    known: dict[str, Fingerprint] = {}
    for root in roots_abs:
        if os.path.isdir(root):
            known.update(index.fingerprints(under=root))
        else:
            fp = index.fingerprint(root)
            if fp is not None:
                known[root] = fp
    work: list[_Item] = []
    try:
        for entry in scan(roots_abs, exclude=opt.exclude, follow_symlinks=opt.follow_symlinks,
                          stats=stats, should_stop=run.stopped):
            item = run.classify(entry, known.pop(entry.path, None))
            if item is not None:
                work.append(item)
            run.progress("scan", entry.path)
        run.summary.unsupported = stats.skipped_unsupported
        run.summary.scan_errors = list(stats.errors)
        if not run.stopped():
            run.process(work)
        if not run.summary.stopped and opt.prune:
            _settle_missing(run, known)
    finally:
        run.flush()
    run.progress("done", force=True)
    return run.summary


def _settle_missing(run: _Run, leftovers: dict[str, Fingerprint]) -> None:
    """Records under the roots not seen by the scan: flag (or prune) those whose file is gone."""
    newly, prune = [], []
    for path, fp in leftovers.items():
        if path in run.claimed or os.path.lexists(path):
            continue  # moved this run, or present but excluded/hidden/unreadable
        (prune if fp.missing else newly).append(path)
    run.flush()
    run.summary.missing += run.index.mark_missing(newly)
    run.summary.pruned += run.index.delete(prune)


def index_files(
    paths: Iterable[str | os.PathLike[str]],
    index: CaptionIndex,
    captioner_factory: CaptionerFactory,
    options: IndexOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    executor: Executor | None = None,
) -> IndexSummary:
    """Index an explicit list of files (the watcher's settled files), incrementally.

    Same rules as :func:`index_folders` per file. Paths that are not photos
    (suffix, hidden, ``.xmp``) are ignored; a path that no longer exists is
    flagged missing. Nothing else in the index is touched.
    """
    opt = options or IndexOptions()
    run = _Run(index, captioner_factory, opt, on_progress, should_stop, executor)
    work: list[_Item] = []
    gone: list[str] = []
    seen: set[str] = set()
    suffixes = supported_suffixes()
    try:
        for raw in paths:
            p = os.path.abspath(os.fspath(raw))
            if p in seen or not is_image_path(p, suffixes):
                continue
            seen.add(p)
            try:
                st = os.stat(p) if opt.follow_symlinks else os.lstat(p)
            except FileNotFoundError:
                gone.append(p)
                continue
            except OSError as exc:
                run.summary.scan_errors.append((p, exc.strerror or str(exc)))
                continue
            if not os.path.isfile(p) or (not opt.follow_symlinks and os.path.islink(p)):
                continue
            item = run.classify(ScanEntry(p, st.st_size, st.st_mtime_ns), index.fingerprint(p))
            if item is not None:
                work.append(item)
        if not run.stopped():
            run.process(work)
        if gone:
            run.flush()
            run.summary.missing += index.mark_missing(gone)
    finally:
        run.flush()
    run.progress("done", force=True)
    return run.summary

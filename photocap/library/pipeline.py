"""The indexing pipeline: scan -> probe -> decide -> decode -> caption -> commit -> write.

A photo's way through :func:`index_folders`::

    scan (one stat; unchanged path+size+mtime -> UNCHANGED, nothing read)
      -> probe in a worker process (content hash, size, EXIF, the description in the file)
      -> decide (decide.py): kept, moved, copied, adopted -- or the model is needed
      -> decode in a worker process (reduced-size JPEG decode, EXIF orientation, squash)
      -> batch -> model (loaded on first need, in this process) -> one transaction per batch
         (captions, and "write owed" with --write-metadata)
      -> sync.write_record (caption into the file, fingerprint refreshed, owed cleared)

With a :class:`PathCaptioner` (library/cluster.py: Ray workers) the two middle steps move: the
decided photos go to it by path in batches, several in flight, and it decodes and captions them
where it runs; every other step, and the commit of what it returns, is the same code as above.

Every file gets one :class:`~photocap.records.FileOutcome` for the index step (and one for
the write step), reported through ``on_progress`` after its rows are committed, and the
run ends with a frozen :class:`~photocap.library.summary.IndexSummary`.

Properties the callers rely on:

* A re-index of an unchanged library reads no file and never imports torch.
* Work is bounded: at most ``2 * batch_size + 2 * workers`` files are being probed or
  decoded at once (schedule.py), and none is handed out while a full batch of decoded photos
  waits behind the one the model is captioning, so memory does not grow with the library.
* Decoding and the model overlap: the model captions a batch in a thread of its own while the
  decode workers go on; every row is committed from the indexing thread.
* Interrupt-safe: every batch is committed in its own transaction; Ctrl-C (or
  ``should_stop``) loses at most the batch in flight, and rerunning continues, including
  the writes a killed ``--write-metadata`` run still owed.
* A person's caption is never replaced by the model unless ``recaption`` and ``force``.

About 540 lines on purpose: one run (``_Run``) orders every step, and its parts share its queues
and counters; what each step decides lives in its own module (decide, schedule, sync, ...).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from photocap.errors import MeaningUnavailable
from photocap.index.store import CaptionIndex
from photocap.library import sync
from photocap.library.captioning import CaptionerFactory, CaptionerLike, PathCaptioner
from photocap.library.concepts import with_concepts
from photocap.library.decide import Decider, Decision, facts
from photocap.library.meaning import Embedder, EmbedderFactory, embed_owed, shared_embedder
from photocap.library.photofile import DecodedImage, ProbeResult, decode_file, probe_file
from photocap.library.runlog import Progress, RunLog
from photocap.library.scan import ScanEntry, ScanStats, is_image_path, scan, supported_suffixes
from photocap.library.schedule import Done, Scheduler, Step
from photocap.library.summary import IndexSummary
from photocap.library.workers import DecodePool
from photocap.imaging.preprocess import describe_image_error
from photocap.records import (
    CaptionFailure,
    CaptionSource,
    Described,
    FileChange,
    FileOutcome,
    Fingerprint,
    Outcome,
    PhotoUpdate,
    ScanProblem,
    VectorKind,
)

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["IndexOptions", "Progress", "index_files", "index_folders"]


@dataclass(frozen=True)
class IndexOptions:
    """How :func:`index_folders` and :func:`index_files` behave."""

    batch_size: int = 16  # images per model batch (and per database transaction)
    workers: int | None = None  # decode processes; None = one per CPU (max 8); 0 = decode inline
    exclude: tuple[str, ...] = ()  # globs (see photocap.library.scan)
    follow_symlinks: bool = False
    recaption: bool = False  # caption unchanged photos again (e.g. with a new model)
    force: bool = False  # with recaption: replace a person's captions too (in the files too)
    write_metadata: bool = False  # write new captions into the photos (photocap.library.sync)
    metadata_target: str = "auto"  # embed | sidecar | auto
    keywords: bool = False  # with write_metadata: the confident concepts as keywords too
    adopt_descriptions: bool = True  # a description found in a photo becomes its caption
    prune: bool = True  # delete the records of files already flagged missing by an earlier run

    @property
    def write_options(self) -> sync.WriteOptions:
        return sync.WriteOptions(target=self.metadata_target, force=self.force and self.recaption,
                                 keywords=self.keywords)


INLINE_BELOW = 6  # this few files to decode: no worker processes (their start costs more)
FLUSH_EVERY = 500  # pending bookkeeping rows per transaction
POLL_S = 0.25


@dataclass
class _Item:
    entry: ScanEntry
    change: FileChange
    probe: ProbeResult | None = None
    update: PhotoUpdate | None = None  # the row decided after the probe, for the model's caption


# A batch for the model: each photo's item, its decoded pixels (None for a PathCaptioner, which
# decodes the photo itself) and the row its caption goes into.
_Batch = list[tuple[_Item, "Image.Image | None", PhotoUpdate]]


class _Run:
    """One indexing run: classify, schedule, caption and commit. Not reusable."""

    def __init__(self, index: CaptionIndex, factory: CaptionerFactory, options: IndexOptions,
                 on_progress: Callable[[Progress], None] | None, should_stop: Callable[[], bool] | None,
                 pool: DecodePool | None, embedder_factory: EmbedderFactory | None = None) -> None:
        self.index = index
        self.embedder_factory = embedder_factory
        self.embedder: Embedder | None = None
        self.image_vectors: dict[str, tuple[str, bytes]] = {}  # path -> (model id, image vector), to store
        self.factory = factory
        self.opt = options
        self.log = RunLog(on_progress)
        self.should_stop = should_stop or (lambda: False)
        self.pool = pool
        self.decider = Decider(index, recaption=options.recaption, force=options.force,
                               adopt=options.adopt_descriptions)
        self.pending: list[tuple[PhotoUpdate, FileOutcome | None]] = []  # rows and what they mean
        self.batch: _Batch = []  # decoded (or, for a PathCaptioner, decided), waiting for the model
        # the batches being captioned (one in the model's thread; a PathCaptioner's slots) and their futures
        self.captioning: deque[tuple[_Batch, Future[list[Described | CaptionFailure]]]] = deque()
        self.captioner: CaptionerLike | PathCaptioner | None = None
        self.stopped = False
        self.write_tried: set[str] = set()  # each owed write is tried (and reported) once a run

    # ------------------------------------------------------------- small steps
    def stop_requested(self) -> bool:
        if not self.stopped and self.should_stop():
            self.stopped = True
            self.log.tally.stopped = True
        return self.stopped

    def classify(self, entry: ScanEntry, fp: Fingerprint | None) -> _Item | None:
        """Stat-level decision: None if nothing to do (UNCHANGED), else a work item."""
        self.log.scanned += 1
        if fp is not None and fp.size == entry.size and fp.mtime_ns == entry.mtime_ns and fp.complete:
            if self.opt.recaption:
                return _Item(entry, FileChange.SAME)
            outcome = FileOutcome(entry.path, Outcome.UNCHANGED, change=FileChange.SAME)
            if fp.missing:
                self.pending.append((facts(entry), outcome))  # back again: unflag
            else:
                self.log.emit(outcome)
            return None
        return _Item(entry, FileChange.CHANGED if fp is not None else FileChange.NEW)

    def fail(self, item: _Item, reason: str) -> None:
        update = replace(facts(item.entry, item.probe), error=reason)
        self.pending.append((update, FileOutcome(item.entry.path, Outcome.FAILED, change=item.change,
                                                 reason=reason)))
        self.log.done += 1

    def flush(self) -> None:
        """Commit the pending rows, then report what they mean and write what they owe."""
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        images, self.image_vectors = self.image_vectors, {}
        with self.index.transaction():  # captions, concepts and image vectors together
            self.index.upsert_photos([u for u, _ in rows], force=self.opt.force)
            if images:
                ids = self.index.ids_of(images)
                self.log.tally.pixel_vectors += self.index.vectors.set(
                    (ids[p], VectorKind.IMAGE, model, vec) for p, (model, vec) in images.items() if p in ids)
        for _, outcome in rows:
            if outcome is not None:
                self.log.emit(outcome)
        self.embed_text([u.path for u, _ in rows if u.caption is not None])
        if self.opt.write_metadata:
            sync.write_owed(self.index, [u.path for u, _ in rows if u.write_owed], self.opt.write_options,
                            self.log.emit, self.write_tried)

    # ------------------------------------------------------------- probe -> decide -> decode
    def process(self, work: list[_Item]) -> None:
        """Probe, decode, caption and store every item (bounded, batched).

        The model captions one batch in a thread of its own while this thread keeps the decode
        workers fed and commits what comes back, so decoding and captioning overlap (the model
        releases the GIL while it computes). The index is only ever touched from this thread.
        """
        self.log.total = len(work)
        self.log.progress("index", force=True)
        if not work:
            return
        pool = self.pool
        own = pool is None
        if pool is None:
            pool = DecodePool(self.opt.workers if len(work) >= INLINE_BELOW else 0)
        sched: Scheduler[_Item] = Scheduler(pool, 2 * self.opt.batch_size + 2 * max(1, pool.workers))
        for item in work:
            sched.add(item, Step.PROBE, probe_file, item.entry.path, self.opt.adopt_descriptions)
        model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="photocap-caption")
        try:
            while (sched.busy or self.captioning) and not self.stop_requested():
                # Decoded photos waiting for the model are bounded: with a full batch waiting
                # behind the ones being captioned, no new work is handed to the workers.
                full = len(self.batch) >= self.opt.batch_size
                wake = self.captioning[0][1] if self.captioning else None
                for done in sched.poll(POLL_S, submit=not (full and wake is not None), wake=wake):
                    self.handle(done, sched)
                self.take_batch(wait=False)
                self.start_batch(model_thread, last=not sched.busy)
                if len(self.pending) >= FLUSH_EVERY:
                    self.flush()
                self.log.progress("index")
            self.take_batch(wait=True)  # a batch being captioned is finished and kept, even when stopped
            while not self.stopped and self.batch:
                self.start_batch(model_thread, last=True)
                self.take_batch(wait=True)
        finally:
            # a batch still being captioned (the run failed or was interrupted) is waited for, so the
            # captioner is never used by two threads (the watcher's next run takes it over)
            model_thread.shutdown(wait=True, cancel_futures=True)
            sched.cancel()
            if own:
                pool.shutdown(wait=False)
            self.batch.clear()  # only non-empty when interrupted: that batch is lost
            self.captioning.clear()

    def handle(self, done: Done[_Item], sched: Scheduler[_Item]) -> None:
        item = done.item
        if done.crashed:
            self.fail(item, "the image decoder crashed on this file")
        elif done.error is not None:
            self.fail(item, describe_image_error(done.error))  # a bug in a worker: one file fails
        elif done.step is Step.PROBE:
            self.after_probe(item, done.result, sched)
        else:
            self.after_decode(item, done.result)

    def after_probe(self, item: _Item, probe: ProbeResult, sched: Scheduler[_Item]) -> None:
        item.probe = probe
        if probe.error:
            self.fail(item, probe.error)
            return
        decision = self.decider.decide(item.entry, item.change, probe)
        if decision.outcome is None:
            item.update = decision.update
            if isinstance(self.load_captioner(), PathCaptioner):  # it reads the photo where it runs
                self.batch.append((item, None, item.update))
                return
            sched.add(item, Step.DECODE, decode_file, item.entry.path, self.image_size(), first=True)
            return
        self.finish(item, decision)

    def finish(self, item: _Item, d: Decision) -> None:
        """An outcome reached without the model."""
        assert d.outcome is not None
        path = item.entry.path
        update = d.update
        if d.moved_from is not None:
            self.index.move_path(d.moved_from, path)  # caption and a person's edit go with it
        if d.outcome is Outcome.COPIED and self.opt.write_metadata:
            update = replace(update, write_owed=True)
        self.pending.append((update, FileOutcome(
            path, d.outcome, change=item.change, caption=update.caption, source=update.source,
            model=update.model, previous=d.moved_from or d.previous)))
        self.log.done += 1
        self.log.progress("index", path)

    def after_decode(self, item: _Item, decoded: DecodedImage) -> None:
        if decoded.error:
            self.fail(item, decoded.error)
            return
        self.batch.append((item, decoded.to_pil(), item.update or facts(item.entry, item.probe)))

    # ------------------------------------------------------------- the model
    def image_size(self) -> int:
        return self.load_captioner().image_size

    def load_captioner(self) -> CaptionerLike | PathCaptioner:
        if self.captioner is None:
            self.captioner = self.factory()
            self.log.tally.model = self.captioner.model_id
        return self.captioner

    def start_batch(self, model_thread: ThreadPoolExecutor, last: bool) -> None:
        """Hand the next full batches of photos (``last``: nothing more is coming, a short one too)
        to the model: one at a time to the model's thread, up to its ``slots`` to a PathCaptioner."""
        if not self.batch:
            return
        captioner = self.load_captioner()
        remote = isinstance(captioner, PathCaptioner)
        slots = captioner.slots if remote else 1
        size = self.opt.batch_size
        while (len(self.batch) >= size or (self.batch and last)) and len(self.captioning) < slots:
            batch, self.batch = self.batch[:size], self.batch[size:]
            if remote:
                future = captioner.submit_paths([item.entry.path for item, _, _ in batch])
            else:
                future = model_thread.submit(captioner.describe_images, [img for _, img, _ in batch])
            self.captioning.append((batch, future))

    def take_batch(self, wait: bool) -> None:
        """Commit the batches the model has captioned (``wait``: wait for all of them), with the
        pending bookkeeping rows. A model error is raised here, in the indexing thread."""
        while self.captioning and (wait or self.captioning[0][1].done()):
            self._commit_batch(*self.captioning.popleft())

    def _commit_batch(self, batch: _Batch, future: Future[list[Described | CaptionFailure]]) -> None:
        outputs = future.result()
        model_id = self.load_captioner().model_id
        last = None
        for (item, _, update), described in zip(batch, outputs):
            if isinstance(described, CaptionFailure):  # the photo failed where it was decoded
                self.fail(item, described.reason)
                continue
            text, score = " ".join(described.caption.split()), described.score
            if not text:
                self.fail(item, "the model produced no caption for this image")
                continue
            row = replace(update, caption=text, score=float(score), model=model_id, source=CaptionSource.MODEL,
                          write_owed=True if self.opt.write_metadata else None)
            row = with_concepts(row, described.concepts, model_id)
            if described.image_vector is not None:
                self.image_vectors[item.entry.path] = (model_id, described.image_vector)
            self.pending.append((row, FileOutcome(item.entry.path, Outcome.CAPTIONED, change=item.change,
                                                  caption=text, source=CaptionSource.MODEL, model=model_id,
                                                  score=float(score))))
            self.log.done += 1
            last = item.entry.path
        self.flush()
        self.log.progress("index", last, force=True)

    # ------------------------------------------------------------- text vectors
    def load_embedder(self) -> Embedder | None:
        """The sentence model, loaded on first need; None (and one warning in the summary) if it
        can't be: captions are never lost for it, only their vectors wait for a later run."""
        if self.embedder is None and self.embedder_factory is not None and self.log.tally.meaning_off is None:
            try:
                self.embedder = self.embedder_factory()
            except MeaningUnavailable as exc:
                self.log.tally.meaning_off = str(exc)
        return self.embedder

    def embed_text(self, paths: list[str]) -> None:
        """Embed the text vectors of just-committed captions (new ones, or changed: stale)."""
        if not paths or self.embedder_factory is None or self.log.tally.meaning_off is not None:
            return
        ids = list(self.index.ids_of(paths).values())
        if not self.index.vectors.owed(VectorKind.TEXT, self._text_model(), 1, ids=ids):
            return
        embedder = self.load_embedder()
        if embedder is not None:
            self._embed(embedder, ids=ids)

    def backfill_text(self) -> None:
        """Embed every text vector still owed: an index made before search by meaning (or by
        another sentence model), captions changed since (stale), a run that was stopped."""
        if self.embedder_factory is None or self.stopped or self.log.tally.meaning_off is not None:
            return
        owed = self.index.vectors.count_owed(VectorKind.TEXT, self._text_model())
        if not owed:
            return
        embedder = self.load_embedder()
        if embedder is None:
            return
        self.log.total, self.log.done = owed, 0
        self.log.progress("embed", force=True)
        self._embed(embedder)

    def _embed(self, embedder: Embedder, ids: list[int] | None = None) -> None:
        start = self.log.tally.embedded

        def batch_done(n: int) -> None:
            self.log.tally.embedded = start + n
            if ids is None:
                self.log.done = n
                self.log.progress("embed")

        try:
            embed_owed(self.index, embedder, ids=ids, on_batch=batch_done, should_stop=self.stop_requested)
        except MeaningUnavailable as exc:
            self.log.tally.meaning_off = str(exc)

    def _text_model(self) -> str:
        from photocap.library.meaning import text_model_id, text_vector_model

        return text_vector_model(self.embedder.model_id if self.embedder is not None else text_model_id())

    def count_images_owed(self) -> None:
        """With an image-embedding head: how many photos (captioned before it) still lack its image vector."""
        model = self.log.tally.model
        if self.log.tally.pixel_vectors and model is not None:
            self.log.tally.pixels_owed = self.index.vectors.count_owed(VectorKind.IMAGE, model)

    # ------------------------------------------------------------- the end
    def finish_owed(self, roots: Iterable[str]) -> None:
        """Writes earlier runs still owe (a run killed between commit and write)."""
        if not self.opt.write_metadata or self.stopped:
            return
        owed = [p for root in roots for p in (self.index.owed_writes(under=root) if os.path.isdir(root)
                                               else [root] if self._owes(root) else [])]
        sync.write_owed(self.index, owed, self.opt.write_options, self.log.emit, self.write_tried)

    def _owes(self, path: str) -> bool:
        record = self.index.get(path)
        return record is not None and record.write_owed

    def end(self) -> IndexSummary:
        self.flush()
        self.log.progress("done", force=True)
        return self.log.summary()


# --------------------------------------------------------------------------- public API


def index_folders(
    roots: Iterable[str | os.PathLike[str]],
    index: CaptionIndex,
    captioner_factory: CaptionerFactory,
    options: IndexOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    pool: DecodePool | None = None,
    embedder_factory: EmbedderFactory | None = shared_embedder,
) -> IndexSummary:
    """Bring the index up to date with every photo under ``roots`` (folders or files).

    Unchanged files cost one stat; new and changed files are captioned (or keep their
    caption when their content is known, or adopt the description in the file); files
    gone since the last run are flagged missing, and those already flagged by an earlier
    run are pruned (``options.prune``). With ``write_metadata`` new captions, and those an
    earlier run still owed, are written into the files. Raises
    :class:`~photocap.errors.MissingRootError` for a root that is not there, and lets
    model/database errors through after committing what was done. ``pool`` is a warm
    :class:`DecodePool` to use (the watcher's); by default the run starts its own.

    Search by meaning: new captions get their text vectors as they are committed, and then every
    text vector the index still owes is made (an index from before search by meaning, captions
    changed since, another sentence model), without captioning anything again; image vectors of a
    model with an image-embedding head are stored with its captions. ``embedder_factory`` makes the
    sentence model (None: no text vectors); if it can't be loaded the run goes on without vectors
    and the summary says why (``meaning_off``).
    """
    opt = options or IndexOptions()
    resolved = sync.library_roots(index, roots)
    run = _Run(index, captioner_factory, opt, on_progress, should_stop, pool, embedder_factory)
    paths = [r.path for r in resolved]
    known: dict[str, Fingerprint] = {}
    for root in paths:
        if os.path.isdir(root):
            known.update(index.fingerprints(under=root))
        elif (fp := index.fingerprint(root)) is not None:
            known[root] = fp
    stats = ScanStats()
    try:
        work: list[_Item] = []
        for entry in scan(paths, exclude=opt.exclude, follow_symlinks=opt.follow_symlinks, stats=stats,
                          should_stop=run.stop_requested):
            item = run.classify(entry, known.pop(entry.path, None))
            if item is not None:
                work.append(item)
            run.log.progress("scan", entry.path)
        run.log.unsupported = stats.skipped_unsupported
        run.log.tally.scan_errors.extend(ScanProblem(p, r) for p, r in stats.errors)
        run.log.temp_removed = sync.remove_stale_temps(stats.temp_files)
        if not run.stop_requested():
            run.process(work)
        if not run.stopped:
            run.flush()
            for outcome in sync.settle_missing(index, known, run.decider.claimed, prune=opt.prune):
                run.log.emit(outcome)
            run.finish_owed(paths)
            run.backfill_text()
            run.count_images_owed()
    finally:
        run.flush()
    return run.end()


def index_files(
    paths: Iterable[str | os.PathLike[str]],
    index: CaptionIndex,
    captioner_factory: CaptionerFactory,
    options: IndexOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    pool: DecodePool | None = None,
    embedder_factory: EmbedderFactory | None = shared_embedder,
) -> IndexSummary:
    """Index an explicit list of files (the watcher's settled files), incrementally.

    Same rules as :func:`index_folders` per file. Paths that are not photos (suffix,
    hidden, ``.xmp``) are ignored; a path that no longer exists is flagged missing.
    Nothing else in the index is touched (only these files' text vectors are made).
    """
    opt = options or IndexOptions()
    run = _Run(index, captioner_factory, opt, on_progress, should_stop, pool, embedder_factory)
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
                run.log.tally.scan_errors.append(ScanProblem(p, exc.strerror or str(exc)))
                continue
            if not os.path.isfile(p) or (not opt.follow_symlinks and os.path.islink(p)):
                continue
            item = run.classify(ScanEntry(p, st.st_size, st.st_mtime_ns), index.fingerprint(p))
            if item is not None:
                work.append(item)
        if not run.stop_requested():
            run.process(work)
        run.flush()
        for outcome in sync.flag_gone(index, gone):
            run.log.emit(outcome)
    finally:
        run.flush()
    return run.end()

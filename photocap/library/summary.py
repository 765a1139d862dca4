"""What a run did, as frozen values, and the one formatter for each.

The library counts every :class:`~photocap.records.FileOutcome` it emits in a
:class:`Tally` and hands out frozen snapshots of it (:class:`IndexSummary`,
:class:`WriteSummary`); front ends print them with :func:`format_index_summary` and
:func:`format_write_summary` and never count for themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from photocap.records import FileChange, FileOutcome, Outcome, ScanProblem, SkipReason, Stage

MAX_LISTED = 20


@dataclass(frozen=True)
class IndexSummary:
    """One index run. Each scanned file counts once in new/changed/unchanged/moved/failed."""

    scanned: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    failed: int = 0
    captioned: int = 0  # captions the model wrote
    adopted: int = 0  # descriptions found in the files, kept as their captions
    copied: int = 0  # captions copied from identical content elsewhere (no model run)
    kept: int = 0  # files that changed on disk and kept their caption
    missing: int = 0  # newly flagged missing
    pruned: int = 0  # records deleted (missing since an earlier run)
    written: int = 0  # captions written into files
    write_skipped: int = 0  # writes not done on purpose (a person's description is there ...)
    write_failed: int = 0
    unsupported: int = 0  # files skipped for lack of a decoder (HEIC without pillow-heif)
    temp_removed: int = 0  # stale temp files of killed writes, removed
    embedded: int = 0  # text vectors made (search by meaning): new captions, and those owed
    # (pixel_vectors, pixels_owed: the image embedding's old name, kept as the keys of ``index --json``)
    pixel_vectors: int = 0  # image vectors stored (from a model with an image-embedding head)
    pixels_owed: int = 0  # with an image-embedding head: photos captioned before it, still without an image vector
    meaning_off: str | None = None  # why no text vectors were made (the sentence model failed to load)
    failures: tuple[FileOutcome, ...] = ()
    write_failures: tuple[FileOutcome, ...] = ()
    scan_errors: tuple[ScanProblem, ...] = ()
    model: str | None = None  # model id, if the model was loaded
    stopped: bool = False  # should_stop() ended the run early
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: v for k, v in self.__dict__.items() if not isinstance(v, tuple)}
        d["failures"] = [{"path": f.path, "reason": f.reason} for f in self.failures]
        d["write_failures"] = [{"path": f.path, "reason": f.reason} for f in self.write_failures]
        d["scan_errors"] = [e.to_dict() for e in self.scan_errors]
        return d


@dataclass(frozen=True)
class WriteSummary:
    """One ``photocap write`` (or the writes of a caption edit)."""

    written: int = 0
    up_to_date: int = 0
    kept_persons: int = 0  # skipped: a person's description is there (--force replaces it)
    no_caption: int = 0
    not_indexed: int = 0
    failed: int = 0
    temp_removed: int = 0
    dry_run: bool = False
    photo_changed: int = 0  # skipped: the file changed since it was captioned (index it again)

    @property
    def total(self) -> int:
        return (self.written + self.up_to_date + self.kept_persons + self.no_caption
                + self.not_indexed + self.failed + self.photo_changed)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Tally:
    """Counts outcomes as they are emitted (the library's own, mutable, never handed out)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.failures: list[FileOutcome] = []
        self.write_failures: list[FileOutcome] = []
        self.scan_errors: list[ScanProblem] = []
        self.model: str | None = None
        self.stopped = False
        self.dry_run = False
        self.embedded = 0
        self.pixel_vectors = 0
        self.pixels_owed = 0
        self.meaning_off: str | None = None

    def _add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def add(self, o: FileOutcome) -> None:
        if o.stage is Stage.WRITE:
            self._add_write(o)
            return
        kind = o.outcome
        if kind in (Outcome.MISSING, Outcome.PRUNED):
            self._add(str(kind))
            return
        self._add("scanned")
        if kind is Outcome.FAILED:
            self._add("failed")
            self.failures.append(o)
            return
        if kind is Outcome.MOVED:
            self._add("moved")
            return
        change = o.change or FileChange.SAME
        self._add({FileChange.NEW: "new", FileChange.CHANGED: "changed", FileChange.SAME: "unchanged"}[change])
        counted = {Outcome.CAPTIONED: "captioned", Outcome.ADOPTED: "adopted", Outcome.COPIED: "copied",
                   Outcome.KEPT: "kept"}
        if kind in counted:
            self._add(counted[kind])

    def _add_write(self, o: FileOutcome) -> None:
        if o.outcome is Outcome.WRITTEN:
            self._add("written")
        elif o.outcome is Outcome.FAILED:
            self._add("write_failed")
            self.write_failures.append(o)
        elif o.outcome is Outcome.SKIPPED:
            self._add("write_skipped")
            self._add(f"skip:{o.skip}")

    def index_summary(self, elapsed_s: float, unsupported: int = 0, temp_removed: int = 0) -> IndexSummary:
        c = self.counts.get
        return IndexSummary(
            scanned=c("scanned", 0), new=c("new", 0), changed=c("changed", 0), unchanged=c("unchanged", 0),
            moved=c("moved", 0), failed=c("failed", 0), captioned=c("captioned", 0), adopted=c("adopted", 0),
            copied=c("copied", 0), kept=c("kept", 0), missing=c("missing", 0), pruned=c("pruned", 0),
            written=c("written", 0), write_skipped=c("write_skipped", 0), write_failed=c("write_failed", 0),
            unsupported=unsupported, temp_removed=temp_removed, failures=tuple(self.failures),
            write_failures=tuple(self.write_failures), scan_errors=tuple(self.scan_errors),
            model=self.model, stopped=self.stopped, elapsed_s=elapsed_s, embedded=self.embedded,
            pixel_vectors=self.pixel_vectors, pixels_owed=self.pixels_owed, meaning_off=self.meaning_off,
        )

    def write_summary(self, temp_removed: int = 0) -> WriteSummary:
        c = self.counts.get
        return WriteSummary(
            written=c("written", 0), up_to_date=c(f"skip:{SkipReason.UP_TO_DATE}", 0),
            kept_persons=c(f"skip:{SkipReason.PERSONS_DESCRIPTION}", 0),
            no_caption=c(f"skip:{SkipReason.NO_CAPTION}", 0),
            not_indexed=c(f"skip:{SkipReason.NOT_INDEXED}", 0) + c(f"skip:{SkipReason.NOT_A_PHOTO}", 0),
            failed=c("write_failed", 0), temp_removed=temp_removed, dry_run=self.dry_run,
            photo_changed=c(f"skip:{SkipReason.PHOTO_CHANGED}", 0),
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def format_index_summary(s: IndexSummary, *, one_line: bool = False) -> str:
    """What an index run did, for people: the CLI's last lines, the GUI's status bar, the
    watcher's "caught up" line. ``one_line`` joins the two lines."""
    parts = [f"{s.new} new", f"{s.changed} changed", f"{s.unchanged} unchanged", f"{s.moved} moved",
             f"{s.failed} failed"]
    head = (f"{'Stopped after' if s.stopped else 'Indexed'} {_plural(s.scanned, 'photo')} in "
            f"{s.elapsed_s:.1f} s: " + ", ".join(parts) + ".")
    extra = []
    if s.captioned:
        extra.append(f"{s.captioned} captioned by {s.model}")
    if s.adopted:
        extra.append(f"{s.adopted} kept the description already in the file")
    if s.copied:
        extra.append(f"{s.copied} got the caption of an identical photo")
    if s.kept:
        extra.append(f"{s.kept} changed on disk but kept their caption")
    if s.written:
        extra.append(f"{s.written} written into files")
    if s.write_skipped:
        extra.append(f"{s.write_skipped} not written (a person's description is there, already written, "
                     "or the file changed)")
    if s.write_failed:
        extra.append(f"{s.write_failed} could not be written")
    if s.missing:
        extra.append(f"{s.missing} missing (run again or `photocap prune` to remove)")
    if s.pruned:
        extra.append(f"{s.pruned} removed (gone since an earlier run)")
    if s.unsupported:
        extra.append(f"{s.unsupported} HEIC/HEIF skipped (install the 'heif' extra: pip install 'photocap[heif]')")
    if s.temp_removed:
        extra.append(f"{s.temp_removed} stale temp files of an interrupted write removed")
    if s.embedded:
        extra.append(f"{_plural(s.embedded, 'caption')} embedded for search by meaning")
    if s.pixels_owed:
        extra.append(f"{s.pixels_owed} photos captioned before this model have no image vector "
                     "(`photocap index --recaption` makes them)")
    if s.meaning_off:
        extra.append(f"search by meaning is off: {s.meaning_off}")
    if not extra:
        return head
    return head + (" " if one_line else "\n") + "; ".join(extra) + "."


def format_write_summary(s: WriteSummary) -> str:
    """What a write did, for people (one line)."""
    verb = "would write" if s.dry_run else "written"
    parts = [f"{s.written} {verb}", f"{s.up_to_date} already up to date"]
    if s.kept_persons:
        parts.append(f"{s.kept_persons} kept a person's description (--force replaces it)")
    if s.no_caption:
        parts.append(f"{s.no_caption} without a caption yet")
    if s.not_indexed:
        parts.append(f"{s.not_indexed} not in the index")
    if s.photo_changed:
        parts.append(f"{s.photo_changed} changed since they were captioned (run `photocap index` first)")
    parts.append(f"{s.failed} failed")
    line = ", ".join(parts)
    if s.temp_removed:
        line += f"; {s.temp_removed} stale temp files removed"
    return line

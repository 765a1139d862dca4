"""Keeping files, index and metadata in step: the one owner of each of these promises.

* **Writing captions into files** (:func:`write_record`): the caption goes into the photo
  with whose words it is, then, in one transaction, the photo's stored fingerprint is
  refreshed and its "write owed" flag cleared, so the next ``index`` (or the watcher)
  sees the photo unchanged and never recaptions it. A caption committed with
  ``--write-metadata`` owes its write until then (:func:`write_owed`).
* **Whose words a caption is** (:func:`adoption`, :func:`was_stock`): a description found
  in a file becomes the photo's caption when it is a person's (the user's caption) or a
  model's that photocap wrote (kept as that model's caption); stock text never does.
* **What is gone** (:func:`is_gone`, :func:`settle_missing`, :func:`flag_gone`,
  :func:`prune`): a file is gone only when the system says it does not exist; a folder
  that cannot be read, or a missing parent folder (an unmounted drive), never costs a
  caption by itself.
* **Roots** (:func:`rekey_aliases`): a library first indexed through a symbolic link is
  re-keyed to its resolved paths (see :func:`photocap.library.scan.normalise_roots`).
* **Stale temp files** of writes that were killed (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from photocap.errors import MetadataError
from photocap.index.store import CaptionIndex
from photocap.library.concepts import keywords as concept_keywords
from photocap.library.photofile import FileDescription, ProbeResult, read_description
from photocap.library.scan import Root, content_hash, normalise_roots, resolve
from photocap.metadata import atomic
from photocap.metadata.provenance import Owner
from photocap.metadata.stock import normalise
from photocap.metadata.writer import write_caption
from photocap.records import (
    CaptionSource, FileOutcome, Fingerprint, Outcome, PhotoRecord, PhotoUpdate, SkipReason, Stage,
    WriteReport,
)

Emit = Callable[[FileOutcome], None]


@dataclass(frozen=True)
class WriteOptions:
    """How captions are written into files (``photocap write``'s options)."""

    target: str = "auto"  # auto | embed | sidecar
    sidecar_name: str = "ext"  # ext (photo.jpg.xmp) | base (photo.xmp)
    force: bool = False  # replace a person's description too
    keep_mtime: bool = True
    dry_run: bool = False
    windows_fields: bool = False
    keywords: bool = False  # also add the photo's confident concepts as keywords (never removes any)


# --------------------------------------------------------------------------- writing


def fingerprint_update(path: str | os.PathLike[str], *, write_owed: bool | None = None) -> PhotoUpdate | None:
    """A row refreshing a file's stored size, mtime and hash (after photocap changed the file)."""
    p = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(p)
        digest = content_hash(p)
    except OSError:
        return None
    return PhotoUpdate(p, st.st_size, st.st_mtime_ns, content_hash=digest, write_owed=write_owed)


def write_record(
    index: CaptionIndex, record: PhotoRecord, options: WriteOptions, *, withdrawn: str | None = None
) -> FileOutcome:
    """Write ``record``'s caption into its photo, then settle the index in one transaction.

    With ``options.keywords`` the photo's confident concepts
    (:func:`photocap.library.concepts.keywords`) are added to its keywords too.

    Success (written or already there): the fingerprint is refreshed when the photo itself
    changed, and "write owed" is cleared. A person's description in the way: SKIPPED with
    ``SkipReason.PERSONS_DESCRIPTION`` (and nothing owed any more: only ``--force`` changes
    that). A failure keeps the write owed, so a later run tries again.
    """
    path = record.path
    if not record.caption:
        return FileOutcome(path, Outcome.SKIPPED, Stage.WRITE, skip=SkipReason.NO_CAPTION,
                           reason="no caption yet")
    source = record.source or CaptionSource.MODEL
    photo = captioned_photo(record)
    if photo is None:
        return FileOutcome(path, Outcome.SKIPPED, Stage.WRITE, caption=record.caption, source=record.source,
                           skip=SkipReason.PHOTO_CHANGED,
                           reason="the file changed since it was captioned (replaced or edited); "
                                  "`photocap index` captions it again")
    words = concept_keywords(index.concepts(path)) if options.keywords else ()
    try:
        report = write_caption(
            path, record.caption, target=options.target, sidecar_name=options.sidecar_name,
            force=options.force, keep_mtime=options.keep_mtime, dry_run=options.dry_run,
            write_windows_fields=options.windows_fields, source=source,
            model=record.model if source is CaptionSource.MODEL else None, withdrawn=withdrawn,
            keywords=words, photo=photo,
        )
    except (MetadataError, OSError) as exc:
        reason = str(exc) if isinstance(exc, MetadataError) else f"{path}: {exc.strerror or exc}"
        return FileOutcome(path, Outcome.FAILED, Stage.WRITE, caption=record.caption, reason=reason)
    if not report.dry_run and report.skip is not SkipReason.PHOTO_CHANGED:
        _settle_written(index, record, report)
    common = {"stage": Stage.WRITE, "caption": record.caption, "source": record.source, "write": report}
    if report.skip is None:
        return FileOutcome(path, Outcome.WRITTEN, **common)  # type: ignore[arg-type]
    return FileOutcome(path, Outcome.SKIPPED, skip=report.skip, reason=report.skipped,
                       **common)  # type: ignore[arg-type]


def captioned_photo(record: PhotoRecord) -> atomic.Signature | None:
    """THE "is this file still the photo the caption was made for" rule.

    The file's signature (size, mtime, inode) when it is: its size and mtime are the ones the
    index stored, or its content hash is the stored one (only touched, or copied back), or it
    already holds this caption as photocap wrote it (for a model's caption: written for these
    pixels, ``XMP-photocap:ImageDigest``). None
    when it was replaced or edited since (or cannot be read): writing the caption there would
    put one photo's words into another. The writer re-checks the signature before it
    replaces anything, so a file swapped after this check is not written either.
    """
    before = atomic.signature(Path(record.path))
    if before is None:
        return None
    if (before[0], before[1]) == (record.size, record.mtime_ns):
        return before
    try:
        digest = content_hash(record.path)
    except OSError:
        return None
    same = record.content_hash is not None and digest == record.content_hash
    if not same and record.caption:
        # a write of this very caption that was killed before the index heard of it: the file
        # holds it as photocap wrote it (a model's caption only where it names these pixels)
        found, _ = read_description(record.path)
        owner = Owner.PHOTOCAP_USER if record.source is CaptionSource.USER else Owner.PHOTOCAP_MODEL
        same = found is not None and found.owner is owner and found.text == " ".join(record.caption.split())
    # checked on the file as signed: one replaced meanwhile is not trusted
    return before if same and atomic.signature(Path(record.path)) == before else None


def _settle_written(index: CaptionIndex, record: PhotoRecord, report: WriteReport) -> None:
    """After a write: store the photo's new fingerprint (the write was made only into the photo
    the caption was made for: :func:`captioned_photo`) and clear "write owed", in one
    transaction."""
    update = fingerprint_update(record.path, write_owed=False) if report.changed_photo else None
    if update is not None:
        index.upsert_photos([update])
    elif record.write_owed:
        index.set_write_owed([record.path], False)


def write_owed(index: CaptionIndex, paths: Iterable[str], options: WriteOptions, emit: Emit,
               tried: set[str] | None = None) -> None:
    """Write the captions still owed by ``paths`` (each written once, then settled).

    ``tried``: the paths this run already tried to write (added to here); a write that failed
    or was skipped is not tried, and reported, a second time in one run.
    """
    for path in paths:
        if tried is not None:
            if path in tried:
                continue
            tried.add(path)
        record = index.get(path)
        if record is None or not record.write_owed:
            continue
        emit(write_record(index, record, options))


# --------------------------------------------------------------------------- whose words


@dataclass(frozen=True)
class Adoption:
    """A description found in a file, to be kept as the photo's caption."""

    caption: str
    source: CaptionSource
    model: str | None = None


def adoption(description: FileDescription | None, *, recaption: bool, force: bool) -> Adoption | None:
    """THE adopt rule: what the index keeps of a description found in a photo.

    A person's words (typed in another app, or saved through photocap: the file says so)
    become the user's caption, unless ``--recaption --force``. A model's caption photocap
    wrote is kept as that model's caption (the photo need not be captioned again, e.g.
    after the index was lost), unless ``--recaption``. Stock text is never a description.
    """
    if description is None:
        return None
    if description.owner.persons:
        return None if (recaption and force) else Adoption(description.text, CaptionSource.USER)
    if description.owner is Owner.PHOTOCAP_MODEL and not recaption:
        return Adoption(description.text, CaptionSource.MODEL, description.model)
    return None


def was_stock(record: PhotoRecord | None, probe: ProbeResult) -> bool:
    """True when a "user" caption is text no person wrote (adopted under an older, looser
    stock-text rule): ``index --recaption`` then lets the model caption the photo."""
    if record is None or record.source is not CaptionSource.USER or not record.caption:
        return False
    return normalise(record.caption) in {normalise(t) for t in probe.stock_texts}


# --------------------------------------------------------------------------- what is gone


def is_gone(path: str) -> bool:
    """THE "file is gone" rule: the system says it does not exist (a dangling link counts).

    A file that cannot be checked (a folder without read permission) is not gone.
    """
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def settle_missing(
    index: CaptionIndex, leftovers: dict[str, Fingerprint], claimed: set[str], *, prune: bool
) -> list[FileOutcome]:
    """Records under the roots that the scan did not see: flag the gone ones missing, and
    (``prune``) delete those already flagged by an earlier run. Files that are there but
    were not scanned (hidden, excluded, unreadable) are left alone."""
    newly, old = [], []
    for path, fp in leftovers.items():
        if path in claimed or not is_gone(path):
            continue
        (old if fp.missing else newly).append(path)
    out = [FileOutcome(p, Outcome.MISSING) for p in newly] if index.mark_missing(newly) else []
    if prune and old:
        index.delete(old)
        out += [FileOutcome(p, Outcome.PRUNED) for p in old]
    return out


def flag_gone(index: CaptionIndex, paths: Iterable[str]) -> list[FileOutcome]:
    """Flag as missing the indexed, not yet missing files among ``paths`` that are gone."""
    gone = []
    for p in paths:
        fp = index.fingerprint(p)
        if fp is not None and not fp.missing and is_gone(p):
            gone.append(p)
    index.mark_missing(gone)
    return [FileOutcome(p, Outcome.MISSING) for p in gone]


def flag_gone_under(index: CaptionIndex, folder: str) -> list[FileOutcome]:
    """:func:`flag_gone` for every record below ``folder`` (a folder deleted or moved away)."""
    return flag_gone(index, [p for p, fp in index.fingerprints(under=folder).items() if not fp.missing])


@dataclass(frozen=True)
class PruneResult:
    removed: tuple[str, ...]  # paths removed (or that would be, with dry_run)
    kept_in_gone_folders: int  # gone files whose whole folder is gone: kept (unmounted drive?)
    dry_run: bool


def prune(index: CaptionIndex, unders: Iterable[str | None], *, gone_folders: bool = False,
          dry_run: bool = False) -> PruneResult:
    """Remove the records of files that are gone (below each of ``unders``, None = all).

    A file whose folder is gone too is kept unless ``gone_folders``: a drive that is not
    mounted must not cost its captions.
    """
    gone: list[str] = []
    kept = 0
    for under in unders:
        for r in index.iter_photos(under):
            if not is_gone(r.path):
                continue
            if not gone_folders and is_gone(os.path.dirname(r.path)):
                kept += 1
                continue
            gone.append(r.path)
    if not dry_run:
        index.delete(gone)
    return PruneResult(tuple(gone), kept, dry_run)


# --------------------------------------------------------------------------- roots and temp files


def library_roots(
    index: CaptionIndex, paths: Iterable[str | os.PathLike[str]], *, must_exist: bool = True
) -> list[Root]:
    """THE way a command turns the folders it was given into roots of the library: resolved
    (:func:`photocap.library.scan.normalise_roots`), and records an older photocap stored under
    a root's link name re-keyed to the resolved paths (:func:`rekey_aliases`)."""
    roots = normalise_roots(paths, must_exist=must_exist)
    rekey_aliases(index, roots)
    return roots


def indexed_path(index: CaptionIndex, path: str | os.PathLike[str]) -> str:
    """The path the index knows a photo by: as given (made absolute) if it has that record,
    else resolved (the path a new record gets)."""
    given = os.path.abspath(os.path.expanduser(os.fspath(path)))
    return given if index.get(given) is not None else resolve(given)


def rekey_aliases(index: CaptionIndex, roots: Iterable[Root]) -> int:
    """Records stored under a root's link name (``~/Pictures/...`` when ``~/Pictures`` links
    to ``/data/photos``) move to the resolved paths; return how many moved."""
    moved = 0
    for root in roots:
        if root.alias is None:
            continue
        if index.get(root.alias) is not None or any(True for _ in index.iter_photos(root.alias)):
            moved += index.move_path(root.alias, root.path)
    return moved


def remove_stale_temps(paths: Iterable[str]) -> int:
    """Delete photocap temp files left by writes that were killed; return how many."""
    return len(atomic.remove_stale_temps(paths))


def temp_files_in(folders: Iterable[str]) -> list[str]:
    """photocap temp files directly in ``folders`` (for commands that do not scan)."""
    found: list[str] = []
    for folder in dict.fromkeys(folders):
        try:
            with os.scandir(folder) as it:
                found += [e.path for e in it if atomic.is_temp_name(e.name)]
        except OSError:
            continue
    return found


def records_for(index: CaptionIndex, roots: Iterable[Root]) -> list[tuple[str, PhotoRecord | None]]:
    """(path, record) for every indexed photo under folder roots and every file root."""
    out: list[tuple[str, PhotoRecord | None]] = []
    for root in roots:
        if os.path.isdir(root.path):
            out += [(r.path, r) for r in index.iter_photos(root.path)]
        else:
            out.append((root.path, index.get(root.path)))
    return out


def write_roots(
    index: CaptionIndex, roots: Iterable[Root], options: WriteOptions, emit: Emit
) -> int:
    """``photocap write``: write the caption of every indexed photo under ``roots``.

    Returns how many stale temp files were removed from the folders written to.
    """
    folders: list[str] = []
    for path, record in records_for(index, roots):
        folders.append(os.path.dirname(path))
        if record is None:
            emit(FileOutcome(path, Outcome.SKIPPED, Stage.WRITE, skip=SkipReason.NOT_INDEXED,
                             reason="not in the index; run `photocap index` first"))
            continue
        emit(write_record(index, record, options))
    return 0 if options.dry_run else remove_stale_temps(temp_files_in(folders))


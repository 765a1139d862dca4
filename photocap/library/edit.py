"""A person's caption edits: the GUI's Save and Write, ``photocap set-caption`` and
``photocap clear-caption`` all take these paths, so an edit is stored, owed and written
into the file the same way whichever front end made it.

* :func:`set_caption`: the text becomes the user's caption (the model never replaces it);
  with ``write``, it is owed to the file in the same transaction and then written there,
  recorded in the file as the user's words (``photocap:DescriptionSource`` = user).
* :func:`write_caption_of`: write the caption the index holds into the file.
* :func:`clear_captions`: the person's caption goes and the model captions the photo
  again; with ``write``, the model's caption replaces the person's words photocap wrote
  (and only those: anyone else's description needs ``force``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import replace

from photocap.errors import MeaningUnavailable, NotIndexedError, PhotocapError
from photocap.index.store import CaptionIndex
from photocap.library import sync
from photocap.library.meaning import EmbedderFactory, embed_owed, shared_embedder
from photocap.library.photofile import probe_file
from photocap.library.captioning import CaptionerFactory
from photocap.library.pipeline import IndexOptions, Progress, index_files
from photocap.library.scan import is_image_path
from photocap.library.summary import IndexSummary
from photocap.records import CaptionSource, FileOutcome, Outcome, PhotoRecord, PhotoUpdate, SkipReason


def clean_caption(text: str) -> str:
    """The caption as stored: white space collapsed; an empty one is refused."""
    cleaned = " ".join(str(text).split())
    if not cleaned:
        raise PhotocapError("A caption cannot be empty.")
    return cleaned


def _ensure_indexed(index: CaptionIndex, path: str) -> FileOutcome | None:
    """Add a photo the index does not know yet (its facts, no caption); a FAILED outcome if
    it cannot be read."""
    if index.get(path) is not None:
        return None
    if not os.path.isfile(path) or not is_image_path(path):
        return FileOutcome(path, Outcome.FAILED, reason=f"{path}: not a photo photocap reads")
    probe = probe_file(path, with_description=False)
    if probe.error:
        return FileOutcome(path, Outcome.FAILED, reason=probe.error)
    st = os.stat(path)
    index.upsert_photos([PhotoUpdate(path, st.st_size, st.st_mtime_ns, content_hash=probe.content_hash,
                                     width=probe.width, height=probe.height, taken_at=probe.taken_at,
                                     camera=probe.camera)])
    return None


def set_caption(
    index: CaptionIndex, path: str | os.PathLike[str], text: str, *, write: sync.WriteOptions | None = None,
    embedder_factory: EmbedderFactory | None = shared_embedder,
) -> tuple[FileOutcome, ...]:
    """Make ``text`` the person's caption of ``path`` (indexing the photo if needed).

    The caption is searchable by meaning at once: its text vector is made with the sentence
    model from ``embedder_factory`` (None: left owed). Where that model can't be loaded the
    vector stays owed and the next ``photocap index`` makes it; the caption is saved either way.

    Returns the SET outcome (or FAILED) and, with ``write``, the write's outcome: WRITTEN,
    SKIPPED (``SkipReason.PERSONS_DESCRIPTION``: someone else's description is in the file;
    ask, then call :func:`write_caption_of` with ``force``), or FAILED.
    """
    caption = clean_caption(text)
    p = sync.indexed_path(index, path)
    problem = _ensure_indexed(index, p)
    if problem is not None:
        return (problem,)
    record = index.set_user_caption(p, caption, write_owed=write is not None)
    _embed_now(index, record, embedder_factory)
    outcomes = [FileOutcome(p, Outcome.SET, caption=record.caption, source=CaptionSource.USER)]
    if write is not None:
        outcomes.append(sync.write_record(index, record, write))
    return tuple(outcomes)


def _embed_now(index: CaptionIndex, record: PhotoRecord, factory: EmbedderFactory | None) -> None:
    if factory is None:
        return
    try:
        embed_owed(index, factory(), ids=[record.id])
    except MeaningUnavailable:
        pass  # owed: the next `photocap index` embeds it


def write_caption_of(index: CaptionIndex, path: str | os.PathLike[str], write: sync.WriteOptions) -> FileOutcome:
    """Write the caption the index holds for ``path`` into the file (whoever's it is)."""
    p = sync.indexed_path(index, path)
    record = index.get(p)
    if record is None:
        raise NotIndexedError(p)
    return sync.write_record(index, record, write)


def clear_captions(
    index: CaptionIndex,
    paths: Iterable[str | os.PathLike[str]],
    captioner_factory: CaptionerFactory,
    *,
    options: IndexOptions | None = None,
    write: sync.WriteOptions | None = None,
    on_outcome: Callable[[FileOutcome], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> IndexSummary:
    """Take away the person's caption of each photo and let the model caption it again.

    Photos whose caption is not a person's are left alone (SKIPPED, ``NOT_PERSONS``).
    Outcomes: CLEARED per photo, then the pipeline's (CAPTIONED ...) through
    ``on_progress``, then with ``write`` one write outcome per photo.
    """
    emit = on_outcome or (lambda o: None)
    withdrawn: dict[str, str] = {}
    for raw in paths:
        p = sync.indexed_path(index, raw)
        record = index.get(p)
        if record is None:
            emit(FileOutcome(p, Outcome.SKIPPED, skip=SkipReason.NOT_INDEXED, reason="not in the index"))
        elif record.source is not CaptionSource.USER or not record.caption:
            emit(FileOutcome(p, Outcome.SKIPPED, skip=SkipReason.NOT_PERSONS,
                             reason="its caption is not one a person set"))
        else:
            withdrawn[p] = record.caption
            emit(FileOutcome(p, Outcome.CLEARED, caption=record.caption, source=CaptionSource.USER))
    opt = replace(options or IndexOptions(), recaption=True, force=True, write_metadata=False)
    summary = index_files(list(withdrawn), index, captioner_factory, opt, on_progress=on_progress)
    if write is None or summary.stopped:
        return summary
    for p, old in withdrawn.items():
        record = index.get(p)
        if record is None or record.source is not CaptionSource.MODEL:
            continue  # the model could not caption it: the person's caption stays
        emit(sync.write_record(index, record, write, withdrawn=old))
    return summary


"""Plain values that cross layers: enums and frozen dataclasses, no behaviour beyond conversions.

The library reports what it did to each file as one :class:`FileOutcome`; the
metadata writer reports one :class:`WriteReport` per write. Front ends print or
show these and never test their message text: the enums say what happened.
The index takes :class:`PhotoUpdate` rows and gives back :class:`PhotoRecord`,
:class:`Fingerprint` and :class:`SearchHit` values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple


class CaptionSource(StrEnum):
    """Whose words a caption is. Stored as text in the index and in the file's XMP."""

    MODEL = "model"  # a captioning model wrote it
    USER = "user"  # a person wrote it (in photocap, or found in the photo's metadata)


class MatchedBy(StrEnum):
    """Why a search found a photo."""

    WORDS = "words"  # the query's words are in its caption
    CONCEPTS = "concepts"  # they name what the model's classifier sees in it (not in the caption)
    MEANING = "meaning"  # the query means what its caption and concepts say (their text vector)
    # the query is close to what the photo looks like (its image vector). The value stays "pixels"
    # (the image embedding's old name): it is what ``search --json`` prints in ``matched_by``.
    IMAGE = "pixels"


class VectorKind(StrEnum):
    """Which vector of a photo the index keeps (one of each kind per photo, with its model id)."""

    TEXT = "text"  # the sentence model's embedding of what photocap knows of it (caption, concepts)
    # its image vector from the captioning model's image-embedding head (same space as TEXT). The value
    # stays "pixels" (the head's old name): it is stored in the kind column of users' indexes (and
    # their CHECK constraint), and ``db status --json`` prints it; changing it needs a migration.
    IMAGE = "pixels"


class Outcome(StrEnum):
    """What happened to one file in one run."""

    CAPTIONED = "captioned"  # the model captioned it
    UNCHANGED = "unchanged"  # nothing to do: same path, size and modification time
    KEPT = "kept"  # the file changed but keeps its caption (same content, or a person's caption)
    MOVED = "moved"  # a known photo at a new path: its caption (and a person's edits) followed
    COPIED = "copied"  # identical content to an indexed photo: its caption, without the model
    ADOPTED = "adopted"  # the description already in the file became its caption
    WRITTEN = "written"  # the caption was written into the file or its sidecar
    SKIPPED = "skipped"  # nothing was done, on purpose (``skip`` says why)
    FAILED = "failed"  # it could not be done (``reason`` says why)
    MISSING = "missing"  # the file is gone: flagged missing in the index
    PRUNED = "pruned"  # the record of a file gone since an earlier run was removed
    SET = "set"  # a person set its caption
    CLEARED = "cleared"  # a person's caption was taken away: the model's is back


class Stage(StrEnum):
    """Which step an outcome belongs to (a file can have one of each in a run)."""

    SCAN = "scan"
    INDEX = "index"
    WRITE = "write"


class FileChange(StrEnum):
    """How a scanned file compares with what the index knew of it."""

    NEW = "new"  # a path the index did not know
    CHANGED = "changed"  # size or modification time differ
    SAME = "same"  # size and modification time as stored


class SkipReason(StrEnum):
    """Why nothing was done to a file (the ``skip`` of a SKIPPED outcome or a WriteReport)."""

    PERSONS_DESCRIPTION = "persons_description"  # a person's description is there; --force replaces it
    UP_TO_DATE = "up_to_date"  # the file already says exactly this
    NO_CAPTION = "no_caption"  # the index has no caption for it yet
    NOT_INDEXED = "not_indexed"  # the index does not know the photo
    NOT_A_PHOTO = "not_a_photo"  # not a file photocap reads
    NOT_PERSONS = "not_persons"  # clear-caption: the caption is not one a person set
    PHOTO_CHANGED = "photo_changed"  # the file is no longer the photo the caption was made for


@dataclass(frozen=True)
class Concept:
    """A thing the model's ImageNet classifier sees in a photo, as a plain word ("dog", "pizza")."""

    word: str
    score: float  # summed probability of the ImageNet classes that are this word, 0..1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Described:
    """What a model says of one decoded image: its caption and its concepts."""

    caption: str
    score: float  # mean log-probability per token of the chosen caption (<= 0)
    concepts: tuple[Concept, ...] = ()  # best first
    image_vector: bytes | None = None  # as CaptionResult.image_vector (None: no image-embedding head)


# Embedding vectors cross layers as bytes of little-endian float32 (numpy dtype "<f4"), unit length.
VECTOR_DTYPE = "<f4"


@dataclass(frozen=True)
class CaptionResult:
    """One image's caption as produced by a model."""

    path: str
    caption: str
    score: float  # mean log-probability per token of the chosen caption (<= 0)
    model: str  # model id, e.g. "photocap-flickr8k-v1"
    concepts: tuple[Concept, ...] = ()  # best first; empty for a model without a concept head
    # What the photo looks like in the sentence model's space (search by its image): VECTOR_DTYPE
    # bytes of a unit vector, or None for a model without an image-embedding head. Not part of to_dict().
    image_vector: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["image_vector"]
        return d


@dataclass(frozen=True)
class CaptionFailure:
    """An input that could not be captioned, and why (shown to the user)."""

    path: str
    reason: str


@dataclass(frozen=True)
class WriteReport:
    """What a metadata write did (or would do, with ``dry_run``) to one photo."""

    path: str
    target: str  # "embed" | "sidecar" | "none"
    written_path: str | None = None  # the file actually changed (the photo or its sidecar)
    fields: tuple[str, ...] = ()  # tags written, e.g. "EXIF:ImageDescription"
    skipped: str | None = None  # why nothing was written, for people
    skip: SkipReason | None = None  # ... and as a value, for programs
    conflicts: tuple[str, ...] = ()  # PERSONS_DESCRIPTION: the tags holding it, "Tag (location)"
    dry_run: bool = False

    @property
    def changed_photo(self) -> bool:
        """True when the photo file itself was rewritten (its fingerprint must be refreshed)."""
        return self.skip is None and not self.dry_run and self.target == "embed"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fields"] = list(self.fields)
        d["conflicts"] = list(self.conflicts)
        return d


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What one run did to one file: the value every front end prints or shows."""

    path: str
    outcome: Outcome
    stage: Stage = Stage.INDEX
    change: FileChange | None = None  # INDEX stage: how the file compared with the index
    caption: str | None = None  # the caption the file has now (captioned, adopted, set ...)
    source: CaptionSource | None = None
    model: str | None = None
    score: float | None = None
    reason: str | None = None  # FAILED / SKIPPED: for people
    skip: SkipReason | None = None  # SKIPPED: for programs
    previous: str | None = None  # MOVED: the old path; COPIED: the photo whose caption it got
    write: WriteReport | None = None  # WRITE stage: what the metadata writer did

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without empty fields: ``{"event": outcome, "path": ..., ...}``."""
        d: dict[str, Any] = {"event": str(self.outcome), "path": self.path, "stage": str(self.stage)}
        extra = {"change": self.change, "caption": self.caption, "source": self.source,
                 "model": self.model, "score": self.score, "reason": self.reason, "skip": self.skip,
                 "previous": self.previous}
        for name, value in extra.items():
            if value is not None:
                d[name] = str(value) if isinstance(value, StrEnum) else value
        if self.write is not None:
            d.update(target=self.write.target, written_path=self.write.written_path,
                     fields=list(self.write.fields), dry_run=self.write.dry_run)
        return d


@dataclass(frozen=True)
class ScanProblem:
    """A folder or file the scan could not read."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason}



@dataclass(frozen=True)
class PhotoRecord:
    """One photo as the index knows it."""

    id: int
    path: str  # absolute
    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None
    height: int | None
    taken_at: str | None  # ISO 8601, local camera time (with offset if the EXIF had one)
    camera: str | None
    caption: str | None
    score: float | None  # model score (mean log-prob per token); None for user captions
    model: str | None  # model id for model captions
    captioned_at: str | None  # ISO 8601 UTC
    source: CaptionSource | None  # None while uncaptioned (e.g. it failed)
    missing: bool  # file was not found at the last full index
    error: str | None  # why the last attempt to caption it failed
    indexed_at: str
    write_owed: bool = False  # the caption is still to be written into the file (--write-metadata)
    concepts_model: str | None = None  # the model whose concepts the index holds (None: none yet)

    # The ``photos`` columns :meth:`from_row` reads, in its order (what the index selects).
    COLUMNS: ClassVar[str] = (
        "id, path, size, mtime_ns, content_hash, width, height, taken_at, camera, caption, "
        "score, model, captioned_at, source, missing, error, indexed_at, write_owed, concepts_model"
    )

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mtime"] = self.mtime
        d["source"] = str(self.source) if self.source is not None else None
        return d

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> PhotoRecord:
        values = list(row[:19])
        values[13] = CaptionSource(values[13]) if values[13] is not None else None
        values[14] = bool(values[14])
        values[17] = bool(values[17])
        return cls(*values)


# The order MatchedBy values are listed in (SearchHit.matched_by, ``--json``).
MATCH_ORDER = (MatchedBy.WORDS, MatchedBy.CONCEPTS, MatchedBy.MEANING, MatchedBy.IMAGE)


def matched(*reasons: MatchedBy) -> tuple[MatchedBy, ...]:
    """``reasons`` as a SearchHit's ``matched_by``: each once, in :data:`MATCH_ORDER`."""
    return tuple(m for m in MATCH_ORDER if m in reasons)


@dataclass(frozen=True)
class SearchHit:
    """A search result: the photo, a snippet of its caption with matches highlighted, the rank,
    and why it matched: ``matched_by`` holds each reason once, in :data:`MATCH_ORDER` (its
    caption's words, only the concepts its model saw, the meaning of its caption and concepts,
    what the photo looks like: its image vector)."""

    record: PhotoRecord
    snippet: str
    rank: float  # bm25: lower (more negative) is better; 0.0 when not matched by words
    matched_by: tuple[MatchedBy, ...] = (MatchedBy.WORDS,)
    concepts: tuple[Concept, ...] = ()  # what its model's classifier sees, best first
    meaning_score: float | None = None  # cosine of the query and its text vector, when compared
    image_score: float | None = None  # cosine of the query and its image vector, when compared
    fused_score: float | None = None  # the hybrid ranking's score (higher is better), in hybrid mode

    def to_dict(self) -> dict[str, Any]:
        return {**self.record.to_dict(), "snippet": self.snippet, "rank": self.rank,
                "matched_by": [str(m) for m in self.matched_by], "concepts": [c.to_dict() for c in self.concepts],
                # "pixels_score": the key keeps the image embedding's old name (``--json`` is stable)
                "meaning_score": self.meaning_score, "pixels_score": self.image_score,
                "fused_score": self.fused_score}


class Fingerprint(NamedTuple):
    """What the index remembers of a file's stat, for the incremental check (a tuple: cheap)."""

    size: int
    mtime_ns: int
    missing: bool
    complete: bool = True  # has a caption or a recorded failure (nothing left to do)



@dataclass(frozen=True)
class PhotoUpdate:
    """One row to insert or update by path (see :meth:`photocap.index.store.CaptionIndex.upsert_photos`).

    File facts (size, mtime, hash, dimensions, EXIF) are always written (a
    ``None`` keeps the stored value). ``caption=None`` keeps the stored caption;
    a caption with ``source="model"`` does not replace a ``user`` caption unless
    the upsert is forced.
    """

    path: str
    size: int
    mtime_ns: int
    content_hash: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    camera: str | None = None
    caption: str | None = None
    score: float | None = None
    model: str | None = None
    source: CaptionSource | None = None  # with a caption
    error: str | None = None
    write_owed: bool | None = None  # None keeps the stored flag
    replaces_user: bool = False  # this model caption replaces a user caption (as ``force`` does)
    # What the model's classifier sees (best first), replacing the stored concepts; None keeps them.
    # ``concept_terms``: the words a search matches for them (the library decides which count).
    concepts: tuple[Concept, ...] | None = None
    concepts_model: str | None = None
    concept_terms: str | None = None

"""What a probed file needs: the decisions of ``photocap index`` between probe and model.

:class:`Decider` looks at what the index knows (the file's record, records with the same
content) and what the probe found in the file, and returns a :class:`Decision`: an
outcome reached without the model (kept, moved, copied, adopted) or "caption it". The
rules, in order:

1. a person's caption in the index stays (unless ``--recaption --force``, or it is text
   no person wrote, adopted under an older stock-text rule, and ``--recaption``);
2. a changed file with the same content keeps its caption (it was only touched);
3. a new path whose content is a record that is gone was moved: the record follows;
   one whose content is another indexed photo is a copy and gets its caption;
4. a description already in the file is adopted (:func:`photocap.library.sync.adoption`);
5. otherwise the model captions it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from photocap.index.store import CaptionIndex
from photocap.library import sync
from photocap.library.concepts import with_concepts
from photocap.library.photofile import ProbeResult
from photocap.library.scan import ScanEntry
from photocap.records import CaptionSource, FileChange, Outcome, PhotoRecord, PhotoUpdate


@dataclass(frozen=True)
class Decision:
    """``outcome`` None: the model must caption the file (``update`` holds its facts)."""

    update: PhotoUpdate
    outcome: Outcome | None = None
    moved_from: str | None = None  # MOVED: the record to re-key to this path
    previous: str | None = None  # COPIED: the photo whose caption it got


def facts(entry: ScanEntry, probe: ProbeResult | None = None) -> PhotoUpdate:
    """A row with the file's stat and the probe's facts (no caption change)."""
    p = probe or ProbeResult()
    return PhotoUpdate(entry.path, entry.size, entry.mtime_ns, content_hash=p.content_hash,
                       width=p.width, height=p.height, taken_at=p.taken_at, camera=p.camera)


def _with_caption(update: PhotoUpdate, other: PhotoRecord, index: CaptionIndex) -> PhotoUpdate:
    """``update`` with ``other``'s caption and concepts (identical content: the same photo)."""
    update = replace(update, caption=other.caption, score=other.score, model=other.model, source=other.source)
    if other.concepts_model is None:
        return update
    return with_concepts(update, index.concepts(other.path), other.concepts_model)


class Decider:
    """Decides for one run (remembers the records it already moved)."""

    def __init__(self, index: CaptionIndex, *, recaption: bool, force: bool, adopt: bool) -> None:
        self.index = index
        self.recaption = recaption
        self.force = force
        self.adopt = adopt
        self.claimed: set[str] = set()  # records moved this run

    def decide(self, entry: ScanEntry, change: FileChange, probe: ProbeResult) -> Decision:
        update = facts(entry, probe)
        record = self.index.get(entry.path) if change is not FileChange.NEW else None
        if self._persons_caption_stays(record, probe):
            return Decision(update, Outcome.KEPT if change is FileChange.CHANGED else Outcome.UNCHANGED)
        if record is not None and record.source is CaptionSource.USER:
            update = replace(update, replaces_user=True)  # --recaption --force, or no person's words
        if (change is FileChange.CHANGED and record is not None and record.caption is not None
                and record.content_hash == probe.content_hash and not self.recaption):
            return Decision(update, Outcome.KEPT)
        if change is FileChange.NEW and probe.content_hash:
            moved, copy_of = self._same_content(entry.path, probe.content_hash)
            if moved is not None:
                return Decision(update, Outcome.MOVED, moved_from=moved.path)
            if copy_of is not None:
                return Decision(_with_caption(update, copy_of, self.index), Outcome.COPIED, previous=copy_of.path)
        adopted = sync.adoption(probe.description, recaption=self.recaption, force=self.force) if self.adopt else None
        if adopted is not None:
            return Decision(replace(update, caption=adopted.caption, source=adopted.source, model=adopted.model),
                            Outcome.ADOPTED)
        return Decision(update)

    def _persons_caption_stays(self, record: PhotoRecord | None, probe: ProbeResult) -> bool:
        if record is None or record.source is not CaptionSource.USER:
            return False
        if self.recaption and (self.force or sync.was_stock(record, probe)):
            return False
        return True

    def _same_content(self, path: str, digest: str) -> tuple[PhotoRecord | None, PhotoRecord | None]:
        """(a gone record this file is a move of, else an indexed photo it is a copy of)."""
        same = [o for o in self.index.find_by_hash(digest) if o.caption is not None and o.path != path]
        # A vanished record with the same content was moved here, even if a copy also exists elsewhere.
        gone = next((o for o in same if o.path not in self.claimed and (o.missing or sync.is_gone(o.path))),
                    None)
        if gone is not None:
            self.claimed.add(gone.path)
            return gone, None
        if same and not self.recaption:
            return None, same[0]
        return None, None

"""Plain data that crosses layers. No behaviour beyond trivial conversions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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


@dataclass(frozen=True)
class CaptionResult:
    """One image's caption as produced by a model."""

    path: str
    caption: str
    score: float  # mean log-probability per token of the chosen caption (<= 0)
    model: str  # model id, e.g. "photocap-flickr8k-v1"
    concepts: tuple[Concept, ...] = ()  # best first; empty for a model without a concept head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CaptionFailure:
    """An input that could not be captioned, and why (shown to the user)."""

    path: str
    reason: str


@dataclass
class WriteReport:
    """What a metadata write did (or would do, with ``dry_run``) to one photo."""

    path: str
    target: str  # "embed" | "sidecar" | "none"
    written_path: str | None = None  # the file actually changed (the photo or its sidecar)
    fields: list[str] = field(default_factory=list)  # tags written, e.g. "EXIF:ImageDescription"
    skipped: str | None = None  # reason nothing was written, e.g. "user description present"
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

"""Why a search found a photo, in words for the window (from ``SearchHit.matched_by``)."""

from __future__ import annotations

from photocap.records import MatchedBy, SearchHit


def format_matched(hit: SearchHit) -> str:
    """E.g. "words in the caption, meaning of the caption (similarity 0.42)" or
    "concepts the model sees (cat 87%)"; reasons in ``matched_by``'s order."""
    parts: list[str] = []
    for reason in hit.matched_by:
        if reason is MatchedBy.WORDS:
            parts.append("words in the caption")
        elif reason is MatchedBy.CONCEPTS:
            seen = ", ".join(f"{c.word} {c.score:.0%}" for c in hit.concepts[:3])
            parts.append(f"concepts the model sees ({seen})" if seen else "concepts the model sees")
        elif reason is MatchedBy.MEANING:
            parts.append(_scored("meaning of the caption", hit.meaning_score))
        elif reason is MatchedBy.IMAGE:
            parts.append(_scored("what the photo looks like", hit.image_score))
        else:  # a reason this window does not know yet
            parts.append(str(reason))
    return ", ".join(parts) or "—"


def _scored(text: str, score: float | None) -> str:
    return f"{text} (similarity {score:.2f})" if score is not None else text

"""Which of a photo's concepts count, and for what: the one owner of those thresholds.

A concept is what the model's ImageNet classifier sees ("dog" 0.97, "frisbee" 0.41). The
index keeps a photo's top concepts with their scores (shown in the GUI, listed by
``photocap caption --json``); only the confident ones are searchable, by their word, plural,
aliases ("golden retriever") and broader words ("animal", "pet"), and only the confident ones
are written into a photo as keywords (``photocap write --keywords``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from photocap.imaging.concepts import bundled_concepts
from photocap.records import Concept, PhotoUpdate

SEARCH_MIN_SCORE = 0.3  # a concept at least this sure is found by search and written as a keyword


def confident(concepts: Sequence[Concept]) -> tuple[Concept, ...]:
    """THE rule for which concepts count: those at least :data:`SEARCH_MIN_SCORE` sure."""
    return tuple(c for c in concepts if c.score >= SEARCH_MIN_SCORE)


def keywords(concepts: Sequence[Concept]) -> tuple[str, ...]:
    """The keywords a photo's ``concepts`` give it: the confident concepts' words, best first."""
    return tuple(dict.fromkeys(c.word for c in confident(concepts)))


def search_terms(concepts: Sequence[Concept]) -> str | None:
    """The words a search for ``concepts`` matches (None when none is sure enough)."""
    table = {w.word: w for w in bundled_concepts().words}
    terms: dict[str, None] = {}
    for concept in confident(concepts):
        known = table.get(concept.word)
        for term in known.terms() if known is not None else (concept.word,):
            terms.setdefault(term, None)
    return " ".join(terms) or None


def with_concepts(update: PhotoUpdate, concepts: Sequence[Concept], model: str) -> PhotoUpdate:
    """``update`` that also replaces the photo's concepts with ``concepts`` (made by ``model``)."""
    return replace(update, concepts=tuple(concepts), concepts_model=model if concepts else None,
                   concept_terms=search_terms(concepts))

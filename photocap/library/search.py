"""Search the index by words, by meaning, or both: THE rule for how their results are combined.

The CLI (``photocap search --mode``), the GUI's search box and the benchmarks call
:func:`search`; nobody else fuses rankings.

* ``words``: :meth:`CaptionIndex.search` exactly (bm25 over captions and concept terms;
  "phrases", OR, -word, prefix).
* ``meaning``: the query's words (operators and excluded words left out) are embedded by the
  sentence model and compared by cosine with each photo's text vector (its caption and
  confident concepts: :func:`photocap.library.meaning.photo_text`) and image vector (pixels).
  A photo counts as a meaning match only at cosine >= :data:`MIN_MEANING` (pixels:
  :data:`MIN_PIXELS`), so a query that means nothing in the library finds nothing rather than
  the whole library.
* ``hybrid`` (the default): reciprocal rank fusion, ``score = sum(1 / (RRF_K + rank))`` over the
  words ranking, the meaning ranking and the pixels ranking (each up to :data:`DEPTH` deep);
  ties keep the words order.

In every mode an excluded word (``-sofa``) excludes: a photo whose caption or concepts hold it
never comes back through meaning or pixels; a "quoted phrase" is required of meaning and pixel
matches as of word matches (any one of the phrases if the query has OR).

Without a sentence model (``embed=None``), ``hybrid`` searches by words alone and ``meaning``
raises :class:`~photocap.errors.MeaningUnavailable`; a front end loads the model with
:func:`query_embedder` (which raises that, with what to install) and says so once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from photocap.errors import MeaningUnavailable
from photocap.index.store import CaptionIndex, QueryParts, SearchHit, matched, query_parts
from photocap.library.meaning import EmbedderFactory, default_embedder_factory
from photocap.records import MatchedBy, VectorKind

if TYPE_CHECKING:
    import numpy as np

RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009); see the module docstring
DEPTH = 200  # each ranking's candidates for the fusion (more when a page lies deeper)
# Cosine below which a photo does not count as meaning the query. Measured on the Flickr8k dev
# captions (bench/bench_vectors.py --threshold): see the README. Pixels: the image head's cosines
# run lower; its owner tunes MIN_PIXELS.
MIN_MEANING = 0.35
MIN_PIXELS = 0.20

QueryEmbed = Callable[[str], Any]  # a query's text -> its unit vector (np.ndarray of the sentence model)


class SearchMode(StrEnum):
    """How ``photocap search`` and the GUI find photos."""

    HYBRID = "hybrid"  # words and meaning, fused (the default)
    WORDS = "words"  # the caption's and concepts' words only (bm25)
    MEANING = "meaning"  # what the query means, compared with each photo's vectors


class QueryEmbedder:
    """A query embedder bound to one loaded sentence model: ``embed(text) -> vector``; its
    ``model_id`` picks the text vectors it is compared with."""

    def __init__(self, factory: EmbedderFactory = default_embedder_factory) -> None:
        self._embedder = factory()  # raises MeaningUnavailable
        self.model_id = self._embedder.model_id

    def __call__(self, text: str) -> np.ndarray:
        return self._embedder.embed([text])[0]


def query_embedder(factory: EmbedderFactory = default_embedder_factory) -> QueryEmbedder:
    """Load the sentence model for queries (raises MeaningUnavailable with what to install)."""
    return QueryEmbedder(factory)


def _text_model(embed: QueryEmbed) -> str:
    model_id = getattr(embed, "model_id", None)
    if model_id:
        return str(model_id)
    from photocap.library.meaning import text_model_id

    return text_model_id()


def search(
    index: CaptionIndex,
    query: str,
    *,
    mode: SearchMode = SearchMode.HYBRID,
    limit: int = 20,
    offset: int = 0,
    embed: QueryEmbed | None = None,
    highlight: tuple[str, str] = ("[", "]"),
    include_missing: bool = False,
) -> list[SearchHit]:
    """Photos for ``query``, best first, each saying why it matched (``SearchHit.matched_by``).

    ``embed`` turns the query into a vector (:func:`query_embedder`; the GUI keeps one loaded).
    Raises QueryError for a query photocap refuses, MeaningUnavailable for ``meaning`` without
    ``embed``.
    """
    mode = SearchMode(mode)
    if limit <= 0:
        return []
    offset = max(0, offset)
    if mode is SearchMode.WORDS or (mode is SearchMode.HYBRID and embed is None):
        return index.search(query, limit=limit, offset=offset, highlight=highlight,
                            include_missing=include_missing)
    if embed is None:
        from photocap.meaning.text import INSTALL_HINT

        raise MeaningUnavailable(f"Searching by meaning needs the sentence model; {INSTALL_HINT}.")
    depth = max(DEPTH, offset + limit)
    parts = query_parts(query)
    meaning, pixels = _by_meaning(index, parts, embed, depth, include_missing)
    if mode is SearchMode.MEANING:
        ranked = _fuse([], meaning, pixels)
        words_hits: dict[int, SearchHit] = {}
    else:
        hits = index.search(query, limit=depth, highlight=highlight, include_missing=include_missing)
        words_hits = {h.record.id: h for h in hits}
        ranked = _fuse(list(words_hits), meaning, pixels)
    page = ranked[offset:offset + limit]
    return _hits(index, page, words_hits, dict(meaning), dict(pixels), fused=mode is SearchMode.HYBRID)


def count_matches(index: CaptionIndex, query: str, *, mode: SearchMode = SearchMode.HYBRID,
                  embed: QueryEmbed | None = None, include_missing: bool = False) -> int:
    """How many photos :func:`search` finds for ``query`` without a limit (meaning and pixel
    matches count up to :data:`DEPTH` each)."""
    mode = SearchMode(mode)
    if mode is SearchMode.WORDS or (mode is SearchMode.HYBRID and embed is None):
        return index.count_matches(query, include_missing=include_missing)
    if embed is None:
        raise MeaningUnavailable("Searching by meaning needs the sentence model.")
    meaning, pixels = _by_meaning(index, query_parts(query), embed, DEPTH, include_missing)
    found = {i for i, _ in meaning} | {i for i, _ in pixels}
    if mode is SearchMode.MEANING:
        return len(found)
    return index.count_matches(query, include_missing=include_missing) + len(found - index.word_matches(found, query))


def _by_meaning(index: CaptionIndex, parts: QueryParts, embed: QueryEmbed, depth: int,
                include_missing: bool) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """The meaning and pixel rankings ``(photo_id, cosine)``, above their thresholds and allowed
    by the query's exclusions and phrases."""
    if not parts.text.strip():
        return [], []
    vector = embed(parts.text)
    out: list[list[tuple[int, float]]] = []
    for kind, floor, model_id in ((VectorKind.TEXT, MIN_MEANING, _text_model(embed)),
                                  (VectorKind.PIXELS, MIN_PIXELS, _pixel_model(index))):
        if model_id is None:
            out.append([])
            continue
        near = [(i, s) for i, s in index.nearest(kind, model_id, vector, depth, include_missing=include_missing)
                if s >= floor]
        allowed = set(index.keep_allowed([i for i, _ in near], parts))
        out.append([(i, s) for i, s in near if i in allowed])
    return out[0], out[1]


def _pixel_model(index: CaptionIndex) -> str | None:
    """The pixel head whose image vectors are searched: the one most photos have."""
    models = index.vector_models(VectorKind.PIXELS)
    return models[0] if models else None


def _fuse(words: list[int], meaning: list[tuple[int, float]], pixels: list[tuple[int, float]]) -> list[int]:
    """THE fusion: reciprocal rank fusion of the three rankings; ties keep the words order."""
    score: dict[int, float] = {}
    for ranking in (words, [i for i, _ in meaning], [i for i, _ in pixels]):
        for rank, photo_id in enumerate(ranking):
            score[photo_id] = score.get(photo_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    first_seen = {photo_id: n for n, photo_id in enumerate(score)}  # words first, then meaning, pixels
    return sorted(score, key=lambda i: (-score[i], first_seen[i]))


def _hits(index: CaptionIndex, page: list[int], words_hits: dict[int, SearchHit], meaning: dict[int, float],
          pixels: dict[int, float], *, fused: bool) -> list[SearchHit]:
    if not page:
        return []
    others = [i for i in page if i not in words_hits]
    records = index.records_by_id(others)
    concepts = index.concepts_by_id(others)
    words_rank = {i: n for n, i in enumerate(words_hits)}
    meaning_rank = {i: n for n, i in enumerate(meaning)}
    pixels_rank = {i: n for n, i in enumerate(pixels)}
    out: list[SearchHit] = []
    for photo_id in page:
        hit = words_hits.get(photo_id)
        if hit is None:
            record = records.get(photo_id)
            if record is None:
                continue  # deleted meanwhile
            hit = SearchHit(record, record.caption or "", 0.0, (), concepts.get(photo_id, ()))
        reasons = [*hit.matched_by]
        if photo_id in meaning:
            reasons.append(MatchedBy.MEANING)
        if photo_id in pixels:
            reasons.append(MatchedBy.PIXELS)
        score = None
        if fused:
            score = sum(1.0 / (RRF_K + ranks[photo_id] + 1)
                        for ranks in (words_rank, meaning_rank, pixels_rank) if photo_id in ranks)
        out.append(replace(hit, matched_by=matched(*reasons), meaning_score=meaning.get(photo_id),
                           pixels_score=pixels.get(photo_id), fused_score=score))
    return out

"""Search the index by words, by meaning, or both: THE rule for how their results are combined.

The CLI (``photocap search --mode``), the GUI's search box and the benchmarks call
:func:`search`; nobody else fuses rankings.

* ``words``: :meth:`CaptionIndex.search` exactly (bm25 over captions and concept terms;
  "phrases", OR, -word, prefix).
* ``meaning``: the query's words (operators and excluded words left out) are embedded by the
  sentence model and compared by cosine with each photo's text vector (its caption and
  confident concepts: :func:`photocap.library.meaning.photo_texts`) and image vector (what the photo looks like).
  A photo counts as a meaning match by :func:`meaning_matches`: the query's best cosine must
  reach :data:`MEANING_GATE`, then each photo at >= :data:`MIN_MEANING` and at >=
  :data:`RELATIVE_MEANING` times the best cosine counts (image vectors: their own pair, no relative
  cut), so a query that means nothing in the library finds nothing rather than the whole
  library, and results end where relevance ends.
* ``hybrid`` (the default): weighted reciprocal rank fusion (:func:`fuse`),
  ``score = sum(weight / (RRF_K + rank))`` over the words ranking, the meaning ranking and the
  image ranking (each up to :data:`DEPTH` deep), with :data:`WEIGHTS` = 0.25 for words and 1 for
  meaning and for the image, and ``RRF_K`` = 10; ties keep the words order. Words *boost*: a photo
  that matches the words and the meaning outranks one that matches the meaning alike, but a word
  match alone (a caption that literally says "a person" on a photo of a vase) no longer outranks a
  photo near the query by meaning. A literal caption phrase still finds its photo first: it is
  first by meaning as well. ``meaning`` mode is the same fusion without the words ranking.
  Chosen by ``bench/bench_meaning.py --grid`` (k 10 / 30 / 60, weights of words 0.25 / 0.5 / 1 and
  of the image 0.5 / 1 / 2): docs/decisions/fusion-weights.md.

In every mode an excluded word (``-sofa``) excludes: a photo whose caption or concepts hold it
never comes back through meaning or its image; a "quoted phrase" is required of meaning and image
matches as of word matches (any one of the phrases if the query has OR).

Without a sentence model (``embed=None``), ``hybrid`` searches by words alone and ``meaning``
raises :class:`~photocap.errors.MeaningUnavailable`; a front end loads the model with
:func:`query_embedder` (which raises that, with what to install) and says so once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from photocap.errors import MeaningUnavailable
from photocap.index.query import QueryParts, query_parts
from photocap.index.store import CaptionIndex
from photocap.library.meaning import EmbedderFactory, query_embedder_factory
from photocap.records import MatchedBy, SearchHit, VectorKind, matched

if TYPE_CHECKING:
    import numpy as np

RRF_K = 10  # reciprocal rank fusion's constant (60 in Cormack et al. 2009; 10 measured better: fusion-weights.md)
WEIGHTS = (0.25, 1.0, 1.0)  # words, meaning (text vectors), image: each ranking's weight in the fusion
DEPTH = 200  # each ranking's candidates for the fusion (more when a page lies deeper)
# When a photo counts as meaning the query (meaning_matches): the query's best cosine must reach
# the gate (else it means nothing in this library), then every photo at cosine >= the floor counts.
# Chosen so nonsense queries find nothing: figures in docs/decisions/fusion-weights.md ("The gates").
MEANING_GATE = 0.35
MIN_MEANING = 0.25
# ... and results end where relevance ends: a text match also needs half the best match's cosine
# ("kitten" no longer brings the coffee photo at 0.26 after the cat at 0.6; bench/bench_cutoff.py,
# figures in docs/decisions/fusion-weights.md).
RELATIVE_MEANING = 0.5
# Image vectors: the image-embedding head's cosines run lower than text's (docs/decisions/fusion-weights.md).
IMAGE_GATE = 0.30
MIN_IMAGE = 0.20

QueryEmbed = Callable[[str], Any]  # a query's text -> its unit vector (np.ndarray of the sentence model)


class SearchMode(StrEnum):
    """How ``photocap search`` and the GUI find photos."""

    HYBRID = "hybrid"  # words and meaning, fused (the default)
    WORDS = "words"  # the caption's and concepts' words only (bm25)
    MEANING = "meaning"  # what the query means, compared with each photo's vectors


class QueryEmbedder:
    """A query embedder bound to one loaded sentence model: ``embed(text) -> vector``; its
    ``model_id`` picks the text vectors it is compared with."""

    def __init__(self, factory: EmbedderFactory = query_embedder_factory) -> None:
        self._embedder = factory()  # raises MeaningUnavailable
        self.model_id = self._embedder.model_id

    def __call__(self, text: str) -> np.ndarray:
        return self._embedder.embed([text])[0]


def query_embedder(factory: EmbedderFactory = query_embedder_factory) -> QueryEmbedder:
    """Load the sentence model for queries (raises MeaningUnavailable with what to install)."""
    return QueryEmbedder(factory)


def _text_model(embed: QueryEmbed) -> str:
    """The model id of the text vectors a query embedded by ``embed`` is compared with."""
    from photocap.library.meaning import text_model_id, text_vector_model

    return text_vector_model(str(getattr(embed, "model_id", None) or text_model_id()))


@dataclass(frozen=True)
class SearchPage:
    """One page of results and how many there are in all (words: every match; meaning and
    image matches count up to :data:`DEPTH` each; see :func:`search_page`)."""

    hits: list[SearchHit]
    total: int


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
    return search_page(index, query, mode=mode, limit=limit, offset=offset, embed=embed, highlight=highlight,
                       include_missing=include_missing, count=False).hits


def search_page(
    index: CaptionIndex,
    query: str,
    *,
    mode: SearchMode = SearchMode.HYBRID,
    limit: int = 20,
    offset: int = 0,
    embed: QueryEmbed | None = None,
    highlight: tuple[str, str] = ("[", "]"),
    include_missing: bool = False,
    count: bool = True,
) -> SearchPage:
    """:func:`search`, and the number of results in all (``count``; else the page's length)."""
    mode = SearchMode(mode)
    offset = max(0, offset)
    if mode is SearchMode.WORDS or (mode is SearchMode.HYBRID and embed is None):
        hits = index.search(query, limit=limit, offset=offset, highlight=highlight,
                            include_missing=include_missing) if limit > 0 else []
        total = (index.count_matches(query, include_missing=include_missing)
                 if count and (len(hits) == limit or offset) else offset + len(hits))
        return SearchPage(hits, total)
    if embed is None:
        from photocap.meaning.text import INSTALL_HINT

        raise MeaningUnavailable(f"Searching by meaning needs the sentence model; {INSTALL_HINT}.")
    depth = max(DEPTH, offset + limit)
    parts = query_parts(query)
    rankings = _vector_rankings(index, _text_model(embed))
    # The query's embedding and the sign-bit scans run in a thread while this one asks SQLite for
    # the word matches (ONNX Runtime, numpy and SQLite all let go of the GIL): on two cores they overlap.
    pending = _in_thread(_embed_and_scan, embed, parts.text, rankings, depth)
    words: list[tuple[int, float]] = []
    words_total = None
    try:
        if mode is SearchMode.HYBRID:
            words = index.word_ranking(query, depth, include_missing=include_missing)
            if count and len(words) == depth:  # more word matches than are ranked: count them all
                words_total = index.count_matches(query, include_missing=include_missing)
    finally:
        vector, candidates = pending.result() if pending is not None else (None, [])
    meaning, image = _by_meaning(index, parts, vector, rankings, candidates, depth, include_missing)
    ranked = fuse(words, meaning, image)
    page = ranked[offset:offset + limit] if limit > 0 else []
    hits = _hits(index, query, page, words, meaning, image, highlight, fused=mode is SearchMode.HYBRID)
    total = offset + len(hits)
    if count and (len(hits) == limit or offset):
        total = len(ranked)
        if words_total is not None:
            # Every word match, plus the meaning and image matches not among the ranked word
            # matches: an upper bound (some of those may match the words further down), exact
            # whenever a query has fewer than DEPTH word matches; checking each would cost a scan
            # of the query words' whole index entries.
            total = words_total + len(set(ranked) - {i for i, _ in words})
    return SearchPage(hits, total)


_pool: list[Any] = []  # one worker thread for query embeddings and scans, made on first use


def _in_thread(fn: Callable[..., Any], embed: QueryEmbed, text: str, *args: Any) -> Any:
    """A future of ``fn(embed, text, *args)`` (None for a query with nothing to embed)."""
    if not text.strip():
        return None
    if not _pool:
        from concurrent.futures import ThreadPoolExecutor

        _pool.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="photocap-query-embed"))
    return _pool[0].submit(fn, embed, text, *args)


def _vector_rankings(index: CaptionIndex, text_model: str) -> list[tuple[VectorKind, float, float, Any]]:
    """(kind, floor, gate, loaded scan) of the vector kinds this index can be searched by."""
    out = []
    for kind, floor, gate, model_id in ((VectorKind.TEXT, MIN_MEANING, MEANING_GATE, text_model),
                                        (VectorKind.IMAGE, MIN_IMAGE, IMAGE_GATE, _image_model(index))):
        if model_id is not None:
            out.append((kind, floor, gate, index.vectors.scan(kind, model_id)))
    return out


def _embed_and_scan(embed: QueryEmbed, text: str, rankings: list[tuple[VectorKind, float, float, Any]],
                    depth: int) -> tuple[Any, list[Any]]:
    """The query's vector and each scan's candidates for it (no SQLite here: another thread)."""
    from photocap.index.vectors import RERANK, as_array

    vector = as_array(embed(text))
    return vector, [scan.candidates(vector, max(RERANK, depth)) for _, _, _, scan in rankings]


def count_matches(index: CaptionIndex, query: str, *, mode: SearchMode = SearchMode.HYBRID,
                  embed: QueryEmbed | None = None, include_missing: bool = False) -> int:
    """How many photos :func:`search` finds for ``query`` without a limit (meaning and image
    matches count up to :data:`DEPTH` each)."""
    return search_page(index, query, mode=mode, limit=0, embed=embed, include_missing=include_missing).total


def meaning_matches(scores: list[tuple[int, float]], floor: float, gate: float,
                    relative: float = 0.0) -> list[tuple[int, float]]:
    """THE threshold rule: nothing if even the best cosine is below ``gate`` (the query means
    nothing here), else every match at cosine >= ``floor`` and >= ``relative`` times the best."""
    if not scores or scores[0][1] < gate:
        return []
    cut = max(floor, relative * scores[0][1])
    return [(i, s) for i, s in scores if s >= cut]


def _by_meaning(index: CaptionIndex, parts: QueryParts, vector: Any, rankings: list[Any], candidates: list[Any],
                depth: int, include_missing: bool) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """The meaning and image rankings ``(photo_id, cosine)`` of the query's ``vector``, past the
    threshold rule and allowed by the query's exclusions and phrases."""
    out: dict[VectorKind, list[tuple[int, float]]] = {VectorKind.TEXT: [], VectorKind.IMAGE: []}
    if vector is None:
        return [], []
    for (kind, floor, gate, scan), chosen in zip(rankings, candidates):
        # the relative cut-off is measured for text vectors only (image cosines run lower and flatter)
        near = meaning_matches(index.vectors.nearest(kind, scan.model_id, vector, depth, include_missing=include_missing,
                                             candidates=chosen), floor, gate,
                               RELATIVE_MEANING if kind is VectorKind.TEXT else 0.0)
        allowed = set(index.keep_allowed([i for i, _ in near], parts))
        out[kind] = [(i, s) for i, s in near if i in allowed]
    return out[VectorKind.TEXT], out[VectorKind.IMAGE]


def _image_model(index: CaptionIndex) -> str | None:
    """The image-embedding head whose image vectors are searched: the one most photos have."""
    models = index.vectors.models(VectorKind.IMAGE)
    return models[0] if models else None


def fuse(words: list[tuple[int, float]], meaning: list[tuple[int, float]], image: list[tuple[int, float]], *,
         k: float = RRF_K, weights: tuple[float, float, float] = WEIGHTS) -> list[int]:
    """THE fusion: weighted reciprocal rank fusion of the three rankings ``(photo_id, score)``,
    ``sum(weight / (k + rank))``; ties keep the words order. The benchmarks call it with other
    ``k`` and ``weights`` (bench/bench_meaning.py --grid); the library uses the defaults."""
    score: dict[int, float] = {}
    for weight, ranking in zip(weights, (words, meaning, image)):
        if weight <= 0:
            continue
        for rank, (photo_id, _) in enumerate(ranking):
            score[photo_id] = score.get(photo_id, 0.0) + weight / (k + rank + 1)
    first_seen = {photo_id: n for n, photo_id in enumerate(score)}  # words first, then meaning, image
    return sorted(score, key=lambda i: (-score[i], first_seen[i]))


def rankings(index: CaptionIndex, query: str, embed: QueryEmbed, *, depth: int = DEPTH,
             include_missing: bool = False) -> tuple[list[tuple[int, float]], list[tuple[int, float]],
                                                     list[tuple[int, float]]]:
    """The three rankings hybrid fuses, ``(photo_id, score)`` each: words (bm25), meaning (text
    vectors) and image (image vectors: what the photo looks like), past the threshold rule, exclusions and phrases. For
    the benchmarks (fuse them with other parameters); searching is :func:`search`."""
    parts = query_parts(query)
    vecs = _vector_rankings(index, _text_model(embed))
    words = index.word_ranking(query, depth, include_missing=include_missing)
    vector, candidates = _embed_and_scan(embed, parts.text, vecs, depth) if parts.text.strip() else (None, [])
    meaning, image = _by_meaning(index, parts, vector, vecs, candidates, depth, include_missing)
    return words, meaning, image


def _hits(index: CaptionIndex, query: str, page: list[int], words: list[tuple[int, float]],
          meaning: list[tuple[int, float]], image: list[tuple[int, float]], highlight: tuple[str, str], *,
          fused: bool) -> list[SearchHit]:
    if not page:
        return []
    on_page = set(page)
    word_hits = {h.record.id: h for h in index.word_hits(query, [w for w in words if w[0] in on_page],
                                                         highlight=highlight)}
    others = [i for i in page if i not in word_hits]
    records = index.records_by_id(others)
    concepts = index.concepts_by_id(others)
    ranks = [{i: n for n, (i, _) in enumerate(r)} for r in (words, meaning, image)]
    meaning_score, image_score = dict(meaning), dict(image)
    out: list[SearchHit] = []
    for photo_id in page:
        hit = word_hits.get(photo_id)
        if hit is None:
            record = records.get(photo_id)
            if record is None:
                continue  # deleted meanwhile
            hit = SearchHit(record, record.caption or "", 0.0, (), concepts.get(photo_id, ()))
        reasons = [*hit.matched_by]
        if photo_id in meaning_score:
            reasons.append(MatchedBy.MEANING)
        if photo_id in image_score:
            reasons.append(MatchedBy.IMAGE)
        score = (sum(w / (RRF_K + r[photo_id] + 1) for w, r in zip(WEIGHTS, ranks) if photo_id in r and w > 0)
                 if fused else None)
        out.append(replace(hit, matched_by=matched(*reasons), meaning_score=meaning_score.get(photo_id),
                           image_score=image_score.get(photo_id), fused_score=score))
    return out

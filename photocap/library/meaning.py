"""What a photo's text vector is made of, and making the vectors the index owes.

* :func:`photo_texts` is THE rule for which text of a photo is embedded: its caption (the
  person's when there is one: the index holds one caption, and a person's replaces the model's)
  and its confident concepts' words (:func:`photocap.library.concepts.keywords`), e.g.
  ``("a dog runs on the grass", "dog, tennis ball")``, embedded apart and averaged
  (:func:`embed_photos`; :class:`TextVariant` names the measured alternatives). The index and the
  benchmarks go through it.
* :func:`embed_owed` embeds, in batches, the text vectors the index owes (new captions, stale
  ones, an index made before search by meaning, or by another sentence model) and stores them.
  It never touches captions or concepts.

The sentence model is :class:`photocap.meaning.text.TextEmbedder` (imported only when made).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from photocap.index.store import CaptionIndex
from photocap.library.concepts import keywords
from photocap.records import Concept, VectorKind

if TYPE_CHECKING:
    import numpy as np

EMBED_BATCH = 256  # texts per embedding call and per transaction


class TextVariant(StrEnum):
    """Which text of a photo its text vector is made of (the default is what the index stores)."""

    APART = "apart"  # caption and concept words embedded apart, the two vectors averaged (default)
    JOINED = "joined"  # one text: "a dog runs on the grass. dog, tennis ball"
    CAPTION = "caption"  # the caption alone


# Measured on COCO dev (80 photos, its largest object as the concept; bench_vectors.py --variants,
# since removed): sentence recall@1 0.81 / 0.78 / 0.79 (apart / joined / caption), short-query
# recall@10 0.98 / 0.98 / 0.91, and "puppy" meets "a dog runs on the grass" + dog at cosine 0.65
# apart, 0.28 joined: a one-word query is near a one-word concept, far from a long sentence.
DEFAULT_VARIANT = TextVariant.APART


class Embedder(Protocol):
    """What the library needs of :class:`photocap.meaning.text.TextEmbedder`."""

    model_id: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


EmbedderFactory = Callable[[], Embedder]


def default_embedder_factory() -> Embedder:
    """The bundled sentence model (raises MeaningUnavailable, with what to install, if it can't load)."""
    from photocap.meaning.text import TextEmbedder

    return TextEmbedder()


def query_embedder_factory() -> Embedder:
    """The sentence model for one query at a time: on one thread (a short query on two threads
    took 12 ms p50 against 5 ms on one, on the busy 2-core machine; batches keep the default)."""
    from photocap.meaning.text import TextEmbedder

    return TextEmbedder(threads=1)


@functools.lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One sentence model per process (the watcher's runs and the GUI share it); a failure to
    load is not remembered (the next call tries again)."""
    return default_embedder_factory()


def text_model_id() -> str:
    """The id of the sentence model text vectors are made with (without loading it)."""
    from photocap.meaning.text import MODEL_ID

    return MODEL_ID


def photo_texts(caption: str | None, concepts: Sequence[Concept] = (), *,
                variant: TextVariant = DEFAULT_VARIANT) -> tuple[str, ...]:
    """THE texts of a photo whose embeddings, summed and normalised, are its text vector: its
    caption, and the words of its confident concepts (``()`` when there is nothing to embed)."""
    text = " ".join((caption or "").split())
    words = ", ".join(keywords(concepts)) if variant is not TextVariant.CAPTION else ""
    if variant is TextVariant.JOINED:
        joined = (text.rstrip(" .") + ". " if text and words else text) + words
        return (joined,) if joined else ()
    return tuple(t for t in (text, words) if t)


def text_vector_model(model_id: str, variant: TextVariant = DEFAULT_VARIANT) -> str:
    """The model id stored with text vectors: the sentence model's, and the variant if not the default
    (vectors made from other texts don't mix either)."""
    return model_id if variant is DEFAULT_VARIANT else f"{model_id}/{variant}"


def embed_photos(embedder: Embedder, texts: Sequence[tuple[str, ...]]) -> np.ndarray:
    """One unit vector per photo from its :func:`photo_texts` (each distinct text embedded once)."""
    import numpy as np

    distinct = list(dict.fromkeys(t for group in texts for t in group))
    where = {t: n for n, t in enumerate(distinct)}
    embedded = embedder.embed(distinct) if distinct else np.zeros((0, 0), dtype=np.float32)
    out = np.zeros((len(texts), embedded.shape[1] if distinct else 0), dtype=np.float32)
    for row, group in enumerate(texts):
        for t in group:
            out[row] += embedded[where[t]]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.maximum(norms, 1e-12)).astype("<f4")


def embed_owed(
    index: CaptionIndex,
    embedder: Embedder,
    *,
    ids: Iterable[int] | None = None,
    batch: int = EMBED_BATCH,
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    variant: TextVariant = DEFAULT_VARIANT,
) -> int:
    """Embed and store the text vectors ``index`` owes for ``embedder``'s model; return how many.

    ``ids``: only those photos (the ones a run just captioned); by default every owed one,
    paged by photo id so a large index is read once. ``on_batch(n)`` after each stored batch.
    Embedding errors propagate (the caller decides how to degrade); what was stored stays.
    """
    model_id = text_vector_model(embedder.model_id, variant)
    wanted = None if ids is None else sorted(set(ids))
    done = 0
    after = 0
    while not (should_stop and should_stop()):
        if wanted is not None:
            chunk, wanted = wanted[:batch], wanted[batch:]
            if not chunk:
                break
            owed = index.vectors.owed(VectorKind.TEXT, model_id, ids=chunk)
        else:
            owed = index.vectors.owed(VectorKind.TEXT, model_id, batch, after=after)
            if not owed:
                break
            after = owed[-1].photo_id
        texts = [(o.photo_id, photo_texts(o.caption, o.concepts, variant=variant)) for o in owed]
        texts = [(i, t) for i, t in texts if t]
        if not texts:
            continue
        matrix = embed_photos(embedder, [t for _, t in texts])
        done += index.vectors.set((i, VectorKind.TEXT, model_id, row.tobytes())
                                  for (i, _), row in zip(texts, matrix))
        if on_batch is not None:
            on_batch(done)
    return done

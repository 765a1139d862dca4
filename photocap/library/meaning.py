"""What a photo's text vector is made of, and making the vectors the index owes.

* :func:`photo_text` is THE rule for which text of a photo is embedded: its caption (the
  person's when there is one: the index holds one caption, and a person's replaces the model's)
  then its confident concepts' words (:func:`photocap.library.concepts.keywords`), e.g.
  ``"a dog runs on the grass. dog, tennis ball"``. The index, the benchmarks and the query side
  all go through it.
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
    """Which text of a photo is embedded (the default is what the index stores)."""

    CAPTION_AND_CONCEPTS = "caption+concepts"  # "a dog runs on the grass. dog, tennis ball"
    CAPTION = "caption"  # the caption alone


DEFAULT_VARIANT = TextVariant.CAPTION_AND_CONCEPTS


class Embedder(Protocol):
    """What the library needs of :class:`photocap.meaning.text.TextEmbedder`."""

    model_id: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


EmbedderFactory = Callable[[], Embedder]


def default_embedder_factory() -> Embedder:
    """The bundled sentence model (raises MeaningUnavailable, with what to install, if it can't load)."""
    from photocap.meaning.text import TextEmbedder

    return TextEmbedder()


@functools.lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One sentence model per process (the watcher's runs and the GUI share it); a failure to
    load is not remembered (the next call tries again)."""
    return default_embedder_factory()


def text_model_id() -> str:
    """The id of the sentence model text vectors are made with (without loading it)."""
    from photocap.meaning.text import MODEL_ID

    return MODEL_ID


def photo_text(caption: str | None, concepts: Sequence[Concept] = (), *,
               variant: TextVariant = DEFAULT_VARIANT) -> str:
    """THE text of a photo that its text vector embeds ("" when there is nothing to embed)."""
    text = " ".join((caption or "").split())
    if variant is TextVariant.CAPTION:
        return text
    words = keywords(concepts)
    if not words:
        return text
    return (text.rstrip(" .") + ". " if text else "") + ", ".join(words)


def embed_owed(
    index: CaptionIndex,
    embedder: Embedder,
    *,
    ids: Iterable[int] | None = None,
    batch: int = EMBED_BATCH,
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Embed and store the text vectors ``index`` owes for ``embedder``'s model; return how many.

    ``ids``: only those photos (the ones a run just captioned); by default every owed one,
    paged by photo id so a large index is read once. ``on_batch(n)`` after each stored batch.
    Embedding errors propagate (the caller decides how to degrade); what was stored stays.
    """
    model_id = embedder.model_id
    wanted = None if ids is None else sorted(set(ids))
    done = 0
    after = 0
    while not (should_stop and should_stop()):
        if wanted is not None:
            chunk, wanted = wanted[:batch], wanted[batch:]
            if not chunk:
                break
            owed = index.vectors_owed(VectorKind.TEXT, model_id, ids=chunk)
        else:
            owed = index.vectors_owed(VectorKind.TEXT, model_id, batch, after=after)
            if not owed:
                break
            after = owed[-1].photo_id
        texts = [(o.photo_id, photo_text(o.caption, o.concepts)) for o in owed]
        texts = [(i, t) for i, t in texts if t]
        if not texts:
            continue
        matrix = embedder.embed([t for _, t in texts])
        done += index.set_vectors((i, VectorKind.TEXT, model_id, row.tobytes())
                                  for (i, _), row in zip(texts, matrix.astype("<f4")))
        if on_batch is not None:
            on_batch(done)
    return done

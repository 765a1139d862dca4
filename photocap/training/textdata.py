"""Caption text without photos: how a decoder learns sentences for what Flickr8k never showed it.

A text-only caption stands in for a photo by what the decoder would read of one (CapDec, Nukrai
et al. 2022; ViECap, Fei et al. 2023):

- the image embedding: the caption's own sentence vector, with Gaussian noise whose size matches
  the measured gap between a photo's embedding and its captions' vectors, renormalised;
- the concepts: the concept words the caption names, each kept with some probability, at
  scores drawn from those the classifier gave the words it got right on the training photos,
  and the remaining slots filled with the words it named wrongly there, at their scores. The
  decoder learns that a slot may be wrong and that a missing word may still be true.

Everything here works on values handed in (the vectors come from the caller's sentence model:
training never imports the meaning layer).
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from photocap.errors import DatasetError
from photocap.imaging.concepts import ConceptSet
from photocap.model.decoders import ConceptInput
from photocap.decoding.vocab import tokenize

Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> (n, D) unit rows
MAX_TEXT_CAPTIONS = 2_000_000


def load_caption_text(path: str | Path) -> list[str]:
    """Captions from a CSV with a ``caption`` column (others ignored) or a text file, one per line.

    Empty rows are skipped; a file with no caption is a :class:`DatasetError` saying what was expected."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if path.suffix.lower() == ".csv":
                reader = csv.DictReader(f)
                if not reader.fieldnames or "caption" not in reader.fieldnames:
                    raise DatasetError(f"{path}: a caption-text CSV needs a 'caption' column "
                                       f"(found: {', '.join(reader.fieldnames or []) or 'no header'})")
                texts = [(row.get("caption") or "").strip() for row in reader]
            else:
                texts = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read caption text {path}: {exc}") from exc
    texts = [t for t in texts if len(tokenize(t)) >= 2]
    if not texts:
        raise DatasetError(f"{path}: no captions found (a CSV with a 'caption' column, or one caption per line)")
    if len(texts) > MAX_TEXT_CAPTIONS:
        raise DatasetError(f"{path}: {len(texts):,} captions; at most {MAX_TEXT_CAPTIONS:,} are supported")
    return texts


@dataclass(frozen=True)
class TextCorpus:
    """Caption text without photos and each caption's sentence vector (N, D)."""

    captions: tuple[str, ...]
    vectors: torch.Tensor


def read_text_corpus(files: Sequence[str | Path], embed: Embed, model_id: str, cache_root: Path | None,
                     on_read: Callable[[int], None] | None = None) -> TextCorpus:
    """The captions of ``files`` (:func:`load_caption_text`) and their sentence vectors, cached by the
    texts and the sentence model (so training and the bundle script embed the same text once).
    ``on_read(n)``: the captions are read, the embedding (minutes for tens of thousands) starts."""
    captions = tuple(c for f in files for c in load_caption_text(f))
    if on_read is not None:
        on_read(len(captions))
    return TextCorpus(captions, embed_cached(captions, embed, model_id, cache_root))


def embed_cached(texts: Sequence[str], embed: Embed, model_id: str, cache_root: Path | None) -> torch.Tensor:
    """Sentence vectors (N, D) float16 of ``texts``, cached by the texts and the sentence model."""
    cache = None
    if cache_root is not None:
        digest = hashlib.sha256("\n".join([model_id, *texts]).encode("utf-8")).hexdigest()[:20]
        cache = Path(cache_root) / f"text-vectors-{digest}.npy"
        if cache.is_file():
            return torch.from_numpy(np.load(cache))
    vectors = np.asarray(embed(list(texts)), dtype=np.float16)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(cache)
    return torch.from_numpy(vectors)


def concept_phrases(concepts: ConceptSet) -> dict[str, int]:
    """Each concept word's written forms (word and plural, tokenised) -> its index."""
    table: dict[str, int] = {}
    for index, word in enumerate(concepts.words):
        for form in (word.word, word.plural):
            table.setdefault(" ".join(tokenize(form)), index)
    return table


def mentioned_concepts(caption: str, phrases: dict[str, int]) -> list[int]:
    """Indices of the concept words ``caption`` names (``phrases``: :func:`concept_phrases`), longer
    phrases first, in order of mention."""
    tokens = tokenize(caption)
    found: list[int] = []
    i = 0
    while i < len(tokens):
        for length in (3, 2, 1):
            index = phrases.get(" ".join(tokens[i : i + length])) if i + length <= len(tokens) else None
            if index is not None:
                if index not in found:
                    found.append(index)
                i += length
                break
        else:
            i += 1
    return found


@dataclass(frozen=True)
class ClassifierHabits:
    """How the concept classifier behaved on training photos: the scores of the words it got right
    (a caption of the photo names them), and the words it named wrongly with their scores."""

    hit_scores: tuple[float, ...]
    miss_words: tuple[int, ...]
    miss_scores: tuple[float, ...]

    @classmethod
    def measure(cls, concepts: ConceptInput, captions: Sequence[Sequence[str]], concept_set: ConceptSet,
                slots: int) -> "ClassifierHabits":
        """``concepts`` (N, >= slots) of N photos; ``captions[i]``: photo i's reference captions."""
        hits, misses, miss_words = [], [], []
        phrases = concept_phrases(concept_set)
        for row, refs in enumerate(captions):
            named = {k for c in refs for k in mentioned_concepts(c, phrases)}
            for word, score in zip(concepts.words[row, :slots].tolist(), concepts.scores[row, :slots].tolist()):
                if word in named:
                    hits.append(score)
                else:
                    misses.append(score)
                    miss_words.append(word)
        if not hits or not misses:
            raise DatasetError("too few photos to learn how the concept classifier errs; train with more photos")
        return cls(tuple(hits), tuple(miss_words), tuple(misses))


@dataclass(frozen=True)
class TextBridge:
    """How a text-only caption is made to look like a photo to the decoder."""

    noise: float = 0.1  # standard deviation per dimension of the noise added to the sentence vector
    keep: float = 0.7  # probability that a concept word the caption names is among its slots

    def concepts(self, mentions: Sequence[Sequence[int]], vectors: torch.Tensor, habits: ClassifierHabits,
                 slots: int, rng: random.Random, generator: torch.Generator) -> ConceptInput:
        """One text caption per row: its synthetic concept slots (B, slots), best first, and its noisy
        unit vector (B, D)."""
        words = torch.zeros(len(mentions), slots, dtype=torch.long)
        scores = torch.zeros(len(mentions), slots)
        for row, named in enumerate(mentions):
            chosen: list[tuple[float, int]] = [(rng.choice(habits.hit_scores), k)
                                               for k in named[:slots] if rng.random() < self.keep]
            taken = {k for _, k in chosen}
            while len(chosen) < slots:
                k = rng.choice(habits.miss_words)
                if k not in taken and k not in named:
                    chosen.append((rng.choice(habits.miss_scores), k))
                    taken.add(k)
            chosen.sort(key=lambda c: -c[0])
            scores[row] = torch.tensor([s for s, _ in chosen])
            words[row] = torch.tensor([k for _, k in chosen])
        clean = vectors.float()
        noisy = clean + self.noise * torch.randn(clean.shape, generator=generator)
        return ConceptInput(words, scores, torch.nn.functional.normalize(noisy, dim=-1))

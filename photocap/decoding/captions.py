"""A model's captions from its decoder: the decoding rules a model file asks for, applied the same way
whichever runtime (torch or ONNX Runtime) runs the decoder.

The rules: the model's beam settings; its top concept named when the classifier is sure of it
(``concept_force`` / ``concept_bonus``); a copied concept at most once and written as the word it
copies for repeats; no word for a person where the person probe doubts one (``person_gate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from photocap.decoding.beam import Hypothesis, Steps, beam_search
from photocap.decoding.config import ModelConfig
from photocap.decoding.people import PERSON_WORDS
from photocap.decoding.slots import copy_ids, render
from photocap.decoding.vocab import Vocabulary, tokenize
from photocap.imaging.concepts import ConceptWord

REPORTED_CONCEPTS = 5  # concepts kept per photo (for the index and --json), whatever the decoder reads


@dataclass(frozen=True)
class Decoded:
    """One photo's caption and concepts, as the model produced them."""

    text: str
    score: float  # mean log-probability per token of the caption (<= 0)
    concepts: tuple[tuple[ConceptWord, float], ...] = ()  # best first: (word, summed class probability)


@dataclass(frozen=True)
class PhotoConcepts:
    """What the decoding rules read of one photo besides the decoder: its concepts, best first, and the
    person probe's probability that it shows a person (None: no probe)."""

    words: tuple[ConceptWord, ...] = ()
    scores: tuple[float, ...] = ()
    person: float | None = None


JOINERS = ("and", "or")  # no word on both sides of one: "a white and white dog"


def special_ids(vocab: Vocabulary) -> tuple[int, ...]:
    """Ids no caption emits: <pad>, <start>, <unk>."""
    return (vocab.pad_id, vocab.start_id, vocab.unk_id)


def person_ids(vocab: Vocabulary) -> tuple[int, ...]:
    """The vocabulary's words for people: what the person gate bans."""
    return tuple(vocab.stoi[w] for w in PERSON_WORDS if w in vocab.stoi)


def _required(cfg: ModelConfig, vocab: Vocabulary, photo: PhotoConcepts, force: float) -> list[int]:
    """The ids of which the caption should hold one: its top concept's, if it scores >= ``force``."""
    if not force or not photo.words or photo.scores[0] < force:
        return []
    if cfg.concept_slots:
        return list(copy_ids(len(vocab), cfg.concept_slots, 0))
    word = photo.words[0]  # a vocabulary word: single-token words the captions used
    return [vocab.stoi[t] for t in {word.word, word.plural} if len(tokenize(t)) == 1 and t in vocab.stoi]


def _copy_words(cfg: ModelConfig, vocab: Vocabulary, photo: PhotoConcepts) -> dict[int, tuple[int, ...]]:
    """The photo's copy ids -> the ids of the words each writes ("baseball player": two; a word the
    vocabulary lacks gets an id of its own below 0), so the no-repeat rules read a copy as its words."""
    v, slots = len(vocab), cfg.concept_slots
    out: dict[int, tuple[int, ...]] = {}
    unknown: dict[str, int] = {}
    for k, concept in enumerate(photo.words[:slots]):
        for cid, text in zip(copy_ids(v, slots, k), (concept.word, concept.plural)):
            words = tokenize(text)
            if words:
                out[cid] = tuple(vocab.stoi[w] if w in vocab.stoi else unknown.setdefault(w, -1 - len(unknown))
                                 for w in words)
    return out


def decode(steps: Steps, photos: Sequence[PhotoConcepts], cfg: ModelConfig, vocab: Vocabulary, *,
           beam_size: int | None = None, length_penalty: float | None = None,
           concept_force: float | None = None, concept_bonus: float | None = None) -> list[Decoded]:
    """One :class:`Decoded` per photo of ``photos`` (the images ``steps`` decodes, in order).

    ``beam_size`` / ``length_penalty`` / ``concept_force`` / ``concept_bonus`` default to the model's own."""
    force = cfg.concept_force if concept_force is None else concept_force
    bonus = cfg.concept_bonus if concept_bonus is None else concept_bonus
    slots = cfg.concept_slots
    has_concepts = any(p.words for p in photos)
    required = [_required(cfg, vocab, p, force) for p in photos] if force and has_concepts else None
    gated = [cfg.person_gate > 0 and p.person is not None and p.person < cfg.person_gate for p in photos]
    people = person_ids(vocab)
    hyps: list[Hypothesis] = beam_search(
        steps, len(photos), start_id=vocab.start_id, end_id=vocab.end_id, banned_ids=special_ids(vocab),
        banned_per_image=[people if g else () for g in gated] if any(gated) else None,
        beam_size=cfg.beam_size if beam_size is None else beam_size, max_len=cfg.max_len,
        length_penalty=cfg.length_penalty if length_penalty is None else length_penalty,
        no_repeat_ngram=cfg.no_repeat_ngram, required=required,
        required_bonus=[bonus * p.scores[0] if p.scores else 0.0 for p in photos] if bonus and has_concepts else None,
        once=tuple(copy_ids(len(vocab), slots, k) for k in range(slots)),
        words_of=[_copy_words(cfg, vocab, p) for p in photos] if slots and has_concepts else None,
        joiners=frozenset(vocab.stoi[w] for w in JOINERS if w in vocab.stoi),
    )
    return [Decoded(render(h.tokens, vocab, p.words, slots), h.mean_logprob, tuple(zip(p.words, p.scores)))
            for h, p in zip(hyps, photos)]

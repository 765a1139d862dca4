"""Concept slots: a caption's words <-> a photo's concepts, for a decoder that copies concepts.

A decoder with K concept slots emits ids 0..V-1 for vocabulary words, V + k to copy concept
k of the photo and V + K + k to copy its plural. In training, a caption word (or phrase) that
is one of the photo's concepts becomes that copy id, so the decoder learns *where* a concept
goes in a sentence, not which concept: at inference it can name a broccoli or an elephant it
never read in a caption. Rendering turns ids back into words and fixes "a"/"an" before a
copied word ("a elephant" -> "an elephant").
"""

from __future__ import annotations

from collections.abc import Sequence

from photocap.imaging.concepts import ConceptWord, with_article
from photocap.decoding.vocab import Vocabulary, detokenize, tokenize


def copy_ids(vocab_size: int, slots: int, k: int) -> tuple[int, int]:
    """The ids that copy concept ``k``: (singular, plural)."""
    return vocab_size + k, vocab_size + slots + k


def encode_with_slots(caption: str, vocab: Vocabulary, concepts: Sequence[ConceptWord], slots: int,
                      max_len: int | None = None) -> list[int]:
    """<start> ids... <end> like ``Vocabulary.encode``, with the photo's concept words as copy ids.

    ``concepts`` are the photo's top concepts, best first (at most ``slots`` are used). Longer
    phrases win ("teddy bear" before "bear"); a word matching two concepts copies the better one.
    """
    tokens = tokenize(caption)
    forms: list[tuple[list[str], int]] = []  # (phrase tokens, copy id)
    for k, concept in enumerate(concepts[:slots]):
        one, many = copy_ids(len(vocab), slots, k)
        forms.append((tokenize(concept.word), one))
        if concept.plural != concept.word:
            forms.append((tokenize(concept.plural), many))
    forms.sort(key=lambda f: -len(f[0]))  # stable: among equal lengths, the better concept first
    ids: list[int] = []
    i = 0
    while i < len(tokens):
        for phrase, cid in forms:
            if phrase and tokens[i : i + len(phrase)] == phrase:
                ids.append(cid)
                i += len(phrase)
                break
        else:
            ids.append(vocab.stoi.get(tokens[i], vocab.unk_id))
            i += 1
    if max_len is not None:
        ids = ids[:max_len]
    return [vocab.start_id, *ids, vocab.end_id]


def render(ids: Sequence[int], vocab: Vocabulary, concepts: Sequence[ConceptWord], slots: int) -> str:
    """Decoded ids -> text: stops at <end>, skips special tokens, fills in copied concepts."""
    v = len(vocab)
    words: list[str] = []
    copied_at: set[int] = set()
    for i in ids:
        if i == vocab.end_id:
            break
        if i >= v:
            k = (i - v) % slots if slots else -1
            if not 0 <= k < len(concepts):
                continue  # a slot this photo has no concept for (never emitted by beam search)
            concept = concepts[k]
            copied_at.add(len(words))
            words.append(concept.plural if i >= v + slots else concept.word)
        elif i >= 4:  # the special tokens
            words.append(vocab.itos[i])
    for at in copied_at:
        if at > 0:
            words[at - 1] = with_article(words[at - 1], words[at])
    return detokenize(words)

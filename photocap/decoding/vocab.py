"""Tokenizer and vocabulary, serialised as JSON."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers; punctuation dropped ("A dog's ball ." -> a, dog's, ball)."""
    return _TOKEN.findall(text.lower())


def detokenize(tokens: Sequence[str]) -> str:
    return " ".join(tokens)


class Vocabulary:
    """Word <-> id mapping with the special tokens at fixed ids 0..3."""

    pad_id, start_id, end_id, unk_id = range(4)

    def __init__(self, words: Sequence[str], min_freq: int = 1) -> None:
        self.itos: list[str] = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary has duplicate words")
        self.min_freq = min_freq

    @classmethod
    def build(cls, captions: Iterable[str], min_freq: int = 5) -> "Vocabulary":
        """Words seen at least ``min_freq`` times, most frequent first (ties alphabetical)."""
        counts = Counter(tok for caption in captions for tok in tokenize(caption))
        words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls(words, min_freq)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        """<start> words... <end> as ids; words beyond ``max_len`` are cut."""
        ids = [self.stoi.get(tok, self.unk_id) for tok in tokenize(text)]
        if max_len is not None:
            ids = ids[:max_len]
        return [self.start_id, *ids, self.end_id]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, stopping at <end> and skipping other special tokens."""
        words = []
        for i in ids:
            if i == self.end_id:
                break
            if i >= len(SPECIALS):
                words.append(self.itos[i])
        return detokenize(words)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "min_freq": self.min_freq, "itos": self.itos}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Vocabulary":
        itos = data.get("itos")
        if not isinstance(itos, list) or list(itos[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError("vocabulary must list the special tokens <pad> <start> <end> <unk> first")
        if not all(isinstance(w, str) for w in itos):
            raise ValueError("vocabulary entries must be strings")
        return cls(itos[len(SPECIALS):], int(data.get("min_freq", 1)))

"""The one batched beam search (greedy decoding is beam search of width 1), in numpy.

It owns every rule of photocap's captions (no repeated phrases, a copied concept at most once, the
required concept, words banned for a photo) and runs any decoder through :class:`Steps`: the torch
network (``photocap.model.beam``) and the exported ONNX graphs (``photocap.captioner``) alike, so
both write the same captions.

Shapes: B images, G banks, K beams, N = A * G * K rows (A the images still being captioned),
V' the decoder's output ids (vocabulary + copy ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

NEG_INF = np.float32(-np.inf)


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # word ids, without <start> and <end>
    logprob: float  # summed log-probability, <end> included

    @property
    def mean_logprob(self) -> float:
        return self.logprob / (len(self.tokens) + 1)


class Steps(Protocol):
    """A decoder as beam search drives it: one row per image until :meth:`start`."""

    def select(self, images: np.ndarray) -> "Steps":
        """The same decoder over the images ``images`` (indices) only, not started."""

    def start(self, per: int) -> None:
        """Begin decoding with ``per`` rows per image, each image's rows consecutive."""

    def step(self, tokens: np.ndarray) -> np.ndarray:
        """tokens (N,) int64, the last emitted ids -> logits (N, V') float32 for the next id."""

    def keep(self, rows: np.ndarray, images: np.ndarray | None) -> None:
        """Reorder the state: row i of the next step continues row ``rows[i]``; ``images`` (not None
        when images left the batch): the images kept, in order."""


def log_probs(logits: np.ndarray, banned: np.ndarray | None) -> np.ndarray:
    """Log-softmax (N, V') in float32 with ``banned`` (N, V') bool cells at -inf."""
    logits = np.array(logits, dtype=np.float32)  # a copy: the caller's array stays as it was
    if banned is not None:
        logits[banned] = NEG_INF
    top = logits.max(axis=1, keepdims=True)
    shifted = logits - top
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def blocked(history: list[int], ngram: int, once: tuple[frozenset[int], ...],
            words_of: dict[int, tuple[int, ...]] | None = None) -> set[int]:
    """Ids that may not follow ``history``: those that would complete an n-gram of words it already
    holds, and every id of a ``once`` group one of whose ids it already holds. ``words_of`` maps ids
    that write other words (a copied concept "shirt" or "baseball player") to the ids of the words
    they write (negative: a word the vocabulary lacks), for the n-gram rule."""
    out: set[int] = set()
    words = [w for t in history for w in words_of.get(t, (t,))] if words_of else history
    if ngram and len(words) >= ngram - 1:
        prefix = tuple(words[len(words) - ngram + 1:]) if ngram > 1 else ()
        for j in range(len(words) - ngram + 1):
            if tuple(words[j : j + ngram - 1]) == prefix:
                out.add(words[j + ngram - 1])
        if words_of and out:
            out.update(t for t, ws in words_of.items() if ws[0] in out)
    for group in once:
        if not group.isdisjoint(history):
            out.update(group)
    return out


def stutter(history: list[int], words_of: dict[int, tuple[int, ...]] | None = None,
            joiners: frozenset[int] = frozenset()) -> set[int]:
    """Ids that would write the word ``history`` ends with again, straight after it ("a yellow yellow
    mailbox", a copied "baseball player" then "player"), or straight after a joiner that follows it
    ("a white and white dog", with the id of "and" among ``joiners``); ``words_of`` as for :func:`blocked`."""
    if not history:
        return set()

    def last_word(token: int) -> int:
        return words_of.get(token, (token,))[-1] if words_of else token

    again = {last_word(history[-1])}
    if history[-1] in joiners and len(history) >= 2:
        again.add(last_word(history[-2]))
    out = set(again)
    if words_of:
        out.update(t for t, ws in words_of.items() if ws[0] in again)
    return out


def _top(flat: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best of each row of ``flat`` (A, M), best first, ties to the lower index: (scores,
    indices), each (A, n). ``flat`` is overwritten. n argmax passes: for the few candidates a beam
    keeps, several times faster than a partition of the whole row."""
    n = min(n, flat.shape[1])
    rows = np.arange(flat.shape[0])
    idx = np.empty((flat.shape[0], n), dtype=np.int64)
    vals = np.empty((flat.shape[0], n), dtype=flat.dtype)
    for r in range(n):
        best = flat.argmax(axis=1)  # (A,)
        idx[:, r], vals[:, r] = best, flat[rows, best]
        flat[rows, best] = NEG_INF
    return vals, idx


def beam_search(
    steps: Steps,
    batch: int,
    *,
    start_id: int,
    end_id: int,
    banned_ids: tuple[int, ...] = (),
    banned_per_image: Sequence[tuple[int, ...]] | None = None,
    beam_size: int = 3,
    max_len: int = 20,
    length_penalty: float = 0.0,
    no_repeat_ngram: int = 0,
    required: Sequence[Sequence[int]] | None = None,
    required_bonus: Sequence[float] | None = None,
    once: tuple[tuple[int, ...], ...] = (),
    words_of: Sequence[dict[int, tuple[int, ...]]] | None = None,
    joiners: frozenset[int] = frozenset(),
) -> list[Hypothesis]:
    """Best caption for each of the ``batch`` images ``steps`` decodes.

    Hypotheses are ranked by summed log-probability divided by
    ``(words + 1) ** length_penalty`` (0 = plain log-probability). ``banned_ids``
    (e.g. <pad>, <start>, <unk>) are never emitted, nor ``banned_per_image[i]`` in image i's
    caption; no caption repeats a phrase of ``no_repeat_ngram`` words (0 = allowed) nor, with that
    rule, writes a word twice in a row or on both sides of one of the ``joiners`` ("white and
    white"), reading an id that ``words_of[i]`` maps to words as those words (a copied concept); of
    each ``once`` group of ids at most
    one is emitted, once. An image stops once it has ``beam_size`` finished hypotheses; unfinished
    ones count at ``max_len``. Its rows then leave the batch: the decoder only runs for the images
    still being captioned (the same numbers for those rows).

    ``required[i]``, when not empty, is a set of ids of which image i's caption should hold
    one: constrained beam search (Anderson et al. 2017) with two banks of ``beam_size``
    beams, those that hold a required id and those that do not yet. Without
    ``required_bonus`` the best caption that holds one wins (the other bank's best is used
    only if none could); with it, a caption that holds one gets ``required_bonus[i]`` added
    to its rank, and the best of both banks wins: a required word that does not fit the
    photo (the decoder finds every sentence with it unlikely) is left out.
    """
    b, k = batch, beam_size
    constrained = [bool(required is not None and required[i]) for i in range(b)]
    if 0 < sum(constrained) < b:
        # Only the constrained images need the second bank: searched apart, the others don't carry
        # K rows of beams that never come alive through every decoder step (the same captions).
        out: list[Hypothesis] = [Hypothesis([], float("-inf"))] * b
        for want in (True, False):
            part = [i for i in range(b) if constrained[i] == want]

            def pick(values, only=True):
                return [values[i] for i in part] if values is not None and only else None

            found = beam_search(
                steps.select(np.array(part, dtype=np.int64)), len(part), start_id=start_id, end_id=end_id,
                banned_ids=banned_ids, banned_per_image=pick(banned_per_image), beam_size=beam_size,
                max_len=max_len, length_penalty=length_penalty, no_repeat_ngram=no_repeat_ngram,
                required=pick(required, want), required_bonus=pick(required_bonus, want), once=once,
                words_of=pick(words_of), joiners=joiners)
            for i, h in zip(part, found):
                out[i] = h
        return out
    g = 2 if any(constrained) else 1  # banks: [not yet satisfied,] satisfied
    once_sets = tuple(frozenset(group) for group in once)
    per = g * k  # rows per image
    steps.start(per)
    tokens = np.full(b * per, start_id, dtype=np.int64)  # (B*G*K,)
    history: list[list[int]] = [[] for _ in range(b * per)]
    scores = np.full((b, g, k), NEG_INF, dtype=np.float32)  # (B, G, K)
    # All beams start identical: only the first is alive, in bank 0 (the only bank, or, here where every
    # image is constrained, the one of captions that don't name a required word yet).
    scores[:, 0, 0] = 0.0
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    fallback: list[list[Hypothesis]] = [[] for _ in range(b)]  # endings that miss the constraint
    done = [False] * b
    ban: np.ndarray | None = None  # (A, V') bool: the ids no row of each active image may emit
    need: np.ndarray | None = None  # (A, V') bool: the required ids of each active image
    active = list(range(b))  # the images still being captioned; A = len(active) below

    def ranking(h: Hypothesis) -> float:
        return h.logprob / (len(h.tokens) + 1) ** length_penalty

    for t in range(max_len + 1):
        a = len(active)
        logits = steps.step(tokens)  # (A*G*K, V')
        v = logits.shape[1]
        if ban is None:
            ban = np.zeros((b, v), dtype=bool)
            ban[:, [w for w in banned_ids if w < v]] = True
            for i, ids in enumerate(banned_per_image or ()):
                ban[i, [w for w in ids if w < v]] = True
            if g == 2:
                need = np.zeros((b, v), dtype=bool)
                for i, ids in enumerate(required or ()):
                    need[i, [w for w in ids if w < v]] = True
        logp = log_probs(logits, np.repeat(ban, per, axis=0))  # (A*G*K, V')
        if t == max_len:  # out of room: only <end> may follow
            forced = np.full_like(logp, NEG_INF)
            forced[:, end_id] = logp[:, end_id]
            logp = forced
        elif no_repeat_ngram or once:
            alive_rows = np.flatnonzero(np.isfinite(scores.reshape(-1))).tolist()
            cells = []
            for r in alive_rows:
                own = words_of[active[r // per]] if words_of else None
                out = blocked(history[r], no_repeat_ngram, once_sets, own)
                if no_repeat_ngram:
                    out |= stutter(history[r], own, joiners)
                cells += [(r, w) for w in out if 0 <= w < v]
            if cells:
                rows_, cols_ = zip(*cells)
                logp[list(rows_), list(cols_)] = NEG_INF
        cand = scores.reshape(a, g, k, 1) + logp.reshape(a, g, k, v)  # (A, G, K, V')
        if g == 2:
            wanted = need.reshape(a, 1, v)
            targets = [  # (bank, candidates (A, sources*K*V'), source bank of each block of K*V')
                (0, np.where(wanted, NEG_INF, cand[:, 0]).reshape(a, -1), (0,)),
                (1, np.concatenate([cand[:, 1], np.where(wanted, cand[:, 0], NEG_INF)], axis=1).reshape(a, -1),
                 (1, 0)),
            ]
        else:
            targets = [(0, cand[:, 0].reshape(a, -1), (0,))]

        new_scores = [[[float("-inf")] * k for _ in range(g)] for _ in range(a)]  # (A, G, K)
        new_rows = [[[j * per + bank * k + beam for beam in range(k)] for bank in range(g)]
                    for j in range(a)]  # unfilled rows keep their own state
        new_words = [[[end_id] * k for _ in range(g)] for _ in range(a)]
        for bank, flat, sources in targets:
            top_scores, top_idx = _top(flat, 2 * k)  # room for K ending + K going on
            top_scores_l, top_idx_l = top_scores.tolist(), top_idx.tolist()
            for j, i in enumerate(active):  # j: the image's place in this step's rows, i: in the batch
                alive = 0
                ends = finished[i] if bank == g - 1 else fallback[i]
                for rank, (s, c) in enumerate(zip(top_scores_l[j], top_idx_l[j])):
                    if s == float("-inf"):
                        break
                    block, word = divmod(c, v)
                    source, beam = divmod(block, k)
                    row = j * per + sources[source] * k + beam
                    if word == end_id:
                        # An ending only counts if it ranks among the K best candidates of this step.
                        if rank < k and len(ends) < k:
                            ends.append(Hypothesis(list(history[row]), s))
                    elif alive < k:
                        new_scores[j][bank][alive], new_rows[j][bank][alive] = s, row
                        new_words[j][bank][alive] = word
                        alive += 1
        next_scores = np.array(new_scores, dtype=np.float32)  # (A, G, K)
        rows = np.array(new_rows, dtype=np.int64).reshape(-1)  # (A*G*K,): always a row of the same image
        tokens = np.array(new_words, dtype=np.int64).reshape(-1)
        going = np.isfinite(next_scores).reshape(a, -1).any(axis=1).tolist()
        for j, i in enumerate(active):
            done[i] = len(finished[i]) >= k or not going[j]
        if all(done):
            break
        scores = next_scores
        if any(done[i] for i in active):  # the finished images' rows leave the batch
            keep = [j for j, i in enumerate(active) if not done[i]]
            kept = np.array([j * per + r for j in keep for r in range(per)], dtype=np.int64)
            rows, tokens, scores = rows[kept], tokens[kept], scores[keep]
            steps.keep(rows, np.array(keep, dtype=np.int64))
            ban = ban[keep]
            if need is not None:
                need = need[keep]
            active = [active[j] for j in keep]
        else:
            steps.keep(rows, None)
        history = [history[r] + [w] for r, w in zip(rows.tolist(), tokens.tolist())]
    out = []
    for i, (f, fb) in enumerate(zip(finished, fallback)):
        if required_bonus is None or not constrained[i] or not f or not fb:
            out.append(max(f or fb, key=ranking) if (f or fb) else Hypothesis([], float("-inf")))
            continue
        named = max(f, key=ranking)
        best = max(fb, key=ranking)
        out.append(named if ranking(named) + required_bonus[i] >= ranking(best) else best)
    return out

"""The one batched beam search; greedy decoding is beam search of width 1.

Also ``sample``: multinomial sampling through the same decoder step, for
self-critical training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from photocap.model.decoders import ConceptInput, Decoder, State


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # word ids, without <start> and <end>
    logprob: float  # summed log-probability, <end> included

    @property
    def mean_logprob(self) -> float:
        return self.logprob / (len(self.tokens) + 1)


def _reorder(state: State, rows: torch.Tensor, per_image: Callable[[str], bool],
             images: torch.Tensor | None = None) -> State:
    """Rows ``rows`` of each per-row entry; of the entries held once per image (``per_image(key)``),
    images ``images`` (None: passed on as they are)."""
    return {k: (v if images is None else v.index_select(0, images)) if per_image(k) else v.index_select(0, rows)
            for k, v in state.items()}


def _log_probs(logits: torch.Tensor, banned: tuple[int, ...]) -> torch.Tensor:
    """Log-softmax over the vocabulary with ``banned`` ids at -inf (out of place: safe under autograd)."""
    logits = logits.float()
    if banned:
        logits = logits.index_fill(1, torch.tensor(banned, device=logits.device), float("-inf"))
    return logits.log_softmax(dim=-1)


def _blocked(history: list[int], ngram: int, once: tuple[frozenset[int], ...],
             same: dict[int, int] | None = None) -> set[int]:
    """Words that may not follow ``history``: those completing an n-gram it already holds,
    and every id of a ``once`` group one of whose ids it already holds. ``same`` maps ids
    that write the same word as another id (a copied concept "shirt" and the word "shirt")
    to that id, for the n-gram rule."""
    out: set[int] = set()
    if ngram and len(history) >= ngram - 1:
        words = [same.get(t, t) for t in history] if same else history
        prefix = tuple(words[len(words) - ngram + 1:]) if ngram > 1 else ()
        for j in range(len(words) - ngram + 1):
            if tuple(words[j : j + ngram - 1]) == prefix:
                out.add(words[j + ngram - 1])
        if same and out:
            out.update(k for k, w in same.items() if w in out)
    for group in once:
        if not group.isdisjoint(history):
            out.update(group)
    return out


@torch.no_grad()
def beam_search(
    decoder: Decoder,
    feats: torch.Tensor,
    *,
    start_id: int,
    end_id: int,
    banned_ids: tuple[int, ...] = (),
    beam_size: int = 3,
    max_len: int = 20,
    length_penalty: float = 0.0,
    concepts: ConceptInput | None = None,
    no_repeat_ngram: int = 0,
    required: Sequence[Sequence[int]] | None = None,
    required_bonus: Sequence[float] | None = None,
    once: tuple[tuple[int, ...], ...] = (),
    same_words: Sequence[dict[int, int]] | None = None,
) -> list[Hypothesis]:
    """Best caption per image of ``feats`` (B, P, C) (and ``concepts``, for a decoder that reads them).

    Hypotheses are ranked by summed log-probability divided by
    ``(words + 1) ** length_penalty`` (0 = plain log-probability). ``banned_ids``
    (e.g. <pad>, <start>, <unk>) are never emitted; no caption repeats a phrase of
    ``no_repeat_ngram`` words (0 = allowed), counting the ids that ``same_words[i]`` maps
    to another id as that id; of each ``once`` group of ids at most one is emitted, once.
    A batch item stops once it has ``beam_size`` finished hypotheses; unfinished ones
    count at ``max_len``. Its rows then leave the batch: the decoder only runs for the images
    still being captioned (the same numbers for those rows).

    ``required[i]``, when not empty, is a set of ids of which image i's caption should hold
    one: constrained beam search (Anderson et al. 2017) with two banks of ``beam_size``
    beams, those that hold a required id and those that do not yet. Without
    ``required_bonus`` the best caption that holds one wins (the other bank's best is used
    only if none could); with it, a caption that holds one gets ``required_bonus[i]`` added
    to its rank, and the best of both banks wins: a required word that does not fit the
    photo (the decoder finds every sentence with it unlikely) is left out.
    """
    b, k = feats.size(0), beam_size
    device = feats.device
    constrained = [bool(required is not None and required[i]) for i in range(b)]
    if 0 < sum(constrained) < b:
        # Only the constrained images need the second bank: searched apart, the others don't carry
        # K rows of beams that never come alive through every decoder step (the same captions).
        out: list[Hypothesis] = [Hypothesis([], float("-inf"))] * b
        for want in (True, False):
            part = [i for i in range(b) if constrained[i] == want]
            index = torch.tensor(part, device=device)
            found = beam_search(
                decoder, feats.index_select(0, index), start_id=start_id, end_id=end_id, banned_ids=banned_ids,
                beam_size=beam_size, max_len=max_len, length_penalty=length_penalty,
                concepts=concepts.rows(index) if concepts is not None else None, no_repeat_ngram=no_repeat_ngram,
                required=[required[i] for i in part] if want else None,
                required_bonus=[required_bonus[i] for i in part] if want and required_bonus is not None else None,
                once=once, same_words=[same_words[i] for i in part] if same_words is not None else None)
            for i, h in zip(part, found):
                out[i] = h
        return out
    g = 2 if any(constrained) else 1  # banks: [not yet satisfied,] satisfied
    once_sets = tuple(frozenset(group) for group in once)
    per = g * k  # rows per image
    state = decoder.rows_per_image(decoder.init_state(feats, concepts), per)
    tokens = torch.full((b * per,), start_id, dtype=torch.long, device=device)  # (B*G*K,)
    history: list[list[int]] = [[] for _ in range(b * per)]
    scores = torch.full((b, g, k), float("-inf"), device=device)  # (B, G, K)
    # All beams start identical: only the first is alive, in bank 0 (the only bank, or, here where every
    # image is constrained, the one of captions that don't name a required word yet).
    scores[:, 0, 0] = 0.0
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    fallback: list[list[Hypothesis]] = [[] for _ in range(b)]  # endings that miss the constraint
    done = [False] * b
    need: torch.Tensor | None = None  # (A, V') bool: the required ids of each active image
    active = list(range(b))  # the images still being captioned; A = len(active) below

    def ranking(h: Hypothesis) -> float:
        return h.logprob / (len(h.tokens) + 1) ** length_penalty

    for t in range(max_len + 1):
        a = len(active)
        logits, state = decoder.step(tokens, state)  # (A*G*K, V')
        logp = _log_probs(logits, banned_ids)  # (A*G*K, V')
        v = logp.size(1)
        if t == max_len:  # out of room: only <end> may follow
            forced = torch.full_like(logp, float("-inf"))
            forced[:, end_id] = logp[:, end_id]
            logp = forced
        elif no_repeat_ngram or once:
            alive_rows = torch.isfinite(scores.view(-1)).nonzero().view(-1).tolist()
            cells = [(r, w) for r in alive_rows
                     for w in _blocked(history[r], no_repeat_ngram, once_sets,
                                       same_words[active[r // per]] if same_words else None)
                     if w < v]
            if cells:
                rows_, cols_ = zip(*cells)
                logp[list(rows_), list(cols_)] = float("-inf")
        if need is None and g == 2:
            need = torch.zeros(b, v, dtype=torch.bool, device=device)
            for i, ids in enumerate(required or ()):
                if ids:
                    need[i, [w for w in ids if w < v]] = True
        cand = scores.view(a, g, k, 1) + logp.view(a, g, k, v)  # (A, G, K, V')
        if g == 2:
            wanted = need.view(a, 1, v)
            targets = [  # (bank, candidates (A, sources*K*V'), source bank of each block of K*V')
                (0, cand[:, 0].masked_fill(wanted, float("-inf")).view(a, -1), (0,)),
                (1, torch.cat([cand[:, 1], cand[:, 0].masked_fill(~wanted, float("-inf"))], dim=1).view(a, -1), (1, 0)),
            ]
        else:
            targets = [(0, cand[:, 0].reshape(a, -1), (0,))]

        # Filled as Python lists, made tensors once: a tensor write per candidate took 14 % of the decoder's op time.
        new_scores = [[[float("-inf")] * k for _ in range(g)] for _ in range(a)]  # (A, G, K)
        new_rows = [[[j * per + bank * k + beam for beam in range(k)] for bank in range(g)]
                    for j in range(a)]  # unfilled rows keep their own state
        new_words = [[[end_id] * k for _ in range(g)] for _ in range(a)]
        for bank, flat, sources in targets:
            top_scores, top_idx = flat.topk(min(2 * k, flat.size(1)), dim=1)  # room for K ending + K going on
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
        next_scores = torch.tensor(new_scores, device=device)  # (A, G, K)
        next_rows = torch.tensor(new_rows, dtype=torch.long, device=device)
        next_words = torch.tensor(new_words, dtype=torch.long, device=device)
        going = torch.isfinite(next_scores).view(a, -1).any(dim=1).tolist()
        for j, i in enumerate(active):
            done[i] = len(finished[i]) >= k or not going[j]
        if all(done):
            break
        rows = next_rows.view(-1)  # (A*G*K,): always a row of the same image
        tokens = next_words.view(-1)
        scores = next_scores
        if any(done[i] for i in active):  # the finished images' rows leave the batch
            keep = [j for j, i in enumerate(active) if not done[i]]
            kept = torch.tensor([j * per + r for j in keep for r in range(per)], device=device)
            rows, tokens, scores = rows.index_select(0, kept), tokens.index_select(0, kept), scores[keep]
            state = _reorder(state, rows, decoder.static_state, torch.tensor(keep, device=device))
            if need is not None:
                need = need[keep]
            active = [active[j] for j in keep]
        else:
            state = _reorder(state, rows, decoder.static_state)  # rows: always a row of the same image
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


@torch.no_grad()
def sample(
    decoder: Decoder,
    feats: torch.Tensor,
    *,
    start_id: int,
    end_id: int,
    pad_id: int,
    banned_ids: tuple[int, ...] = (),
    max_len: int = 20,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    concepts: ConceptInput | None = None,
    samples: int = 1,
) -> torch.Tensor:
    """Sample ``samples`` captions per image of ``feats`` (B, P, C): ids (B*samples, T), each image's
    consecutive, <end> included, then ``pad_id``. The decoder reads each image once for all its samples.

    ``generator`` (else torch's global one) draws the words.

    No gradients: score the samples afterwards with ``sequence_logprob``, one
    parallel teacher-forced pass instead of a graph through every step.
    """
    n = feats.size(0) * samples
    state = decoder.rows_per_image(decoder.init_state(feats, concepts), samples)
    tokens = torch.full((n,), start_id, dtype=torch.long, device=feats.device)
    alive = torch.ones(n, dtype=torch.bool, device=feats.device)
    out = []
    for _ in range(max_len + 1):
        logits, state = decoder.step(tokens, state)  # (N, V)
        probs = (_log_probs(logits, banned_ids) / temperature).softmax(dim=-1)
        tokens = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (N,)
        tokens = torch.where(alive, tokens, torch.full_like(tokens, pad_id))
        out.append(tokens)
        alive = alive & (tokens != end_id)
        if not bool(alive.any()):
            break
    return torch.stack(out, dim=1)


def sequence_logprob(decoder: Decoder, feats: torch.Tensor, ids: torch.Tensor, *, start_id: int, pad_id: int,
                     banned_ids: tuple[int, ...] = (), concepts: ConceptInput | None = None,
                     samples: int = 1) -> torch.Tensor:
    """Summed log-probability (N,) of captions ``ids`` (N, T) given ``feats`` (N / samples, P, C), with
    gradients: ``samples`` captions per image, each image's consecutive (as ``sample`` returns them)."""
    inputs = torch.cat([torch.full_like(ids[:, :1], start_id), ids[:, :-1]], dim=1)  # (N, T)
    logits, _ = decoder(feats, inputs, concepts, per_image=samples)  # (N, T, V)
    logp = _log_probs(logits.flatten(0, 1), banned_ids).view_as(logits)  # (N, T, V)
    picked = logp.gather(2, ids.unsqueeze(2)).squeeze(2)  # (N, T): -inf at padding (<pad> is banned)
    return picked.masked_fill(ids == pad_id, 0.0).sum(dim=1)  # not picked * mask: -inf * 0 is NaN

"""The one batched beam search; greedy decoding is beam search of width 1.

Also ``sample``: multinomial sampling through the same decoder step, for
self-critical training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from photocap.model.decoders import Decoder, State


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # word ids, without <start> and <end>
    logprob: float  # summed log-probability, <end> included

    @property
    def mean_logprob(self) -> float:
        return self.logprob / (len(self.tokens) + 1)


def _reorder(state: State, index: torch.Tensor, keep: Callable[[str], bool] = lambda key: False) -> State:
    """Rows ``index`` of every state entry; entries for which ``keep(key)`` are passed on as they are."""
    return {k: v if keep(k) else v.index_select(0, index) for k, v in state.items()}


def _log_probs(logits: torch.Tensor, banned: tuple[int, ...]) -> torch.Tensor:
    """Log-softmax over the vocabulary with ``banned`` ids at -inf (out of place: safe under autograd)."""
    logits = logits.float()
    if banned:
        logits = logits.index_fill(1, torch.tensor(banned, device=logits.device), float("-inf"))
    return logits.log_softmax(dim=-1)


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
) -> list[Hypothesis]:
    """Best caption per image of ``feats`` (B, P, C).

    Hypotheses are ranked by summed log-probability divided by
    ``(words + 1) ** length_penalty`` (0 = plain log-probability). ``banned_ids``
    (e.g. <pad>, <start>, <unk>) are never emitted. A batch item stops once it has
    ``beam_size`` finished hypotheses; unfinished ones count at ``max_len``.
    """
    b, k = feats.size(0), beam_size
    device = feats.device
    state = _reorder(decoder.init_state(feats), torch.arange(b, device=device).repeat_interleave(k))
    tokens = torch.full((b * k,), start_id, dtype=torch.long, device=device)  # (B*K,)
    history = torch.empty((b * k, 0), dtype=torch.long, device=device)  # (B*K, t)
    scores = torch.zeros(b, k, device=device)  # (B, K)
    scores[:, 1:] = float("-inf")  # all beams start identical: keep only the first alive
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool, device=device)

    def ranking(h: Hypothesis) -> float:
        return h.logprob / (len(h.tokens) + 1) ** length_penalty

    for t in range(max_len + 1):
        logits, state = decoder.step(tokens, state)  # (B*K, V)
        logp = _log_probs(logits, banned_ids)  # (B*K, V)
        if t == max_len:  # out of room: only <end> may follow
            forced = torch.full_like(logp, float("-inf"))
            forced[:, end_id] = logp[:, end_id]
            logp = forced
        v = logp.size(1)
        cand = (scores.view(-1, 1) + logp).view(b, k * v)  # (B, K*V)
        top_scores, top_idx = cand.topk(2 * k, dim=1)  # (B, 2K): room for K ending + K going on
        beam_idx, word_idx = top_idx // v, top_idx % v  # (B, 2K) each

        next_scores = torch.full((b, k), float("-inf"), device=device)
        next_rows = torch.arange(b * k, device=device).view(b, k)  # unfilled (done) rows keep their own state
        next_words = torch.full((b, k), end_id, dtype=torch.long, device=device)
        top_scores_l, beam_l, word_l = top_scores.tolist(), beam_idx.tolist(), word_idx.tolist()
        for i in range(b):
            if done[i]:
                continue
            alive = 0
            for rank, (s, bi, wi) in enumerate(zip(top_scores_l[i], beam_l[i], word_l[i])):
                if s == float("-inf"):
                    break
                row = i * k + bi
                if wi == end_id:
                    # An ending only counts if it ranks among the K best candidates of this step.
                    if rank < k and len(finished[i]) < k:
                        finished[i].append(Hypothesis(history[row].tolist(), s))
                elif alive < k:
                    next_scores[i, alive], next_rows[i, alive], next_words[i, alive] = s, row, wi
                    alive += 1
                if alive == k and len(finished[i]) >= k:
                    break
            if len(finished[i]) >= k or alive == 0:
                done[i] = True
        if bool(done.all()):
            break
        rows = next_rows.view(-1)  # (B*K,): always a row of the same image
        state = _reorder(state, rows, keep=decoder.static_state)  # per-image entries are equal across its beams
        tokens = next_words.view(-1)
        history = torch.cat([history.index_select(0, rows), tokens.unsqueeze(1)], dim=1)
        scores = next_scores
    return [max(f, key=ranking) if f else Hypothesis([], float("-inf")) for f in finished]


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
) -> torch.Tensor:
    """Sample one caption per row of ``feats`` (N, P, C): ids (N, T), <end> included, then ``pad_id``.

    ``generator`` (else torch's global one) draws the words.

    No gradients: score the samples afterwards with ``sequence_logprob``, one
    parallel teacher-forced pass instead of a graph through every step.
    """
    n = feats.size(0)
    state = decoder.init_state(feats)
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
                     banned_ids: tuple[int, ...] = ()) -> torch.Tensor:
    """Summed log-probability (N,) of captions ``ids`` (N, T) given ``feats`` (N, P, C), with gradients."""
    inputs = torch.cat([torch.full_like(ids[:, :1], start_id), ids[:, :-1]], dim=1)  # (N, T)
    logits, _ = decoder(feats, inputs)  # (N, T, V)
    logp = _log_probs(logits.flatten(0, 1), banned_ids).view_as(logits)  # (N, T, V)
    picked = logp.gather(2, ids.unsqueeze(2)).squeeze(2)  # (N, T)
    return (picked * (ids != pad_id)).sum(dim=1)

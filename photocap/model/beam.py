"""A torch decoder under the one beam search (``photocap.decoding.beam``), and ``sample``:
multinomial sampling through the same decoder step, for self-critical training."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from photocap.decoding.beam import Hypothesis
from photocap.decoding.beam import beam_search as search
from photocap.model.decoders import ConceptInput, Decoder, State

__all__ = ["Hypothesis", "TorchSteps", "beam_search", "sample", "sequence_logprob"]


class TorchSteps:
    """A torch decoder driven by the beam search of ``photocap.decoding.beam`` (its ``Steps``)."""

    def __init__(self, decoder: Decoder, feats: torch.Tensor, concepts: ConceptInput | None = None) -> None:
        self.decoder, self.feats, self.concepts = decoder, feats, concepts
        self.state: State | None = None

    def select(self, images: np.ndarray) -> "TorchSteps":
        index = torch.from_numpy(images).to(self.feats.device)
        return TorchSteps(self.decoder, self.feats.index_select(0, index),
                          self.concepts.rows(index) if self.concepts is not None else None)

    def start(self, per: int) -> None:
        self.state = self.decoder.rows_per_image(self.decoder.init_state(self.feats, self.concepts), per)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        logits, self.state = self.decoder.step(torch.from_numpy(tokens).to(self.feats.device), self.state)
        return logits.float().cpu().numpy()  # (N, V')

    def keep(self, rows: np.ndarray, images: np.ndarray | None) -> None:
        device = self.feats.device
        self.state = _reorder(self.state, torch.from_numpy(rows).to(device), self.decoder.static_state,
                              None if images is None else torch.from_numpy(images).to(device))


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


@torch.no_grad()
def beam_search(decoder: Decoder, feats: torch.Tensor, *, concepts: ConceptInput | None = None,
                **rules) -> list[Hypothesis]:
    """Best caption per image of ``feats`` (B, P, C) (and ``concepts``, for a decoder that reads them):
    ``photocap.decoding.beam.beam_search`` (its ``rules``) over this torch decoder."""
    return search(TorchSteps(decoder, feats, concepts), feats.size(0), **rules)


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

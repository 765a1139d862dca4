"""What every decoder shares: the concepts a decoder may read, and the interface beam search and
training drive (see the package docstring for shapes and the step-wise state)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ConceptInput:
    """A batch's top concepts, best first: what a concept-aware decoder reads beside the grid."""

    words: torch.Tensor  # (B, K) long: indices into the model's concept set
    scores: torch.Tensor  # (B, K) float: each word's summed ImageNet class probability
    # (B, S) unit rows: the photo in the sentence model's space (its image embedding), or, for a
    # caption trained without its photo, that caption's own sentence vector with noise. None: not read.
    vector: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.words.size(0)

    def _each(self, fn) -> "ConceptInput":
        """``fn`` applied to every per-photo tensor (the rows of all three line up)."""
        return ConceptInput(fn(self.words), fn(self.scores), None if self.vector is None else fn(self.vector))

    def rows(self, index: torch.Tensor | slice) -> "ConceptInput":
        return self._each(lambda t: t[index])

    def repeat_interleave(self, n: int) -> "ConceptInput":
        return self._each(lambda t: t.repeat_interleave(n, dim=0))

    def to(self, device: torch.device | str) -> "ConceptInput":
        vector = None if self.vector is None else self.vector.to(device).float()
        return ConceptInput(self.words.to(device), self.scores.to(device).float(), vector)

    def top(self, k: int) -> "ConceptInput":
        return ConceptInput(self.words[:, :k], self.scores[:, :k], self.vector)


class Decoder(nn.Module):
    """Interface shared by the decoders."""

    def static_state(self, key: str) -> bool:
        """Whether ``state[key]`` depends only on the image, never on the words decoded so far:
        ``step`` then reads it once per image, for all of the image's rows (module docstring)."""
        return False

    def rows_per_image(self, state: State, per: int) -> State:
        """A fresh state (one row per image) with ``per`` rows per image: the per-row entries
        repeated, the per-image ones (``static_state``) as they are."""
        if per == 1:
            return state
        return {k: v if self.static_state(k) else v.repeat_interleave(per, dim=0) for k, v in state.items()}

    uses_concepts = False  # whether forward / init_state need ``concepts``

    def forward(self, feats: torch.Tensor, inputs: torch.Tensor, concepts: ConceptInput | None = None,
                per_image: int = 1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Teacher forcing: feats (B, P, C), inputs (B * per_image, T) token ids, each image's
        ``per_image`` captions consecutive (several samples of one photo: its grid is read once)
        -> logits (B * per_image, T, V), extras."""
        raise NotImplementedError

    def init_state(self, feats: torch.Tensor, concepts: ConceptInput | None = None) -> State:
        raise NotImplementedError

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """tokens (N,) last emitted ids -> logits (N, V) for the next token, new state."""
        raise NotImplementedError

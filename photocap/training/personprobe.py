"""The person probe behind the person gate: does the image embedding say a person is in the photo?

Logistic regression on the unit vectors of the image embedding, fitted on the training photos
(a person if most of a photo's captions name one) and on caption text (the caption's own sentence
vector with the same noise the decoder trains on, labelled by whether it names a person), so it has
seen the everyday scenes without people that Flickr8k lacks. ``ModelConfig.person_gate`` then
bans the words for people from the captions of photos it scores below the gate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from photocap.decoding.people import PERSON_WORDS
from photocap.decoding.vocab import tokenize

# Pronouns say little on their own ("its", "their" of a dog); the nouns decide the label.
_LABEL_WORDS = frozenset(PERSON_WORDS) - {"he", "she", "his", "her", "they", "their", "team", "cook"}


def names_person(caption: str) -> bool:
    return not _LABEL_WORDS.isdisjoint(tokenize(caption))


def fit_person_probe(photo_vectors: torch.Tensor, photo_captions: Sequence[Sequence[str]],
                     text_vectors: torch.Tensor | None = None, text_captions: Sequence[str] = (),
                     *, text_noise: float = 0.0, text_weight: float = 0.5, l2: float = 1e-3,
                     seed: int = 0) -> torch.Tensor:
    """Weights (D + 1,) (the last is the bias) of the probe; photo rows weigh 1, text rows ``text_weight``."""
    xs = [F.normalize(photo_vectors.float(), dim=-1)]
    ys = [torch.tensor([sum(map(names_person, caps)) * 2 > len(caps) for caps in photo_captions], dtype=torch.float32)]
    ws = [torch.ones(len(photo_captions))]
    if text_vectors is not None and len(text_captions):
        noisy = text_vectors.float() + text_noise * torch.randn(text_vectors.shape,
                                                                 generator=torch.Generator().manual_seed(seed))
        xs.append(F.normalize(noisy, dim=-1))
        ys.append(torch.tensor([names_person(c) for c in text_captions], dtype=torch.float32))
        ws.append(torch.full((len(text_captions),), text_weight))
    x, y, w = torch.cat(xs), torch.cat(ys), torch.cat(ws)
    weights = torch.zeros(x.size(1) + 1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights], max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ weights[:-1] + weights[-1]
        loss = F.binary_cross_entropy_with_logits(logits, y, weight=w) + l2 * weights[:-1].pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weights.detach()

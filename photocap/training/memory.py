"""The caption memory of DeCap's bridge (Li et al. 2023): sentence vectors of real captions that a
photo's image embedding is moved towards before the decoder reads it (``memory_mix`` in
decoding/config.py), so it reads a vector like those of the caption text it learnt from.

Drawn from both kinds of caption the decoder learnt: the photos' own captions (Flickr8k's: people,
dogs, outdoor scenes) and the caption text (COCO's rooms, food, vehicles). A memory of caption text
alone pulls every photo onto COCO's sentences (docs/decisions/everyday-captions.md). Works on
values handed in: the vectors come from the caller's sentence model (training never imports the
meaning layer).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from photocap.training.textdata import Embed


def caption_memory(photo_captions: Sequence[str], text_vectors: torch.Tensor | None, embed: Embed, *,
                   photo_rows: int, text_rows: int, seed: int = 0) -> torch.Tensor:
    """(M, D) unit rows: ``photo_rows`` of ``photo_captions`` (embedded by ``embed``) and ``text_rows``
    of ``text_vectors`` (N, D), each drawn at random without repeats (seeded; all when fewer)."""
    generator = torch.Generator().manual_seed(seed)
    parts = []
    if photo_rows and photo_captions:
        picked = torch.randperm(len(photo_captions), generator=generator)[:photo_rows].tolist()
        parts.append(torch.as_tensor(embed([photo_captions[i] for i in picked])).float())
    if text_rows and text_vectors is not None and len(text_vectors):
        parts.append(text_vectors[torch.randperm(len(text_vectors), generator=generator)[:text_rows]].float())
    if not parts:
        raise ValueError("a caption memory needs photo captions or caption text")
    return F.normalize(torch.cat(parts), dim=-1)

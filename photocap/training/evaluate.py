"""The model on cached features: encoding a split into the feature cache, captioning it, and
scoring the captions against its references (dev scoring in training, ``photocap evaluate``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from photocap.model.decoders import ConceptInput
from photocap.model.network import CaptionModel, Decoded
from photocap.training.config import Progress
from photocap.training.datasets import CaptionedImage
from photocap.training.features import FeatureCache, encoder_fingerprint


class _Encoded(torch.nn.Module):
    """What the feature cache stores for a model: grid features, or the trunk's output when fine-tuning."""

    def __init__(self, encoder: torch.nn.Module, top_blocks: int) -> None:
        super().__init__()
        self.encoder, self.top_blocks = encoder, top_blocks

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.top_blocks:
            return self.encoder.trunk(images, self.top_blocks)  # (B, P, C')
        return self.encoder(images)  # (B, P, C)


def grid_features(model: CaptionModel, cached: torch.Tensor) -> torch.Tensor:
    """Cached rows (B, P, C or C') -> the decoder's grid features (B, P, C)."""
    k = model.encoder.split_blocks
    return model.encoder.top(cached, k) if k else cached


def split_concepts(model: CaptionModel, cached: torch.Tensor, device: torch.device,
                   batch_size: int = 256) -> ConceptInput | None:
    """Each cached image's concepts (N, R), on ``device``; None for a model without a concept head."""
    if model.concepts is None:
        return None
    parts = [model.concepts_from_trunk(cached[i : i + batch_size].to(device).float())
             for i in range(0, len(cached), batch_size)]
    if not parts:
        return ConceptInput(torch.zeros(0, 0, dtype=torch.long, device=device), torch.zeros(0, 0, device=device))
    vectors = torch.cat([c.vector for c in parts]) if parts[0].vector is not None else None
    return ConceptInput(torch.cat([c.words for c in parts]), torch.cat([c.scores for c in parts]), vectors)


def encode_split_features(model: CaptionModel, items: Sequence[CaptionedImage], cache_root: Path,
                          device: torch.device, on_progress: Progress | None = None,
                          phase: str = "features") -> tuple[list[CaptionedImage], torch.Tensor]:
    """Cached features (N, P, C) float16 for ``items``; unreadable images are dropped.

    With ``fine_tune_blocks`` they are the frozen trunk's output; see :func:`grid_features`."""
    cfg = model.cfg
    k = model.encoder.split_blocks
    cache = FeatureCache(cache_root, encoder_fingerprint(model.encoder, cfg.encoder, cfg.image_size, k))

    def report(done: int, total: int) -> None:
        if on_progress:
            on_progress({"phase": phase, "done": done, "total": total})

    failed = set(cache.build([it.image for it in items], _Encoded(model.encoder, k), cfg.image_size,
                             device=device, on_progress=report))
    kept = [it for it in items if it.image not in failed]
    if on_progress and failed:
        on_progress({"phase": "warning", "message": f"{len(failed)} unreadable images skipped",
                     "examples": [str(p) for p in list(failed)[:3]]})
    return kept, cache.load([it.image for it in kept])


def caption_features(model: CaptionModel, items: Sequence[CaptionedImage], feats: torch.Tensor,
                     *, beam: int | None, device: torch.device, batch_size: int = 100,
                     length_penalty: float | None = None, concept_force: float | None = None,
                     concept_bonus: float | None = None) -> dict[str, Decoded]:
    """Caption cached ``feats`` with beam search: item key -> :class:`Decoded`.

    ``beam`` / ``length_penalty`` / ``concept_force`` / ``concept_bonus``: None = the model's own."""
    model.eval()
    out: dict[str, Decoded] = {}
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            cached = feats[start : start + batch_size].to(device).float()
            chunk, concepts = model.from_trunk(cached)  # (b, P, C): the encoder's top runs once for both
            for item, decoded in zip(items[start : start + batch_size],
                                     model.decode_features(chunk, beam, length_penalty, concepts, concept_force,
                                                           concept_bonus)):
                out[item.key] = decoded
    return out


def evaluate_features(model: CaptionModel, items: Sequence[CaptionedImage], feats: torch.Tensor,
                      *, beam: int | None, device: torch.device, batch_size: int = 100,
                      tokenize: str = "simple", metrics: Sequence[str] = ("BLEU", "CIDEr"),
                      length_penalty: float | None = None, concept_force: float | None = None,
                      concept_bonus: float | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """Caption ``feats`` with beam search and score against the items' references.

    ``beam`` / ``length_penalty`` / ``concept_force`` / ``concept_bonus``: None = the model's own."""
    from photocap.training.metrics import score_captions

    decoded = caption_features(model, items, feats, beam=beam, device=device, batch_size=batch_size,
                               length_penalty=length_penalty, concept_force=concept_force,
                               concept_bonus=concept_bonus)
    predictions = {key: d.text for key, d in decoded.items()}
    references = {it.key: list(it.captions) for it in items}
    return score_captions(predictions, references, metrics=tuple(metrics), tokenize=tokenize), predictions


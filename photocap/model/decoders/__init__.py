"""Caption decoders. Each one is trained with teacher forcing through ``forward`` and
decoded one token at a time through ``init_state`` / ``step`` (used by beam.py).

Shapes: B batch, P grid positions (h*w), C feature channels, T caption steps,
V vocabulary size. ``feats`` is always the encoder grid (B, P, C).

The transformer can also see the photo's concepts (``ConceptInput``: its top-K
concept words and their scores) as K extra memory tokens, and copy one of them
into the caption: its logits then cover V + 2K ids, where V + k copies concept k
and V + K + k its plural (see slots.py).

State for step-wise decoding is a dict of tensors, so beam search can reorder any
decoder's state with ``index_select``. ``step`` runs N rows (beams): the rows of one
image are consecutive and each image has the same number G of them. Entries a decoder
names in ``static_state`` depend only on the image (the image grid, attention keys):
they are held once per image (first dim A = N / G) and never copied per beam; every
other entry has one row per beam (first dim N). ``init_state`` returns one row per
image (G = 1); beam search repeats the per-row entries for its beams.

One family a module: ``base.py`` (ConceptInput, the Decoder interface), ``lstm.py``,
``transformer.py``, ``loss.py``.
"""

from __future__ import annotations

from photocap.decoding.config import ModelConfig
from photocap.model.decoders.base import ConceptInput, Decoder, State
from photocap.model.decoders.loss import caption_loss
from photocap.model.decoders.lstm import AdditiveAttention, ShowAttendTellDecoder, ShowTellDecoder
from photocap.model.decoders.transformer import TransformerDecoder

__all__ = ["AdditiveAttention", "ConceptInput", "Decoder", "ShowAttendTellDecoder", "ShowTellDecoder", "State",
           "TransformerDecoder", "build_decoder", "caption_loss"]


def build_decoder(cfg: ModelConfig, concept_groups: list[int] | None = None) -> Decoder:
    """``concept_groups``: per concept word its group id, for a decoder that reads concepts."""
    if cfg.vocab_size <= 0:
        raise ValueError("config.vocab_size must be set from the vocabulary")
    if cfg.arch == "show-tell":
        return ShowTellDecoder(cfg)
    if cfg.arch == "show-attend-tell":
        return ShowAttendTellDecoder(cfg)
    return TransformerDecoder(cfg, concept_groups=concept_groups)

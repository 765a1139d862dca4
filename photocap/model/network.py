"""CaptionModel: encoder + decoder + vocabulary, the unit that is trained and saved."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from photocap.model.beam import Hypothesis, beam_search
from photocap.model.config import ModelConfig
from photocap.model.decoders import build_decoder
from photocap.model.encoder import ImageEncoder
from photocap.model.vocab import Vocabulary


class CaptionModel(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab: Vocabulary, pretrained_encoder: bool = False,
                 encoder_weights: str | Path | None = None) -> None:
        """``encoder_weights``: ImageNet state_dict file for the encoder, read only when
        ``pretrained_encoder`` (required for resnet50 / inception-v3); never stored in the model."""
        super().__init__()
        cfg.validate()
        cfg.vocab_size = len(vocab)
        self.cfg = cfg
        self.vocab = vocab
        self.encoder = ImageEncoder(cfg.encoder, pretrained=pretrained_encoder,
                                    fine_tune_blocks=cfg.fine_tune_blocks, weights_path=encoder_weights)
        cfg.feature_dim = self.encoder.out_channels
        self.decoder = build_decoder(cfg)

    @property
    def banned_ids(self) -> tuple[int, ...]:
        v = self.vocab
        return (v.pad_id, v.start_id, v.unk_id)

    def forward(self, images: torch.Tensor, inputs: torch.Tensor):
        """images (B, 3, S, S), inputs (B, T) -> logits (B, T, V), extras."""
        return self.decoder(self.encoder(images), inputs)

    @torch.no_grad()
    def decode_features(self, feats: torch.Tensor, beam_size: int | None = None,
                        length_penalty: float | None = None) -> list[tuple[str, float]]:
        """Grid features (B, P, C) -> [(caption, mean log-prob per token)] via beam search.

        ``beam_size`` / ``length_penalty`` default to the model's own (``cfg.beam_size``,
        ``cfg.length_penalty``)."""
        hyps: list[Hypothesis] = beam_search(
            self.decoder, feats, start_id=self.vocab.start_id, end_id=self.vocab.end_id,
            banned_ids=self.banned_ids, beam_size=self.cfg.beam_size if beam_size is None else beam_size,
            max_len=self.cfg.max_len,
            length_penalty=self.cfg.length_penalty if length_penalty is None else length_penalty,
        )
        return [(self.vocab.decode(h.tokens), h.mean_logprob) for h in hyps]

    @torch.no_grad()
    def caption(self, images: torch.Tensor, beam_size: int | None = None,
                length_penalty: float | None = None) -> list[tuple[str, float]]:
        """Images (B, 3, S, S) in [-1, 1] -> [(caption, mean log-prob per token)]."""
        return self.decode_features(self.encoder(images), beam_size, length_penalty)

"""The bundled model's recipe: what `photocap train` uses when no --config is given.

Two stages (models/MODEL_CARD.md): ``default_recipe`` trains the encoder's top and a decoder on
Flickr8k's photos; then ``everyday_recipe`` trains the bundled decoder on that encoder (frozen),
from Flickr8k's photos and caption text without photos (``photocap train --text``)."""

from __future__ import annotations

from photocap.decoding.config import ModelConfig
from photocap.training.config import TrainConfig


def default_recipe() -> tuple[ModelConfig, TrainConfig]:
    """Model and training settings of the bundled default model (see models/MODEL_CARD.md)."""
    model = ModelConfig(
        encoder="efficientnet-lite2", fine_tune_blocks=1, arch="transformer",
        d_model=256, num_layers=3, num_heads=4, ff_dim=1024, memory_layers=1, transformer_dropout=0.2,
        beam_size=3, length_penalty=1.0,  # chosen on dev: CIDEr 0.559 against 0.540 with plain log-prob
        concept_head=True, concept_slots=5,  # the decoder reads and may copy the photo's top 5 concepts
        concept_group=False,  # v6: a concept token is its word and score only (dev BLEU-4 0.228 against 0.219)
        no_repeat_ngram=3,
    )
    train = TrainConfig(
        epochs=4, batch_size=64, lr=5e-4, warmup_steps=500, label_smoothing=0.1, patience=2,
        scst_epochs=1, scst_lr=5e-5, scst_samples=10, scst_temperature=0.7,
        scst_contrast=0.5,  # distinct captions: 810 of 1,000 dev photos against 764, dev CIDEr the same
    )
    return model, train


def everyday_recipe() -> tuple[ModelConfig, TrainConfig]:
    """The second stage: a decoder that reads the image embedding, trained on photos and caption text."""
    model, _ = default_recipe()
    model.fine_tune_blocks = 0  # the first stage's encoder, frozen: its image-embedding head stays valid
    model.sentence_dim, model.sentence_tokens = 384, 4  # all-MiniLM-L6-v2's space, as 4 memory tokens
    train = TrainConfig(
        epochs=2, batch_size=64, lr=5e-4, warmup_steps=500, label_smoothing=0.1, patience=2, min_freq=5,
        text_share=0.7, text_noise=0.1, text_keep=0.7, grid_dropout=0.5,
    )
    return model, train

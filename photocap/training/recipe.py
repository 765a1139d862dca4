"""The bundled model's recipe: what `photocap train` uses when no --config is given."""

from __future__ import annotations

from photocap.model.config import ModelConfig
from photocap.training.loop import TrainConfig


def default_recipe() -> tuple[ModelConfig, TrainConfig]:
    """Model and training settings of the bundled default model (see models/MODEL_CARD.md)."""
    model = ModelConfig(encoder="efficientnet-lite2", arch="transformer")
    train = TrainConfig(epochs=12, batch_size=64, lr=3e-4, warmup_steps=500, label_smoothing=0.1)
    return model, train

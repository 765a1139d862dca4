"""The training settings (one dataclass, read from a recipe or the command line) and the progress
callback's type: shared by the cross-entropy loop and self-critical training."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Progress = Callable[[dict[str, Any]], None]


@dataclass
class TrainConfig:
    epochs: int = 15
    batch_size: int = 64
    lr: float = 4e-4
    encoder_lr: float = 1e-4  # for the encoder's top blocks, when fine_tune_blocks > 0
    weight_decay: float = 0.0
    warmup_steps: int = 500
    label_smoothing: float = 0.1
    attention_reg: float = 1.0  # doubly stochastic attention (show-attend-tell only)
    grad_clip: float = 5.0
    patience: int = 4  # epochs without a better dev CIDEr before stopping
    min_freq: int = 5  # words seen fewer times become <unk>
    seed: int = 0
    val_beam: int | None = None  # beam width for dev scoring; None = the model's own beam_size
    val_images: int = 0  # 0 = the whole dev split
    checkpoint_every: int = 500  # steps between resume checkpoints (and at every epoch end)
    scst_epochs: int = 0  # self-critical (CIDEr reward) epochs after cross-entropy training
    scst_lr: float = 2e-5
    scst_samples: int = 5
    scst_temperature: float = 0.7  # below 1 keeps label smoothing's long tail out of the samples
    # Contrastive reward: minus this times a sample's best CIDEr-D against the other photos of its
    # batch, so a caption that fits every dog photo earns less than one that fits only its own.
    scst_contrast: float = 0.0
    max_steps: int = 0  # stop after this many steps in total (0 = no limit); for quick runs
    # Caption text without photos (textdata.py), for a decoder that reads the image embedding:
    text_share: float = 1.0  # text captions per epoch, as a share of the text corpus (drawn anew each epoch)
    text_noise: float = 0.1  # noise (std per dimension) on a text caption's sentence vector
    text_keep: float = 0.7  # probability that a concept word a text caption names is among its slots
    grid_dropout: float = 0.0  # share of photo batches trained without the grid (as a text caption is)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**data)


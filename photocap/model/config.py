"""ModelConfig: everything needed to rebuild a captioning network, serialised as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

CONFIG_VERSION = 1
ARCHES = ("show-tell", "show-attend-tell", "transformer")


@dataclass
class ModelConfig:
    version: int = CONFIG_VERSION
    model_id: str = "photocap-untrained"

    # Encoder
    encoder: str = "efficientnet-lite0"  # efficientnet-lite0 | efficientnet-lite1 | efficientnet-lite2
    image_size: int = 224  # photos are squashed to image_size x image_size (as Flickr8k was)
    feature_dim: int = 1280  # channels of the encoder's feature grid
    fine_tune_blocks: int = 0  # encoder blocks trained with the decoder (0 = frozen encoder)

    # Decoder
    arch: str = "show-attend-tell"  # show-tell | show-attend-tell | transformer
    vocab_size: int = 0  # set from the vocabulary
    embed_dim: int = 512  # word embedding (and show-tell image embedding) size
    hidden_dim: int = 512  # LSTM state size
    attention_dim: int = 512  # additive-attention hidden size
    dropout: float = 0.5  # before the output layer (and on the show-tell image embedding)

    # Transformer decoder
    d_model: int = 512
    num_layers: int = 3
    num_heads: int = 8
    ff_dim: int = 2048
    memory_layers: int = 1  # self-attention layers over the image grid before decoding
    transformer_dropout: float = 0.1

    # Decoding
    max_len: int = 22  # maximum caption length in words (without <start>/<end>)

    def __post_init__(self) -> None:
        if self.arch not in ARCHES:
            raise ValueError(f"unknown decoder arch {self.arch!r}; choose one of {', '.join(ARCHES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from JSON data; unknown keys are an error (they mean a newer or foreign file)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config fields: {', '.join(unknown)}")
        version = data.get("version", CONFIG_VERSION)
        if version > CONFIG_VERSION:
            raise ValueError(
                f"model config version {version} is newer than this photocap understands "
                f"({CONFIG_VERSION}); upgrade photocap"
            )
        return cls(**data)

"""ModelConfig: everything needed to rebuild a captioning network, serialised as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

CONFIG_VERSION = 2  # 2: decoding defaults (beam_size, length_penalty)
ARCHES = ("show-tell", "show-attend-tell", "transformer")
ATTENTIONS = ("soft", "hard")
# Encoders that only work at one input size (the resolution their ImageNet weights need).
FIXED_IMAGE_SIZE = {"inception-v3": 299}


@dataclass
class ModelConfig:
    version: int = CONFIG_VERSION
    model_id: str = "photocap-untrained"

    # Encoder
    # efficientnet-lite0 | efficientnet-lite1 | efficientnet-lite2 (weights from their pip packages)
    # | resnet50 | inception-v3 (torchvision architectures; ImageNet weights from a user file, see encoders_tv.py)
    encoder: str = "efficientnet-lite0"
    image_size: int = 224  # photos are squashed to image_size x image_size (as Flickr8k was); inception-v3: 299
    feature_dim: int = 1280  # channels of the encoder's feature grid (set from the encoder: 1280 Lite, 2048 others)
    fine_tune_blocks: int = 0  # encoder blocks trained with the decoder (0 = frozen encoder)

    # Decoder
    arch: str = "show-attend-tell"  # show-tell | show-attend-tell | transformer
    vocab_size: int = 0  # set from the vocabulary
    embed_dim: int = 512  # word embedding (and show-tell image embedding) size
    hidden_dim: int = 512  # LSTM state size
    attention_dim: int = 512  # additive-attention hidden size
    # show-attend-tell only: "soft" (expected context) | "hard" (one sampled location, REINFORCE;
    # Xu et al. 2015 sec. 4.1; at inference the most likely location)
    attention: str = "soft"
    dropout: float = 0.5  # before the output layer (and on the show-tell image embedding)

    # Transformer decoder
    d_model: int = 512
    num_layers: int = 3
    num_heads: int = 8
    ff_dim: int = 2048
    memory_layers: int = 1  # self-attention layers over the image grid before decoding
    transformer_dropout: float = 0.1

    # Decoding: the model's own defaults, chosen on the dev split and stored with the weights so that
    # every front end decodes it the same way (a caller may still pass its own)
    max_len: int = 22  # maximum caption length in words (without <start>/<end>)
    beam_size: int = 3  # beam width (1 = greedy)
    length_penalty: float = 0.0  # beams ranked by log-prob / (words + 1) ** length_penalty (0 = plain sum)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError for settings that do not go together (call again after editing fields)."""
        if self.arch not in ARCHES:
            raise ValueError(f"unknown decoder arch {self.arch!r}; choose one of {', '.join(ARCHES)}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {self.attention!r}; choose one of {', '.join(ATTENTIONS)}")
        if self.attention == "hard" and self.arch != "show-attend-tell":
            raise ValueError(f"hard attention needs the show-attend-tell decoder, not {self.arch}")
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, not {self.beam_size}")
        if not 0.0 <= self.length_penalty <= 2.0:
            raise ValueError(f"length_penalty must be between 0 and 2, not {self.length_penalty}")
        size = FIXED_IMAGE_SIZE.get(self.encoder)
        if size is not None and self.image_size != size:
            raise ValueError(f"the {self.encoder} encoder needs image_size {size}, not {self.image_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from JSON data; unknown keys are an error (they mean a newer or foreign file)."""
        version = data.get("version", CONFIG_VERSION)
        if version > CONFIG_VERSION:
            raise ValueError(
                f"model config version {version} is newer than this photocap understands "
                f"({CONFIG_VERSION}); upgrade photocap"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config fields: {', '.join(unknown)}")
        # An older file lacks the newer fields; their defaults decode it as before.
        return cls(**{**data, "version": CONFIG_VERSION})

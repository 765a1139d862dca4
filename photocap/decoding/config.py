"""ModelConfig: everything needed to rebuild a captioning network, serialised as JSON."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

CONFIG_VERSION = 5  # 2: decoding defaults (beam_size, length_penalty); 3: concepts, no-repeat n-grams;
# 4: concept_group (the concept tokens may leave out their group embedding); 5: the sentence-space
# vector (sentence_dim, sentence_tokens, decode_grid) and the person gate
ARCHES = ("show-tell", "show-attend-tell", "transformer")
ATTENTIONS = ("soft", "hard")
# Encoders that only work at one input size (the resolution their ImageNet weights need).
FIXED_IMAGE_SIZE = {"inception-v3": 299}


@dataclass(frozen=True)
class Rule:
    """What one config field may hold: its type, and a range (for text: its length) or choices."""

    kind: type  # bool, int, float or str
    low: float = 0
    high: float = math.inf
    choices: tuple[str, ...] = ()

    def check(self, name: str, value: Any) -> None:
        """ValueError naming the field if ``value`` breaks the rule."""
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, not {shown}")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.kind is float else self.kind):
            kind = {int: "a whole number", float: "a number", str: "text"}[self.kind]
            raise ValueError(f"{name} must be {kind}, not {shown}")
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"unknown {name} {shown}; choose one of {', '.join(self.choices)}")
            return
        if self.kind is float and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, not {shown}")
        size, unit = (len(value), " characters long") if self.kind is str else (value, "")
        if not self.low <= size <= self.high:
            low, high = (f"{int(x):,}" if self.kind is not float else f"{x:g}" for x in (self.low, self.high))
            raise ValueError(f"{name} must be {low} to {high}{unit}, not {shown}")


# Every field's rule: a model file is untrusted input, and a value out of range would crash
# or exhaust memory when the network is built or decodes (a new field adds its line here;
# tests/test_checkpoint.py checks that every field has one). The bounds are far beyond any
# sensible model but small enough to build: the weights must still match the config.
RULES: dict[str, Rule] = {
    "version": Rule(int, 1, CONFIG_VERSION),
    "model_id": Rule(str, 1, 200),
    "encoder": Rule(str, 1, 64),  # checked against the known encoders where they are built
    "image_size": Rule(int, 32, 1024),
    "feature_dim": Rule(int, 1, 8192),
    "fine_tune_blocks": Rule(int, 0, 64),
    "concept_head": Rule(bool),
    "arch": Rule(str, choices=ARCHES),
    "vocab_size": Rule(int, 0, 1_000_000),
    "embed_dim": Rule(int, 1, 8192),
    "hidden_dim": Rule(int, 1, 8192),
    "attention_dim": Rule(int, 1, 8192),
    "attention": Rule(str, choices=ATTENTIONS),
    "dropout": Rule(float, 0.0, 1.0),
    "d_model": Rule(int, 1, 8192),
    "num_layers": Rule(int, 1, 64),
    "num_heads": Rule(int, 1, 128),
    "ff_dim": Rule(int, 1, 32768),
    "memory_layers": Rule(int, 0, 64),
    "transformer_dropout": Rule(float, 0.0, 1.0),
    "concept_slots": Rule(int, 0, 64),
    "concept_group": Rule(bool),
    "concept_words": Rule(int, 0, 100_000),
    "sentence_dim": Rule(int, 0, 8192),
    "sentence_tokens": Rule(int, 1, 64),
    "sentence_model": Rule(str, 0, 200),
    "decode_grid": Rule(bool),
    "memory_size": Rule(int, 0, 1_000_000),
    "memory_temperature": Rule(float, 0.0, 1.0),
    "memory_mix": Rule(float, 0.0, 1.0),
    "person_gate": Rule(float, 0.0, 1.0),
    "max_len": Rule(int, 1, 200),
    "beam_size": Rule(int, 1, 20),
    "length_penalty": Rule(float, 0.0, 2.0),
    "no_repeat_ngram": Rule(int, 0, 16),
    "concept_force": Rule(float, 0.0, 1.0),
    "concept_bonus": Rule(float, 0.0, 100.0),
}


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
    # Concepts: the encoder also runs its own ImageNet classifier, through a frozen copy of the
    # original top blocks (the tuned ones no longer feed the classifier what it was trained on),
    # and reports the photo's top concept words (imaging/concepts.py). EfficientNet-Lite only.
    concept_head: bool = False

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
    # Transformer only, needs concept_head: the photo's top-N concepts become N extra memory tokens,
    # and the decoder may copy one of them (singular or plural) into the caption, so it can name
    # things its captions never paired with such photos (0 = the decoder sees the grid only).
    concept_slots: int = 0
    concept_words: int = 0  # set from the model's concept set (the words its concepts can be)
    # Each concept token also carries its word's group (animal, food, vehicle, ...). False leaves
    # that out (measured once on Flickr8k dev: BLEU-4 0.228 against 0.219, see the model card).
    concept_group: bool = True
    # Transformer only, needs concept_head: the photo's vector in the sentence model's space (an
    # image-embedding head on the encoder's outputs, model/embedding.py) becomes sentence_tokens more
    # memory tokens. A caption trained from text alone has no photo; the decoder then reads that
    # caption's own sentence vector with noise (CapDec, Nukrai et al. 2022), so it learns from
    # caption text how people describe what the vector says is there. 0 = no vector.
    sentence_dim: int = 0
    sentence_tokens: int = 1
    sentence_model: str = ""  # the sentence model whose space that is (search compares its vectors with queries)
    # Whether the decoder reads the encoder's grid when it captions a photo. A model trained on
    # text too may caption better from the vector and concepts alone (chosen on dev).
    decode_grid: bool = True
    # DeCap's bridge (Li et al. 2023): the decoder reads a photo's image embedding moved towards the
    # softmax-weighted mean of memory_size caption vectors stored with the model (temperature
    # memory_temperature), a vector like those of the text it learnt from: memory_mix of that mean
    # and the rest the photo's own vector (1 = the mean alone). Search and the person gate read the
    # photo's own vector. 0 = off.
    memory_size: int = 0
    memory_temperature: float = 0.0
    memory_mix: float = 1.0

    # Decoding: the model's own defaults, chosen on the dev split and stored with the weights so that
    # every front end decodes it the same way (a caller may still pass its own)
    max_len: int = 22  # maximum caption length in words (without <start>/<end>)
    beam_size: int = 3  # beam width (1 = greedy)
    length_penalty: float = 0.0  # beams ranked by log-prob / (words + 1) ** length_penalty (0 = plain sum)
    no_repeat_ngram: int = 3  # a caption never repeats a phrase of this many words (0 = allowed)
    # Constrained beam search: when the photo's top concept scores at least this, beam search also
    # looks for the best caption that names it (copy models: the concept itself; others: its word,
    # if the vocabulary has it). 0 = off.
    concept_force: float = 0.0
    # ... and that caption is kept if its rank plus concept_bonus x the concept's score is at least
    # the best other caption's (ranks are mean log-probabilities per word with length_penalty 1):
    # how much a sure concept is worth. 0 = always keep it (hard constraint).
    concept_bonus: float = 0.0
    # A caption names a person only with evidence of one: the words of people (man, girl, player,
    # ...) are banned from a photo whose person probability (the image embedding read by the
    # person probe stored with the model) is below this. 0 = off.
    person_gate: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field for a value out of :data:`RULES` or settings that
        do not go together (call again after editing fields)."""
        for f in fields(self):
            rule = RULES.get(f.name)
            if rule is not None:
                rule.check(f.name, getattr(self, f.name))
        if self.attention == "hard" and self.arch != "show-attend-tell":
            raise ValueError(f"hard attention needs the show-attend-tell decoder, not {self.arch}")
        if self.arch == "transformer" and self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of num_heads ({self.num_heads})")
        if self.concept_head and not self.encoder.startswith("efficientnet-lite"):
            raise ValueError(f"concept_head needs an EfficientNet-Lite encoder (its ImageNet classifier ships), "
                             f"not {self.encoder}")
        if self.concept_slots and not (self.concept_head and self.arch == "transformer"):
            raise ValueError("concept_slots needs concept_head and the transformer decoder")
        if self.sentence_dim and not (self.concept_head and self.arch == "transformer"):
            raise ValueError("sentence_dim needs concept_head and the transformer decoder")
        if self.memory_size and not (self.sentence_dim and self.memory_temperature):
            raise ValueError("memory_size needs sentence_dim and a memory_temperature")
        if self.person_gate and not self.sentence_dim:
            raise ValueError("person_gate needs sentence_dim (the gate reads the image embedding)")
        if self.concept_force and not self.concept_head:
            raise ValueError("concept_force needs concept_head")
        size = FIXED_IMAGE_SIZE.get(self.encoder)
        if size is not None and self.image_size != size:
            raise ValueError(f"the {self.encoder} encoder needs image_size {size}, not {self.image_size}")

    def without_unsupported_concepts(self) -> list[str]:
        """Turn off the concept settings the encoder or decoder cannot have (after changing
        either, e.g. the recipe with another encoder); return what was turned off."""
        dropped = []
        if self.concept_head and not self.encoder.startswith("efficientnet-lite"):
            self.concept_head, self.concept_force = False, 0.0
            dropped.append(f"concepts (the {self.encoder} encoder has no ImageNet classifier here)")
        if self.concept_slots and not (self.concept_head and self.arch == "transformer"):
            self.concept_slots = 0
            dropped.append(f"reading concepts in the decoder (the {self.arch} decoder does not)")
        return dropped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from JSON data; unknown keys are an error (they mean a newer or foreign file)."""
        if not isinstance(data, dict):
            raise ValueError(f"the model config must be a JSON object, not {type(data).__name__}")
        version = data.get("version", CONFIG_VERSION)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError(f"version must be a whole number, not {version!r:.60}")
        if version > CONFIG_VERSION:
            raise ValueError(
                f"model config version {version} is newer than this photocap understands "
                f"({CONFIG_VERSION}); upgrade photocap"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config fields: {', '.join(unknown)}")
        # An older file lacks the newer fields; these values decode it as before.
        legacy = {"no_repeat_ngram": 0} if version < 3 else {}
        return cls(**{**legacy, **data, "version": CONFIG_VERSION})

"""CaptionModel: encoder + decoder + vocabulary (+ concept set), the unit that is trained and saved."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from photocap.decoding.captions import REPORTED_CONCEPTS, Decoded, PhotoConcepts, decode, special_ids
from photocap.decoding.config import ModelConfig
from photocap.decoding.slots import render
from photocap.decoding.vocab import Vocabulary
from photocap.imaging.concepts import ConceptSet, ConceptWord
from photocap.model.beam import TorchSteps
from photocap.model.decoders import ConceptInput, build_decoder
from photocap.model.encoder import ImageEncoder

__all__ = ["CaptionModel", "Decoded", "REPORTED_CONCEPTS"]


class CaptionModel(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab: Vocabulary, pretrained_encoder: bool = False,
                 encoder_weights: str | Path | None = None, concepts: ConceptSet | None = None) -> None:
        """``encoder_weights``: ImageNet state_dict file for the encoder, read only when
        ``pretrained_encoder`` (required for resnet50 / inception-v3); never stored in the model.
        ``concepts``: the concept set, required with ``cfg.concept_head``."""
        super().__init__()
        cfg.validate()
        cfg.vocab_size = len(vocab)
        if cfg.concept_head and concepts is None:
            raise ValueError("a model with a concept head needs its concept set")
        self.concepts = concepts if cfg.concept_head else None
        cfg.concept_words = len(concepts) if self.concepts is not None else 0
        self.cfg = cfg
        self.vocab = vocab
        self.encoder = ImageEncoder(cfg.encoder, pretrained=pretrained_encoder,
                                    fine_tune_blocks=cfg.fine_tune_blocks, weights_path=encoder_weights,
                                    concept_head=cfg.concept_head)
        cfg.feature_dim = self.encoder.out_channels
        self.decoder = build_decoder(cfg, self.concepts.group_ids() if self.concepts is not None else None)
        self.embedding = None  # the image-embedding head: photo -> the sentence model's space
        if cfg.sentence_dim:
            # (embedding -> checkpoint -> network)
            from photocap.model.embedding import EmbeddingConfig, ImageEmbeddingHead

            self.embedding = ImageEmbeddingHead(EmbeddingConfig(inputs="both", grid_dim=cfg.feature_dim,
                                                                out_dim=cfg.sentence_dim))
            self.embedding.requires_grad_(False)  # trained apart (training/embedding.py), frozen with the encoder
            # The person probe of the gate: logistic regression on the image embedding.
            self.register_buffer("person_probe", torch.zeros(cfg.sentence_dim + 1))
            if cfg.memory_size:  # caption vectors the image embedding is projected onto (config.py)
                self.register_buffer("sentence_memory", torch.zeros(cfg.memory_size, cfg.sentence_dim))
        if self.concepts is not None:
            # (1000, W) one-hot: class probabilities summed per word by a matmul (index_add_ has no
            # faithful ONNX export; the torch-free captioner runs this in its encoder graph).
            self.register_buffer("class_word", torch.nn.functional.one_hot(
                torch.tensor(self.concepts.class_word, dtype=torch.long), len(self.concepts)).float(),
                persistent=False)

    @property
    def banned_ids(self) -> tuple[int, ...]:
        return special_ids(self.vocab)

    def forward(self, images: torch.Tensor, inputs: torch.Tensor):
        """images (B, 3, S, S), inputs (B, T) -> logits (B, T, V), extras."""
        feats, concepts = self.encode(images)
        return self.decoder(feats, inputs, concepts)

    # ---- concepts

    def concepts_of(self, logits: torch.Tensor | None, grid: torch.Tensor | None = None) -> ConceptInput | None:
        """ImageNet logits (B, 1000) -> the top concept words (B, R) and their summed class probabilities;
        with an image-embedding head also the photo's vector (B, S), which needs the grid (B, P, C)."""
        if logits is None or self.concepts is None:
            return None
        probs = logits.float().softmax(dim=-1)  # (B, 1000)
        per_word = probs @ self.class_word  # (B, W)
        top = per_word.topk(min(max(REPORTED_CONCEPTS, self.cfg.concept_slots), per_word.size(1)), dim=1)
        vector = None
        if self.embedding is not None:
            if grid is None:
                raise ValueError("this model's decoder reads the image embedding: pass the grid with the logits")
            with torch.autocast(grid.device.type, enabled=False):  # float32: a unit vector compared by cosine
                vector = self.embedding.from_grid(grid.float(), logits.float())  # (B, S)
        return ConceptInput(top.indices, top.values, vector)

    def read_vector(self, vector: torch.Tensor) -> torch.Tensor:
        """A photo's image embedding (B, S) -> the vector the decoder reads: moved towards the caption
        memory when the model has one (``memory_mix`` in config.py), else itself."""
        if not self.cfg.memory_size:
            return vector
        with torch.autocast(vector.device.type, enabled=False):
            memory = self.sentence_memory.float()  # (M, S)
            # (memory @ vector.T).T, not vector @ memory.T: an exported graph would fold memory.T into a second copy
            weights = ((memory @ vector.float().T).T / self.cfg.memory_temperature).softmax(dim=-1)  # (B, M)
            mix = self.cfg.memory_mix
            return F.normalize(mix * (weights @ memory) + (1.0 - mix) * vector.float(), dim=-1)  # (B, S)

    def set_sentence_memory(self, vectors: torch.Tensor | None, temperature: float = 0.0, mix: float = 1.0) -> None:
        """Caption vectors (M, S) the decoder's image embedding is moved towards from now on, ``mix``
        of the way (None: none)."""
        if self.embedding is None:
            raise ValueError("only a model that reads the image embedding can have a sentence memory")
        if vectors is None:
            self.cfg.memory_size, self.cfg.memory_temperature, self.cfg.memory_mix = 0, 0.0, 1.0
            self._buffers.pop("sentence_memory", None)
            return
        self.cfg.memory_size, self.cfg.memory_temperature = int(vectors.size(0)), float(temperature)
        self.cfg.memory_mix = float(mix)
        self.cfg.validate()
        self.register_buffer("sentence_memory", F.normalize(vectors.float(), dim=-1).to(self.person_probe.device))

    def person_probability(self, concepts: ConceptInput | None) -> torch.Tensor | None:
        """(B,) the person probe's probability that each photo shows a person (None without a probe)."""
        if self.embedding is None or concepts is None or concepts.vector is None:
            return None
        w, b = self.person_probe[:-1], self.person_probe[-1]
        return torch.sigmoid(concepts.vector.float() @ w.float() + b.float())

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, ConceptInput | None]:
        """Images (B, 3, S, S) in [-1, 1] -> grid features (B, P, C) and concepts (None without a concept head)."""
        grid, logits = self.encoder.encode(images)
        return grid, self.concepts_of(logits, grid)

    def from_trunk(self, trunk: torch.Tensor) -> tuple[torch.Tensor, ConceptInput | None]:
        """Cached ``encoder.trunk`` output -> grid features and concepts (training and evaluation)."""
        grid, logits = self.encoder.from_trunk(trunk)
        return grid, self.concepts_of(logits, grid)

    @torch.no_grad()
    def concepts_from_trunk(self, trunk: torch.Tensor) -> ConceptInput | None:
        """Cached ``encoder.trunk`` output -> concepts only (None without a concept head)."""
        if self.embedding is not None:
            return self.from_trunk(trunk)[1]
        return self.concepts_of(self.encoder.concept_logits(trunk))

    def concept_words(self, concepts: ConceptInput | None, row: int) -> list[ConceptWord]:
        if concepts is None or self.concepts is None:
            return []
        return [self.concepts.words[i] for i in concepts.words[row].tolist()]

    def encode_caption(self, caption: str, words: list[ConceptWord]) -> list[int]:
        """A reference caption as training ids: concept words become copy ids when the decoder copies."""
        from photocap.decoding.slots import encode_with_slots

        if not self.cfg.concept_slots:
            return self.vocab.encode(caption, self.cfg.max_len)
        return encode_with_slots(caption, self.vocab, words, self.cfg.concept_slots, self.cfg.max_len)

    def text(self, ids: list[int], words: list[ConceptWord]) -> str:
        """Decoded ids of one caption -> its text (copied concepts filled in)."""
        return render(ids, self.vocab, words, self.cfg.concept_slots)

    def photo_concepts(self, concepts: ConceptInput | None, photos: int) -> list[PhotoConcepts]:
        """What the decoding rules read of each photo (of ``photos``) besides the decoder."""
        if concepts is None:
            return [PhotoConcepts()] * photos
        probability = self.person_probability(concepts) if self.cfg.person_gate else None
        person = probability.tolist() if probability is not None else [None] * photos
        return [PhotoConcepts(tuple(self.concept_words(concepts, row)), tuple(concepts.scores[row].tolist()), p)
                for row, p in zip(range(photos), person)]

    @torch.no_grad()
    def decode_features(self, feats: torch.Tensor, beam_size: int | None = None,
                        length_penalty: float | None = None, concepts: ConceptInput | None = None,
                        concept_force: float | None = None, concept_bonus: float | None = None) -> list[Decoded]:
        """Grid features (B, P, C) (+ concepts) -> one :class:`Decoded` per photo, via beam search
        (``photocap.decoding.captions``: the rules, shared with the torch-free path).

        ``beam_size`` / ``length_penalty`` / ``concept_force`` / ``concept_bonus`` default to the model's own."""
        steps = TorchSteps(self.decoder, *self.decoder_inputs(feats, concepts))
        return decode(steps, self.photo_concepts(concepts, feats.size(0)), self.cfg, self.vocab, beam_size=beam_size,
                      length_penalty=length_penalty, concept_force=concept_force, concept_bonus=concept_bonus)

    def decoder_inputs(self, feats: torch.Tensor,
                       concepts: ConceptInput | None) -> tuple[torch.Tensor, ConceptInput | None]:
        """What the decoder reads when captioning: the grid (none for a model that decodes without it)
        and the concepts it reads (its top slots, the image embedding)."""
        if not self.decodes_grid:
            feats = feats[:, :0]  # (B, 0, C): the decoder reads the image embedding and concepts only
        if concepts is None or not self.decodes_concepts:
            return feats, None
        concepts = concepts.top(max(self.cfg.concept_slots, 1))
        if concepts.vector is not None and self.cfg.memory_size:
            concepts = ConceptInput(concepts.words, concepts.scores, self.read_vector(concepts.vector))
        return feats, concepts

    @property
    def decodes_grid(self) -> bool:
        """Whether the decoder reads the encoder grid when captioning (a model that reads the image
        embedding may decode without it)."""
        return not (self.cfg.sentence_dim and not self.cfg.decode_grid)

    @property
    def decodes_concepts(self) -> bool:
        """Whether the decoder reads the photo's concepts (its concept slots, or the image embedding
        they carry)."""
        return bool(self.cfg.concept_slots or self.cfg.sentence_dim)

    @torch.no_grad()
    def caption(self, images: torch.Tensor, beam_size: int | None = None,
                length_penalty: float | None = None) -> list[Decoded]:
        """Images (B, 3, S, S) in [-1, 1] -> one :class:`Decoded` per photo."""
        feats, concepts = self.encode(images)
        return self.decode_features(feats, beam_size, length_penalty, concepts)

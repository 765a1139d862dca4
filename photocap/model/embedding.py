"""The image embedding: what the encoder already computed of a photo -> a unit vector in a sentence model's space.

Search by what a photo looks like: a query embedded by the sentence model (all-MiniLM-L6-v2, 384-d)
is compared with this vector by cosine, so a photo can be found by what its caption left out. The
head reads only the encoder's outputs that both backends (torch and ONNX) produce: the grid
features, mean pooled, and the concept head's ImageNet logits, as log-probabilities. No second
encoder pass. (It was called the "pixel head" until it was renamed: docs/decisions/image-embedding.md.)

An image-embedding head file is one ``.safetensors`` file (weights, fp16 allowed) with a JSON
header: its :class:`EmbeddingConfig`, the text model whose space it maps into, the identity of the
encoder it was trained on (:func:`encoder_identity`) and the recipe and scores. Loading validates
all of it and never executes code; a head made for another encoder is refused (its inputs would
mean nothing).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from photocap.decoding.modelfile import (EMBEDDING_FORMAT, EMBEDDING_FORMAT_VERSION, CheckpointError,  # noqa: F401
                                         atomic_destination, embedding_path_for, find_embedding_head, header_entry,
                                         read_metadata)  # the path helpers: re-exported
from photocap.model.statedict import cast_like, mismatch

FORMAT, FORMAT_VERSION = EMBEDDING_FORMAT, EMBEDDING_FORMAT_VERSION  # "photocap-pixels", its old name
INPUTS = ("grid", "concepts", "both")


class EmbeddingHeadError(CheckpointError):
    """An image-embedding head file is missing, malformed, or made for another encoder or text model."""


@dataclass
class EmbeddingConfig:
    """Everything needed to rebuild an image-embedding head."""

    inputs: str = "both"  # grid: pooled grid features; concepts: ImageNet log-probs; both: concatenated
    grid_dim: int = 1280  # the encoder's channels (EfficientNet-Lite: 1280)
    concept_dim: int = 1000  # ImageNet classes
    hidden: int = 0  # 0: one linear projection; else a 2-layer MLP with this hidden width
    dropout: float = 0.1  # MLP only, training only
    out_dim: int = 384  # the sentence model's dimension
    # Also add the sentence vector of what the classifier sees: its class probabilities times the
    # sentence vectors of the classes' concept words (a fixed table in the file), mixed with the
    # learned projection by a learned weight. ImageNet's words reach queries Flickr8k never taught.
    concept_text: bool = False

    @property
    def in_dim(self) -> int:
        return {"grid": self.grid_dim, "concepts": self.concept_dim,
                "both": self.grid_dim + self.concept_dim}[self.inputs]

    def validate(self) -> None:
        if self.inputs not in INPUTS:
            raise ValueError(f"unknown embedding inputs {self.inputs!r}; choose one of {', '.join(INPUTS)}")
        for name, high in (("grid_dim", 8192), ("concept_dim", 100_000), ("hidden", 16_384), ("out_dim", 8192)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not (0 if name == "hidden" else 1) <= value <= high:
                raise ValueError(f"embedding {name} must be a whole number up to {high:,}, not {value!r}")
        if not isinstance(self.concept_text, bool):
            raise ValueError(f"embedding concept_text must be true or false, not {self.concept_text!r}")
        if self.concept_text and self.inputs == "grid":
            raise ValueError("embedding concept_text reads the concept head: use inputs concepts or both")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not (math.isfinite(self.dropout) and 0 <= self.dropout < 1):
            raise ValueError(f"embedding dropout must be in [0, 1), not {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddingConfig:
        if not isinstance(data, dict):
            raise ValueError("the embedding config must be a JSON object")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown embedding config fields: {', '.join(unknown)}")
        cfg = cls(**data)
        cfg.validate()
        return cfg


class ImageEmbeddingHead(nn.Module):
    """(pooled grid (B, C), ImageNet logits (B, 1000)) -> unit vectors (B, out_dim)."""

    def __init__(self, cfg: EmbeddingConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        # Standardisation of the inputs (set from the training features): a linear map then trains well.
        self.register_buffer("in_mean", torch.zeros(cfg.in_dim))
        self.register_buffer("in_std", torch.ones(cfg.in_dim))
        if cfg.hidden:
            self.proj = nn.Sequential(nn.Linear(cfg.in_dim, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout),
                                      nn.Linear(cfg.hidden, cfg.out_dim))
        else:
            self.proj = nn.Sequential(nn.Linear(cfg.in_dim, cfg.out_dim))
        if cfg.concept_text:
            # Row c: the sentence vector of ImageNet class c's concept word (set by the trainer).
            self.register_buffer("class_text", torch.zeros(cfg.concept_dim, cfg.out_dim))
            self.mix = nn.Parameter(torch.zeros(()))  # sigmoid(mix): the concept text's share

    @staticmethod
    def pool(grid: torch.Tensor) -> torch.Tensor:
        """Grid features (B, P, C) -> their mean over positions (B, C)."""
        return grid.float().mean(dim=1)

    def inputs(self, pooled: torch.Tensor | None, logits: torch.Tensor | None) -> torch.Tensor:
        """What the head reads, before standardisation: (B, in_dim)."""
        parts = []
        if self.cfg.inputs in ("grid", "both"):
            parts.append(pooled.float())  # (B, C)
        if self.cfg.inputs in ("concepts", "both"):
            if logits is None:
                raise ValueError("this image-embedding head reads the concept head's logits, but the model has none")
            parts.append(logits.float().log_softmax(dim=-1))  # (B, 1000)
        return torch.cat(parts, dim=1)

    def set_standardisation(self, x: torch.Tensor) -> None:
        """Inputs (N, in_dim) of the training set -> the mean and spread used to standardise them."""
        self.in_mean.copy_(x.mean(dim=0))
        self.in_std.copy_(x.std(dim=0).clamp_min(1e-3))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs (B, in_dim) -> unit vectors (B, out_dim)."""
        out = F.normalize(self.proj((x - self.in_mean) / self.in_std), dim=-1)  # (B, D)
        if not self.cfg.concept_text:
            return out
        logprobs = x[:, -self.cfg.concept_dim:]  # (B, 1000): the inputs end with the concept log-probs
        said = F.normalize(logprobs.exp() @ self.class_text, dim=-1)  # (B, D)
        share = torch.sigmoid(self.mix)
        return F.normalize((1 - share) * out + share * said, dim=-1)

    def forward(self, pooled: torch.Tensor | None, logits: torch.Tensor | None) -> torch.Tensor:
        return self.project(self.inputs(pooled, logits))

    def from_grid(self, grid: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
        """Grid (B, P, C) and logits (B, 1000) as the encoder gives them -> unit vectors (B, out_dim)."""
        return self(self.pool(grid), logits)


def encoder_identity(encoder: nn.Module, name: str) -> str:
    """A short id of an encoder's exact weights (as float16, the way model files keep them) and its name."""
    digest = hashlib.sha256(name.encode())
    for key, tensor in sorted(encoder.state_dict().items()):
        t = tensor.detach().cpu()
        t = t.half() if t.is_floating_point() else t
        digest.update(key.encode())
        digest.update(t.contiguous().numpy().tobytes())
    return f"{name}-{digest.hexdigest()[:16]}"


@dataclass(frozen=True)
class EmbeddingHeader:
    """What an image-embedding head file says about itself."""

    cfg: EmbeddingConfig
    text_model: str  # the sentence model whose space it maps into
    encoder: dict[str, Any]  # {"identity": ..., "model_id": ..., "model_sha256": ...}: the model it belongs to
    info: dict[str, Any]  # recipe, dev scores


def save_embedding_head(head: ImageEmbeddingHead, path: str | Path, *, text_model: str, encoder: dict[str, Any],
                        info: dict[str, Any] | None = None, half: bool = True) -> Path:
    """Write ``head`` atomically; ``encoder`` must hold the ``identity`` of the encoder it reads."""
    from safetensors.torch import save_file

    if not encoder.get("identity"):
        raise ValueError("an image-embedding head file needs the identity of its encoder")
    path = Path(path)
    tensors = {}
    for key, t in head.state_dict().items():
        t = t.detach().cpu()
        tensors[key] = (t.half() if half and t.is_floating_point() else t).contiguous()
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": json.dumps(head.cfg.to_dict()),
                "text_model": text_model, "encoder": json.dumps(encoder), "info": json.dumps(info or {})}
    with atomic_destination(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def read_embedding_header(path: str | Path) -> EmbeddingHeader:
    path = Path(path)
    meta = read_metadata(path, FORMAT, FORMAT_VERSION, what="image-embedding head", error=EmbeddingHeadError)
    where = f"{path}: malformed image-embedding head header"
    cfg = header_entry(meta, "config", EmbeddingConfig.from_dict, None, where, EmbeddingHeadError)
    encoder = header_entry(meta, "encoder", lambda d: d, None, where, EmbeddingHeadError)
    info = header_entry(meta, "info", lambda d: d, "{}", where, EmbeddingHeadError)
    text_model = meta.get("text_model")
    if text_model is None:
        raise EmbeddingHeadError(f"{where}: it has no 'text_model' entry")
    if not isinstance(encoder, dict) or not isinstance(encoder.get("identity"), str) or not isinstance(info, dict):
        raise EmbeddingHeadError(f"{where}: encoder must name its identity, info be an object")
    if not text_model:
        raise EmbeddingHeadError(f"{where}: empty text_model")
    return EmbeddingHeader(cfg, text_model, encoder, info)


def load_embedding_head(path: str | Path, *, encoder_id: str | None = None, text_model: str | None = None,
                        device: str | torch.device = "cpu") -> tuple[ImageEmbeddingHead, EmbeddingHeader]:
    """Rebuild and load an image-embedding head (eval, float32), refusing one made for another encoder
    or text model."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    header = read_embedding_header(path)
    if encoder_id is not None and header.encoder["identity"] != encoder_id:
        made_for = header.encoder.get("model_id") or "another model"
        raise EmbeddingHeadError(
            f"{path} was trained for the encoder {header.encoder['identity']} ({made_for}), not this model's "
            f"{encoder_id}; train one for this model with: photocap train-embedding --model MODEL")
    if text_model is not None and header.text_model != text_model:
        raise EmbeddingHeadError(f"{path} maps into the text model {header.text_model!r}, not {text_model!r}; "
                             "its vectors can't be compared with this photocap's queries; retrain it")
    head = ImageEmbeddingHead(header.cfg)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise EmbeddingHeadError(f"{path}: cannot read weights: {exc}") from exc
    expected = head.state_dict()
    problem = mismatch(expected, tensors, "its config")
    if problem:
        raise EmbeddingHeadError(f"{path} does not match its config: {problem}")
    bad = next((k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad is not None:
        raise EmbeddingHeadError(f"{path}: the weights hold NaN or infinite values (first: {bad}); the file is damaged")
    head.load_state_dict(cast_like(expected, tensors), strict=True)
    return head.to(device).eval(), header


def load_head_for(model: nn.Module, path: str | Path, *,
                  device: str | torch.device = "cpu") -> tuple[ImageEmbeddingHead, EmbeddingHeader]:
    """The image-embedding head in ``path``, loaded for ``model`` (a CaptionModel): refused with
    :class:`EmbeddingHeadError` when it was made for another encoder, or reads the concept head's
    logits and the model has no concept head."""
    head, header = load_embedding_head(path, encoder_id=encoder_identity(model.encoder, model.cfg.encoder),
                                       device=device)
    if header.cfg.inputs != "grid" and model.encoder.concept_head is None:
        raise EmbeddingHeadError(f"{path} reads the concept head's logits, but this model has no concept head")
    return head, header

"""The captioner on torch: the network of ``photocap.model`` on a GPU (CUDA, Apple MPS) or the CPU.

``photocap[torch]`` installs torch; without it photocap captions with the ONNX graphs
(``onnx_backend.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from photocap.captioner.base import CaptionerBase, described, model_hint, unused_head_beside
from photocap.errors import ModelError
from photocap.model.checkpoint import CheckpointError, load_model
from photocap.model.embedding import EmbeddingHeadError, ImageEmbeddingHead, find_embedding_head, load_head_for
from photocap.records import VECTOR_DTYPE, Described
from photocap.settings import default_model_path


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple MPS, then CPU. A named device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for, but no CUDA GPU is available; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("--device mps was asked for, but Apple MPS is not available; use --device auto or cpu")
    return torch.device(name)


class TorchCaptioner(CaptionerBase):
    """A model file loaded into the torch network."""

    backend = "torch"

    def __init__(self, model_path: str | Path | None = None, device: str = "auto", beam: int | None = None,
                 length_penalty: float | None = None, concept_force: float | None = None,
                 embedding_head: str | Path | None = "auto") -> None:
        """``beam`` / ``length_penalty`` / ``concept_force``: None = the model's own decoding settings
        (chosen on its dev split).

        ``embedding_head``: the image-embedding head that gives each result its ``image_vector``
        (search by what the photo looks like). ``auto``: the model's own, else
        ``NAME.embedding.safetensors`` beside the model file when there is one (or, from older
        photocap, ``NAME.pixels.safetensors``; a file there that does not fit this model is skipped
        with a warning); a path: that file (an error if it does not fit); None: none,
        ``image_vector`` stays None."""
        path = Path(model_path) if model_path is not None else default_model_path()
        self.device = pick_device(device)
        try:
            self.model, self.info = load_model(path, self.device)
        except CheckpointError as exc:
            raise ModelError(f"{exc}.{model_hint(model_path, path)}") from exc
        self.model_path = path
        self.beam = self.model.cfg.beam_size if beam is None else beam
        self.length_penalty = self.model.cfg.length_penalty if length_penalty is None else length_penalty
        self.concept_force = self.model.cfg.concept_force if concept_force is None else concept_force
        # Mixed precision on GPUs; the CPU stays in float32 (bfloat16 there is slower on most CPUs).
        self._autocast = self.device.type in ("cuda", "mps")
        self.image_head: ImageEmbeddingHead | None = None
        self.image_space: str | None = None  # the text model the image vectors compare with (its id)
        if self.model.embedding is not None and isinstance(embedding_head, str) and embedding_head == "auto":
            # The model carries its own image-embedding head (its decoder reads it): one head, no file beside it.
            self.image_head, self.image_space = self.model.embedding, self.model.cfg.sentence_model or None
        elif embedding_head is not None:
            self._load_embedding(embedding_head)
        self.model_id = self.model.cfg.model_id
        self.image_size = self.model.cfg.image_size
        self.has_concepts = self.model.concepts is not None

    def _load_embedding(self, given: str | Path) -> None:
        auto = isinstance(given, str) and given == "auto"
        path = find_embedding_head(self.model_path) if auto else Path(given)
        if path is None:
            return
        try:
            head, header = load_head_for(self.model, path, device=self.device)
        except EmbeddingHeadError as exc:
            if not auto:
                raise ModelError(str(exc)) from exc
            unused_head_beside(exc)
            return
        self.image_head, self.image_space = head, header.text_model

    def encoder_outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 3, S, S) in [-1, 1] on this device -> grid features (B, P, C) and ImageNet logits (B, 1000)
        (None without a concept head)."""
        return self.model.encoder.encode(batch)

    def _encode(self, batch: torch.Tensor):
        """Grid features, concepts and (with an image-embedding head) image vectors (B, D) of a batch."""
        grid, logits = self.encoder_outputs(batch)
        concepts = self.model.concepts_of(logits, grid)
        own = self.image_head is not None and self.image_head is self.model.embedding
        vectors = concepts.vector if own and concepts is not None else None
        if self.image_head is not None and not own:
            with torch.autocast(self.device.type, enabled=False):  # float32: the vectors are compared by cosine
                vectors = self.image_head.from_grid(grid.float(), None if logits is None else logits.float())
        return grid, concepts, vectors

    def describe_arrays(self, batch: np.ndarray) -> list[Described]:
        return self.describe_tensors(torch.from_numpy(batch))

    def describe_tensors(self, batch: torch.Tensor) -> list[Described]:
        """(B, 3, S, S) in [-1, 1] -> each image's caption, its mean log-prob per word, its concepts and
        image vector."""
        batch = batch.to(self.device, non_blocking=True)
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=self._autocast):
            feats, concepts, vectors = self._encode(batch)
            decoded = self.model.decode_features(feats.float(), self.beam, self.length_penalty, concepts,
                                                 self.concept_force)
        blobs = ([v.tobytes() for v in vectors.float().cpu().numpy().astype(VECTOR_DTYPE)]
                 if vectors is not None else [None] * len(decoded))
        return described(decoded, blobs)

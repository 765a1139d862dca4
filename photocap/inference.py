"""Captioner: loads a model once, picks the device, and captions images in batches."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image

from photocap.errors import BackendFallbackWarning, ModelError, PixelHeadWarning
from photocap.model.checkpoint import CheckpointError, load_model
from photocap.model.pixels import PixelHead, PixelHeadError, encoder_identity, load_pixel_head, pixels_path_for
from photocap.imaging.preprocess import describe_image_error, open_image
from photocap.model.preprocess import to_tensor
from photocap.records import VECTOR_DTYPE, CaptionFailure, CaptionResult, Concept, Described
from photocap.settings import MODEL_ENV, default_model_path, env_model_path

log = logging.getLogger(__name__)


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


BACKENDS = ("auto", "onnx", "torch")


def _model_hint(given: str | Path | None, path: Path) -> str:
    """What to do about a model file that failed to load, by where its path came from."""
    if given is not None:
        return ""
    if env_model_path() is not None:
        return f" ${MODEL_ENV} names this file: point it at a photocap model file, or unset it."
    if not path.exists():
        return " The bundled model is missing from this installation; reinstall photocap or pass --model PATH."
    return " The bundled model file is damaged; reinstall photocap or pass --model PATH."


class Captioner:
    """A loaded captioning model. Thread-compatible, not thread-safe: use one per thread."""

    def __init__(self, model_path: str | Path | None = None, device: str = "auto", beam: int | None = None,
                 length_penalty: float | None = None, concept_force: float | None = None,
                 backend: str = "auto", pixel_head: str | Path | None = "auto") -> None:
        """``beam`` / ``length_penalty`` / ``concept_force``: None = the model's own decoding settings
        (chosen on its dev split).

        ``backend``: what runs the encoder. ``auto``: ONNX Runtime on the CPU when onnxruntime imports,
        torch on a GPU / MPS or without it; ``onnx`` (CPU only); ``torch``. When the ONNX encoder cannot
        be had (onnxruntime missing, export or its check failed) it falls back to torch with a warning;
        :attr:`backend` says which one runs. The decoder's beam search always runs in torch.

        ``pixel_head``: the pixel head that gives each result its ``image_vector`` (search by the pixels).
        ``auto``: ``NAME.pixels.safetensors`` beside the model file when there is one (a file there
        that does not fit this model is skipped with a warning); a path: that file (an error if it
        does not fit); None: none, ``image_vector`` stays None."""
        if backend not in BACKENDS:
            raise ModelError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
        path = Path(model_path) if model_path is not None else default_model_path()
        self.device = pick_device(device)
        if backend == "onnx" and self.device.type != "cpu":
            raise ModelError(f"--backend onnx runs the encoder on the CPU, not {self.device.type}; "
                             "use --device cpu, or --backend torch / auto")
        try:
            self.model, self.info = load_model(path, self.device)
        except CheckpointError as exc:
            raise ModelError(f"{exc}.{_model_hint(model_path, path)}") from exc
        self.model_path = path
        self.beam = self.model.cfg.beam_size if beam is None else beam
        self.length_penalty = self.model.cfg.length_penalty if length_penalty is None else length_penalty
        self.concept_force = self.model.cfg.concept_force if concept_force is None else concept_force
        # Mixed precision on GPUs; the CPU stays in float32 (bfloat16 there is slower on most CPUs).
        self._autocast = self.device.type in ("cuda", "mps")
        self.pixels: PixelHead | None = None
        self.pixel_space: str | None = None  # the text model the image vectors compare with (its id)
        if self.model.embedding is not None and isinstance(pixel_head, str) and pixel_head == "auto":
            # The model carries its own image-embedding head (its decoder reads it): one head, no file beside it.
            self.pixels, self.pixel_space = self.model.embedding, self.model.cfg.sentence_model or None
        elif pixel_head is not None:
            self._load_pixels(pixel_head)
        self._onnx = None
        self.backend = "torch"
        if self.device.type == "cpu" and backend != "torch":
            self._onnx = self._load_onnx(explicit=backend == "onnx")
            if self._onnx is not None:
                self.backend = "onnx"

    def _load_pixels(self, given: str | Path) -> None:
        auto = isinstance(given, str) and given == "auto"
        path = pixels_path_for(self.model_path) if auto else Path(given)
        if auto and not path.is_file():
            return
        try:
            head, header = load_pixel_head(path, encoder_id=encoder_identity(self.model.encoder, self.model.cfg.encoder),
                                           device=self.device)
            if header.cfg.inputs != "grid" and self.model.encoder.concept_head is None:
                raise PixelHeadError(f"{path} reads the concept head's logits, but this model has no concept head")
        except PixelHeadError as exc:
            if not auto:
                raise ModelError(str(exc)) from exc
            warnings.warn(f"photocap: the pixel head beside the model is not used: {exc}", PixelHeadWarning,
                          stacklevel=3)
            return
        self.pixels, self.pixel_space = head, header.text_model

    def _load_onnx(self, explicit: bool):
        from photocap.onnx_encoder import OnnxUnavailable, load_onnx_encoder, onnxruntime_available

        if not explicit and not onnxruntime_available():
            return None  # auto without onnxruntime: torch, nothing to warn about
        try:
            return load_onnx_encoder(self.model.encoder, self.image_size, self.model_path)
        except OnnxUnavailable as exc:
            warnings.warn(f"photocap: the ONNX encoder is not available ({exc}); using torch instead",
                          BackendFallbackWarning, stacklevel=3)
            return None

    def encoder_outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 3, S, S) in [-1, 1] on this device -> grid features (B, P, C) and ImageNet logits (B, 1000)
        (None without a concept head), by the chosen backend."""
        if self._onnx is None:
            return self.model.encoder.encode(batch)
        return self._onnx.encode(batch)

    def _encode(self, batch: torch.Tensor):
        """Grid features, concepts and (with a pixel head) image vectors (B, D) of a batch."""
        grid, logits = self.encoder_outputs(batch)
        concepts = self.model.concepts_of(logits, grid)
        own = self.pixels is not None and self.pixels is self.model.embedding
        vectors = concepts.vector if own and concepts is not None else None
        if self.pixels is not None and not own:
            with torch.autocast(self.device.type, enabled=False):  # float32: the vectors are compared by cosine
                vectors = self.pixels.from_grid(grid.float(), None if logits is None else logits.float())
        return grid, concepts, vectors

    @property
    def model_id(self) -> str:
        return self.model.cfg.model_id

    @property
    def image_size(self) -> int:
        return self.model.cfg.image_size

    @property
    def has_concepts(self) -> bool:
        """Whether this model reports concepts (its ImageNet classifier's words) beside captions."""
        return self.model.concepts is not None

    def describe_tensors(self, batch: torch.Tensor, *, cpu_shared: bool = False) -> list[Described]:
        """(B, 3, S, S) in [-1, 1] -> each image's caption, its mean log-prob per word, and its concepts.

        ``cpu_shared``: other work needs the CPU meanwhile (indexing decodes the next photos while the
        model captions these). The torch decoder then runs on one thread when ONNX Runtime runs the
        encoder: its small per-step operations gain little from a second thread, which costs the
        decoding half again in CPU time (measured: 26 against 17 ms per image on 2 cores)."""
        batch = batch.to(self.device, non_blocking=True)
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=self._autocast):
            feats, concepts, vectors = self._encode(batch)
            with _torch_threads(1 if cpu_shared and self._onnx is not None else None):
                decoded = self.model.decode_features(feats.float(), self.beam, self.length_penalty, concepts,
                                                     self.concept_force)
        blobs = ([v.tobytes() for v in vectors.float().cpu().numpy().astype(VECTOR_DTYPE)]
                 if vectors is not None else [None] * len(decoded))
        return [Described(d.text, d.score, tuple(Concept(w.word, round(float(p), 4)) for w, p in d.concepts), blob)
                for d, blob in zip(decoded, blobs)]

    def describe_images(self, images: Sequence[Image.Image], *, cpu_shared: bool = False) -> list[Described]:
        """Decoded RGB images (any size; squashed to the model's input) -> captions and concepts
        (``cpu_shared``: see :meth:`describe_tensors`)."""
        if not images:
            return []
        size = self.image_size
        tensors = [to_tensor(img if img.size == (size, size) else img.resize((size, size), Image.Resampling.BICUBIC))
                   for img in images]
        return self.describe_tensors(torch.stack(tensors), cpu_shared=cpu_shared)

    def caption_images(self, images: Sequence[Image.Image]) -> list[tuple[str, float]]:
        """Decoded RGB images -> [(caption, mean log-prob per word)] (``describe_images`` without concepts)."""
        return [(d.caption, d.score) for d in self.describe_images(images)]

    def caption_paths(
        self,
        paths: Iterable[str | Path],
        batch_size: int = 16,
        on_progress: Callable[[int], None] | None = None,
    ) -> Iterator[CaptionResult | CaptionFailure]:
        """Caption files in batches, in order; unreadable files yield a CaptionFailure."""
        pending: list[tuple[str, Image.Image]] = []

        def flush() -> Iterator[CaptionResult]:
            described = self.describe_images([img for _, img in pending])
            for (p, _), d in zip(pending, described):
                yield CaptionResult(p, d.caption, d.score, self.model_id, d.concepts, d.image_vector)
            if on_progress:
                on_progress(len(pending))
            pending.clear()

        for path in paths:
            name = str(path)
            try:
                pending.append((name, open_image(path, self.image_size)))
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                if on_progress:
                    on_progress(1)
                yield CaptionFailure(name, describe_image_error(exc))
                continue
            if len(pending) >= batch_size:
                yield from flush()
        if pending:
            yield from flush()


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` (None: left as they are) in this thread, then restored."""
    if n is None or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

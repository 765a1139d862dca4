"""What every captioner does the same way, whichever runtime runs the network: photos in batches,
unreadable files reported, decoded images squashed to the model's input."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from photocap.decoding.captions import Decoded
from photocap.errors import EmbeddingHeadWarning
from photocap.imaging.preprocess import describe_image_error, open_image, squashed, to_array
from photocap.records import CaptionFailure, CaptionResult, Concept, Described
from photocap.settings import MODEL_ENV, env_model_path

if TYPE_CHECKING:
    import numpy as np

BACKENDS = ("auto", "onnx", "torch")


def model_hint(given: str | Path | None, path: Path) -> str:
    """What to do about a model file that failed to load, by where its path came from."""
    if given is not None:
        return ""
    if env_model_path() is not None:
        return f" ${MODEL_ENV} names this file: point it at a photocap model file, or unset it."
    if not path.exists():
        return " The bundled model is missing from this installation; reinstall photocap or pass --model PATH."
    return " The bundled model file is damaged; reinstall photocap or pass --model PATH."


def unused_head_beside(reason: Exception) -> None:
    """Warn that the image-embedding head file beside the model does not fit it: captions go on,
    without image vectors (a head the caller named is an error instead)."""
    warnings.warn(f"photocap: the image-embedding head beside the model is not used: {reason}",
                  EmbeddingHeadWarning, stacklevel=4)


def described(decoded: Sequence[Decoded], vectors: Sequence[bytes | None]) -> list[Described]:
    """The model's words for each photo as the library keeps them (concept scores to 4 decimals)."""
    return [Described(d.text, d.score, tuple(Concept(w.word, round(float(p), 4)) for w, p in d.concepts), v)
            for d, v in zip(decoded, vectors)]


class CaptionerBase:
    """A loaded captioning model. Thread-compatible, not thread-safe: use one per thread.

    Subclasses set the attributes below and :meth:`describe_arrays`."""

    backend: str  # "onnx" (ONNX Runtime, no torch) or "torch"
    model_path: Path
    model_id: str
    image_size: int
    has_concepts: bool  # whether it reports concepts (its ImageNet classifier's words) beside captions
    beam: int
    length_penalty: float
    concept_force: float
    image_space: str | None  # the sentence model whose space its image vectors are in (None: it gives none)

    def describe_arrays(self, batch: "np.ndarray") -> list[Described]:
        """(B, 3, S, S) float32 in [-1, 1] -> each image's caption, score, concepts and image vector."""
        raise NotImplementedError

    def describe_images(self, images: Sequence[Image.Image]) -> list[Described]:
        """Decoded RGB images (any size; squashed to the model's input) -> captions and concepts."""
        if not images:
            return []
        import numpy as np

        batch = np.stack([to_array(squashed(img, self.image_size)) for img in images])  # (B, 3, S, S)
        return self.describe_arrays(batch)

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

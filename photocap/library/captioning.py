"""What the library needs of a captioner: the protocols the indexing pipeline captions through
(a local :mod:`photocap.captioner`, or Ray workers by path: library/cluster.py) and the factory
that loads the model on first need."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from photocap.records import CaptionFailure, Described

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["CaptionerFactory", "CaptionerLike", "PathCaptioner", "default_captioner_factory"]


class CaptionerLike(Protocol):
    """What the pipeline needs of a captioner (:mod:`photocap.captioner`)."""

    @property
    def model_id(self) -> str: ...

    @property
    def image_size(self) -> int: ...

    def describe_images(self, images: Sequence[Image.Image]) -> list[Described]: ...


@runtime_checkable
class PathCaptioner(Protocol):
    """A captioner that decodes and captions photos by path elsewhere, several batches at once
    (library/cluster.py's Ray workers). The pipeline then skips its own decode step: everything
    before (scan, probe, decide) and after (commit, write) stays in this process."""

    @property
    def model_id(self) -> str: ...

    @property
    def image_size(self) -> int: ...

    @property
    def slots(self) -> int:
        """How many batches it captions at once (the pipeline keeps that many in flight)."""

    def submit_paths(self, paths: Sequence[str]) -> Future[list[Described | CaptionFailure]]:
        """Decode and caption ``paths``: one Described (or the photo's CaptionFailure) per path,
        in order. A failure of the machinery (not of a photo) is the future's exception."""


CaptionerFactory = Callable[[], CaptionerLike | PathCaptioner]


def default_captioner_factory(
    model_path: str | os.PathLike[str] | None = None, device: str = "auto", beam: int | None = None,
    backend: str = "auto",
) -> CaptionerFactory:
    """A factory that loads the model only when first called (so a run that captions nothing never
    loads it)."""

    def make() -> CaptionerLike:
        from photocap.captioner import Captioner

        return Captioner(model_path, device=device, beam=beam, backend=backend)

    return make

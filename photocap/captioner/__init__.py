"""Captioners: a model file loaded to caption photos, on torch or on ONNX Runtime without torch.

``Captioner(...)`` picks the runtime (``backend``):
- ``auto``: torch on a GPU (CUDA, Apple MPS) when torch is installed and sees one; else the ONNX
  graphs on the CPU (bundled beside the model, cached, or exported once where torch is installed);
  torch on the CPU, with a warning, only if the graphs cannot be had and torch is there.
- ``onnx``: the ONNX graphs (CPU); an error if they cannot be had.
- ``torch``: the torch network (``photocap[torch]``), on ``device``.
Both write the same captions: they share the beam search and its rules (``photocap.decoding``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from photocap.captioner.base import BACKENDS, CaptionerBase
from photocap.errors import BackendFallbackWarning, ModelError

__all__ = ["BACKENDS", "Captioner", "CaptionerBase"]


def _gpu_available(device: str) -> bool:
    """Whether torch would run on a GPU here. torch is imported (seconds) only where a GPU may be."""
    if device == "cpu":
        return False
    if device in ("cuda", "mps"):
        return True  # named: TorchCaptioner checks it is there
    import platform
    import sys

    if sys.platform.startswith("linux"):
        maybe = Path("/proc/driver/nvidia/version").exists()
    elif sys.platform == "darwin":
        maybe = platform.machine() == "arm64"
    else:
        import ctypes.util

        maybe = ctypes.util.find_library("nvcuda") is not None
    if not maybe:
        return False
    from photocap.captioner.torch_backend import pick_device

    return pick_device("auto").type != "cpu"


def Captioner(model_path: str | Path | None = None, device: str = "auto", beam: int | None = None,  # noqa: N802
              length_penalty: float | None = None, concept_force: float | None = None, backend: str = "auto",
              embedding_head: str | Path | None = "auto") -> CaptionerBase:
    """A loaded captioner (module docstring). ``beam`` / ``length_penalty`` / ``concept_force``: None =
    the model's own decoding settings. ``embedding_head``: see ``TorchCaptioner`` (a file of the caller's
    choosing needs torch; the ONNX graphs carry the image vectors they were made with)."""
    from photocap.captioner.graphs import GraphsUnavailable, torch_available

    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    settings = dict(beam=beam, length_penalty=length_penalty, concept_force=concept_force)
    has_torch = torch_available()
    chosen_head = embedding_head is not None and not (isinstance(embedding_head, str) and embedding_head == "auto")
    if backend == "torch" or (backend == "auto" and has_torch and (chosen_head or _gpu_available(device))):
        if not has_torch:
            raise ModelError("--backend torch needs PyTorch: pip install 'photocap[torch]' (or use --backend onnx)")
        from photocap.captioner.torch_backend import TorchCaptioner

        return TorchCaptioner(model_path, device=device, embedding_head=embedding_head, **settings)
    if device not in ("auto", "cpu"):
        raise ModelError(f"--backend {backend} runs on the CPU, not {device}; use --device cpu, or --backend torch")
    from photocap.captioner.onnx_backend import OnnxCaptioner

    try:
        return OnnxCaptioner(model_path, embedding_head=embedding_head, **settings)
    except GraphsUnavailable as exc:
        if backend == "onnx" or not has_torch:
            raise ModelError(str(exc)) from exc
        warnings.warn(f"photocap: the ONNX captioner is not available ({exc}); using torch instead",
                      BackendFallbackWarning, stacklevel=2)
        from photocap.captioner.torch_backend import TorchCaptioner

        return TorchCaptioner(model_path, device="cpu", embedding_head=embedding_head, **settings)

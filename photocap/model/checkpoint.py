"""Model files: one ``.safetensors`` file holding the weights, with the JSON config,
vocabulary and model card facts in its metadata header.

Loading reads tensors and JSON only; it never unpickles, so a model file cannot
run code. Anything malformed or mismatched raises ``CheckpointError`` naming the
file and what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from photocap.decoding import modelfile
from photocap.decoding.modelfile import (FORMAT, FORMAT_VERSION, CheckpointError, ModelHeader, atomic_destination,
                                         header_entry, read_metadata)
from photocap.model.encoder import ENCODERS
from photocap.model.network import CaptionModel
from photocap.model.statedict import cast_like, mismatch

# The header half lives in photocap.decoding.modelfile (torch-free); re-exported for the torch side.
__all__ = ["FORMAT", "FORMAT_VERSION", "CheckpointError", "ModelHeader", "atomic_destination", "header_entry",
           "load_model", "read_header", "read_metadata", "save_model"]


def save_model(model: CaptionModel, path: str | Path, *, half: bool = True,
               info: dict[str, Any] | None = None) -> Path:
    """Write ``model`` atomically to ``path``; ``half`` stores float tensors as float16."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        tensors[name] = tensor.contiguous()
    # Tied weights (transformer embedding/output) appear twice; safetensors wants one copy each.
    seen: dict[int, str] = {}
    for name in list(tensors):
        ptr = tensors[name].data_ptr()
        if ptr in seen and tensors[name].numel():
            tensors[name] = tensors[name].clone()
        seen.setdefault(ptr, name)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(model.cfg.to_dict()),
        "vocab": json.dumps(model.vocab.to_dict()),
        "info": json.dumps(info or {}),
    }
    if model.concepts is not None:
        metadata["concepts"] = json.dumps(model.concepts.to_dict())
    with atomic_destination(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def _shapes(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors as empty "meta" tensors of their shapes, read from the header only."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: torch.empty(fh.get_slice(k).get_shape(), device="meta") for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot read weights: {exc}") from exc


def read_header(path: str | Path) -> ModelHeader:
    """Config, vocabulary, info and concept set of a model file, without loading its weights."""
    return modelfile.read_header(path, ENCODERS)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[CaptionModel, dict[str, Any]]:
    """Rebuild the network from the header and load its weights strictly (eval mode, float32)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    header = read_header(path)
    cfg, vocab, info, concepts = header.cfg, header.vocab, header.info, header.concepts
    with torch.device("meta"):  # the config's shapes, without allocating: a huge config costs nothing
        skeleton = CaptionModel(cfg, vocab, pretrained_encoder=False, concepts=concepts)
    problem = mismatch(skeleton.state_dict(), _shapes(path), "config")
    if problem:
        raise CheckpointError(f"{path} does not match its config: {problem}")
    model = CaptionModel(cfg, vocab, pretrained_encoder=False, concepts=concepts)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: cannot read weights: {exc}") from exc
    bad = next((k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad is not None:
        raise CheckpointError(
            f"{path}: the weights hold NaN or infinite values (first: {bad}); the file is damaged "
            "or its training diverged"
        )
    expected = model.state_dict()
    state = cast_like(expected, tensors)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), info

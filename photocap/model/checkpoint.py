"""Model files: one ``.safetensors`` file holding the weights, with the JSON config,
vocabulary and model card facts in its metadata header.

Loading reads tensors and JSON only; it never unpickles, so a model file cannot
run code. Anything malformed or mismatched raises ``CheckpointError`` naming the
file and what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from photocap.imaging.concepts import ConceptSet
from photocap.decoding.config import ModelConfig
from photocap.model.encoder import ENCODERS
from photocap.model.network import CaptionModel
from photocap.model.statedict import cast_like, mismatch
from photocap.decoding.vocab import Vocabulary

FORMAT = "photocap-model"
FORMAT_VERSION = "1"


class CheckpointError(ValueError):
    """A model file is missing, malformed or does not match the code."""


@dataclass(frozen=True)
class ModelHeader:
    """What a model file says about itself, read without its weights."""

    cfg: ModelConfig
    vocab: Vocabulary
    info: dict[str, Any]
    concepts: ConceptSet | None  # the concept words its concept head reports (None: it has none)


@contextlib.contextmanager
def atomic_destination(path: Path) -> Iterator[str]:
    """A temp file beside ``path`` to write to; it replaces ``path`` only if the block succeeds.

    The file gets the usual permissions (0666 less the umask), not mkstemp's 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask)  # after writing: safetensors' save_file recreates the file as 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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


def _require_file(path: Path, what: str = "model", error: type[CheckpointError] = CheckpointError) -> None:
    """``error`` unless ``path`` is a regular file; a FIFO or device is never opened. ``what`` names
    the kind of file in the messages ("model", "pixel head")."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise error(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise error(f"can't read the {what} file {path}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(mode):
        raise error(f"{path} is a folder, not a {what} file; name the .safetensors file in it")
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "not a regular file"
        raise error(f"{path} is {kind}, not a {what} file")


def read_metadata(path: Path, fmt: str, version: str, *, what: str = "model",
                  error: type[CheckpointError] = CheckpointError) -> dict[str, str]:
    """The safetensors metadata of a photocap file, once it is known to be a regular safetensors file
    whose header says format ``fmt``, version ``version``; else ``error`` naming ``what``. The one
    gate of every photocap safetensors file (the model, its pixel head); nothing is executed."""
    from safetensors import SafetensorError, safe_open

    _require_file(path, what, error)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise error(f"{path} is not a photocap {what} file (not safetensors: {exc})") from exc
    if meta.get("format") != fmt:
        raise error(f"{path} is a safetensors file but not a photocap {what} (no photocap header)")
    if meta.get("format_version") != version:
        raise error(f"{path} has {what} format version {meta.get('format_version')!r}; this photocap reads {version}")
    return meta


def _shapes(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors as empty "meta" tensors of their shapes, read from the header only."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: torch.empty(fh.get_slice(k).get_shape(), device="meta") for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot read weights: {exc}") from exc


def header_entry(meta: dict[str, str], key: str, build: Any, default: str | None, where: str,
                 error: type[Exception]) -> Any:
    """One JSON entry of a safetensors header, made into a value by ``build``; ``error``
    naming the entry where it is missing, not JSON, or not a valid value."""
    raw = meta.get(key, default)
    if raw is None:
        raise error(f"{where}: it has no {key!r} entry")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise error(f"{where}: its {key!r} entry is not valid JSON ({exc})") from exc
    try:
        return build(value)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise error(f"{where}: its {key!r} entry is not valid: {exc}") from exc


def read_header(path: str | Path) -> ModelHeader:
    """Config, vocabulary, info and concept set of a model file, without loading its weights."""
    path = Path(path)
    meta = read_metadata(path, FORMAT, FORMAT_VERSION)
    def entry(key: str, build: Any, default: str | None = None) -> Any:
        return header_entry(meta, key, build, default, f"{path}: malformed model header", CheckpointError)

    cfg = entry("config", ModelConfig.from_dict)
    vocab = entry("vocab", Vocabulary.from_dict)
    info = entry("info", lambda d: d, "{}")
    concepts = entry("concepts", ConceptSet.from_dict) if "concepts" in meta else None
    if cfg.encoder not in ENCODERS:
        raise CheckpointError(
            f"{path}: malformed model header: unknown encoder {cfg.encoder!r}; "
            f"this photocap knows {', '.join(ENCODERS)}"
        )
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: malformed model header: its 'info' entry must be a JSON object")
    if cfg.vocab_size != len(vocab):
        raise CheckpointError(
            f"{path}: config says {cfg.vocab_size} words but the vocabulary has {len(vocab)}"
        )
    if cfg.concept_head and concepts is None:
        raise CheckpointError(f"{path}: the config has a concept head but the file lists no concept words")
    if concepts is not None and cfg.concept_words != len(concepts):
        raise CheckpointError(
            f"{path}: config says {cfg.concept_words} concept words but the file lists {len(concepts)}"
        )
    return ModelHeader(cfg, vocab, info, concepts)


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

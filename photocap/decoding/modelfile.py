"""Model files without torch: the header of a photocap ``.safetensors`` file (config, vocabulary,
concept words, info), read as JSON; nothing is unpickled or executed. ``photocap.model.checkpoint``
loads the weights into the torch network; the ONNX captioner reads only this."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from photocap.decoding.config import ModelConfig
from photocap.decoding.vocab import Vocabulary
from photocap.imaging.concepts import ConceptSet

FORMAT = "photocap-model"
FORMAT_VERSION = "1"


# The ONNX graphs of a model file (photocap.model.export writes them, photocap.captioner runs them):
# their names, and the version of their layout (a change makes older graphs be exported again).
GRAPH_FILES = ("encoder", "decoder-init", "decoder-step")
GRAPH_VERSION = 1


@dataclass(frozen=True)
class GraphSpec:
    """What the ONNX graphs of one model read and write (kept as JSON beside them)."""

    version: int  # GRAPH_VERSION of the photocap that wrote them
    encoder_outputs: tuple[str, ...]  # of: grid, words, scores, vector, person
    init_inputs: tuple[str, ...]  # of: grid, words, scores, vector
    state: tuple[str, ...]  # the decoder state's entries, in graph order
    static: tuple[str, ...]  # those held once per image
    image_size: int
    vector_dim: int  # 0: no image vector
    vector_space: str  # the sentence model whose space the image vectors are in ("": none)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GraphSpec":
        names = {f.name for f in fields(cls)}
        if set(d) != names:
            raise ValueError(f"a graph manifest has the entries {sorted(names)}, not {sorted(d)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# The image-embedding head a model may have beside it (photocap.model.embedding): NAME.embedding.safetensors.
# Before it was named for what it is, photocap wrote NAME.pixels.safetensors; that name is still read.
EMBEDDING_SUFFIX = ".embedding.safetensors"
LEGACY_EMBEDDING_SUFFIX = ".pixels.safetensors"
# The format id in such a file's header, from when the head was called the pixel head: kept, an
# internal id, so the files photocap wrote then and the ones it writes now are one format.
EMBEDDING_FORMAT = "photocap-pixels"
EMBEDDING_FORMAT_VERSION = "1"


def model_stem(model_path: str | Path) -> str:
    """A model file's name without ``.safetensors``: what the files beside it are named after."""
    return Path(model_path).name.removesuffix(".safetensors")


def _beside(model_path: str | Path, suffix: str) -> Path:
    return Path(model_path).with_name(model_stem(model_path) + suffix)


def embedding_path_for(model_path: str | Path) -> Path:
    """Where the image-embedding head of a model file is written: beside it, ``NAME.embedding.safetensors``."""
    return _beside(model_path, EMBEDDING_SUFFIX)


def find_embedding_head(model_path: str | Path) -> Path | None:
    """The image-embedding head file beside a model file, or None: ``NAME.embedding.safetensors``,
    else the name older photocap wrote, ``NAME.pixels.safetensors`` (read as it is, no warning:
    nothing is wrong with it, and renaming it is the user's call)."""
    for path in (embedding_path_for(model_path), _beside(model_path, LEGACY_EMBEDDING_SUFFIX)):
        if path.is_file():
            return path
    return None


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


def _require_file(path: Path, what: str = "model", error: type[CheckpointError] = CheckpointError) -> None:
    """``error`` unless ``path`` is a regular file; a FIFO or device is never opened. ``what`` names
    the kind of file in the messages ("model", "image-embedding head")."""
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
    gate of every photocap safetensors file (the model, its image-embedding head); nothing is executed."""
    from safetensors import SafetensorError, safe_open

    _require_file(path, what, error)
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise error(f"{path} is not a photocap {what} file (not safetensors: {exc})") from exc
    if meta.get("format") != fmt:
        raise error(f"{path} is a safetensors file but not a photocap {what} (no photocap header)")
    if meta.get("format_version") != version:
        raise error(f"{path} has {what} format version {meta.get('format_version')!r}; this photocap reads {version}")
    return meta


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


def read_header(path: str | Path, encoders: Collection[str] | None = None) -> ModelHeader:
    """Config, vocabulary, info and concept set of a model file, without loading its weights.
    ``encoders``: the encoder names this runtime can build (None: not checked here)."""
    path = Path(path)
    meta = read_metadata(path, FORMAT, FORMAT_VERSION)
    def entry(key: str, build: Any, default: str | None = None) -> Any:
        return header_entry(meta, key, build, default, f"{path}: malformed model header", CheckpointError)

    cfg = entry("config", ModelConfig.from_dict)
    vocab = entry("vocab", Vocabulary.from_dict)
    info = entry("info", lambda d: d, "{}")
    concepts = entry("concepts", ConceptSet.from_dict) if "concepts" in meta else None
    if encoders is not None and cfg.encoder not in encoders:
        raise CheckpointError(
            f"{path}: malformed model header: unknown encoder {cfg.encoder!r}; "
            f"this photocap knows {', '.join(encoders)}"
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



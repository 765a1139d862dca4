"""Where a model file's ONNX graphs are, and making them where torch is installed.

A model's graphs are found beside it (``NAME.encoder.onnx``, ``NAME.decoder-init.onnx``,
``NAME.decoder-step.onnx`` and the manifest ``NAME.graphs.json``, as the bundled model ships them)
or in the user cache folder (``onnx/``), exported there at first use when torch is installed. The
manifest names the sha256 of the model file (and of the image-embedding head file the graphs include), so
graphs of another model, or of an older version of this one, are never used. Nothing here imports
torch; :func:`write_graphs` imports it when called.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from photocap.decoding.modelfile import (GRAPH_FILES, GRAPH_VERSION, CheckpointError, GraphSpec, ModelHeader,
                                         find_embedding_head, model_stem)


class GraphsUnavailable(RuntimeError):
    """A model's graphs are not there and cannot be made here (the reason says what to do)."""


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def cache_dir() -> Path:
    """Where exported graphs are kept: ``$PHOTOCAP_ONNX_CACHE``, else ``onnx/`` in the user cache folder."""
    from photocap.settings import cache_dir as user_cache

    override = os.environ.get("PHOTOCAP_ONNX_CACHE")
    return Path(override).expanduser() if override else user_cache() / "onnx"


def torch_available() -> bool:
    """Whether torch is installed (found, not imported: importing it takes seconds)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # blocked, or a broken install
        return False


@dataclass(frozen=True)
class Graphs:
    """One model's graph files and what they read and write."""

    files: dict[str, Path]  # GRAPH_FILES name -> .onnx file
    spec: GraphSpec


@dataclass(frozen=True)
class Source:
    """What a model's graphs are made from: the model file and, for a model without its own image
    embedding, the image-embedding head beside it (None: none)."""

    model: Path
    model_sha256: str
    embedding: Path | None
    embedding_sha256: str | None

    @classmethod
    def of(cls, model_path: Path, header: ModelHeader) -> "Source":
        head = None if header.cfg.sentence_dim else find_embedding_head(model_path)
        return cls(model_path, file_sha256(model_path), head, file_sha256(head) if head is not None else None)

    def manifest(self, spec: GraphSpec) -> dict:
        # "pixels_sha256": the key keeps the head's old name, so the graphs made before still match
        return {"model_sha256": self.model_sha256, "pixels_sha256": self.embedding_sha256, "spec": spec.to_dict()}


def _files(folder: Path, name: str) -> tuple[dict[str, Path], Path]:
    return {g: folder / f"{name}.{g}.onnx" for g in GRAPH_FILES}, folder / f"{name}.graphs.json"


def _read(folder: Path, name: str, source: Source) -> Graphs | None:
    """The graphs named ``name`` in ``folder`` if they are there, complete and made from ``source``."""
    files, manifest = _files(folder, name)
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        spec = GraphSpec.from_dict(data["spec"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (data.get("model_sha256") != source.model_sha256 or data.get("pixels_sha256") != source.embedding_sha256
            or spec.version != GRAPH_VERSION or not all(f.is_file() for f in files.values())):
        return None
    return Graphs(files, spec)


def cache_name(source: Source) -> str:
    head = f"-p{source.embedding_sha256[:8]}" if source.embedding_sha256 else ""
    return f"{source.model_sha256[:16]}{head}-g{GRAPH_VERSION}"


def find_graphs(source: Source) -> Graphs | None:
    """The model's graphs beside it, else in the cache; None when neither holds current ones."""
    return _read(source.model.parent, model_stem(source.model), source) or _read(cache_dir(), cache_name(source), source)


def write_graphs(source: Source, folder: Path, name: str) -> Graphs:
    """Export the model's graphs (torch), check them, and put them in ``folder`` as ``name``: the
    graph files first, the manifest last, each by rename, so a reader never finds a partial set."""
    from photocap.model.checkpoint import load_model
    from photocap.model.export import export_graphs
    from photocap.captioner.base import unused_head_beside
    from photocap.model.embedding import EmbeddingHeadError, load_head_for

    model, _ = load_model(source.model, "cpu")
    head, space = None, ""
    if source.embedding is not None:
        try:
            head, header = load_head_for(model, source.embedding)
            space = header.text_model
        except EmbeddingHeadError as exc:  # as the torch captioner does: captions, without image vectors
            unused_head_beside(exc)
    folder.mkdir(parents=True, exist_ok=True)
    files, manifest = _files(folder, name)
    with tempfile.TemporaryDirectory(prefix=".graphs-", dir=folder) as tmp:
        spec = export_graphs(model, Path(tmp), head, space)
        manifest.unlink(missing_ok=True)  # graphs being replaced are never read with their old manifest
        for g, dest in files.items():
            os.replace(Path(tmp) / f"{g}.onnx", dest)
        staged = Path(tmp) / "graphs.json"
        staged.write_text(json.dumps(source.manifest(spec), indent=1), encoding="utf-8")
        os.replace(staged, manifest)
    return Graphs(files, spec)


def ensure_graphs(source: Source, fresh: bool = False) -> Graphs:
    """The model's graphs: found, else exported into the cache where torch is installed; else
    :class:`GraphsUnavailable` saying what to do. ``fresh``: export again even if found (the found
    ones would not load)."""
    found = None if fresh else find_graphs(source)
    if found is not None:
        return found
    if not torch_available():
        raise GraphsUnavailable(
            f"{source.model} has no ONNX graphs for the torch-free captioner, and torch is not installed to "
            f"export them: install photocap[torch] and run `photocap export-graphs {source.model}` once "
            "(or caption with --backend torch)")
    folder = cache_dir()
    try:
        graphs = write_graphs(source, folder, cache_name(source))
    except CheckpointError:
        raise  # the model file itself is damaged: no runtime can load it, so no fallback either
    except OSError as exc:
        raise GraphsUnavailable(f"cannot write the ONNX graphs into {folder}: {exc}") from exc
    except Exception as exc:  # an export or check failure: the reason, for the fallback warning
        raise GraphsUnavailable(f"exporting the model to ONNX failed: {type(exc).__name__}: {exc}") from exc
    _prune(folder, source)
    return graphs


def _prune(folder: Path, source: Source) -> None:
    """Remove the graphs the new ones replace: the same model's with another image-embedding head or layout
    version, and graphs named as photocap before the torch-free captioner named them (``encoder-*``).
    Other models' graphs stay. A file that can't be removed is left for the next export."""
    kept = cache_name(source)
    for old in folder.iterdir():
        stale = old.name.startswith("encoder-") and old.suffix == ".onnx"
        same_model = old.name.startswith(source.model_sha256[:16]) and not old.name.startswith(kept + ".")
        if stale or same_model:
            try:
                if old.is_dir():
                    shutil.rmtree(old)
                else:
                    old.unlink()
            except OSError:
                pass

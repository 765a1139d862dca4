"""The encoder on ONNX Runtime: the CPU backend for inference (the decoder's beam search stays in torch).

The graph is exported from the loaded model at first use (``torch.onnx.export``, opset 17, dynamic
batch) into the user cache folder, keyed by the model file's sha256 and the torch / onnxruntime
versions. A fresh export is checked against the torch encoder on a random batch before it is kept.
Any failure raises :class:`OnnxUnavailable`; the Captioner then falls back to torch with a warning.
onnxruntime and onnx are imported inside functions only.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

OPSET = 17
TOLERANCE = 1e-3  # max abs difference allowed between ONNX and torch outputs (grid and logits)
# How photocap writes the graph, part of its cache key: a change makes the graphs cached by older
# photocaps be exported again (2: the strided convolutions carry their own padding, no Pad nodes).
GRAPH_VERSION = 2


class OnnxUnavailable(RuntimeError):
    """The ONNX encoder cannot be used here (onnxruntime missing, export or check failed)."""


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    """Where exported graphs are kept: ``$PHOTOCAP_ONNX_CACHE``, else ``onnx/`` in the user cache folder."""
    from photocap.settings import cache_dir as user_cache

    override = os.environ.get("PHOTOCAP_ONNX_CACHE")
    return Path(override).expanduser() if override else user_cache() / "onnx"


class _EncodeGraph(nn.Module):
    """What inference asks of the encoder: images -> (grid features, ImageNet logits)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor):
        grid, logits = self.encoder.encode(images)
        return (grid, logits) if logits is not None else (grid,)


class OnnxEncoder:
    """An ONNX Runtime session standing in for ``model.encoder.encode`` (float32, CPU)."""

    def __init__(self, session, has_logits: bool, path: Path) -> None:
        self.session = session
        self.has_logits = has_logits
        self.path = path

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.session.run(None, {"images": images.detach().float().cpu().contiguous().numpy()})
        grid = torch.from_numpy(out[0])
        return grid, (torch.from_numpy(out[1]) if self.has_logits else None)


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle ORT threads would otherwise spin after each run and slow the torch decoder that follows.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _export(encoder: nn.Module, image_size: int, dest: Path) -> None:
    graph = _EncodeGraph(encoder).eval()
    names = ["grid", "logits"] if encoder.concept_head is not None else ["grid"]
    example = torch.zeros(2, 3, image_size, image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the fixed input size ("same" padding)
        torch.onnx.export(graph, (example,), str(dest), opset_version=OPSET, input_names=["images"],
                          output_names=names, dynamic_axes={n: {0: "batch"} for n in ["images", *names]},
                          dynamo=False)


def check(onnx_encoder: OnnxEncoder, encoder: nn.Module, image_size: int, batch: int = 2) -> float:
    """Max abs difference between the ONNX and torch encoders on a random batch; raises past TOLERANCE."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, image_size, image_size, generator=gen) * 2 - 1
    with torch.inference_mode():
        want = encoder.encode(images)
    got = onnx_encoder.encode(images)
    worst = 0.0
    for name, w, g in zip(("grid", "logits"), want, got):
        if (w is None) != (g is None):
            raise OnnxUnavailable(f"the ONNX encoder's {name} output does not match the model's")
        if w is None:
            continue
        if tuple(w.shape) != tuple(g.shape):
            raise OnnxUnavailable(f"the ONNX encoder's {name} has shape {tuple(g.shape)}, not {tuple(w.shape)}")
        diff = float((w.float() - g).abs().max())
        if not diff <= TOLERANCE:  # also catches NaN
            raise OnnxUnavailable(f"the ONNX encoder's {name} differs from torch by {diff:.2g} (> {TOLERANCE})")
        worst = max(worst, diff)
    return worst


def load_onnx_encoder(encoder: nn.Module, image_size: int, model_path: Path, threads: int | None = None,
                      folder: Path | None = None) -> OnnxEncoder:
    """The ONNX encoder for this model file: from the cache, else exported, checked and cached.

    Raises :class:`OnnxUnavailable` with the reason when it cannot be had."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise OnnxUnavailable(f"onnxruntime is not installed ({exc})") from exc
    threads = threads or cpu_threads()
    folder = folder if folder is not None else cache_dir()
    try:
        model = file_sha256(model_path)[:16]
    except OSError as exc:
        raise OnnxUnavailable(f"cannot read the model file to key its ONNX graph: {exc}") from exc
    made_by = hashlib.sha256(f"torch {torch.__version__} ort {ort.__version__} opset {OPSET} "
                             f"graph {GRAPH_VERSION} size {image_size}".encode()).hexdigest()[:16]
    path = folder / f"encoder-{model}-{made_by}.onnx"
    has_logits = encoder.concept_head is not None
    if path.is_file():
        try:
            return OnnxEncoder(_session(path, threads), has_logits, path)
        except Exception:  # a damaged cache file: export it again below
            path.unlink(missing_ok=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".encoder-", suffix=".onnx.tmp", dir=folder)
        os.close(fd)
    except OSError as exc:
        raise OnnxUnavailable(f"cannot write the ONNX graph into {folder}: {exc}") from exc
    tmp = Path(tmp_name)
    try:
        try:
            _export(encoder, image_size, tmp)
            candidate = OnnxEncoder(_session(tmp, threads), has_logits, path)
        except OnnxUnavailable:
            raise
        except Exception as exc:
            raise OnnxUnavailable(f"exporting the encoder to ONNX failed: {type(exc).__name__}: {exc}") from exc
        check(candidate, encoder, image_size)
        os.replace(tmp, path)  # only a checked graph lands in the cache
        _prune(folder, path, model)
        return candidate
    finally:
        tmp.unlink(missing_ok=True)


_OLD_NAME = re.compile(r"encoder-[0-9a-f]{32}\.onnx")  # photocap before 2026-12-06: one hash of everything


def _prune(folder: Path, kept: Path, model: str) -> None:
    """Remove the graphs that ``kept`` replaces (about 30 MB each): the same model's, exported by
    other torch / onnxruntime versions (after an upgrade they are never read again), and graphs
    named as older photocaps named them. Other models' graphs stay. A graph that can't be removed
    (in use elsewhere, on some systems) is left for the next export."""
    for old in folder.glob("encoder-*.onnx"):
        if old != kept and (old.name.startswith(f"encoder-{model}-") or _OLD_NAME.fullmatch(old.name)):
            try:
                old.unlink()
            except OSError:
                pass

"""The captioner without torch: the model's ONNX graphs (``graphs.py``) on ONNX Runtime, the CPU.

The encoder graph gives each photo's concepts, image vector and person probability; the decoder
graphs run under the one beam search and decoding rules (``photocap.decoding``), the torch network's
too, so both write the same captions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from photocap.captioner.base import CaptionerBase, described, model_hint
from photocap.captioner.graphs import Graphs, GraphsUnavailable, Source, cpu_threads, ensure_graphs, torch_available
from photocap.decoding.captions import PhotoConcepts, decode
from photocap.decoding.modelfile import CheckpointError, GraphSpec, read_header
from photocap.errors import ModelError
from photocap.records import VECTOR_DTYPE, Described
from photocap.settings import default_model_path


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads would otherwise spin after each run, taking the CPU from the photos being decoded.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _open(source: Source, threads: int) -> tuple[Graphs, dict]:
    """The model's graphs and their sessions; graphs that don't load (a damaged file) are exported again."""
    graphs = ensure_graphs(source)
    try:
        return graphs, _sessions(graphs, threads)
    except Exception as exc:  # onnxruntime's own error types: a damaged or truncated graph file
        if not torch_available():
            raise GraphsUnavailable(f"the ONNX graphs of {source.model} don't load ({exc}); reinstall photocap, "
                                    "or install photocap[torch] to export them again") from exc
    graphs = ensure_graphs(source, fresh=True)
    return graphs, _sessions(graphs, threads)


def _sessions(graphs: Graphs, threads: int) -> dict:
    # The decoder graphs get one thread: their per-step work is small, and a second thread gained
    # nothing on 2 cores (33-37 images/s either way) while indexing wants it to decode photos.
    return {name: _session(file, threads if name == "encoder" else 1) for name, file in graphs.files.items()}


class OnnxSteps:
    """The decoder graphs driven by ``photocap.decoding.beam`` (its ``Steps``), state in numpy."""

    def __init__(self, init, step, spec: GraphSpec, inputs: dict[str, np.ndarray]) -> None:
        self.init, self.step_graph, self.spec, self.inputs = init, step, spec, inputs
        self.per_row = tuple(k for k in spec.state if k not in spec.static)
        self.state: dict[str, np.ndarray] = {}

    def select(self, images: np.ndarray) -> "OnnxSteps":
        return OnnxSteps(self.init, self.step_graph, self.spec, {k: v[images] for k, v in self.inputs.items()})

    def start(self, per: int) -> None:
        first = dict(zip(self.spec.state, self.init.run(None, self.inputs)))
        self.state = {k: v if k in self.spec.static else np.repeat(v, per, axis=0) for k, v in first.items()}

    def step(self, tokens: np.ndarray) -> np.ndarray:
        logits, *rows = self.step_graph.run(None, {"tokens": tokens, **self.state})
        self.state.update(zip(self.per_row, rows))
        return logits  # (N, V')

    def keep(self, rows: np.ndarray, images: np.ndarray | None) -> None:
        static = self.spec.static
        self.state = {k: (v if images is None else v[images]) if k in static else v[rows]
                      for k, v in self.state.items()}


class OnnxCaptioner(CaptionerBase):
    """A model file's graphs on ONNX Runtime (CPU)."""

    backend = "onnx"

    def __init__(self, model_path: str | Path | None = None, beam: int | None = None,
                 length_penalty: float | None = None, concept_force: float | None = None,
                 embedding_head: str | None = "auto", threads: int | None = None) -> None:
        """As :class:`~photocap.captioner.torch_backend.TorchCaptioner`; ``embedding_head``: ``auto``
        (the image vectors the graphs were made with: the model's own image embedding, or the
        image-embedding head beside it) or None (no image vectors). Raises :class:`GraphsUnavailable`
        when the graphs are neither there nor can be exported here."""
        if embedding_head not in ("auto", None):
            raise ModelError("an image-embedding head file other than the one beside the model needs --backend torch")
        path = Path(model_path) if model_path is not None else default_model_path()
        try:
            self.header = read_header(path)
            source = Source.of(path, self.header)
        except CheckpointError as exc:
            raise ModelError(f"{exc}.{model_hint(model_path, path)}") from exc
        except OSError as exc:
            raise ModelError(f"can't read the model file {path}: {exc}") from exc
        cfg = self.header.cfg
        try:
            self.graphs, self.sessions = _open(source, threads or cpu_threads())
        except CheckpointError as exc:  # its weights, read to export its graphs, are damaged
            raise ModelError(f"{exc}.{model_hint(model_path, path)}") from exc
        self.model_path = path
        self.model_id = cfg.model_id
        self.image_size = cfg.image_size
        self.has_concepts = self.header.concepts is not None
        self.beam = cfg.beam_size if beam is None else beam
        self.length_penalty = cfg.length_penalty if length_penalty is None else length_penalty
        self.concept_force = cfg.concept_force if concept_force is None else concept_force
        self.vectors = embedding_head is not None and "vector" in self.graphs.spec.encoder_outputs
        # the sentence model whose space the image vectors are in (None: no vectors)
        self.image_space = (self.graphs.spec.vector_space or None) if self.vectors else None

    def describe_arrays(self, batch: np.ndarray) -> list[Described]:
        spec, header = self.graphs.spec, self.header
        out = dict(zip(spec.encoder_outputs,
                       self.sessions["encoder"].run(None, {"images": np.ascontiguousarray(batch, dtype=np.float32)})))
        n = batch.shape[0]
        if "words" in out:
            words = [tuple(header.concepts.words[i] for i in row) for row in out["words"].tolist()]
            scores = out["scores"].tolist()
            person = out["person"].tolist() if "person" in out else [None] * n
            photos = [PhotoConcepts(w, tuple(s), p) for w, s, p in zip(words, scores, person)]
        else:
            photos = [PhotoConcepts()] * n
        steps = OnnxSteps(self.sessions["decoder-init"], self.sessions["decoder-step"], spec,
                          {name: out[name] for name in spec.init_inputs})
        decoded = decode(steps, photos, header.cfg, header.vocab, beam_size=self.beam,
                         length_penalty=self.length_penalty, concept_force=self.concept_force)
        blobs = ([v.tobytes() for v in out["vector"].astype(VECTOR_DTYPE)] if self.vectors else [None] * n)
        return described(decoded, blobs)


__all__ = ["GraphsUnavailable", "OnnxCaptioner", "OnnxSteps"]

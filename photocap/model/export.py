"""A model file as ONNX graphs, for the captioner that runs without torch (``photocap.captioner``).

Three graphs, each checked against the torch network before it is kept:
- ``encoder``: images (B, 3, S, S) -> what captioning reads of a photo: the grid (when the decoder
  reads it), the top concept words and scores, the image vector (the model's own image embedding, or
  an image-embedding head's beside it) and the person probe's probability.
- ``decoder-init``: those -> the decoder's state, one row per image (``Decoder.init_state``).
- ``decoder-step``: the last ids (N,) and the state -> logits (N, V') and the state's per-row entries
  (``Decoder.step``); the entries held once per image pass through unchanged.
The beam search and the decoding rules stay in numpy (``photocap.decoding``), shared with torch.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from photocap.decoding.modelfile import GRAPH_FILES, GRAPH_VERSION, GraphSpec
from photocap.model.decoders import ConceptInput
from photocap.model.network import CaptionModel

OPSET = 17
TOLERANCE = 1e-3  # max abs difference allowed between an ONNX graph's outputs and torch's


class ExportError(RuntimeError):
    """A graph could not be exported, or it does not compute what the torch network does."""


class _Encoder(nn.Module):
    def __init__(self, model: CaptionModel, head: nn.Module | None, outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.head, self.outputs = model, head, outputs

    def forward(self, images: torch.Tensor):
        grid, logits = self.model.encoder.encode(images)
        concepts = self.model.concepts_of(logits, grid)
        values = {"grid": grid}
        if concepts is not None:
            values.update(words=concepts.words, scores=concepts.scores, vector=concepts.vector)
            if "person" in self.outputs:
                values["person"] = self.model.person_probability(concepts)
        if self.head is not None:
            values["vector"] = self.head.from_grid(grid, logits)
        return tuple(values[n] for n in self.outputs)


class _Init(nn.Module):
    def __init__(self, model: CaptionModel, inputs: tuple[str, ...], state: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.inputs, self.state = model, inputs, state

    def forward(self, *args):
        given = dict(zip(self.inputs, args))
        concepts = None
        if "words" in given:
            concepts = ConceptInput(given["words"], given["scores"], given.get("vector"))
        grid = given.get("grid")
        if grid is None:  # (B, 0, C): a model that decodes without the grid
            grid = given["scores"].new_zeros(given["scores"].size(0), 0, self.model.cfg.feature_dim)
        feats, concepts = self.model.decoder_inputs(grid, concepts)
        state = self.model.decoder.init_state(feats, concepts)
        return tuple(state[k] for k in self.state)


class _Step(nn.Module):
    def __init__(self, model: CaptionModel, state: tuple[str, ...], per_row: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.state, self.per_row = model, state, per_row

    def forward(self, tokens, *entries):
        logits, new = self.model.decoder.step(tokens, dict(zip(self.state, entries)))
        return (logits, *(new[k] for k in self.per_row))


def _export(module: nn.Module, args: tuple, dest: Path, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]]) -> None:
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # its fused encoder-layer kernel has no ONNX export
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings: shape checks evaluated for the example
            torch.onnx.export(module.eval(), args, str(dest), opset_version=OPSET, input_names=inputs,
                              output_names=outputs, dynamic_axes=dynamic, dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    _store_exact_halves(dest)


def _store_exact_halves(path: Path, min_size: int = 4096) -> None:
    """Store each large float32 constant of the graph at ``path`` that float16 holds exactly (the
    weights of a float16 model file; not those the export folded, such as batch norm into a
    convolution) as float16 with a Cast back: the same numbers in half the bytes. ONNX Runtime folds
    the Cast when it loads the graph, so it computes exactly as before."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or np.prod(init.dims) < min_size:
            continue
        values = numpy_helper.to_array(init)
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, f"{name}.float16"))
        casts.append(helper.make_node("Cast", [f"{name}.float16"], [name], to=TensorProto.FLOAT))
    if casts:
        nodes = [*casts, *graph.node]
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.save(graph_model, str(path))


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _compare(name: str, want: list[torch.Tensor], got: list[np.ndarray], names: list[str]) -> float:
    worst = 0.0
    for n, w, g in zip(names, want, got):
        w = w.detach().float().cpu().numpy() if w.is_floating_point() else w.cpu().numpy()
        if w.shape != g.shape:
            raise ExportError(f"the {name} graph's {n} has shape {g.shape}, not {w.shape}")
        if n == "words":  # a near tie between two concepts may order them either way: their scores are compared
            continue
        diff = float(np.abs(w - g).max()) if w.size else 0.0
        if not diff <= TOLERANCE:  # also catches NaN
            raise ExportError(f"the {name} graph's {n} differs from torch by {diff:.2g} (> {TOLERANCE})")
        worst = max(worst, diff)
    return worst


@torch.no_grad()
def export_graphs(model: CaptionModel, dest: Path, head: nn.Module | None = None,
                  head_space: str = "") -> GraphSpec:
    """Write the graphs (``GRAPH_FILES``: ``NAME.onnx``) into the folder ``dest``, each checked against
    ``model`` on random photos (raises :class:`ExportError`); the caller writes the manifest.
    ``head``: an image-embedding head whose vectors the encoder graph gives (in ``head_space``)."""
    model = model.float().eval().cpu()
    cfg = model.cfg
    dest.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, cfg.image_size, cfg.image_size, generator=gen) * 2 - 1  # (2, 3, S, S)

    own_vector = model.embedding is not None and model.concepts is not None  # concepts_of gives it
    outputs = (("grid",) if model.decodes_grid else ()) + (("words", "scores") if model.concepts is not None else ())
    outputs += ("vector",) if own_vector or head is not None else ()
    outputs += ("person",) if own_vector and cfg.person_gate else ()
    encoder = _Encoder(model, head, outputs)
    _export(encoder, (images,), dest / "encoder.onnx", ["images"], list(outputs),
            {n: {0: "batch"} for n in ("images", *outputs)})
    want = list(encoder(images))
    got = _session(dest / "encoder.onnx").run(None, {"images": images.numpy()})
    _compare("encoder", want, got, list(outputs))
    values = dict(zip(outputs, want))

    reads_concepts = model.concepts is not None and model.decodes_concepts
    init_inputs = tuple(n for n in ("grid", "words", "scores", "vector") if n in values
                        and (n == "grid" or reads_concepts) and not (n == "vector" and model.embedding is None))
    grid = values.get("grid", torch.zeros(2, 0, cfg.feature_dim))
    concepts = ConceptInput(values["words"], values["scores"], values.get("vector")) if "words" in values else None
    feats, read = model.decoder_inputs(grid, concepts)
    first = model.decoder.init_state(feats, read)
    state = tuple(sorted(first))
    static = tuple(k for k in state if model.decoder.static_state(k))
    per_row = tuple(k for k in state if k not in static)
    init = _Init(model, init_inputs, state)
    init_args = tuple(values[n] for n in init_inputs)
    _export(init, init_args, dest / "decoder-init.onnx", list(init_inputs), list(state),
            {**{n: {0: "batch"} for n in init_inputs}, **{k: {0: "batch"} for k in state}})
    got = _session(dest / "decoder-init.onnx").run(None, {n: v.numpy() for n, v in zip(init_inputs, init_args)})
    _compare("decoder-init", [first[k] for k in state], got, list(state))

    # A state two steps in, 3 rows per image, a copied concept among the ids: the example the step is traced on.
    per = 3
    example = model.decoder.rows_per_image(first, per)
    v = len(model.vocab)
    tokens = torch.full((2 * per,), model.vocab.start_id, dtype=torch.long)
    for _ in range(2):
        logits, example = model.decoder.step(tokens, example)
        tokens = logits[:, :v].argmax(dim=1)
    if cfg.concept_slots:
        tokens[0] = v  # the copy path is traced too (the step picks it per row)
    later = model.decoder.step(tokens, example)[1]
    dynamic_in = {"tokens": {0: "rows"}}
    for k in state:
        axes = {0: "batch" if k in static else "rows"}
        axes.update({d: "steps" for d in range(1, example[k].dim()) if example[k].size(d) != later[k].size(d)})
        dynamic_in[k] = axes
    step = _Step(model, state, per_row)
    step_outputs = ["logits", *(f"next_{k}" for k in per_row)]
    dynamic_out = {"logits": {0: "rows"}, **{f"next_{k}": dynamic_in[k] for k in per_row}}
    _export(step, (tokens, *(example[k] for k in state)), dest / "decoder-step.onnx", ["tokens", *state],
            step_outputs, {**dynamic_in, **dynamic_out})
    want = list(step(tokens, *(example[k] for k in state)))
    got = _session(dest / "decoder-step.onnx").run(
        None, {"tokens": tokens.numpy(), **{k: example[k].numpy() for k in state}})
    _compare("decoder-step", want, got, step_outputs)

    assert {p.stem for p in dest.glob("*.onnx")} >= set(GRAPH_FILES)
    space = (head_space if head is not None else cfg.sentence_model) if "vector" in values else ""
    return GraphSpec(GRAPH_VERSION, outputs, init_inputs, state, static, cfg.image_size,
                     int(values["vector"].size(1)) if "vector" in values else 0, space)

"""The torch-free captioner: a model's ONNX graphs on ONNX Runtime write the torch network's captions,
the bundled graphs ship beside the bundled model, other models' graphs are exported once (checked) where
torch is installed, and without torch a missing graph is a clear error."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from photocap.captioner import Captioner, graphs
from photocap.cli import cli
from photocap.errors import BackendFallbackWarning, ModelError
from photocap.settings import default_model_path


@pytest.fixture(scope="module")
def bundled_pair():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the ONNX path must work here, without a fallback warning
        onnx = Captioner(device="cpu", backend="onnx")
    return onnx, Captioner(device="cpu", backend="torch")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("PHOTOCAP_ONNX_CACHE", str(folder))
    return folder


def _rows(captioner, paths, batch_size=16):
    return list(captioner.caption_paths(paths, batch_size=batch_size))


def _same_results(got, want):
    assert [r.path for r in got] == [r.path for r in want]
    for g, w in zip(got, want):
        assert g.caption == w.caption
        assert [c.word for c in g.concepts] == [c.word for c in w.concepts]
        assert [c.score for c in g.concepts] == pytest.approx([c.score for c in w.concepts], abs=2e-4)
        assert g.score == pytest.approx(w.score, abs=1e-3)
        assert (g.image_vector is None) == (w.image_vector is None)
        if g.image_vector is not None:
            diff = np.abs(np.frombuffer(g.image_vector, np.float32) - np.frombuffer(w.image_vector, np.float32))
            assert diff.max() < 1e-3


def test_bundled_model_same_captions_concepts_and_vectors_with_onnx_and_torch(bundled_pair, sample_photos):
    onnx, torch_ = bundled_pair
    assert onnx.backend == "onnx" and torch_.backend == "torch"
    paths = [sample_photos[n] for n in sorted(sample_photos)]
    for batch_size in (16, 3):  # one batch of 4, then 3 + 1: the graphs' batch axes are dynamic
        got, want = _rows(onnx, paths, batch_size), _rows(torch_, paths, batch_size)
        _same_results(got, want)
    assert len({r.caption for r in got}) == 4 and all(r.image_vector for r in got)


def test_the_bundled_graphs_ship_beside_the_bundled_model_and_are_used(monkeypatch):
    monkeypatch.setattr(graphs, "write_graphs", lambda *a: pytest.fail("the bundled graphs were not used"))
    auto = Captioner(device="cpu")
    assert auto.backend == "onnx"
    assert {p.parent for p in auto.graphs.files.values()} == {default_model_path().parent}
    manifest = json.loads(default_model_path().with_name("photocap-default.graphs.json").read_text())
    assert manifest["model_sha256"] == graphs.file_sha256(default_model_path())  # of the model that ships


def test_the_strided_convolutions_pad_inside_the_graphs_convs(bundled_pair):
    """TF "SAME" padding is each strided Conv's own (asymmetric) ``pads``, not a Pad node before it:
    ONNX Runtime fuses no such Pad and runs it outside its blocked layout, a quarter of the encoder's
    time (bench/bench_backend.py)."""
    import onnx

    graph = onnx.load(str(bundled_pair[0].graphs.files["encoder"])).graph
    assert [n.name for n in graph.node if n.op_type == "Pad"] == []
    pads = [list(a.ints) for n in graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "pads"]
    assert [0, 0, 1, 1] in pads  # the 3x3 stem on 224x224 at stride 2: all of it at the bottom and right
    assert [1, 1, 2, 2] in pads  # a 5x5 depthwise convolution at stride 2 on an even size


def test_weights_float16_holds_exactly_are_stored_as_float16_and_compute_the_same(tmp_path):
    """The graphs of a float16 model file keep its weights in float16 with a Cast back (half the bytes);
    a constant float16 would round (here: 0.1) stays float32. Outputs are bit-identical."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto

    import torch

    from photocap.model.export import _export

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.exact = torch.nn.Linear(64, 96).half().float()
            self.rounded = torch.nn.Parameter(torch.full((96, 96), 0.1))

        def forward(self, x):
            return self.exact(x) @ self.rounded

    module, x = Two().eval(), torch.randn(3, 64)
    _export(module, (x,), tmp_path / "two.onnx", ["x"], ["y"], {"x": {0: "b"}})
    graph = onnx.load(str(tmp_path / "two.onnx")).graph
    kinds = {i.name: i.data_type for i in graph.initializer if len(i.dims) == 2}
    assert sorted(kinds.values()) == [TensorProto.FLOAT, TensorProto.FLOAT16]
    assert [n.op_type for n in graph.node].count("Cast") == 1
    got = ort.InferenceSession(str(tmp_path / "two.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
    with torch.no_grad():
        assert np.allclose(got[0], module(x).numpy(), atol=1e-5)


@pytest.mark.parametrize("which", ["tiny_model_path", "tiny_concept_model_path"])
def test_another_model_is_exported_once_into_the_cache_and_writes_torchs_captions(which, request, cache,
                                                                                   sample_photos, monkeypatch):
    """An LSTM with attention, and a transformer that reads and copies concepts (constraints, copy ids)."""
    path = request.getfixturevalue(which)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        onnx = Captioner(path, device="cpu")
    assert onnx.backend == "onnx" and {p.parent for p in onnx.graphs.files.values()} == {cache}
    paths = [sample_photos[n] for n in sorted(sample_photos)]
    _same_results(_rows(onnx, paths, 3), _rows(Captioner(path, device="cpu", backend="torch"), paths, 3))
    monkeypatch.setattr(graphs, "write_graphs", lambda *a: pytest.fail("the cached graphs were not used"))
    assert Captioner(path, device="cpu").graphs.files == onnx.graphs.files


def test_a_failed_export_falls_back_to_torch_with_a_warning_and_leaves_nothing(tiny_model_path, cache,
                                                                               monkeypatch, sample_photos):
    from photocap.model import export

    def broken(*args):
        raise ValueError("no exporter today")

    monkeypatch.setattr(export, "_export", broken)
    with pytest.warns(BackendFallbackWarning, match=r"ONNX captioner is not available \(exporting the model to ONNX "
                                                    r"failed: ValueError: no exporter today\); using torch instead"):
        captioner = Captioner(tiny_model_path, device="cpu")
    assert captioner.backend == "torch"
    paths = [sample_photos["chelsea.jpg"]]
    reference = Captioner(tiny_model_path, device="cpu", backend="torch")
    assert [r.caption for r in _rows(captioner, paths)] == [r.caption for r in _rows(reference, paths)]
    assert not [p for p in cache.rglob("*") if p.is_file()]  # nothing half-written left behind
    with pytest.raises(ModelError, match="no exporter today"):  # asked for by name: an error, no fallback
        Captioner(tiny_model_path, device="cpu", backend="onnx")


def test_a_graph_that_fails_its_check_is_not_used_nor_cached(tiny_model_path, cache, monkeypatch):
    from photocap.model import export

    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # no graph can pass
    with pytest.warns(BackendFallbackWarning, match="differs from torch by"):
        captioner = Captioner(tiny_model_path, device="cpu")
    assert captioner.backend == "torch"
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_without_torch_a_model_without_graphs_says_what_to_do(tiny_model_path, cache, monkeypatch):
    monkeypatch.setattr(graphs, "torch_available", lambda: False)
    with pytest.raises(ModelError, match=r"has no ONNX graphs .* install photocap\[torch\] and run "
                                         r"`photocap export-graphs .*tiny.safetensors` once"):
        Captioner(tiny_model_path, device="cpu")
    with pytest.raises(ModelError, match=r"--backend torch needs PyTorch: pip install 'photocap\[torch\]'"):
        Captioner(tiny_model_path, device="cpu", backend="torch")
    assert Captioner(device="cpu").backend == "onnx"  # the bundled model's graphs ship


def test_exported_graphs_beside_a_model_serve_an_install_without_torch(tiny_model_path, cache, tmp_path,
                                                                       monkeypatch, sample_photos):
    import shutil

    model = shutil.copy(tiny_model_path, tmp_path / "mine.safetensors")
    result = CliRunner().invoke(cli, ["export-graphs", str(model), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)["graphs"]
    assert sorted(written) == ["decoder-init", "decoder-step", "encoder"]
    assert all(str(tmp_path) in f for f in written.values()) and (tmp_path / "mine.graphs.json").is_file()
    monkeypatch.setattr(graphs, "torch_available", lambda: False)
    captioner = Captioner(model, device="cpu")
    assert captioner.backend == "onnx" and not cache.exists()
    assert _rows(captioner, [sample_photos["coffee.jpg"]])[0].caption
    model.write_bytes(model.read_bytes()[:-8] + b"\0" * 8)  # the model changed: its graphs no longer fit
    with pytest.raises(ModelError, match="has no ONNX graphs"):
        Captioner(model, device="cpu")


def test_a_damaged_cached_graph_is_exported_again(tiny_model_path, cache):
    first = Captioner(tiny_model_path, device="cpu", backend="onnx")
    first.graphs.files["decoder-step"].write_bytes(b"not an onnx graph")
    again = Captioner(tiny_model_path, device="cpu", backend="onnx")
    assert again.backend == "onnx" and again.graphs.files["decoder-step"].stat().st_size > 1000


def test_a_new_export_replaces_the_same_models_old_graphs_and_keeps_other_models(tiny_model_path, cache):
    cache.mkdir()
    sha = graphs.file_sha256(tiny_model_path)[:16]
    older_layout = cache / f"{sha}-g0.encoder.onnx"  # this model, by an older photocap
    encoder_only = cache / f"encoder-{sha}-{'0' * 16}.onnx"  # named the way the ONNX encoder was cached
    other_model = cache / f"{'b' * 16}-g1.encoder.onnx"
    unrelated = cache / "notes.txt"
    for f in (older_layout, encoder_only, other_model, unrelated):
        f.write_bytes(b"x")
    captioner = Captioner(tiny_model_path, device="cpu", backend="onnx")
    kept = {p.name for p in captioner.graphs.files.values()} | {f"{sha}-g{graphs.GRAPH_VERSION}.graphs.json"}
    assert {p.name for p in cache.iterdir()} == kept | {other_model.name, unrelated.name}


def test_cli_caption_backend_onnx_and_torch_agree(sample_photos):
    folder = str(next(iter(sample_photos.values())).parent)
    runs = {}
    for backend in ("onnx", "torch"):
        result = CliRunner().invoke(cli, ["caption", "--backend", backend, folder, "--json", "--batch-size", "3"])
        assert result.exit_code == 0, result.output
        assert "ONNX" not in result.stderr  # no fallback warning
        runs[backend] = [json.loads(line) for line in result.stdout.splitlines()]
    onnx_rows, torch_rows = runs["onnx"], runs["torch"]
    assert len(onnx_rows) == 4
    assert {r["path"].rsplit("/", 1)[-1] for r in onnx_rows} == set(sample_photos)
    for o, t in zip(onnx_rows, torch_rows):
        assert set(o) == {"path", "caption", "score", "model", "concepts"}
        assert (o["path"], o["caption"], o["model"]) == (t["path"], t["caption"], t["model"])
        assert [c["word"] for c in o["concepts"]] == [c["word"] for c in t["concepts"]]


def test_cli_rejects_an_unknown_backend(sample_photos):
    result = CliRunner().invoke(cli, ["caption", "--backend", "tensorrt", str(sample_photos["coffee.jpg"])])
    assert result.exit_code == 2 and "tensorrt" in result.output


def test_the_onnx_backend_is_for_the_cpu_only(tiny_model_path):
    with pytest.raises(ModelError, match="--backend onnx runs on the CPU, not cuda"):
        Captioner(tiny_model_path, device="cuda", backend="onnx")
    with pytest.raises(ModelError, match="unknown backend 'tensorrt'"):
        Captioner(tiny_model_path, device="cpu", backend="tensorrt")


def test_a_model_whose_weights_are_damaged_is_an_error_not_a_fallback(tiny_model_path, cache, tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tiny_model_path), framework="pt") as fh:
        tensors, meta = {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()
    name = next(k for k, t in tensors.items() if t.is_floating_point())
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    damaged = tmp_path / "damaged.safetensors"
    save_file(tensors, str(damaged), metadata=meta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "using torch instead": torch can't load it either
        with pytest.raises(ModelError, match="NaN or infinite values"):
            Captioner(damaged, device="cpu")

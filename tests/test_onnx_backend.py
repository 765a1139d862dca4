"""The ONNX Runtime encoder backend: same captions and concepts as torch, and a torch fallback that says why."""

from __future__ import annotations

import json
import sys
import warnings

import pytest
from click.testing import CliRunner

from photocap import onnx_encoder
from photocap.cli import cli
from photocap.errors import BackendFallbackWarning
from photocap.captioner import Captioner
from photocap.settings import default_model_path


@pytest.fixture(scope="module")
def bundled_pair():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the ONNX path must work here, without a fallback warning
        onnx = Captioner(device="cpu", backend="onnx")
    return onnx, Captioner(device="cpu", backend="torch")


def _rows(captioner, paths, batch_size=16):
    return list(captioner.caption_paths(paths, batch_size=batch_size))


def test_bundled_model_same_captions_and_concepts_with_onnx_and_torch(bundled_pair, sample_photos):
    onnx, torch_ = bundled_pair
    assert onnx.backend == "onnx" and torch_.backend == "torch"
    paths = [sample_photos[n] for n in sorted(sample_photos)]
    for batch_size in (16, 3):  # one batch of 4, then 3 + 1: the graph's batch axis is dynamic
        got, want = _rows(onnx, paths, batch_size), _rows(torch_, paths, batch_size)
        assert [r.path for r in got] == [r.path for r in want]
        for g, w in zip(got, want):
            assert g.caption == w.caption
            assert [c.word for c in g.concepts] == [c.word for c in w.concepts]
            assert [c.score for c in g.concepts] == pytest.approx([c.score for c in w.concepts], abs=2e-4)
            assert g.score == pytest.approx(w.score, abs=1e-4)
    assert len({r.caption for r in got}) == 4


def test_a_shared_cpu_runs_the_torch_decoder_on_one_thread_with_the_same_captions(bundled_pair, sample_photos,
                                                                                 monkeypatch):
    import torch
    from PIL import Image

    onnx, torch_ = bundled_pair
    images = [Image.open(sample_photos[n]).convert("RGB") for n in sorted(sample_photos)]
    alone = onnx.describe_images(images)
    threads = torch.get_num_threads()
    seen: list[int] = []
    for captioner in bundled_pair:
        decode = captioner.model.decode_features
        monkeypatch.setattr(captioner.model, "decode_features",
                            lambda *a, _decode=decode, **k: seen.append(torch.get_num_threads()) or _decode(*a, **k))
    shared = onnx.describe_images(images, cpu_shared=True)
    torch_.describe_images(images[:1], cpu_shared=True)
    assert [d.caption for d in shared] == [d.caption for d in alone]
    # ONNX Runtime has the encoder: the decoder gets one thread, and the setting is restored after;
    # with torch's encoder the process's threads are left as they are.
    assert seen == [1, threads] and torch.get_num_threads() == threads


def test_encoder_outputs_match_torch_closely(bundled_pair):
    onnx, torch_ = bundled_pair
    worst = onnx_encoder.check(onnx._onnx, torch_.model.encoder, torch_.image_size, batch=3)
    assert worst < 1e-3


def test_the_strided_convolutions_pad_inside_the_graphs_convs(bundled_pair):
    """TF "SAME" padding is each strided Conv's own (asymmetric) ``pads``, not a Pad node before it:
    ONNX Runtime fuses no such Pad and runs it outside its blocked layout, a quarter of the encoder's
    time (bench/bench_backend.py). The numbers are the same (test_encoder_outputs_match_torch_closely)."""
    import onnx

    graph = onnx.load(str(bundled_pair[0]._onnx.path)).graph
    assert [n.name for n in graph.node if n.op_type == "Pad"] == []
    pads = [list(a.ints) for n in graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "pads"]
    assert [0, 0, 1, 1] in pads  # the 3x3 stem on 224x224 at stride 2: all of it at the bottom and right
    assert [1, 1, 2, 2] in pads  # a 5x5 depthwise convolution at stride 2 on an even size


def test_auto_picks_onnx_on_the_cpu_and_reuses_the_cached_graph(bundled_pair, monkeypatch):
    monkeypatch.setattr(onnx_encoder, "_export", lambda *a: pytest.fail("the cached graph was not used"))
    auto = Captioner(device="cpu")
    assert auto.backend == "onnx"
    assert auto._onnx.path == bundled_pair[0]._onnx.path and auto._onnx.path.is_file()


def test_torch_backend_never_touches_onnx(tiny_model_path, monkeypatch):
    monkeypatch.setattr(onnx_encoder, "load_onnx_encoder", lambda *a, **k: pytest.fail("onnx was loaded"))
    assert Captioner(tiny_model_path, device="cpu", backend="torch").backend == "torch"


def test_failed_export_falls_back_to_torch_with_a_warning(tiny_model_path, tmp_path, monkeypatch, sample_photos):
    monkeypatch.setenv("PHOTOCAP_ONNX_CACHE", str(tmp_path / "cache"))

    def broken(*args):
        raise ValueError("no exporter today")

    monkeypatch.setattr(onnx_encoder, "_export", broken)
    with pytest.warns(BackendFallbackWarning, match=r"ONNX encoder is not available \(exporting the encoder to ONNX "
                                            r"failed: ValueError: no exporter today\); using torch instead"):
        captioner = Captioner(tiny_model_path, device="cpu", backend="onnx")
    assert captioner.backend == "torch" and captioner._onnx is None
    reference = Captioner(tiny_model_path, device="cpu", backend="torch")
    paths = [sample_photos["chelsea.jpg"]]
    assert [r.caption for r in _rows(captioner, paths)] == [r.caption for r in _rows(reference, paths)]
    assert not list((tmp_path / "cache").glob("*.onnx*"))  # nothing half-written left behind


def test_a_graph_that_fails_its_check_is_not_used_nor_cached(tiny_model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOCAP_ONNX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_encoder, "TOLERANCE", -1.0)  # no graph can pass
    with pytest.warns(BackendFallbackWarning, match="differs from torch by"):
        captioner = Captioner(tiny_model_path, device="cpu", backend="auto")
    assert captioner.backend == "torch"
    assert not list((tmp_path / "cache").glob("*.onnx*"))


def test_missing_onnxruntime_falls_back(tiny_model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOCAP_ONNX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.warns(BackendFallbackWarning, match="onnxruntime is not installed"):
        assert Captioner(tiny_model_path, device="cpu", backend="onnx").backend == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto without onnxruntime is plain torch, no warning
        assert Captioner(tiny_model_path, device="cpu", backend="auto").backend == "torch"


def test_damaged_cached_graph_is_exported_again(tiny_model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOCAP_ONNX_CACHE", str(tmp_path / "cache"))
    first = Captioner(tiny_model_path, device="cpu", backend="onnx")
    assert first.backend == "onnx"
    first._onnx.path.write_bytes(b"not an onnx graph")
    again = Captioner(tiny_model_path, device="cpu", backend="onnx")
    assert again.backend == "onnx" and again._onnx.path.stat().st_size > 1000


def test_cli_caption_backend_onnx_json(sample_photos):
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
    assert default_model_path().is_file()


def test_cli_rejects_an_unknown_backend(sample_photos):
    result = CliRunner().invoke(cli, ["caption", "--backend", "tensorrt", str(sample_photos["coffee.jpg"])])
    assert result.exit_code == 2 and "tensorrt" in result.output


def test_cli_says_why_it_falls_back_in_one_plain_line(tiny_model_path, tmp_path, sample_photos):
    """A real `photocap caption --backend onnx` process where onnxruntime does not import."""
    import os
    import subprocess

    code = "import sys; sys.modules['onnxruntime'] = None; from photocap.cli import cli; cli()"
    env = {**os.environ, "PHOTOCAP_ONNX_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code, "caption", "--backend", "onnx", "--model", str(tiny_model_path),
                          str(sample_photos["chelsea.jpg"])], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "cat" in out.stdout
    lines = [line for line in out.stderr.splitlines() if "ONNX" in line]
    assert lines == ["photocap: the ONNX encoder is not available (onnxruntime is not installed (import of "
                     "onnxruntime halted; None in sys.modules)); using torch instead"], out.stderr


def test_onnx_backend_is_for_the_cpu_only(tiny_model_path, monkeypatch):
    import torch

    from photocap.errors import ModelError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # refused before anything loads onto it
    with pytest.raises(ModelError, match="--backend onnx runs the encoder on the CPU, not cuda"):
        Captioner(tiny_model_path, device="cuda", backend="onnx")
    with pytest.raises(ModelError, match="unknown backend 'tensorrt'"):
        Captioner(tiny_model_path, device="cpu", backend="tensorrt")


def test_a_new_graph_replaces_the_same_models_old_ones_and_keeps_other_models(tiny_model_path, tmp_path,
                                                                              monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("PHOTOCAP_ONNX_CACHE", str(cache))
    model = onnx_encoder.file_sha256(tiny_model_path)[:16]
    upgraded_away = cache / f"encoder-{model}-{'0' * 16}.onnx"  # this model, by an older torch / onnxruntime
    old_name = cache / f"encoder-{'a' * 32}.onnx"  # named the way photocap used to
    other_model = cache / f"encoder-{'b' * 16}-{'0' * 16}.onnx"
    unrelated = cache / "notes.txt"
    for f in (upgraded_away, old_name, other_model, unrelated):
        f.write_bytes(b"x")
    captioner = Captioner(tiny_model_path, device="cpu", backend="onnx")
    assert captioner.backend == "onnx"
    assert sorted(p.name for p in cache.iterdir()) == sorted([captioner._onnx.path.name, other_model.name,
                                                              unrelated.name])
    assert captioner._onnx.path.name.startswith(f"encoder-{model}-")
    # loading from the cache prunes nothing and exports nothing
    monkeypatch.setattr(onnx_encoder, "_export", lambda *a: pytest.fail("the cached graph was not used"))
    again = Captioner(tiny_model_path, device="cpu", backend="onnx")
    assert again._onnx.path == captioner._onnx.path and other_model.exists()

"""Model files: round trip, and refusing anything that is not a well-formed photocap model."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch

from conftest import EXAMPLES, SAMPLE_CAPTIONS
from photocap.model.checkpoint import CheckpointError, load_model, read_header, save_model
from photocap.model.preprocess import load_image


@pytest.fixture(scope="module")
def images():
    return torch.stack([load_image(EXAMPLES / n, 224) for n in SAMPLE_CAPTIONS])


def test_round_trip_gives_identical_captions(tiny_model_path, images, tmp_path):
    model, _ = load_model(tiny_model_path)
    again_path = save_model(model, tmp_path / "again.safetensors", half=False)
    again, _ = load_model(again_path)
    assert model.caption(images, beam_size=3) == again.caption(images, beam_size=3)
    cfg, vocab, _ = read_header(again_path)
    assert cfg == model.cfg and vocab.itos == model.vocab.itos


def _rewrite_header(src, dest, edit):
    """Rewrite a safetensors file's JSON header with ``edit(header_dict)``."""
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    blob = json.dumps(header).encode()
    dest.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[8 + n :])
    return dest


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.safetensors")


def test_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="not a photocap model"):
        load_model(bad)
    assert not marker.exists()


def test_torch_pickle_checkpoint_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a photocap model"):
        load_model(path)


def test_safetensors_without_photocap_header(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a photocap model"):
        load_model(path)


def test_truncated_file(tiny_model_path, tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(tiny_model_path.read_bytes()[:5000])
    with pytest.raises(CheckpointError):
        load_model(path)


def test_config_that_does_not_match_weights(tiny_model_path, tmp_path):
    def bigger_hidden(header):
        cfg = json.loads(header["__metadata__"]["config"])
        cfg["hidden_dim"] = 128
        header["__metadata__"]["config"] = json.dumps(cfg)

    path = _rewrite_header(tiny_model_path, tmp_path / "mismatch.safetensors", bigger_hidden)
    with pytest.raises(CheckpointError, match="shape mismatch") as err:
        load_model(path)
    assert str(path) in str(err.value)


def test_unknown_config_field_and_newer_format(tiny_model_path, tmp_path):
    def extra_field(header):
        cfg = json.loads(header["__metadata__"]["config"])
        cfg["run_this"] = "__import__('os').system('true')"
        header["__metadata__"]["config"] = json.dumps(cfg)

    with pytest.raises(CheckpointError, match="unknown model config fields: run_this"):
        load_model(_rewrite_header(tiny_model_path, tmp_path / "x.safetensors", extra_field))

    def newer(header):
        header["__metadata__"]["format_version"] = "99"

    with pytest.raises(CheckpointError, match="format version"):
        load_model(_rewrite_header(tiny_model_path, tmp_path / "y.safetensors", newer))


def test_vocabulary_size_mismatch(tiny_model_path, tmp_path):
    def drop_word(header):
        vocab = json.loads(header["__metadata__"]["vocab"])
        vocab["itos"] = vocab["itos"][:-1]
        header["__metadata__"]["vocab"] = json.dumps(vocab)

    with pytest.raises(CheckpointError, match="vocabulary"):
        load_model(_rewrite_header(tiny_model_path, tmp_path / "v.safetensors", drop_word))

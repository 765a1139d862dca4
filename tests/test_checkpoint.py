"""Model files: round trip, and refusing anything that is not a well-formed photocap model."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch

from helpers import EXAMPLES, SAMPLE_CAPTIONS
from photocap.decoding.config import CONFIG_VERSION
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
    header = read_header(again_path)
    cfg, vocab = header.cfg, header.vocab
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


def test_decoding_defaults_travel_with_the_model(tiny_model_path, images, tmp_path):
    from photocap.captioner import Captioner

    model, _ = load_model(tiny_model_path)
    model.cfg.beam_size, model.cfg.length_penalty = 2, 1.5
    path = save_model(model, tmp_path / "decoding.safetensors", half=False)
    captioner = Captioner(path, device="cpu")
    assert (captioner.beam, captioner.length_penalty) == (2, 1.5)
    again, _ = load_model(path)
    assert again.caption(images) == again.caption(images, beam_size=2, length_penalty=1.5)
    overridden = Captioner(path, device="cpu", beam=1, length_penalty=0.0)
    assert (overridden.beam, overridden.length_penalty) == (1, 0.0)


def test_version_1_file_decodes_as_before(tiny_model_path, images, tmp_path):
    """A file from before decoding settings, concepts and n-gram blocking loads and decodes as it did."""
    def as_version_1(header):
        cfg = json.loads(header["__metadata__"]["config"])
        for newer in ("beam_size", "length_penalty", "no_repeat_ngram", "concept_head", "concept_slots",
                      "concept_words", "concept_force"):
            del cfg[newer]
        cfg["version"] = 1
        header["__metadata__"]["config"] = json.dumps(cfg)

    old, _ = load_model(_rewrite_header(tiny_model_path, tmp_path / "v1.safetensors", as_version_1))
    assert (old.cfg.beam_size, old.cfg.length_penalty, old.cfg.version) == (3, 0.0, CONFIG_VERSION)
    assert (old.cfg.no_repeat_ngram, old.cfg.concept_head, old.cfg.concept_slots) == (0, False, 0)
    assert old.caption(images) == old.caption(images, beam_size=3, length_penalty=0.0)


def test_newer_config_version_says_upgrade(tiny_model_path, tmp_path):
    def from_the_future(header):
        cfg = json.loads(header["__metadata__"]["config"])
        cfg["version"], cfg["decoder_of_tomorrow"] = 99, True
        header["__metadata__"]["config"] = json.dumps(cfg)

    with pytest.raises(CheckpointError, match="upgrade photocap"):
        load_model(_rewrite_header(tiny_model_path, tmp_path / "z.safetensors", from_the_future))


@pytest.mark.parametrize("entry", ["vocab", "info", "config"])
def test_a_broken_header_entry_is_named(tiny_model_path, tmp_path, entry):
    """Issue 31: not "Expecting value: line 1 column 1" alone, but which entry of the header."""

    def break_it(header):
        header["__metadata__"][entry] = "{not json"

    path = _rewrite_header(tiny_model_path, tmp_path / f"{entry}.safetensors", break_it)
    with pytest.raises(CheckpointError, match=f"its '{entry}' entry is not valid JSON") as err:
        read_header(path)
    assert str(path) in str(err.value)

    def wrong_shape(header):
        header["__metadata__"][entry] = "[1, 2]"

    with pytest.raises(CheckpointError, match=f"'{entry}'"):
        read_header(_rewrite_header(tiny_model_path, tmp_path / f"{entry}-list.safetensors", wrong_shape))

"""The image-embedding head: a real tiny head trained on real photos finds them by their captions'
meaning; its file is validated (another encoder's is refused); the Captioner fills ``image_vector``
the same on both backends, and leaves it None without a head. The head's old names (the "pixel
head": ``NAME.pixels.safetensors``, ``photocap train-pixels``) still work."""

from __future__ import annotations

import json
import os
import shutil
import stat
import warnings

import numpy as np
import pytest
import skimage.data
import torch
from click.testing import CliRunner
from PIL import Image

from helpers import EXAMPLES, SAMPLE_CAPTIONS
from photocap.cli import cli
from photocap.captioner import Captioner
from photocap.captioner.graphs import Source
from photocap.decoding.modelfile import read_header
from photocap.errors import EmbeddingHeadWarning, ModelError
from photocap.meaning.text import DIM, MODEL_ID, TextEmbedder
from photocap.model.checkpoint import load_model
from photocap.model.embedding import (
    EmbeddingConfig, EmbeddingHeadError, ImageEmbeddingHead, embedding_path_for, encoder_identity, find_embedding_head,
    load_embedding_head, save_embedding_head,
)
from photocap.model.preprocess import load_image
from photocap.records import VECTOR_DTYPE
from photocap.settings import default_model_path
from photocap.training.embedding import EmbeddingData, EmbeddingTrainConfig, dev_recall, train_embedding_head

# Real photos (the examples and scikit-image's samples) with a caption and a paraphrase of it.
SKIMAGE = {
    "horse": ("a black horse silhouette on a white background", "the dark shape of a pony"),
    "motorcycle_left": ("a red motorcycle parked in a garage", "a motorbike standing indoors"),
    "coins": ("a grid of old coins on a table", "many round metal coins"),
    "hubble_deep_field": ("galaxies and stars in deep space", "the night sky full of galaxies"),
}
PARAPHRASES = {
    "astronaut.jpg": "an astronaut grinning beside a flag",
    "rocket.jpg": "a spacecraft ready for launch",
    "chelsea.jpg": "a tabby kitten lying on the ground",
    "coffee.jpg": "a mug of hot espresso",
}


@pytest.fixture(scope="module")
def embedder():
    return TextEmbedder()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """(paths, captions, paraphrases) of eight real photos."""
    folder = tmp_path_factory.mktemp("photos")
    paths, caps, para = [], [], []
    for name, caption in SAMPLE_CAPTIONS.items():
        paths.append(EXAMPLES / name)
        caps.append(caption)
        para.append(PARAPHRASES[name])
    for name, (caption, paraphrase) in SKIMAGE.items():
        path = folder / f"{name}.png"
        pixels = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
        Image.fromarray(pixels).convert("RGB").save(path)
        paths.append(path)
        caps.append(caption)
        para.append(paraphrase)
    return paths, caps, para


@pytest.fixture(scope="module")
def bundled_model():
    model, _ = load_model(default_model_path())
    return model


def _data(model, paths, texts, embedder) -> EmbeddingData:
    images = torch.stack([load_image(p, model.cfg.image_size) for p in paths])
    with torch.no_grad():
        grid, logits = model.encoder.encode(images)
    text = torch.from_numpy(embedder.embed(texts)).unsqueeze(1)  # (N, 1, 384)
    return EmbeddingData([p.name for p in paths], ImageEmbeddingHead.pool(grid), logits, text)


def test_a_tiny_head_trained_on_real_photos_finds_them_by_paraphrases(photos, bundled_model, embedder):
    paths, caps, para = photos
    train = _data(bundled_model, paths, caps, embedder)
    queries = _data(bundled_model, paths, para, embedder)  # same photos, other words
    cfg = EmbeddingTrainConfig(batch_size=len(paths), epochs=40, lr=5e-3)
    torch.manual_seed(0)
    untrained = ImageEmbeddingHead(EmbeddingConfig(out_dim=DIM))
    untrained.set_standardisation(untrained.inputs(train.pooled, train.logits))
    before = dev_recall(untrained, queries)
    result = train_embedding_head(train, queries, cfg)
    after = dev_recall(result.head, queries)
    assert after["R@1"] >= 0.75 > 1 / len(paths) * 2  # chance is 1/8
    assert after["R@1"] > before["R@1"]
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def _tiny_head(tmp_path, encoder_id: str, text_model: str = MODEL_ID, inputs: str = "both"):
    torch.manual_seed(1)
    head = ImageEmbeddingHead(EmbeddingConfig(inputs=inputs, hidden=16, concept_text=True)).eval()
    head.class_text.normal_()  # the concept words' sentence vectors travel in the file too
    head.mix.data.fill_(0.3)
    path = save_embedding_head(head, tmp_path / "x.embedding.safetensors", text_model=text_model,
                               encoder={"identity": encoder_id, "model_id": "m"}, info={"dev_scores": {"R@10": 0.5}})
    return head, path


def test_embedding_head_file_round_trip_refuses_another_encoder_or_text_model(tmp_path, bundled_model, tiny_model_path):
    mine = encoder_identity(bundled_model.encoder, bundled_model.cfg.encoder)
    head, path = _tiny_head(tmp_path, mine)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not safetensors' 0600
    loaded, header = load_embedding_head(path, encoder_id=mine, text_model=MODEL_ID)
    assert header.cfg == head.cfg and header.info["dev_scores"]["R@10"] == 0.5
    pooled, logits = torch.rand(3, 1280), torch.randn(3, 1000)
    assert torch.allclose(loaded(pooled, logits), head(pooled, logits), atol=5e-3)  # stored as fp16
    tiny, _ = load_model(tiny_model_path)
    other = encoder_identity(tiny.encoder, tiny.cfg.encoder)
    assert other != mine
    with pytest.raises(EmbeddingHeadError,
                       match=f"trained for the encoder {mine}.*not this model's {other}.*train-embedding"):
        load_embedding_head(path, encoder_id=other)
    with pytest.raises(EmbeddingHeadError, match="maps into the text model 'other-text'"):
        load_embedding_head(_tiny_head(tmp_path, mine, text_model="other-text")[1], text_model=MODEL_ID)
    with pytest.raises(EmbeddingHeadError, match="not a photocap image-embedding head"):
        load_embedding_head(tiny_model_path)
    with pytest.raises(EmbeddingHeadError, match="not found"):
        load_embedding_head(tmp_path / "gone.embedding.safetensors")


def test_a_tampered_embedding_header_is_refused_with_the_field(tmp_path, bundled_model):
    from safetensors.torch import load_file, save_file

    _, path = _tiny_head(tmp_path, "e-1")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(path))
    bad = tmp_path / "bad.embedding.safetensors"
    save_file(tensors, str(bad), metadata={**meta, "config": json.dumps({**json.loads(meta["config"]), "hidden": 32})})
    with pytest.raises(EmbeddingHeadError, match="does not match its config.*shape mismatch"):
        load_embedding_head(bad)
    save_file(tensors, str(bad), metadata={**meta, "config": json.dumps({"inputs": "sound"})})
    with pytest.raises(EmbeddingHeadError, match="unknown embedding inputs 'sound'"):
        load_embedding_head(bad)


@pytest.fixture(scope="module")
def bundled_pair():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the bundled image-embedding head and the ONNX encoder both load cleanly
        onnx = Captioner(device="cpu", backend="onnx")
    return onnx, Captioner(device="cpu", backend="torch")


def test_the_bundled_model_ships_an_embedding_head_and_fills_image_vector_on_both_backends(bundled_pair, sample_photos):
    assert find_embedding_head(default_model_path()) == embedding_path_for(default_model_path())
    onnx, torch_ = bundled_pair
    paths = [sample_photos[n] for n in sorted(sample_photos)]
    got, want = list(onnx.caption_paths(paths)), list(torch_.caption_paths(paths, batch_size=3))
    assert onnx.image_space == torch_.image_space == MODEL_ID
    for g, w in zip(got, want):
        assert isinstance(g.image_vector, bytes) and len(g.image_vector) == DIM * 4
        a, b = (np.frombuffer(r.image_vector, dtype=VECTOR_DTYPE) for r in (g, w))
        assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
        assert np.abs(a - b).max() < 1e-3
        assert g.caption == w.caption and "image_vector" not in g.to_dict()


def test_the_bundled_embedding_head_belongs_to_the_bundled_model_and_says_its_recipe(bundled_model):
    head, header = load_embedding_head(embedding_path_for(default_model_path()),
                                       encoder_id=encoder_identity(bundled_model.encoder, bundled_model.cfg.encoder),
                                       text_model=MODEL_ID)
    # Trained for v6's encoder, which the bundled model keeps; the model also carries the same head
    # inside (its decoder reads it), and the captioner uses that one.
    assert header.encoder["model_id"] in ("photocap-flickr8k-v6", bundled_model.cfg.model_id)
    assert bundled_model.cfg.sentence_model == MODEL_ID
    assert torch.equal(head.proj[0].weight.half(), bundled_model.embedding.proj[0].weight.half())
    assert header.info["dev_scores"]["images"] == 1000 and header.info["dev_scores"]["R@10"] > 0.5
    assert header.info["recipe"]["loss"].startswith("symmetric InfoNCE")


def test_without_an_embedding_head_image_vector_is_none(tiny_model_path, sample_photos):
    photo = sample_photos["chelsea.jpg"]
    assert find_embedding_head(tiny_model_path) is None
    (r,) = Captioner(tiny_model_path, device="cpu").caption_paths([photo])
    assert r.image_vector is None
    (r,) = Captioner(device="cpu", backend="torch", embedding_head=None).caption_paths([photo])
    assert r.image_vector is None and r.caption


def test_an_embedding_head_for_another_model_is_skipped_beside_it_and_refused_when_named(tmp_path, tiny_model_path,
                                                                                        sample_photos):
    model = tmp_path / "tiny.safetensors"
    shutil.copy(tiny_model_path, model)
    shutil.copy(embedding_path_for(default_model_path()), embedding_path_for(model))  # the bundled model's head
    with pytest.warns(EmbeddingHeadWarning, match="not used.*trained for the encoder efficientnet-lite2"):
        captioner = Captioner(model, device="cpu", backend="torch")
    (r,) = captioner.caption_paths([sample_photos["chelsea.jpg"]])
    assert r.image_vector is None and captioner.image_head is None
    with pytest.raises(ModelError, match="trained for the encoder.*photocap train-embedding"):
        Captioner(model, device="cpu", backend="torch", embedding_head=embedding_path_for(model))



def test_the_onnx_captioner_also_skips_an_embedding_head_for_another_model(tmp_path, tiny_model_path, sample_photos,
                                                                          monkeypatch):
    monkeypatch.setenv("PHOTOCAP_ONNX_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "tiny.safetensors"
    shutil.copy(tiny_model_path, model)
    shutil.copy(embedding_path_for(default_model_path()), embedding_path_for(model))
    with pytest.warns(EmbeddingHeadWarning, match="not used.*trained for the encoder efficientnet-lite2"):
        captioner = Captioner(model, device="cpu", backend="onnx")
    (r,) = captioner.caption_paths([sample_photos["chelsea.jpg"]])
    assert captioner.backend == "onnx" and r.caption and r.image_vector is None and captioner.image_space is None


def test_train_embedding_command_trains_a_head_the_captioner_uses(tmp_path, sample_folder_dataset, sample_photos):
    model = tmp_path / "m.safetensors"
    shutil.copy(default_model_path(), model)
    out = CliRunner().invoke(cli, ["train-embedding", "--data", "folder", str(sample_folder_dataset), "--model",
                                   str(model), "--epochs", "2", "--batch-size", "4",
                                   "--concept-text",
                                   "--cache-dir", str(tmp_path / "cache"), "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output.strip().splitlines()[-1])
    assert summary["embedding_head"] == summary["pixel_head"] == str(embedding_path_for(model))
    assert set(summary["dev"]) == {"R@1", "R@5", "R@10"}
    header = load_embedding_head(embedding_path_for(model))[1]
    assert header.encoder["model_file"] == "m.safetensors" and header.info["recipe"]["epochs"] == 2
    assert header.cfg.concept_text
    (r,) = Captioner(model, device="cpu", backend="torch").caption_paths([sample_photos["coffee.jpg"]])
    assert len(r.image_vector) == DIM * 4


def test_a_head_under_its_old_name_beside_the_model_is_still_found_and_used(tmp_path, tiny_model_path, sample_photos):
    # photocap wrote NAME.pixels.safetensors before the head was named for what it is: still read,
    # without a warning; NAME.embedding.safetensors comes first when both are there.
    model = tmp_path / "tiny.safetensors"
    shutil.copy(tiny_model_path, model)
    tiny, _ = load_model(model)
    encoder = {"identity": encoder_identity(tiny.encoder, tiny.cfg.encoder), "model_id": tiny.cfg.model_id}
    heads = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        heads.append(ImageEmbeddingHead(EmbeddingConfig(inputs="grid", grid_dim=tiny.cfg.feature_dim)).eval())
    legacy = save_embedding_head(heads[0], tmp_path / "tiny.pixels.safetensors", text_model=MODEL_ID, encoder=encoder)
    assert find_embedding_head(model) == legacy and not embedding_path_for(model).exists()
    assert Source.of(model, read_header(model)).embedding == legacy  # the ONNX graphs are made with it too
    photo = sample_photos["chelsea.jpg"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        captioner = Captioner(model, device="cpu", backend="torch")
    (r,) = captioner.caption_paths([photo])
    assert captioner.image_space == MODEL_ID and len(r.image_vector) == DIM * 4
    with torch.no_grad():
        grid, _ = tiny.encoder.encode(load_image(photo, tiny.cfg.image_size).unsqueeze(0))
        want = heads[0].from_grid(grid, None)[0].numpy()
    assert np.abs(np.frombuffer(r.image_vector, dtype=VECTOR_DTYPE) - want).max() < 1e-2  # stored as fp16

    new = save_embedding_head(heads[1], embedding_path_for(model), text_model=MODEL_ID, encoder=encoder)
    assert find_embedding_head(model) == new
    (r2,) = Captioner(model, device="cpu", backend="torch").caption_paths([photo])
    assert np.abs(np.frombuffer(r2.image_vector, dtype=VECTOR_DTYPE) - want).max() > 1e-2  # the new one's


def test_train_pixels_still_runs_train_embedding_says_so_and_is_not_listed():
    runner = CliRunner()
    old = runner.invoke(cli, ["train-pixels", "--help"])
    new = runner.invoke(cli, ["train-embedding", "--help"])
    assert old.exit_code == new.exit_code == 0
    assert old.stderr.strip() == "`photocap train-pixels` is now `photocap train-embedding`; the old name will go"
    assert new.stderr == ""
    assert old.stdout == new.stdout.replace(" train-embedding [OPTIONS]", " train-pixels [OPTIONS]")
    assert "image-embedding head" in old.stdout
    # the old name runs the command itself (its own errors, not "no such command")
    gone = runner.invoke(cli, ["train-pixels", "--data", "folder", "/no/such/folder"])
    assert gone.exit_code == 2 and "does not exist" in gone.stderr and "No such command" not in gone.stderr
    assert gone.stderr.startswith("`photocap train-pixels` is now `photocap train-embedding`")
    listing = runner.invoke(cli, ["--help"]).stdout
    assert "train-embedding" in listing and "train-pixels" not in listing

"""Shared fixtures: real sample photos and a real tiny model trained for a few steps."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest_plugins = ["skip_policy"]  # a skip is allowed only for a listed reason (never photocap's own import)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """Exported ONNX encoders (the CPU backend's cache) go to a folder of this run, not the user's
    cache (subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PHOTOCAP_ONNX_CACHE", str(tmp_path_factory.mktemp("onnx-cache")))
        yield

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "photos"

# Hand-written captions for the bundled sample photos (public domain / CC0, see examples/photos/LICENSES.md).
SAMPLE_CAPTIONS = {
    "astronaut.jpg": "a woman in a space suit smiling in front of a flag",
    "rocket.jpg": "a rocket standing on a launch pad under a blue sky",
    "chelsea.jpg": "a cat sitting on the floor looking to the side",
    "coffee.jpg": "a cup of coffee on a saucer on a table",
}


@pytest.fixture(scope="session")
def sample_photos() -> dict[str, Path]:
    return {name: EXAMPLES / name for name in SAMPLE_CAPTIONS}


def train_tiny_model(arch: str = "show-attend-tell", steps: int = 60, seed: int = 0, attention: str = "soft",
                     concept_slots: int = 0, concept_group: bool = True):
    """A tiny captioner overfitted to the four sample photos. Returns (model, first_loss, last_loss).

    ``concept_slots``: a transformer that reads the photos' top concepts and copies them."""
    import torch

    from photocap.imaging.concepts import bundled_concepts
    from photocap.decoding.config import ModelConfig
    from photocap.model.decoders import caption_loss
    from photocap.model.network import CaptionModel
    from photocap.model.preprocess import load_image
    from photocap.decoding.vocab import Vocabulary

    torch.manual_seed(seed)
    captions = list(SAMPLE_CAPTIONS.values())
    vocab = Vocabulary.build(captions, min_freq=1)
    cfg = ModelConfig(model_id=f"tiny-{arch}" + ("-concepts" if concept_slots else ""), arch=arch, embed_dim=32,
                      hidden_dim=64, attention_dim=32, d_model=32, num_layers=1, num_heads=2, ff_dim=64,
                      memory_layers=0, dropout=0.0, transformer_dropout=0.0, max_len=16, attention=attention,
                      concept_head=bool(concept_slots), concept_slots=concept_slots, concept_group=concept_group)
    model = CaptionModel(cfg, vocab, pretrained_encoder=True,
                         concepts=bundled_concepts() if concept_slots else None).eval()
    images = torch.stack([load_image(EXAMPLES / n, cfg.image_size) for n in SAMPLE_CAPTIONS])
    with torch.no_grad():
        feats, concepts = model.encode(images)  # (4, 49, 1280)
    ids = [model.encode_caption(c, model.concept_words(concepts, i)) for i, c in enumerate(captions)]
    width = max(map(len, ids))
    caps = torch.full((len(ids), width), vocab.pad_id, dtype=torch.long)
    for i, row in enumerate(ids):
        caps[i, : len(row)] = torch.tensor(row)
    opt = torch.optim.Adam(model.decoder.parameters(), lr=3e-3)
    losses = []
    model.decoder.train()
    for _ in range(steps):
        logits, extras = model.decoder(feats, caps[:, :-1], concepts)
        loss = caption_loss(logits, caps[:, 1:], extras, vocab.pad_id)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return model, losses[0], losses[-1]


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A real photocap model file: a tiny show-attend-tell decoder trained on the sample photos."""
    from photocap.model.checkpoint import save_model

    model, _, _ = train_tiny_model()
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="session")
def tiny_concept_model_path(tmp_path_factory) -> Path:
    """A real photocap model file with a concept head: a tiny transformer that reads and copies concepts."""
    from photocap.model.checkpoint import save_model

    model, _, _ = train_tiny_model("transformer", steps=120, concept_slots=3)
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny-concepts.safetensors")


@pytest.fixture
def photo_dir(tmp_path, sample_photos) -> Path:
    """A writable copy of the sample photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, src in sample_photos.items():
        shutil.copy2(src, folder / name)
    return folder


def make_folder_dataset(root: Path, sample_photos: dict[str, Path], *, paraphrase: bool = False,
                        extra_rows: tuple[tuple[str, str], ...] = ()) -> Path:
    """Write a `folder` dataset into ``root``: the sample photos and their mirror images (224 px),
    each with its caption (and a paraphrase of it), plus ``extra_rows`` as given."""
    import csv

    from PIL import Image, ImageOps

    rows = []
    for name, caption in SAMPLE_CAPTIONS.items():
        img = Image.open(sample_photos[name]).convert("RGB").resize((224, 224))
        img.save(root / name)
        ImageOps.mirror(img).save(root / f"mirror-{name}")
        for file in (name, f"mirror-{name}"):
            rows.append((file, caption))
            if paraphrase:
                rows.append((file, caption.replace(" a ", " the ", 1)))
    rows.extend(extra_rows)
    with open(root / "captions.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("image", "caption"), *rows])
    return root


@pytest.fixture(scope="session")
def sample_folder_dataset(tmp_path_factory, sample_photos) -> Path:
    """A `folder` dataset of the four sample photos and their mirror images (small, 224 px)."""
    return make_folder_dataset(tmp_path_factory.mktemp("dataset"), sample_photos)

"""Helpers the tests share (tests import them from here: never from conftest or another test module).

Light at import: photocap, torch and PIL are imported inside the helpers that need them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "photos"

# Hand-written captions for the bundled sample photos (public domain / CC0, see examples/photos/LICENSES.md).
SAMPLE_CAPTIONS = {
    "astronaut.jpg": "a woman in a space suit smiling in front of a flag",
    "rocket.jpg": "a rocket standing on a launch pad under a blue sky",
    "chelsea.jpg": "a cat sitting on the floor looking to the side",
    "coffee.jpg": "a cup of coffee on a saucer on a table",
}


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


def make_photo(path: Path, seed: int, size=None, fmt: str | None = None, exif=None) -> Path:
    """A small distinct photo made from one of the sample photos (which the tiny model knows)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in EXAMPLES.glob("*.jpg"))
    with Image.open(EXAMPLES / names[seed % len(names)]) as src:
        img = src.convert("RGB")
    if size is not None:
        img = img.resize(size)
    img.putpixel((seed % img.width, 0), (seed % 256, 255, 0))  # unique content
    kwargs = {"exif": exif} if exif is not None else {}
    img.save(path, fmt, **kwargs)
    return path


# The kill tests: an indexer run in a subprocess (kill_helpers.py) and what it left behind.
HELPER = Path(__file__).resolve().parent / "kill_helpers.py"


def start(mode: str, db: Path, folder: Path) -> subprocess.Popen[str]:
    # The helper imports the photocap these tests import (a checkout on PYTHONPATH, or the installed one).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(HELPER.parent), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.Popen([sys.executable, str(HELPER), mode, str(db), str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``cond()``'s first true value, polled until ``timeout`` seconds; the test fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def captions_in_files(db: Path) -> tuple[int, int, int]:
    """(captioned records, of them holding their caption in the file, still owing a write)."""
    from photocap.index.store import CaptionIndex
    from photocap.metadata.reader import read_metadata

    with CaptionIndex.open(db) as index:
        records = [r for r in index.iter_photos() if r.caption]
        owed = index.stats()["write_owed"]
    held = sum(1 for r in records if read_metadata(r.path).caption == r.caption)
    return len(records), held, owed

"""Shared fixtures: real sample photos and a real tiny model trained for a few steps.

Fixtures only: the helpers they use (and tests import) are in helpers.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import EXAMPLES, SAMPLE_CAPTIONS, make_folder_dataset, train_tiny_model

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest_plugins = ["skip_policy"]  # a skip is allowed only for a listed reason (never photocap's own import)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """Exported ONNX encoders (the CPU backend's cache) go to a folder of this run, not the user's
    cache (subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PHOTOCAP_ONNX_CACHE", str(tmp_path_factory.mktemp("onnx-cache")))
        yield

@pytest.fixture(scope="session")
def sample_photos() -> dict[str, Path]:
    return {name: EXAMPLES / name for name in SAMPLE_CAPTIONS}


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


@pytest.fixture(scope="session")
def sample_folder_dataset(tmp_path_factory, sample_photos) -> Path:
    """A `folder` dataset of the four sample photos and their mirror images (small, 224 px)."""
    return make_folder_dataset(tmp_path_factory.mktemp("dataset"), sample_photos)

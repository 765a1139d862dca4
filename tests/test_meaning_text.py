"""The sentence model for search by meaning: the real int8 MiniLM from its wheel, on real text."""

from __future__ import annotations

import numpy as np
import pytest

from photocap.errors import MeaningUnavailable
from photocap.meaning import text


@pytest.fixture(scope="module")
def embedder():
    return text.TextEmbedder()


def test_vectors_are_unit_rows_in_input_order(embedder):
    texts = ["a dog runs on the grass", "", "a cat " * 200, "a plate of pizza"]
    v = embedder.embed(texts)
    assert v.shape == (4, text.DIM) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # Order is the caller's, not the length-sorted batch order.
    assert np.allclose(v[3], embedder.embed_one("a plate of pizza"), atol=1e-5)
    assert embedder.embed([]).shape == (0, text.DIM)


def test_batches_of_similar_length_give_each_text_its_own_vector(embedder):
    # A caption and short concept lists, as indexing embeds them: batched by length, each
    # vector equals the text embedded alone (padding and batch-mates change nothing).
    texts = ["a brown dog is running through the long green grass of a park", "dog", "dog, tennis ball",
             "a man in a red shirt rides a bicycle down a busy city street at night", "cat, sofa", ""]
    batched = embedder.embed(texts, batch_size=4)
    alone = np.stack([embedder.embed_one(t) for t in texts])
    assert np.allclose(batched, alone, atol=1e-5)
    assert text._length_batches([16, 3, 6, 17, 5, 2], 4) == [[5, 1], [4, 2], [0, 3]]
    assert text._length_batches([4, 4, 4, 4, 4], 2) == [[0, 1], [2, 3], [4]]


def test_meaning_is_closer_than_other_meanings(embedder):
    q = embedder.embed(["a puppy", "a kitten", "seaside", "kid on a bike"])
    docs = embedder.embed(["a dog sits on the grass", "a cat sleeps on a sofa",
                           "waves on a sandy beach", "a child rides a bicycle down the street"])
    sims = q @ docs.T
    assert list(sims.argmax(axis=1)) == [0, 1, 2, 3]


def test_a_damaged_model_file_is_refused_with_what_to_do(tmp_path, monkeypatch):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx graph")
    with pytest.raises(MeaningUnavailable, match="could not be loaded.*pip install"):
        text.TextEmbedder(bad)
    monkeypatch.setenv(text.TEXT_MODEL_ENV, str(tmp_path / "gone.onnx"))
    assert not text.available()
    with pytest.raises(MeaningUnavailable, match="missing"):
        text.TextEmbedder()

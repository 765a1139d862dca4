"""Concepts: the encoder's own ImageNet classifier, as words, read and copied by the caption model."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import EXAMPLES, SAMPLE_CAPTIONS, train_tiny_model
from photocap.model.checkpoint import CheckpointError, load_model, read_header, save_model
from photocap.imaging.concepts import ConceptSet, bundled_concepts, parse_table, with_article
from photocap.decoding.config import ModelConfig
from photocap.model.decoders import ConceptInput
from photocap.model.encoder import build_backbone
from photocap.model.network import CaptionModel
from photocap.model.preprocess import load_image
from photocap.decoding.slots import copy_ids, encode_with_slots, render
from photocap.decoding.vocab import Vocabulary


@pytest.fixture(scope="module")
def images():
    return torch.stack([load_image(EXAMPLES / n, 224) for n in SAMPLE_CAPTIONS])  # astronaut, rocket, cat, coffee


@pytest.fixture(scope="module")
def copier():
    """A tiny transformer that reads 3 concepts per photo and was trained to copy them."""
    model, first, last = train_tiny_model("transformer", steps=120, concept_slots=3)
    assert last < first / 4
    return model


def test_the_table_folds_classes_into_words():
    table = bundled_concepts()
    words = [table.words[i].word for i in table.class_word]
    assert len(words) == 1000 and len(table) == len(set(words)) < 1000
    assert set(words[151:269]) == {"dog"} and set(words[281:286]) == {"cat"}
    dog = table.words[table.index_of("dog")]
    assert "golden retriever" in dog.aliases and "animal" in dog.terms()


def test_a_table_that_disagrees_with_itself_is_refused():
    header = "index\timagenet\tword\tplural\tgroup\tbroader\taliases"
    rows = [f"{i}\tc{i}\tthing\tthings\tobject\t\t" for i in range(1000)]
    parse_table("\n".join([header, *rows]))  # well-formed
    bad = rows.copy()
    bad[5] = "5\tc5\tthing\tthinges\tobject\t\t"
    with pytest.raises(ValueError, match="another plural"):
        parse_table("\n".join([header, *bad]))
    with pytest.raises(ValueError, match="1000 classes"):
        parse_table("\n".join([header, *rows[:999]]))
    with pytest.raises(ValueError, match="unknown group"):
        parse_table("\n".join([header, *[r.replace("object", "gadget") for r in rows]]))


def test_articles_follow_the_word():
    assert [with_article("a", w) for w in ("elephant", "dog", "umbrella", "unicycle", "hour")] == \
        ["an", "a", "an", "a", "an"]
    assert with_article("the", "elephant") == "the"


def test_concepts_come_from_the_original_classifier_even_when_the_top_block_is_tuned(images):
    cfg = ModelConfig(fine_tune_blocks=1, arch="transformer", concept_head=True, d_model=32, num_layers=1,
                      num_heads=2, ff_dim=64)
    model = CaptionModel(cfg, Vocabulary(["a"]), pretrained_encoder=True, concepts=bundled_concepts()).eval()
    original = build_backbone("efficientnet-lite0", True, with_classifier=True).eval()
    with torch.no_grad():
        for p in model.encoder.backbone.block_modules()[-1].parameters():
            p.add_(0.05)  # what fine-tuning does to the block the classifier was trained on
        grid, logits = model.encoder.encode(images)
        assert torch.allclose(logits, original(images), atol=1e-4)
        assert grid.shape == (4, 49, 1280) and not torch.allclose(grid, original.features(images).flatten(2).mT)
        concepts = model.concepts_of(logits)
    top = [model.concepts.words[i].word for i in concepts.words[:, 0].tolist()]
    assert top[2:] == ["cat", "coffee"]
    assert concepts.scores[2, 0] > 0.9  # five cat classes, summed


def test_caption_words_that_are_concepts_become_copy_ids():
    table = bundled_concepts()
    vocab = Vocabulary(["a", "dog", "plays", "with", "teddy", "bear", "two", "on", "beach"])
    words = [table.words[table.index_of(w)] for w in ("teddy bear", "dog", "beach")]
    ids = encode_with_slots("Two dogs play with a teddy bear on the beach .", vocab, words, slots=3)
    one, many = copy_ids(len(vocab), 3, 0), copy_ids(len(vocab), 3, 1)
    assert ids[1] == vocab.stoi["two"] and ids[2] == many[1]  # "dogs": the plural of concept 1
    assert one[0] in ids and vocab.stoi["teddy"] not in ids  # the phrase wins over its parts
    assert copy_ids(len(vocab), 3, 2)[0] in ids
    text = render([vocab.stoi["a"], copy_ids(len(vocab), 3, 0)[0], vocab.end_id, vocab.stoi["dog"]], vocab,
                  [table.words[table.index_of("elephant")]], slots=3)
    assert text == "an elephant"


def test_a_copying_model_names_its_concepts(copier, images):
    decoded = copier.caption(images)
    assert "cat" in decoded[2].text.split() and "coffee" in decoded[3].text.split()
    assert decoded[2].concepts[0][0].word == "cat" and decoded[2].concepts[0][1] > 0.9


def test_a_copying_model_names_a_concept_it_never_read_in_a_caption(copier, images):
    """Told the cat photo shows a lynx (no training caption says "lynx"), it says lynx."""
    feats, concepts = copier.encode(images)
    lynx = copier.concepts.index_of("lynx")
    words = concepts.words.clone()
    words[2, 0] = lynx
    decoded = copier.decode_features(feats, concepts=ConceptInput(words, concepts.scores))
    assert "lynx" in decoded[2].text.split() and "cat" not in decoded[2].text.split()


def test_constrained_decoding_names_a_confident_top_concept(copier, images):
    feats, concepts = copier.encode(images)
    words, scores = concepts.words.clone(), concepts.scores.clone()
    words[0, 0], scores[0, 0] = copier.concepts.index_of("umbrella"), 0.6  # the astronaut, said to hold one
    scores[1:, 0] = 0.3  # the others: not confident enough to force
    told = ConceptInput(words, scores)
    free = copier.decode_features(feats, concepts=told)
    forced = copier.decode_features(feats, concepts=told, concept_force=0.5)
    assert "umbrella" not in free[0].text and "umbrella" in forced[0].text.split()
    assert [d.text for d in forced[1:]] == [d.text for d in free[1:]]  # below the threshold: as before


def test_concepts_travel_in_the_model_file(copier, images, tmp_path):
    path = save_model(copier, tmp_path / "copier.safetensors")
    header = read_header(path)
    assert header.concepts is not None and header.concepts.version == copier.concepts.version
    again, _ = load_model(path)
    assert [d.text for d in again.caption(images)] == [d.text for d in copier.caption(images)]


def test_a_model_file_whose_concepts_do_not_match_is_refused(copier, tmp_path):
    import struct

    path = save_model(copier, tmp_path / "copier.safetensors")
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    concepts = json.loads(header["__metadata__"]["concepts"])
    concepts["words"] = concepts["words"][:-1]
    header["__metadata__"]["concepts"] = json.dumps(concepts)
    blob = json.dumps(header).encode()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[8 + n :])
    with pytest.raises(CheckpointError, match="concept"):
        load_model(bad)


def test_concept_set_round_trips_and_refuses_junk():
    table = bundled_concepts()
    again = ConceptSet.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again == table
    for junk in ([], {"words": "dog", "class_word": []}, {"words": [["dog", "dogs", "dog"]], "class_word": [0] * 999}):
        with pytest.raises(ValueError):
            ConceptSet.from_dict(junk)


def test_concept_tokens_without_their_group_train_copy_and_travel(images, tmp_path):
    """``concept_group=False``: no group embedding in the model (nor in its file); it still learns to
    copy, and the file says so, so it loads as it was trained."""
    model, first, last = train_tiny_model("transformer", steps=120, concept_slots=3, concept_group=False)
    assert last < first / 4
    assert model.decoder.concept_group is None
    assert not any("concept_group" in name for name in model.state_dict())
    decoded = model.caption(images)
    assert "cat" in decoded[2].text.split() and "coffee" in decoded[3].text.split()
    path = save_model(model, tmp_path / "no-group.safetensors")
    assert read_header(path).cfg.concept_group is False
    again, _ = load_model(path)
    assert again.decoder.concept_group is None
    assert [d.text for d in again.caption(images)] == [d.text for d in decoded]

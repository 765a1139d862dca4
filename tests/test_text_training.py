"""Caption text without photos: reading it, standing it in for a photo, and a word that only the
text taught reaching a photo's caption through the image embedding."""

from __future__ import annotations

import random

import pytest
import torch
from click.testing import CliRunner

from helpers import EXAMPLES, SAMPLE_CAPTIONS, make_folder_dataset
from photocap.cli import cli
from photocap.errors import DatasetError
from photocap.model.checkpoint import load_model, save_model
from photocap.imaging.concepts import bundled_concepts
from photocap.decoding.config import ModelConfig
from photocap.model.network import CaptionModel
from photocap.model.preprocess import load_image
from photocap.decoding.vocab import Vocabulary
from photocap.training.datasets import CaptionedImage, DatasetProblems, DatasetSplits, load_dataset
from photocap.training.config import TrainConfig
from photocap.training.loop import TextCorpus, train
from photocap.training.textdata import ClassifierHabits, TextBridge, concept_phrases, load_caption_text, mentioned_concepts

TINY = dict(encoder="efficientnet-lite0", arch="transformer", d_model=48, num_layers=1, num_heads=2, ff_dim=96,
            memory_layers=0, transformer_dropout=0.0, max_len=14, concept_head=True, concept_slots=3,
            concept_group=False, sentence_dim=384, sentence_tokens=2, sentence_model="all-MiniLM-L6-v2-int8",
            beam_size=2)


def test_caption_text_reads_a_csv_column_or_lines_and_refuses_what_it_cannot_use(tmp_path):
    csv_file = tmp_path / "text.csv"
    csv_file.write_text('source,caption\ncoco,"A pizza on a plate, sliced."\ncoco,\nx,ok\n', encoding="utf-8")
    assert load_caption_text(csv_file) == ["A pizza on a plate, sliced."]  # empty and one-word rows skipped
    lines = tmp_path / "mine.txt"
    lines.write_text("grandma's kitchen on sunday\n\nthe red bus to school\n", encoding="utf-8")
    assert load_caption_text(lines) == ["grandma's kitchen on sunday", "the red bus to school"]
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("image,text\na.jpg,a dog\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="'caption' column"):
        load_caption_text(wrong)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no captions"):
        load_caption_text(empty)
    binary = tmp_path / "photo.txt"
    binary.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)))
    with pytest.raises(DatasetError, match="cannot read"):
        load_caption_text(binary)


def test_the_concept_words_a_caption_names_are_found_in_order_phrases_first():
    concepts = bundled_concepts()
    phrases = concept_phrases(concepts)
    named = [concepts.words[k].word for k in mentioned_concepts("Two cats on a sofa beside a laptop and a cat", phrases)]
    assert named[:1] == ["cat"] and "laptop" in named and named.count("cat") == 1
    assert [concepts.words[k].word for k in mentioned_concepts("a teddy bear and a bear", phrases)][:1] == ["teddy bear"]
    assert mentioned_concepts("a man is walking down the road", phrases) == []


def test_a_text_caption_stands_in_for_a_photo_with_true_and_false_concepts_and_a_noisy_unit_vector():
    concepts = bundled_concepts()
    cat, laptop = concepts.index_of("cat"), concepts.index_of("laptop")
    habits = ClassifierHabits(hit_scores=(0.6, 0.8), miss_words=tuple(range(20, 60)), miss_scores=(0.01, 0.05))
    vectors = torch.nn.functional.normalize(torch.randn(3, 384), dim=-1)
    bridge = TextBridge(noise=0.05, keep=1.0)
    out = bridge.concepts([[cat, laptop], [], [cat]], vectors, habits, 4, random.Random(0), torch.Generator().manual_seed(0))
    assert out.words.shape == (3, 4) and out.scores.shape == (3, 4)
    assert out.words[0, :2].tolist() in ([cat, laptop], [laptop, cat])  # named words score as hits: first
    assert cat not in out.words[1].tolist() and len(set(out.words[1].tolist())) == 4  # distractors only, distinct
    assert bool((out.scores[:, :-1] >= out.scores[:, 1:]).all())  # best first, as the classifier reports them
    assert torch.allclose(out.vector.norm(dim=-1), torch.ones(3), atol=1e-5)
    cosine = (out.vector * vectors).sum(-1)
    assert bool((cosine > 0.5).all() and (cosine < 0.999).all())  # near the caption's vector, not on it
    never = TextBridge(noise=0.0, keep=0.0).concepts([[cat]] * 20, vectors[:1].repeat(20, 1), habits, 4,
                                                    random.Random(1), torch.Generator().manual_seed(1))
    assert cat not in never.words.flatten().tolist()  # keep 0: the classifier missed it every time


def _source_model(path):
    """A model file with a random image-embedding head, standardised on the sample photos so that
    their embeddings differ, to start a new decoder from."""
    torch.manual_seed(0)
    vocab = Vocabulary.build(SAMPLE_CAPTIONS.values(), min_freq=1)
    model = CaptionModel(ModelConfig(**TINY, model_id="tiny-source"), vocab, pretrained_encoder=True,
                         concepts=bundled_concepts()).eval()
    with torch.no_grad():
        grid, logits = model.encoder.encode(torch.stack([load_image(EXAMPLES / n, 224) for n in SAMPLE_CAPTIONS]))
        model.embedding.set_standardisation(model.embedding.inputs(model.embedding.pool(grid), logits))
    save_model(model, path, half=False)
    return model


def test_a_word_only_text_taught_reaches_the_caption_of_a_photo_never_trained_on(tmp_path, sample_photos):
    """Chelsea (the cat) is not a training photo. Text-only captions, with the sentence vector the
    photo's image embedding lands on, describe "a tabby dozing on a tartan blanket": none of tabby,
    dozing, tartan or blanket is in a photo's caption or a concept word. Captioned from the image
    embedding, Chelsea gets them."""
    source = _source_model(tmp_path / "source.safetensors")
    with torch.no_grad():
        images = torch.stack([load_image(p, 224) for p in sample_photos.values()])
        vectors = dict(zip(sample_photos, source.encode(images)[1].vector))
    train_items = [CaptionedImage(n, p, (SAMPLE_CAPTIONS[n],)) for n, p in sample_photos.items() if n != "chelsea.jpg"]
    # Dev (the best epoch is chosen on it; CIDEr needs two photos): Chelsea, described as the text does.
    dev = [CaptionedImage("chelsea.jpg", sample_photos["chelsea.jpg"], ("a tabby dozing on a tartan blanket",)),
           CaptionedImage("rocket.jpg", sample_photos["rocket.jpg"], (SAMPLE_CAPTIONS["rocket.jpg"],))]
    splits = DatasetSplits(train_items, dev, [], DatasetProblems(), "test")
    texts = ("a tabby dozing on a tartan blanket",) * 8
    others = tuple(SAMPLE_CAPTIONS[n] for n in ("coffee.jpg", "rocket.jpg"))
    corpus = TextCorpus(texts + others, torch.stack([vectors["chelsea.jpg"]] * len(texts)
                                                    + [vectors["coffee.jpg"], vectors["rocket.jpg"]]))
    cfg = TrainConfig(epochs=30, batch_size=4, lr=3e-3, warmup_steps=2, min_freq=1, val_beam=2, checkpoint_every=0,
                      patience=100, text_noise=0.01, text_keep=1.0, grid_dropout=1.0)
    result = train(splits, ModelConfig(**TINY, decode_grid=False), cfg, tmp_path / "run",
                   cache_root=tmp_path / "cache", text=corpus, encoder_from=tmp_path / "source.safetensors")
    assert result.best_path is not None and result.best_scores["CIDEr"] > 0.5, result.history[-1]
    model, _ = load_model(result.best_path)
    assert "tartan" in model.vocab.stoi and all(w not in " ".join(SAMPLE_CAPTIONS.values()) for w in ("tartan", "tabby"))
    assert torch.equal(model.embedding.proj[0].weight, source.embedding.proj[0].weight)  # the head came along
    with torch.no_grad():
        feats, concepts = model.encode(images)
        captions = {n: d.text for n, d in zip(sample_photos, model.decode_features(feats, concepts=concepts))}
    assert "tartan blanket" in captions["chelsea.jpg"], captions
    assert "tartan" not in captions["coffee.jpg"] and "tartan" not in captions["rocket.jpg"], captions


def test_training_on_text_needs_a_decoder_that_reads_the_image_embedding(tmp_path, sample_photos):
    (tmp_path / "data").mkdir()
    dataset = make_folder_dataset(tmp_path / "data", sample_photos)
    splits = load_dataset("folder", dataset, dev_fraction=0.25)
    plain = {k: v for k, v in TINY.items() if k not in ("sentence_dim", "sentence_tokens")}
    corpus = TextCorpus(("a pizza on a plate",), torch.nn.functional.normalize(torch.randn(1, 384), dim=-1))
    with pytest.raises(Exception, match="reads the image embedding"):
        train(splits, ModelConfig(**plain), TrainConfig(epochs=1, batch_size=4, min_freq=1), tmp_path / "run",
              cache_root=tmp_path / "cache", text=corpus)


def test_train_command_takes_caption_text(tmp_path, sample_photos):
    (tmp_path / "data").mkdir()
    dataset = make_folder_dataset(tmp_path / "data", sample_photos)
    _source_model(tmp_path / "source.safetensors")
    text = tmp_path / "mine.txt"
    text.write_text("a tabby dozing on a tartan blanket\na pizza on a plate\n", encoding="utf-8")
    config = tmp_path / "config.json"
    config.write_text('{"model": %s, "train": {"epochs": 1, "batch_size": 4, "min_freq": 1, "checkpoint_every": 0}}'
                      % __import__("json").dumps(TINY), encoding="utf-8")
    result = CliRunner().invoke(cli, ["train", "--data", "folder", str(dataset), "--out", str(tmp_path / "run"),
                                      "--config", str(config), "--text", str(text), "--cache-dir", str(tmp_path / "c"),
                                      "--encoder-from", str(tmp_path / "source.safetensors"), "--json"])
    assert result.exit_code == 0, result.output
    assert "2 captions of text" in result.output
    model, _ = load_model(tmp_path / "run" / "best.safetensors")
    assert "tartan" in model.vocab.stoi and model.cfg.sentence_dim == 384


def test_the_person_gate_keeps_people_out_of_captions_of_photos_the_probe_doubts(sample_photos):
    """A decoder that would say "man" of every photo: with the gate on, only the photos whose image
    embedding the person probe scores at or above the gate may get the word."""
    torch.manual_seed(0)
    vocab = Vocabulary.build(["a man on a red rocket", "a cup on a table"], min_freq=1)
    model = CaptionModel(ModelConfig(**TINY, person_gate=0.5), vocab, pretrained_encoder=True,
                         concepts=bundled_concepts()).eval()
    man = vocab.stoi["man"]
    with torch.no_grad():
        model.decoder.fc.bias.zero_()
        model.decoder.fc.bias[man] = 50.0  # "man" first, whatever the photo
        images = torch.stack([load_image(p, 224) for p in sample_photos.values()])
        feats, concepts = model.encode(images)
        direction = concepts.vector[0] - concepts.vector[1:].mean(0)  # towards the astronaut, from the rest
        scores = concepts.vector @ direction
        middle = (scores[0] + scores[1:].max()) / 2
        scale = 20 / (scores[0] - middle)
        model.person_probe.copy_(torch.cat([direction * scale, (-middle * scale).view(1)]))
        probability = model.person_probability(concepts)
        captions = [d.text for d in model.decode_features(feats, concepts=concepts)]
    assert probability[0] > 0.5 and bool((probability[1:] < 0.5).all()), probability
    assert "man" in captions[0].split()
    assert all(not set(c.split()) & {"man", "men"} for c in captions[1:]), captions
    model.cfg.person_gate = 0.0  # off: the decoder says what it will
    with torch.no_grad():
        assert all("man" in d.text.split() for d in model.decode_features(feats, concepts=concepts))


def test_a_model_with_an_image_embedding_round_trips_and_gives_its_vectors_to_search(tmp_path, sample_photos):
    from photocap.captioner import Captioner

    source = _source_model(tmp_path / "m.safetensors")
    loaded, _ = load_model(tmp_path / "m.safetensors")
    assert loaded.cfg.sentence_dim == 384 and torch.equal(loaded.embedding.proj[0].weight, source.embedding.proj[0].weight)
    captioner = Captioner(tmp_path / "m.safetensors", device="cpu", backend="torch")
    result = next(iter(captioner.caption_paths([sample_photos["chelsea.jpg"]])))
    with torch.no_grad():
        expected = source.encode(load_image(sample_photos["chelsea.jpg"], 224)[None])[1].vector[0]
    got = torch.frombuffer(bytearray(result.image_vector), dtype=torch.float32)
    assert torch.allclose(got, expected, atol=1e-4)  # the model's own head, no file beside it
    assert captioner.image_space == "all-MiniLM-L6-v2-int8"


def test_a_decoder_that_reads_only_the_image_embedding_captions_every_photo(sample_photos):
    """No concept slots, no grid: the image embedding alone reaches the decoder, for every photo."""
    torch.manual_seed(0)
    vocab = Vocabulary.build(SAMPLE_CAPTIONS.values(), min_freq=1)
    model = CaptionModel(ModelConfig(**{**TINY, "concept_slots": 0, "decode_grid": False}), vocab,
                         pretrained_encoder=True, concepts=bundled_concepts()).eval()
    with torch.no_grad():
        feats, concepts = model.encode(torch.stack([load_image(p, 224) for p in sample_photos.values()]))
        decoded = model.decode_features(feats, concepts=concepts)
    assert len(decoded) == 4 and all(d.text for d in decoded)


def test_a_caption_memory_moves_what_the_decoder_reads_not_what_search_or_the_gate_read(tmp_path, sample_photos):
    """DeCap's bridge with a mix: the decoder reads the photo's image embedding moved ``memory_mix`` of
    the way to its softmax-weighted mean of caption vectors; search and the person probe read the
    photo's own vector. The file keeps the memory and the mix, and the torch-free graphs do the same."""
    import onnx

    from photocap.captioner import Captioner
    from photocap.training.memory import caption_memory

    source = _source_model(tmp_path / "m.safetensors")
    images = torch.stack([load_image(p, 224) for p in sample_photos.values()])
    with torch.no_grad():
        feats, plain = source.encode(images)
    vectors = torch.nn.functional.normalize(torch.randn(6, 384, generator=torch.Generator().manual_seed(1)), dim=-1)
    memory = caption_memory(["a cat on a mat", "a red rocket", "a cup of coffee"], vectors,
                            lambda texts: torch.randn(len(texts), 384, generator=torch.Generator().manual_seed(2)),
                            photo_rows=2, text_rows=4, seed=0)
    assert memory.shape == (6, 384) and torch.allclose(memory.norm(dim=-1), torch.ones(6))
    source.set_sentence_memory(memory, temperature=0.05, mix=0.4)
    with torch.no_grad():
        _, concepts = source.encode(images)
        _, read = source.decoder_inputs(feats, concepts)
    assert torch.equal(concepts.vector, plain.vector)  # search and the person probe: the photo's own vector
    weights = (plain.vector @ memory.T / 0.05).softmax(dim=-1)
    want = torch.nn.functional.normalize(0.4 * weights @ memory + 0.6 * plain.vector, dim=-1)
    assert torch.allclose(read.vector, want, atol=1e-5) and not torch.allclose(read.vector, plain.vector, atol=1e-2)
    source.cfg.memory_mix = 0.0
    assert torch.allclose(source.decoder_inputs(feats, concepts)[1].vector, plain.vector, atol=1e-6)
    source.cfg.memory_mix = 0.4
    save_model(source, tmp_path / "mem.safetensors", half=False)
    loaded, _ = load_model(tmp_path / "mem.safetensors")
    assert (loaded.cfg.memory_size, loaded.cfg.memory_mix) == (6, 0.4)
    assert torch.allclose(loaded.sentence_memory, memory)
    torch_captions = [r.caption for r in Captioner(tmp_path / "mem.safetensors", device="cpu",
                                                   backend="torch").caption_paths(list(sample_photos.values()))]
    torch_free = Captioner(tmp_path / "mem.safetensors", device="cpu", backend="onnx")
    results = list(torch_free.caption_paths(list(sample_photos.values())))
    assert [r.caption for r in results] == torch_captions
    got = torch.stack([torch.frombuffer(bytearray(r.image_vector), dtype=torch.float32) for r in results])
    assert torch.allclose(got, plain.vector, atol=1e-4)  # the index stores the photo's own vector
    graph = onnx.load(str(torch_free.graphs.files["decoder-init"])).graph
    copies = [i.dims for i in graph.initializer if sorted(i.dims) == [6, 384]]
    assert len(copies) == 1, copies  # the memory once, not also its transpose
    with pytest.raises(ValueError, match="memory_mix"):
        ModelConfig(**TINY, memory_size=6, memory_temperature=0.05, memory_mix=1.5)

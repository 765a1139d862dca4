"""The captioning network: encoder weights, decoders, beam search, training signal."""

from __future__ import annotations

import pytest
import torch

from helpers import EXAMPLES, SAMPLE_CAPTIONS, train_tiny_model
from photocap.model.beam import beam_search
from photocap.decoding.config import ModelConfig
from photocap.model.decoders import build_decoder, caption_loss
from photocap.model.encoder import VARIANTS, build_backbone, pretrained_weights_path
from photocap.model.network import CaptionModel
from photocap.model.preprocess import load_image
from photocap.decoding.vocab import Vocabulary, tokenize

ARCHES = ["show-tell", "show-attend-tell", "transformer"]


def imagenet_top5(net, name: str, size: int) -> list[int]:
    with torch.no_grad():
        logits = net(load_image(EXAMPLES / name, size).unsqueeze(0))
    return logits[0].topk(5).indices.tolist()


@pytest.mark.parametrize("variant", ["efficientnet-lite0", "efficientnet-lite2"])
def test_shipped_imagenet_weights_load_strictly_and_classify(variant):
    state = torch.load(pretrained_weights_path(variant), map_location="cpu", weights_only=True)
    net = build_backbone(variant, pretrained=False, with_classifier=True)
    net.load_state_dict(state, strict=True)  # every tensor has a place, none left over
    net.eval()
    size = VARIANTS[variant].native_size
    # ImageNet classes: 281-285 are domestic cats; 967 espresso, 968 cup, 504 coffee mug.
    assert set(imagenet_top5(net, "chelsea.jpg", size)) & {281, 282, 283, 284, 285}
    assert set(imagenet_top5(net, "coffee.jpg", size)) & {967, 968, 504}


def test_encoder_grid_shape():
    model = CaptionModel(ModelConfig(), Vocabulary(["a", "dog"]))
    with torch.no_grad():
        grid = model.encoder(torch.zeros(2, 3, 224, 224))
    assert grid.shape == (2, 49, 1280)  # (B, 7*7, C)


@pytest.mark.parametrize("name, size, blocks, trunk_channels", [
    ("efficientnet-lite0", 224, 1, 192), ("efficientnet-lite0", 224, 5, 112), ("resnet50", 224, 2, 2048),
    ("inception-v3", 299, 1, 2048),
])
def test_trunk_then_top_equals_the_whole_encoder(name, size, blocks, trunk_channels):
    from photocap.model.encoder import ImageEncoder

    torch.manual_seed(0)
    encoder = ImageEncoder(name, pretrained=name.startswith("efficientnet"), fine_tune_blocks=blocks).eval()
    images = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        whole = encoder(images)
        trunk = encoder.trunk(images, blocks)
        split = encoder.top(trunk, blocks)
    assert trunk.shape[0] == 2 and trunk.shape[2] == trunk_channels  # (a 5-block top starts at 14x14)
    torch.testing.assert_close(split, whole)
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and not trainable & set(encoder.trunk_state(blocks))  # the trunk is exactly the frozen part
    with pytest.raises(ValueError, match="blocks"):
        encoder.trunk(images, 10_000)


@pytest.mark.parametrize("arch", ARCHES)
def test_decoder_forward_shapes_and_loss(arch):
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, vocab_size=30, embed_dim=16, hidden_dim=16, attention_dim=16,
                      d_model=16, num_heads=2, ff_dim=32, num_layers=1)
    decoder = build_decoder(cfg)
    feats = torch.randn(3, 49, 1280)
    inputs = torch.randint(4, 30, (3, 7))
    logits, extras = decoder(feats, inputs)
    assert logits.shape == (3, 7, 30)
    if arch == "show-attend-tell":
        alphas = extras["alphas"]
        assert alphas.shape == (3, 7, 49)
        assert torch.allclose(alphas.sum(-1), torch.ones(3, 7), atol=1e-5)
    targets = torch.randint(4, 30, (3, 7))
    targets[0, 5:] = 0  # padding is ignored
    loss = caption_loss(logits, targets, extras, pad_id=0, label_smoothing=0.1, attention_reg=1.0)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert all(p.grad is not None for p in decoder.parameters() if p.requires_grad)


@pytest.mark.parametrize("arch,attention", [(a, "soft") for a in ARCHES] + [("show-attend-tell", "hard")])
def test_step_decoding_matches_teacher_forcing(arch, attention):
    """init_state/step (used by beam search) compute the same distribution as forward
    (hard attention in eval mode: both take the most likely location)."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, vocab_size=25, embed_dim=16, hidden_dim=16, attention_dim=16,
                      d_model=16, num_heads=2, ff_dim=32, num_layers=2, attention=attention)
    decoder = build_decoder(cfg).eval()
    feats = torch.randn(2, 49, 1280)
    inputs = torch.randint(4, 25, (2, 6))
    with torch.no_grad():
        full, _ = decoder(feats, inputs)
        state = decoder.init_state(feats)
        for t in range(6):
            logits, state = decoder.step(inputs[:, t], state)
            assert torch.allclose(logits, full[:, t], atol=1e-4)


@pytest.mark.parametrize("arch", ARCHES)
def test_step_state_survives_beam_reordering(arch):
    """Beam search reorders the step state with index_select mid-caption (beam.py's _reorder);
    decoding must go on as if each row had been fed its new history from the start."""
    from photocap.model.beam import _reorder

    torch.manual_seed(1)
    cfg = ModelConfig(arch=arch, vocab_size=25, embed_dim=16, hidden_dim=16, attention_dim=16,
                      d_model=16, num_heads=2, ff_dim=32, num_layers=2)
    decoder = build_decoder(cfg).eval()
    feats = torch.randn(3, 49, 1280)
    inputs = torch.randint(4, 25, (3, 6))
    rows = torch.tensor([2, 2, 0])  # two beams continue from row 2, one from row 0
    with torch.no_grad():
        state = decoder.init_state(feats)
        for t in range(3):
            _, state = decoder.step(inputs[:, t], state)
        state = _reorder(state, rows, decoder.static_state, images=rows)  # one row per image: images move too
        moved = torch.cat([inputs[rows, :3], inputs[:, 3:]], dim=1)  # (3, 6): old prefixes, new endings
        full, _ = decoder(feats[rows], moved)
        for t in range(3, 6):
            logits, state = decoder.step(moved[:, t], state)
            torch.testing.assert_close(logits, full[:, t], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch,concepts", [(a, 0) for a in ARCHES] + [("transformer", 3)])
def test_step_reads_per_image_state_for_each_images_rows(arch, concepts):
    """Beam search keeps the static entries once per image and runs G rows (beams) per image:
    each row must get the logits it gets with its own copy of its image's entries."""
    model, _, _ = train_tiny_model(arch, steps=5, concept_slots=concepts)
    decoder = model.decoder
    images = torch.stack([load_image(EXAMPLES / name, model.cfg.image_size) for name in SAMPLE_CAPTIONS])
    with torch.no_grad():
        feats, read = model.encode(images)  # (4, P, C), the photos' concepts (None without a concept head)
    read = read.top(concepts) if read is not None else None
    g = 3
    words = torch.randint(4, model.cfg.vocab_size, (4 * g, 4))
    if concepts:
        words[1::2, 1] = model.cfg.vocab_size + torch.arange(2 * g) % (2 * concepts)  # copies of concept slots
    with torch.no_grad():
        per_image = decoder.init_state(feats, read)
        per_row = {k: v.repeat_interleave(g, dim=0) for k, v in per_image.items()}  # each row its own copy
        grouped = decoder.rows_per_image(per_image, g)
        assert any(decoder.static_state(k) for k in per_image) == (arch != "show-tell")
        for t in range(words.size(1)):
            want, per_row = decoder.step(words[:, t], per_row)
            got, grouped = decoder.step(words[:, t], grouped)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
            assert all(grouped[k].size(0) == (4 if decoder.static_state(k) else 4 * g) for k in grouped)


@pytest.mark.parametrize("arch,concepts", [(a, 0) for a in ARCHES] + [("transformer", 3)])
def test_sampled_captions_score_the_same_with_each_image_read_once(arch, concepts):
    """Self-critical training samples several captions per photo and scores them with gradients
    (``samples=n``: each photo's grid read once): the log-probabilities and the gradients are
    those of scoring every caption with its own copy of the photo."""
    from photocap.model.beam import sample, sequence_logprob

    model, _, _ = train_tiny_model(arch, steps=5, concept_slots=concepts)
    images = torch.stack([load_image(EXAMPLES / name, model.cfg.image_size) for name in SAMPLE_CAPTIONS])
    with torch.no_grad():
        feats, read = model.encode(images)
    read = read.top(concepts) if read is not None else None
    vocab, n = model.vocab, 3
    kwargs = dict(start_id=vocab.start_id, pad_id=vocab.pad_id, banned_ids=model.banned_ids)
    ids = sample(model.decoder, feats, end_id=vocab.end_id, max_len=8, samples=n, concepts=read,
                 generator=torch.Generator().manual_seed(0), **kwargs)  # (4n, T)
    ids = torch.cat([ids, torch.full_like(ids[:, :1], vocab.pad_id)], dim=1)  # every row padded at the end
    results = []
    for grouped in (True, False):
        model.decoder.zero_grad()
        if grouped:
            logprob = sequence_logprob(model.decoder, feats, ids, concepts=read, samples=n, **kwargs)
        else:
            logprob = sequence_logprob(model.decoder, feats.repeat_interleave(n, dim=0), ids, **kwargs,
                                       concepts=read.repeat_interleave(n) if read is not None else None)
        logprob.sum().backward()
        results.append((logprob.detach(), [p.grad.clone() for p in model.decoder.parameters() if p.grad is not None]))
    (got, got_grads), (want, want_grads) = results
    assert got.shape == (4 * n,) and bool(torch.isfinite(got).all()), got  # padding adds 0, not NaN
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert len(got_grads) == len(want_grads) > 0
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("arch", ARCHES)
def test_static_state_is_what_steps_never_change(arch):
    """Beam search skips reordering the entries a decoder calls static: they must be exactly
    the ones every step passes on untouched, and skipping them must not change any caption."""
    model, _, _ = train_tiny_model(arch, steps=15)
    decoder = model.decoder
    feats = torch.randn(4, 49, 1280).abs()
    with torch.no_grad():
        first = decoder.init_state(feats)
        state = first
        for t in range(3):
            _, state = decoder.step(torch.full((4,), model.vocab.start_id + t), state)
    for key, value in state.items():
        assert decoder.static_state(key) == torch.equal(value, first[key]), key
    assert any(map(decoder.static_state, state)) == (arch != "show-tell")

    kwargs = dict(start_id=model.vocab.start_id, end_id=model.vocab.end_id, banned_ids=model.banned_ids,
                  max_len=model.cfg.max_len, beam_size=3)
    fast = beam_search(decoder, feats, **kwargs)
    decoder.static_state = lambda key: False  # instance attribute: every entry per row, reordered at every step
    slow = beam_search(decoder, feats, **kwargs)
    assert [h.tokens for h in slow] == [h.tokens for h in fast]
    assert [h.logprob for h in slow] == pytest.approx([h.logprob for h in fast], rel=1e-5)  # the same sums, grouped


def _greedy(decoder, feats, vocab, max_len):
    """Reference greedy decoder, written independently of beam.py."""
    out = []
    with torch.no_grad():
        for i in range(feats.size(0)):
            state = decoder.init_state(feats[i : i + 1])
            token, words = torch.tensor([vocab.start_id]), []
            for _ in range(max_len + 1):
                logits, state = decoder.step(token, state)
                logits[0, [vocab.pad_id, vocab.start_id, vocab.unk_id]] = float("-inf")
                token = logits.argmax(-1)
                if token.item() == vocab.end_id:
                    break
                words.append(token.item())
            out.append(words[:max_len])
    return out


@pytest.mark.parametrize("arch", ARCHES)
def test_beam_width_one_is_greedy(arch):
    model, _, _ = train_tiny_model(arch, steps=15)
    feats = torch.randn(5, 49, 1280).abs()
    hyps = beam_search(model.decoder, feats, start_id=model.vocab.start_id, end_id=model.vocab.end_id,
                       banned_ids=model.banned_ids, beam_size=1, max_len=model.cfg.max_len)
    assert [h.tokens for h in hyps] == _greedy(model.decoder, feats, model.vocab, model.cfg.max_len)


def test_wider_beam_finds_at_least_as_likely_captions():
    model, _, _ = train_tiny_model("show-attend-tell", steps=15)
    feats = torch.randn(4, 49, 1280).abs()
    kwargs = dict(start_id=model.vocab.start_id, end_id=model.vocab.end_id, banned_ids=model.banned_ids,
                  max_len=model.cfg.max_len)
    narrow = beam_search(model.decoder, feats, beam_size=1, **kwargs)
    wide = beam_search(model.decoder, feats, beam_size=5, **kwargs)
    for n, w in zip(narrow, wide):
        assert w.logprob >= n.logprob - 1e-5
        assert model.vocab.unk_id not in w.tokens


def test_sampling_temperature_sharpens_towards_greedy():
    from photocap.model.beam import sample

    model, _, _ = train_tiny_model("transformer", steps=40)
    feats = torch.randn(3, 49, 1280).abs()  # (3, 49, 1280): 40 draws per image
    kwargs = dict(start_id=model.vocab.start_id, end_id=model.vocab.end_id, pad_id=model.vocab.pad_id,
                  banned_ids=model.banned_ids, max_len=model.cfg.max_len, samples=40)
    greedy = _greedy(model.decoder, feats, model.vocab, model.cfg.max_len)

    def greedy_share(temperature: float) -> float:
        torch.manual_seed(0)
        ids = sample(model.decoder, feats, temperature=temperature, **kwargs).tolist()  # (120, T)
        words = [[t for t in row if t not in (model.vocab.end_id, model.vocab.pad_id)][: model.cfg.max_len]
                 for row in ids]
        return sum(w == greedy[i // 40] for i, w in enumerate(words)) / len(words)

    cold, warm = greedy_share(1e-4), greedy_share(1.0)
    assert cold >= 0.9, cold  # near zero temperature, sampling is greedy decoding (up to near-ties)
    assert warm < cold - 0.2, (warm, cold)


@pytest.mark.parametrize("arch", ARCHES)
def test_tiny_model_overfits_sample_photos(arch):
    model, first, last = train_tiny_model(arch, steps=120)
    assert last < first * 0.25, (first, last)
    images = torch.stack([load_image(EXAMPLES / n, 224) for n in SAMPLE_CAPTIONS])
    # Greedy: the model's own first choices. (A beam ranks the endings of a model this unsure by
    # rules, such as no word twice in a row, that change which ending makes the beam's top K.)
    captions = [d.text for d in model.caption(images, beam_size=1)]
    # It has learnt which photo is which: the key word of each photo appears in its caption.
    for caption, word in zip(captions, ["woman", "rocket", "cat", "coffee"]):
        assert word in caption.split(), captions


def test_vocabulary_round_trip_and_specials():
    vocab = Vocabulary.build(["A dog runs.", "a DOG sleeps", "two cats"], min_freq=2)
    assert vocab.itos[:6] == ["<pad>", "<start>", "<end>", "<unk>", "a", "dog"]
    ids = vocab.encode("A dog flies!")
    assert ids == [vocab.start_id, 4, 5, vocab.unk_id, vocab.end_id]
    assert vocab.decode(ids[1:]) == "a dog"
    again = Vocabulary.from_dict(vocab.to_dict())
    assert again.itos == vocab.itos
    assert tokenize("A man's hat, 2 dogs .") == ["a", "man's", "hat", "2", "dogs"]
    with pytest.raises(ValueError):
        Vocabulary.from_dict({"itos": ["dog", "<pad>"]})

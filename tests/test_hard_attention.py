"""Stochastic hard attention (Xu et al. 2015, sec. 4.1): sampling, REINFORCE, deterministic inference."""

from __future__ import annotations

import pytest
import torch

from helpers import EXAMPLES, SAMPLE_CAPTIONS, train_tiny_model
from photocap.model.beam import beam_search
from photocap.model.checkpoint import load_model, save_model
from photocap.decoding.config import ModelConfig
from photocap.model.decoders import build_decoder, caption_loss
from photocap.model.preprocess import load_image


def _decoder(expected_prob=None):
    torch.manual_seed(0)
    cfg = ModelConfig(arch="show-attend-tell", attention="hard", vocab_size=30, embed_dim=16, hidden_dim=16,
                      attention_dim=16, dropout=0.0)
    decoder = build_decoder(cfg)
    if expected_prob is not None:
        decoder.EXPECTED_CONTEXT_PROB = expected_prob
    return decoder


def _batch():
    feats = torch.randn(3, 49, 1280)
    inputs = torch.randint(4, 30, (3, 7))
    targets = torch.randint(4, 30, (3, 7))
    targets[0, 5:] = 0  # padding
    return feats, inputs, targets


def test_config_rules():
    with pytest.raises(ValueError, match="show-attend-tell"):
        ModelConfig(arch="transformer", attention="hard")
    with pytest.raises(ValueError, match="unknown attention"):
        ModelConfig(attention="sharp")
    assert ModelConfig().attention == "soft"
    assert ModelConfig.from_dict({"arch": "show-tell"}).attention == "soft"  # older model files


def test_sampled_forward_shapes_and_extras():
    decoder = _decoder(expected_prob=0.0).train()
    feats, inputs, _ = _batch()
    logits, extras = decoder(feats, inputs)
    assert logits.shape == (3, 7, 30)
    assert extras["alphas"].shape == (3, 7, 49)
    assert torch.allclose(extras["alphas"].sum(-1), torch.ones(3, 7), atol=1e-5)
    assert extras["sample_logprobs"].shape == (3, 7) and (extras["sample_logprobs"] <= 0).all()
    assert extras["entropies"].shape == (3, 7) and (extras["entropies"] >= 0).all()
    # Expected-context batches and eval mode carry no sampling terms.
    logits, extras = _decoder(expected_prob=1.0).train()(feats, inputs)
    assert set(extras) == {"alphas"}
    logits, extras = decoder.eval()(feats, inputs)
    assert set(extras) == {"alphas"}


def test_batches_mix_sampled_and_expected_attention():
    decoder = _decoder().train()
    feats, inputs, _ = _batch()
    sampled = sum("sample_logprobs" in decoder(feats[:1], inputs[:1, :2])[1] for _ in range(60))
    assert 15 <= sampled <= 45  # about half (p = 0.5)


def test_reinforce_gives_the_attention_its_gradient():
    feats, inputs, targets = _batch()
    decoder = _decoder(expected_prob=0.0).train()
    torch.manual_seed(1)
    logits, extras = decoder(feats, inputs)
    # Without REINFORCE and entropy terms, a sampled location passes no gradient to the attention.
    loss = caption_loss(logits, targets, extras, pad_id=0, reinforce_weight=0.0, entropy_weight=0.0)
    loss.backward(retain_graph=True)
    grad = decoder.attention.score.weight.grad
    assert grad is None or not grad.any()
    decoder.zero_grad(set_to_none=True)
    loss = caption_loss(logits, targets, extras, pad_id=0, label_smoothing=0.1, attention_reg=0.0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for p in decoder.attention.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert all(p.grad is not None for p in decoder.parameters())


def test_moving_average_baseline_is_a_non_persistent_buffer():
    feats, inputs, targets = _batch()
    decoder = _decoder(expected_prob=0.0).train()
    assert torch.isnan(decoder.reward_baseline)
    rewards = []
    for _ in range(2):
        logits, extras = decoder(feats, inputs)
        token_logp = logits.log_softmax(-1).gather(2, targets.unsqueeze(2)).squeeze(2) * (targets != 0)
        rewards.append(token_logp.sum(1).mean().item())
        caption_loss(logits, targets, extras, pad_id=0)
        if len(rewards) == 1:
            assert decoder.reward_baseline.item() == pytest.approx(rewards[0], rel=1e-5)
    assert decoder.reward_baseline.item() == pytest.approx(0.9 * rewards[0] + 0.1 * rewards[1], rel=1e-5)
    # Not a weight: not saved, and a fresh decoder loads the state_dict strictly.
    assert not any("baseline" in k for k in decoder.state_dict())
    _decoder().load_state_dict(decoder.state_dict(), strict=True)


def test_inference_is_deterministic_argmax():
    decoder = _decoder().eval()
    feats, inputs, _ = _batch()
    with torch.no_grad():
        first, _ = decoder(feats, inputs)
        second, _ = decoder(feats, inputs)
    assert torch.equal(first, second)


@pytest.fixture(scope="module")
def hard_model():
    model, _, _ = train_tiny_model("show-attend-tell", steps=150, attention="hard")
    return model


def test_tiny_hard_attention_model_overfits_sample_photos(hard_model, tmp_path):
    model = hard_model
    assert model.cfg.attention == "hard" and not model.training
    images = torch.stack([load_image(EXAMPLES / n, 224) for n in SAMPLE_CAPTIONS])
    captions = [d.text for d in model.caption(images, beam_size=3)]
    for caption, word in zip(captions, ["woman", "rocket", "cat", "coffee"]):
        assert word in caption.split(), captions
    # Beam search of width 1 and 3 both run on the hard decoder; a wider beam is at least as likely.
    with torch.no_grad():
        feats = model.encoder(images)
    kwargs = dict(start_id=model.vocab.start_id, end_id=model.vocab.end_id, banned_ids=model.banned_ids,
                  max_len=model.cfg.max_len)
    narrow = beam_search(model.decoder, feats, beam_size=1, **kwargs)
    wide = beam_search(model.decoder, feats, beam_size=3, **kwargs)
    for n, w in zip(narrow, wide):
        assert w.logprob >= n.logprob - 1e-5
    # And it round-trips through a model file.
    again, _ = load_model(save_model(model, tmp_path / "hard.safetensors", half=False))
    assert again.cfg.attention == "hard"
    assert again.caption(images, beam_size=3) == model.caption(images, beam_size=3)


def test_cli_trains_evaluates_and_captions_with_hard_attention(sample_folder_dataset, tmp_path):
    import json

    from click.testing import CliRunner

    from photocap.cli import cli

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({
        "model": {"encoder": "efficientnet-lite0", "embed_dim": 16, "hidden_dim": 16, "attention_dim": 16,
                  "max_len": 12},
        "train": {"batch_size": 4, "min_freq": 1, "warmup_steps": 1, "val_beam": 1, "scst_epochs": 0},
    }))
    out, cache = tmp_path / "run", tmp_path / "cache"
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--data", "folder", str(sample_folder_dataset), "--config", str(config),
                                 "--arch", "show-attend-tell", "--attention", "hard", "--epochs", "2", "--out",
                                 str(out), "--cache-dir", str(cache), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    model, _ = load_model(out / "best.safetensors")
    assert model.cfg.attention == "hard"
    result = runner.invoke(cli, ["evaluate", "--data", "folder", str(sample_folder_dataset), "--split", "dev",
                                 "--model", str(out / "best.safetensors"), "--beam", "2", "--cache-dir", str(cache),
                                 "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["caption", str(sample_folder_dataset / "chelsea.jpg"), "--model", str(out / "best.safetensors"), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "chelsea.jpg" in result.stdout

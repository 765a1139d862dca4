"""The training path on a tiny generated dataset: loss falls, resume is exact, CLI works."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageOps

from conftest import SAMPLE_CAPTIONS, make_folder_dataset
from photocap.cli import cli
from photocap.model.checkpoint import load_model
from photocap.model.config import ModelConfig
from photocap.training.datasets import load_dataset
from photocap.training.loop import TrainConfig, train

TINY_MODEL = dict(encoder="efficientnet-lite0", arch="transformer", d_model=32, num_layers=1, num_heads=2,
                  ff_dim=64, memory_layers=0, transformer_dropout=0.1, max_len=14)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory, sample_photos):
    """A `folder` dataset: the sample photos and their mirror images, two captions each, one broken row."""
    return make_folder_dataset(tmp_path_factory.mktemp("dataset"), sample_photos, paraphrase=True,
                               extra_rows=(("missing.jpg", "a photo that does not exist"),))


def _run(dataset, out, cache, **overrides):
    splits = load_dataset("folder", dataset, dev_fraction=0.25)
    cfg = TrainConfig(**{**dict(epochs=4, batch_size=4, lr=3e-3, warmup_steps=2, min_freq=1, val_beam=2,
                                checkpoint_every=0, patience=10), **overrides})
    return train(splits, ModelConfig(**TINY_MODEL), cfg, out, cache_root=cache)


def test_a_few_epochs_lower_the_loss_and_keep_the_best(tiny_dataset, tmp_path):
    result = _run(tiny_dataset, tmp_path / "run", tmp_path / "cache")
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0] * 0.7, losses
    assert result.best_path and result.best_path.exists()
    model, info = load_model(result.best_path)
    assert info["dev_scores"]["CIDEr"] == pytest.approx(result.best_scores["CIDEr"])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4] and all("BLEU-4" in r["dev"] for r in log)


def test_interrupted_run_resumes_to_the_same_weights(tiny_dataset, tmp_path):
    straight = _run(tiny_dataset, tmp_path / "straight", tmp_path / "cache", epochs=3)

    splits = load_dataset("folder", tiny_dataset, dev_fraction=0.25)
    cfg = TrainConfig(epochs=3, batch_size=4, lr=3e-3, warmup_steps=2, min_freq=1, val_beam=2, checkpoint_every=0,
                      patience=10)

    def stop_at_step_5(event):
        if event.get("phase") == "train" and event["step"] == 5:
            raise KeyboardInterrupt

    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train(splits, ModelConfig(**TINY_MODEL), cfg, out, cache_root=tmp_path / "cache", on_progress=stop_at_step_5)
    saved = torch.load(out / "last.ckpt", weights_only=True)
    assert saved["step"] == 5
    resumed = train(splits, ModelConfig(), TrainConfig(), out, cache_root=tmp_path / "cache",
                    resume=out / "last.ckpt")
    assert resumed.steps == straight.steps
    a = torch.load(tmp_path / "straight" / "last.ckpt", weights_only=True)["model"]
    b = torch.load(out / "last.ckpt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_self_critical_phase_runs_and_logs(tiny_dataset, tmp_path):
    result = _run(tiny_dataset, tmp_path / "scst", tmp_path / "cache", epochs=2, scst_epochs=1, scst_lr=1e-4)
    log = [json.loads(line) for line in (tmp_path / "scst" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["epoch"] == "scst-1" and log[-1]["train_reward"] >= 0
    assert result.best_path.exists()


def test_train_and_evaluate_commands(tiny_dataset, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"model": TINY_MODEL, "train": {"batch_size": 4, "min_freq": 1, "warmup_steps": 2,
                                                                  "lr": 3e-3, "val_beam": 2}}))
    out = tmp_path / "cli-run"
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--data", "folder", str(tiny_dataset), "--out", str(out), "--config",
                                 str(config), "--epochs", "2", "--cache-dir", str(tmp_path / "cache"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 2 and summary["best_model"] == str(out / "best.safetensors")
    assert "1 missing image" in result.stderr or "missing" in result.stderr  # the broken row is reported

    result = runner.invoke(cli, ["evaluate", "--data", "folder", str(tiny_dataset), "--split", "dev", "--model",
                                 str(out / "best.safetensors"), "--beam", "2", "--cache-dir", str(tmp_path / "cache"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    for metric in ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"):
        assert 0.0 <= scores[metric] <= 10.0
    assert scores["images"] >= 1


def test_training_data_with_nothing_usable_is_a_clear_error(tmp_path):
    (tmp_path / "captions.csv").write_text("image,caption\nnope.jpg,a dog\n")
    result = CliRunner().invoke(cli, ["train", "--data", "folder", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "nope.jpg" in result.output or "no usable" in result.output.lower() or "nothing" in result.output.lower()


def test_personalise_from_the_index(tmp_path, photo_dir, tiny_model_path):
    """`--data index` trains on the captions the user wrote in the index, starting from --init."""
    from photocap.index.store import CaptionIndex, PhotoUpdate

    db = tmp_path / "index.db"
    for img in list(photo_dir.glob("*.jpg")):
        ImageOps.mirror(Image.open(img)).save(photo_dir / f"mirror-{img.name}")
    with CaptionIndex.open(db) as index:
        index.upsert_photos([PhotoUpdate(path=str(p), size=p.stat().st_size, mtime_ns=p.stat().st_mtime_ns)
                             for p in sorted(photo_dir.glob("*.jpg"))])
        for p in sorted(photo_dir.glob("*.jpg")):
            index.set_user_caption(p, SAMPLE_CAPTIONS[p.name.removeprefix("mirror-")])
    config = tmp_path / "quick.json"
    config.write_text(json.dumps({"train": {"batch_size": 4, "warmup_steps": 2, "val_beam": 2, "scst_epochs": 0}}))
    out = tmp_path / "mine"
    args = ["train", "--data", "index", str(photo_dir), "--db", str(db), "--init", str(tiny_model_path),
            "--config", str(config), "--epochs", "1", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
            "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "your captions in" in result.stderr and "7 train, 1 dev images" in result.stderr  # all 8 photos, 10 % (at least 1) for dev
    model, _ = load_model(out / "best.safetensors")
    assert model.vocab.itos == load_model(tiny_model_path)[0].vocab.itos  # the vocabulary is kept

    empty = tmp_path / "empty.db"
    CaptionIndex.open(empty).close()
    result = CliRunner().invoke(cli, [*args[:4], "--db", str(empty), *args[6:]])
    assert result.exit_code == 1 and "No usable captioned images" in result.output

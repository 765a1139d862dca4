"""The training path on a tiny generated dataset: loss falls, resume is exact, CLI works."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageOps
from safetensors.torch import load_file

from helpers import SAMPLE_CAPTIONS, make_folder_dataset
from photocap.cli import cli
from photocap.model.checkpoint import load_model
from photocap.decoding.config import ModelConfig
from photocap.training.datasets import load_dataset
from photocap.training.config import TrainConfig
from photocap.training.loop import train
from photocap.training.recipe import default_recipe

ROOT = Path(__file__).resolve().parent.parent
TINY_MODEL = dict(encoder="efficientnet-lite0", arch="transformer", d_model=32, num_layers=1, num_heads=2,
                  ff_dim=64, memory_layers=0, transformer_dropout=0.1, max_len=14)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory, sample_photos):
    """A `folder` dataset: the sample photos and their mirror images, two captions each, one broken row."""
    return make_folder_dataset(tmp_path_factory.mktemp("dataset"), sample_photos, paraphrase=True,
                               extra_rows=(("missing.jpg", "a photo that does not exist"),))


def _splits(dataset):
    return load_dataset("folder", dataset, dev_fraction=0.25)


def _config(**overrides) -> TrainConfig:
    return TrainConfig(**{**dict(epochs=4, batch_size=4, lr=3e-3, warmup_steps=2, min_freq=1, val_beam=2,
                                 checkpoint_every=0, patience=10), **overrides})


def _run(dataset, out, cache, **overrides):
    return train(_splits(dataset), ModelConfig(**TINY_MODEL), _config(**overrides), out, cache_root=cache)


SCST = dict(epochs=2, scst_epochs=1, scst_lr=1e-4, scst_contrast=0.5)  # the recipe's contrastive reward


# One run each, trained once for this module: the tests below only read them (outputs under "run").
@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    """The tiny model after 4 cross-entropy epochs (``_config``)."""
    root = tmp_path_factory.mktemp("trained")
    return _run(tiny_dataset, root / "run", root / "cache")


@pytest.fixture(scope="module")
def trained_scst(tiny_dataset, tmp_path_factory):
    """The tiny model after 2 cross-entropy epochs and one self-critical epoch (:data:`SCST`)."""
    root = tmp_path_factory.mktemp("trained-scst")
    return _run(tiny_dataset, root / "run", root / "cache", **SCST)


def _log(result) -> list[dict]:
    return [json.loads(line) for line in (result.best_path.parent / "log.jsonl").read_text().splitlines()]


def test_a_few_epochs_lower_the_loss_and_keep_the_best(trained):
    result = trained
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0] * 0.7, losses
    assert result.best_path and result.best_path.exists()
    model, info = load_model(result.best_path)
    assert info["dev_scores"]["CIDEr"] == pytest.approx(result.best_scores["CIDEr"])
    log = _log(result)
    assert [r["epoch"] for r in log] == [1, 2, 3, 4] and all("BLEU-4" in r["dev"] for r in log)


@pytest.mark.slow
def test_a_concept_model_trains_copies_and_resumes(tiny_dataset, tmp_path):
    """The recipe's kind of model: a fine-tuned top block, a concept head over the original one, a decoder
    that reads 3 concepts and copies them; cross-entropy then self-critical, interrupted and resumed."""
    concepts = dict(TINY_MODEL, fine_tune_blocks=1, concept_head=True, concept_slots=3)
    every = _splits(tiny_dataset)
    every = every.train + every.dev
    # Dev: two mirror images of training photos (CIDEr needs two photos to weigh n-grams), so the
    # tiny model's dev score rises as it learns and the best epoch is a trained one.
    held = {"mirror-coffee.jpg", "mirror-rocket.jpg"}
    splits = dataclasses.replace(_splits(tiny_dataset), train=[it for it in every if it.key not in held],
                                 dev=[it for it in every if it.key in held])
    cfg = _config(epochs=30, scst_epochs=1, scst_lr=1e-4, patience=30)

    def stop_at_step_4(event):
        if event.get("phase") == "train" and event.get("step") == 4:
            raise KeyboardInterrupt

    out = tmp_path / "concepts"
    with pytest.raises(KeyboardInterrupt):
        train(splits, ModelConfig(**concepts), cfg, out, cache_root=tmp_path / "cache", on_progress=stop_at_step_4)
    result = train(splits, ModelConfig(), TrainConfig(), out, cache_root=tmp_path / "cache", resume=out / "last.ckpt")
    assert result.history[-1]["epoch"] == "scst-1"
    assert result.best_scores["CIDEr"] > 1.0, result.history
    model, _ = load_model(result.best_path)
    assert model.cfg.concept_slots == 3 and model.concepts is not None
    coffee = next(it for it in splits.dev if it.key == "mirror-coffee.jpg")
    from photocap.model.preprocess import load_image

    (decoded,) = model.caption(load_image(coffee.image, 224).unsqueeze(0))
    # "coffee" is the photo's top concept, and the training captions wrote it as a copy of that slot
    assert decoded.concepts[0][0].word == "coffee" and "coffee" in decoded.text.split(), decoded


def test_interrupted_run_resumes_to_the_same_weights(tiny_dataset, trained, tmp_path):
    straight = trained
    splits = _splits(tiny_dataset)
    cfg = _config()

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
    a = torch.load(straight.best_path.parent / "last.ckpt", weights_only=True)["model"]
    b = torch.load(out / "last.ckpt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_self_critical_phase_runs_and_logs(trained_scst):
    log = _log(trained_scst)
    assert log[-1]["epoch"] == "scst-1" and log[-1]["train_reward"] >= 0
    assert trained_scst.best_path.exists()


def test_self_critical_phase_resumed_after_cross_entropy_matches_the_straight_run(tiny_dataset, trained_scst,
                                                                                  tmp_path):
    """The self-critical samples come from their own seeded generator: resuming from the
    cross-entropy checkpoint (a run stopped after cross-entropy) gives the same epoch."""

    def stop_in_self_critical(event):
        if event.get("phase") == "train" and str(event.get("epoch")).startswith("scst"):
            raise KeyboardInterrupt

    splits = _splits(tiny_dataset)
    cfg = _config(**SCST)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(splits, ModelConfig(**TINY_MODEL), cfg, out, cache_root=tmp_path / "cache",
              on_progress=stop_in_self_critical)
    resumed_run = train(splits, ModelConfig(), TrainConfig(), out, cache_root=tmp_path / "cache",
                        resume=out / "last.ckpt")

    def self_critical_record(run):
        return next(r for r in _log(run) if r["epoch"] == "scst-1")

    straight, resumed = self_critical_record(trained_scst), self_critical_record(resumed_run)
    assert resumed["train_reward"] == straight["train_reward"] and resumed["dev"] == straight["dev"]


@pytest.mark.slow
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
    recipe_penalty = default_recipe()[0].length_penalty  # --config keeps the recipe's decoding settings
    assert (scores["beam"], scores["length_penalty"]) == (2, recipe_penalty)

    result = runner.invoke(cli, ["evaluate", "--data", "folder", str(tiny_dataset), "--split", "dev", "--model",
                                 str(out / "best.safetensors"), "--length-penalty", "1", "--samples", "1",
                                 "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "beam 3, length penalty 1" in result.output  # the model's own beam width
    assert "distinct captions" in result.output and "repeat a 3-word phrase" in result.output

    objects = tmp_path / "objects.json"
    objects.write_text(json.dumps({"chelsea.jpg": [["cat", 50000]], "coffee.jpg": [["cup", 20000]],
                                   "astronaut.jpg": [["person", 90000]]}))
    result = runner.invoke(cli, ["evaluate", "--data", "folder", str(tiny_dataset), "--split", "all", "--model",
                                 str(out / "best.safetensors"), "--objects", str(objects), "--json",
                                 "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["images"] == 8 and scores["captions"] == 8  # every image of the set, train and dev alike
    assert scores["objects_total"] == 3 and scores["nonperson_total"] == 2
    assert scores["people_absent"] == 2 and 0 <= scores["people_invented"] <= 2  # the cat and the cup
    assert 1 <= scores["distinct"] <= 8 and scores["words_used"] >= 1 and scores["repeats"] == 0


def test_training_data_with_nothing_usable_is_a_clear_error(tmp_path):
    (tmp_path / "captions.csv").write_text("image,caption\nnope.jpg,a dog\n")
    result = CliRunner().invoke(cli, ["train", "--data", "folder", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "nope.jpg" in result.output or "no usable" in result.output.lower() or "nothing" in result.output.lower()


@pytest.mark.slow
def test_personalise_from_the_index(tmp_path, photo_dir, tiny_model_path):
    """`--data index` trains on the captions the user wrote in the index, starting from --init."""
    from photocap.index.store import CaptionIndex
    from photocap.records import PhotoUpdate

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


def test_fine_tuning_the_encoder_top_trains_only_the_top_and_reuses_the_trunk_cache(tiny_dataset, tmp_path):
    from photocap.model.encoder import ImageEncoder
    from photocap.training.features import encoder_fingerprint

    pretrained = ImageEncoder("efficientnet-lite0", pretrained=True).state_dict()
    model_cfg = ModelConfig(**{**TINY_MODEL, "fine_tune_blocks": 1})
    splits = _splits(tiny_dataset)
    cfg = _config(epochs=3, encoder_lr=1e-3)
    result = train(splits, model_cfg, cfg, tmp_path / "ft", cache_root=tmp_path / "cache")
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0], losses

    model, _ = load_model(result.best_path)
    tuned = {k[len("encoder."):]: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    changed = {k for k, v in tuned.items() if not torch.equal(v, pretrained[k].to(v.dtype))}
    # Only the last block's and the head's weights moved; BatchNorm statistics stayed frozen.
    assert changed and all(k.startswith(("backbone._blocks.15.", "backbone._conv_head", "backbone._bn1."))
                           for k in changed), sorted(changed)
    assert not any("running_" in k for k in changed)
    # The cache holds the trunk's output, whose id ignores the tuned top: it stays valid for this model.
    fresh = ImageEncoder("efficientnet-lite0", pretrained=True, fine_tune_blocks=1)
    assert encoder_fingerprint(model.encoder.float(), "efficientnet-lite0", 224, 1) == \
        encoder_fingerprint(fresh, "efficientnet-lite0", 224, 1)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [encoder_fingerprint(fresh, "efficientnet-lite0", 224, 1)]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="needs Java (pycocoevalcap)")
def test_bundle_script_keeps_the_best_decoding_and_its_scores(tiny_dataset, trained, tmp_path):
    trained = trained.best_path
    out = tmp_path / "bundled.safetensors"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bundle_model.py"), str(trained), "--kind", "folder",
                           "--data", str(tiny_dataset), "--model-id", "tiny-v9", "--beams", "1,2",
                           "--length-penalties", "0,1", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)],
                          capture_output=True, text=True, check=True)
    tried = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"beam"')]
    assert [(t["beam"], t["length_penalty"]) for t in tried] == [(1, 0.0), (1, 1.0), (2, 0.0), (2, 1.0)]
    best = max(tried, key=lambda t: t["CIDEr"])  # the first of equals wins, as in the script
    model, info = load_model(out)
    assert (model.cfg.model_id, model.cfg.beam_size, model.cfg.length_penalty) == ("tiny-v9", best["beam"],
                                                                                    best["length_penalty"])
    assert info["dev_scores"]["CIDEr"] == pytest.approx(best["CIDEr"], abs=1e-3)
    assert {t.dtype for t in load_file(str(out)).values() if t.is_floating_point()} == {torch.float16}
    # its graphs beside it, made from the file as written: the torch-free captioner uses them as they are
    from photocap.captioner.graphs import Source, find_graphs
    from photocap.decoding.modelfile import read_header

    graphs = find_graphs(Source.of(out, read_header(out)))
    assert graphs is not None and {p.parent for p in graphs.files.values()} == {tmp_path}



@pytest.mark.slow
def test_bundle_script_chooses_the_concept_force_over_every_dev_set(tiny_dataset, tmp_path):
    concepts = dict(TINY_MODEL, concept_head=True, concept_slots=3)
    trained = train(_splits(tiny_dataset), ModelConfig(**concepts), _config(epochs=2), tmp_path / "run",
                    cache_root=tmp_path / "cache").best_path
    out = tmp_path / "bundled.safetensors"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bundle_model.py"), str(trained), "--kind", "folder",
                           "--data", str(tiny_dataset), "--also-dev", f"folder:{tiny_dataset}", "--model-id", "tiny-c1",
                           "--length-penalties", "1", "--concept-forces", "0,0.5", "--cache-dir", str(tmp_path / "cache"),
                           "--out", str(out)], capture_output=True, text=True, check=True)
    tried = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"beam"')]
    assert [(t["concept_force"], t["set"]) for t in tried] == [
        (0.0, f"{tiny_dataset.name} dev"), (0.0, tiny_dataset.name), (0.5, f"{tiny_dataset.name} dev"),
        (0.5, tiny_dataset.name)]
    assert tried[1]["images"] == 8  # the extra set is scored whole
    mean = {f: sum(t["CIDEr"] for t in tried if t["concept_force"] == f) / 2 for f in (0.0, 0.5)}
    model, info = load_model(out)
    assert model.cfg.concept_force == max(mean, key=mean.get)
    assert set(info["dev_sets"]) == {f"{tiny_dataset.name} dev", tiny_dataset.name}
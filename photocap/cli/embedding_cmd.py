"""``photocap train-embedding`` (once ``train-pixels``): train the image-embedding head of a captioning
model (search by what a photo looks like)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from photocap.cli._common import echo_json, json_option, model_option, require_torch, user_errors, warn
from photocap.cli.train_cmd import DATA_KINDS, _load_splits


class _Progress:
    """Events from the embedding training -> a tqdm bar per phase and one line per epoch."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar, self.key = quiet, None, None

    def __call__(self, event: dict[str, Any]) -> None:
        from tqdm import tqdm

        if event["phase"] == "epoch":
            self.close()
            if not self.quiet:
                warn(f"epoch {event['epoch']}: loss {event['loss']:.3f}  temperature {event['temperature']:.3f}  "
                     f"dev R@1 {event['R@1']:.3f}  R@5 {event['R@5']:.3f}  R@10 {event['R@10']:.3f}"
                     f"{'  (best)' if event['best'] else ''}")
            return
        key = (event["phase"], event.get("epoch"))
        if key != self.key:
            self.close()
            self.key = key
            desc = f"epoch {event['epoch']}/{event['epochs']}" if event["phase"] == "train" else event["phase"]
            self.bar = tqdm(total=event["total"], desc=desc, disable=self.quiet, dynamic_ncols=True, leave=False)
        self.bar.n = event["done"]
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _chunked_embed(embedder, progress: _Progress, phase: str, chunk: int = 1024):
    """The sentence model's ``embed`` in chunks, reporting progress."""
    import numpy as np

    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), chunk):
            out.append(embedder.embed(texts[start:start + chunk]))
            progress({"phase": phase, "done": min(start + chunk, len(texts)), "total": len(texts)})
        return np.concatenate(out) if out else np.zeros((0, embedder.dim), np.float32)

    return embed


@click.command("train-embedding")
@click.option("--data", "kind", type=click.Choice(DATA_KINDS), required=True, help="Dataset layout.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@model_option
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the image-embedding head. Default: beside --model (MODEL.embedding.safetensors, "
                   "where the captioner finds it); for the bundled model: runs/embedding/.")
@click.option("--inputs", type=click.Choice(["grid", "concepts", "both"]), default=None,
              help="What the head reads: the pooled grid features, the ImageNet concept log-probs, or both.")
@click.option("--hidden", type=click.IntRange(0, 16384), default=None, help="MLP hidden width (0 = linear).")
@click.option("--concept-text/--no-concept-text", default=None,
              help="Also mix in the sentence vectors of the concept words the classifier sees (measured: "
                   "better R@1 on COCO, dev R@10 within noise; off in the bundled recipe).")
@click.option("--epochs", type=click.IntRange(1), default=None)
@click.option("--batch-size", type=click.IntRange(2), default=None)
@click.option("--lr", type=float, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache of encoder outputs and caption vectors. Default: the user cache folder.")
@json_option
def train_embedding(kind: str, path: Path, model_path: Path | None, out_path: Path | None,
                    inputs: str | None, hidden: int | None, concept_text: bool | None, epochs: int | None,
                    batch_size: int | None, lr: float | None, seed: int | None, cache_dir: Path | None,
                    as_json: bool) -> None:
    """Train a model's image-embedding head: a projection of what its encoder sees into the sentence
    model's space, so search can find a photo by what its caption left out.

    The encoder's outputs of the train and dev photos and the sentence vectors of their captions
    are computed once and cached; training then takes a minute or two on a CPU. The epoch kept is
    the best on the dev split's sentence recall@10.

    \b
    Examples:
      photocap train-embedding --data flickr8k ~/data/flickr8k            # the bundled model's recipe
      photocap train-embedding --data flickr8k ~/data/flickr8k --model runs/f8k/best.safetensors
      photocap train-embedding --data flickr8k ~/data/flickr8k --inputs grid --hidden 1024
    """
    require_torch("train-embedding")
    with user_errors():
        from photocap.captioner.graphs import file_sha256
        from photocap.captioner.torch_backend import TorchCaptioner
        from photocap.meaning.text import MODEL_ID, TextEmbedder
        from photocap.model.embedding import embedding_path_for, encoder_identity, save_embedding_head
        from photocap.settings import cache_dir as default_cache_dir, default_model_path
        from photocap.training.embedding import (EmbeddingData, EmbeddingTrainConfig, class_texts, embed_captions,
                                              encode_photos, train_embedding_head)

        cfg = EmbeddingTrainConfig()
        for name, value in (("inputs", inputs), ("hidden", hidden), ("concept_text", concept_text),
                            ("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("seed", seed)):
            if value is not None:
                setattr(cfg, name, value)
        splits = _load_splits(kind, path, seed=cfg.seed)
        if not splits.dev:
            raise click.ClickException("the dataset has no dev split to select the head on")
        warn(f"photocap: {splits.source}: {len(splits.train)} train, {len(splits.dev)} dev images")
        captioner = TorchCaptioner(model_path, device="cpu", embedding_head=None)
        if cfg.inputs != "grid" and not captioner.has_concepts:
            raise click.ClickException(f"{captioner.model_path} has no concept head; use --inputs grid")
        if cfg.concept_text and cfg.inputs == "grid":
            raise click.ClickException("--concept-text reads the concept head: use --inputs concepts or both")
        encoder_id = encoder_identity(captioner.model.encoder, captioner.model.cfg.encoder)
        embedder = TextEmbedder()
        cache = cache_dir or default_cache_dir() / "pixels"  # the folder keeps its old name: older caches are used
        progress = _Progress(quiet=as_json)
        data = {}
        for name, items in (("train", splits.train), ("dev", splits.dev)):
            pooled, logits = encode_photos([it.image for it in items], captioner.encoder_outputs,
                                           captioner.image_size, encoder_id=encoder_id, cache_root=cache,
                                           on_progress=progress, phase=f"encoding {name}")
            text = embed_captions(items, _chunked_embed(embedder, progress, f"embedding {name} captions"),
                                  text_model=MODEL_ID, cache_root=cache)
            data[name] = EmbeddingData([it.key for it in items], pooled, logits, text)
        progress.close()
        class_text = None
        if cfg.concept_text:
            concepts = captioner.model.concepts
            class_text = class_texts([concepts.words[i].word for i in concepts.class_word], embedder.embed)
        result = train_embedding_head(data["train"], data["dev"], cfg, on_progress=progress, class_text=class_text)
        progress.close()
        if out_path is None:
            out_path = (embedding_path_for(model_path) if model_path is not None
                        else Path("runs/embedding") / embedding_path_for(default_model_path()).name)
        encoder = {"identity": encoder_id, "model_id": captioner.model_id, "model_file": captioner.model_path.name,
                   "model_sha256": file_sha256(captioner.model_path)}
        info = {"recipe": {**cfg.to_dict(), "loss": "symmetric InfoNCE, in-batch negatives, learned temperature",
                           "selection": "dev sentence recall@10 (first caption as the query)",
                           "kept_epoch": result.epoch, "seconds": round(result.seconds, 1)},
                "trained_on": f"{splits.source}: {len(splits.train)} train photos x 5 captions",
                "dev_scores": {"images": len(splits.dev), **result.dev}, "history": result.history}
        save_embedding_head(result.head, out_path, text_model=MODEL_ID, encoder=encoder, info=info)
    # "pixel_head": the key of `train-pixels --json`, kept while the old command name works
    summary = {"embedding_head": str(out_path), "pixel_head": str(out_path), "dev": result.dev,
               "epoch": result.epoch, "seconds": round(result.seconds, 1)}
    if as_json:
        echo_json(summary)
        return
    click.echo(f"image-embedding head: {out_path}")
    click.echo("dev sentence recall: " + "  ".join(f"{k} {v:.3f}" for k, v in result.dev.items()))
    click.echo(f"kept epoch {result.epoch} of {cfg.epochs}; trained in {result.seconds:.0f}s")
    if model_path is None:
        click.echo("the captioner reads an image-embedding head from beside its model file: "
                   f"{out_path.name} next to {default_model_path()}")

"""Training and validation as functions; progress leaves through a callback.

Encoder work is cached: with a frozen encoder the cache holds its grid
features, and each epoch costs only the decoder; when the encoder's top blocks
are fine-tuned (``ModelConfig.fine_tune_blocks``, the default recipe tunes one)
it holds the frozen trunk's output, and each step runs only the top blocks and
head (BatchNorm statistics stay frozen) before the decoder. Every run is seeded:
the batch order of epoch ``e`` depends only on ``seed`` and ``e``, and the RNG
state is saved with each checkpoint, so a resumed run continues exactly where
it stopped.

Output folder:
- ``last.ckpt``: resume state (state_dicts + counters; loaded with weights_only=True)
- ``best.safetensors``: the best model so far by dev CIDEr (a normal photocap model file)
- ``log.jsonl``: one JSON object per epoch
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from photocap.errors import ModelError
from photocap.model.checkpoint import CheckpointError, atomic_destination, load_model, save_model
from photocap.imaging.concepts import ConceptSet, bundled_concepts
from photocap.decoding.config import ModelConfig
from photocap.model.decoders import ConceptInput, caption_loss
from photocap.model.encoders_tv import EncoderWeightsError
from photocap.model.network import CaptionModel
from photocap.decoding.vocab import Vocabulary
from photocap.training import distributed
from photocap.training.config import Progress, TrainConfig
from photocap.training.datasets import CaptionedImage, DatasetSplits
from photocap.training.evaluate import encode_split_features, evaluate_features, grid_features, split_concepts
from photocap.training.scst import self_critical
from photocap.training.textdata import (ClassifierHabits, TextBridge, TextCorpus,  # noqa: F401 (TextCorpus: re-exported)
                                       concept_phrases, mentioned_concepts)


@dataclass
class TrainResult:
    best_path: Path | None
    best_scores: dict[str, float]
    epochs_run: int
    steps: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


class _Data:
    """Captions as padded id tensors, and the image feature rows they point at.

    For a decoder that copies concepts, a caption's concept words become copy ids (``concepts``:
    each image's concepts, best first)."""

    def __init__(self, items: Sequence[CaptionedImage], model: CaptionModel,
                 concepts: ConceptInput | None = None) -> None:
        self.items = list(items)
        vocab = model.vocab
        rows, img = [], []
        for i, item in enumerate(self.items):
            words = model.concept_words(concepts, i)
            for caption in item.captions:
                ids = model.encode_caption(caption, words)
                if len(ids) > 2:
                    rows.append(ids)
                    img.append(i)
        self.captions = padded(rows, vocab.pad_id)  # (N, L)
        self.image_index = torch.tensor(img, dtype=torch.long)  # (N,)

    def __len__(self) -> int:
        return len(self.image_index)


def padded(rows: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """Id lists -> one (N, L) long tensor, each row padded with ``pad_id`` to the longest (at least 2)."""
    out = torch.full((len(rows), max((len(r) for r in rows), default=2)), pad_id, dtype=torch.long)
    for r, ids in enumerate(rows):
        out[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


class _TextBatches:
    """Batches of text-only captions: ids with copy slots, synthetic concepts and noisy vectors."""

    def __init__(self, corpus: TextCorpus, model: CaptionModel, habits: ClassifierHabits, cfg: TrainConfig) -> None:
        self.corpus, self.model, self.habits = corpus, model, habits
        self.bridge = TextBridge(noise=cfg.text_noise, keep=cfg.text_keep)
        phrases = concept_phrases(model.concepts)
        self.mentions = [mentioned_concepts(c, phrases) for c in corpus.captions]
        self.per_epoch = int(round(len(corpus.captions) * cfg.text_share))

    def order(self, seed: int) -> torch.Tensor:
        return torch.randperm(len(self.corpus.captions), generator=torch.Generator().manual_seed(seed))[: self.per_epoch]

    def batch(self, rows: torch.Tensor, seed: int) -> tuple[torch.Tensor, ConceptInput]:
        """Caption ids (B, L) and their concept input (slots, noisy vectors)."""
        model, slots = self.model, self.model.cfg.concept_slots
        picked = rows.tolist()
        concepts = self.bridge.concepts([self.mentions[i] for i in picked], self.corpus.vectors[rows], self.habits,
                                        slots, random.Random(seed), torch.Generator().manual_seed(seed))
        ids = [model.encode_caption(self.corpus.captions[i], model.concept_words(concepts, r))
               for r, i in enumerate(picked)]
        return padded(ids, model.vocab.pad_id), concepts


def _schedule(photo_batches: int, text_batches: int, seed: int) -> list[tuple[str, int]]:
    """One epoch's batches, photo and text interleaved at random (the same for the same seed)."""
    kinds = ["photo"] * photo_batches + ["text"] * text_batches
    random.Random(seed).shuffle(kinds)
    count = {"photo": 0, "text": 0}
    out = []
    for kind in kinds:
        out.append((kind, count[kind]))
        count[kind] += 1
    return out


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def model_on_encoder(cfg: ModelConfig, vocab: Vocabulary, path: Path) -> CaptionModel:
    """A new model with ``cfg``'s decoder on the encoder of model file ``path`` (the blocks
    ``cfg.fine_tune_blocks`` names are trained, the rest frozen), and, for a decoder that reads
    the image embedding, that model's image-embedding head (its own, or the ``.embedding.safetensors``
    file beside it, once ``.pixels.safetensors``)."""
    from photocap.model.embedding import embedding_path_for, find_embedding_head, load_head_for

    try:
        source, _ = load_model(path)
    except CheckpointError as exc:
        raise ModelError(str(exc)) from exc
    if source.cfg.encoder != cfg.encoder or source.cfg.concept_head != cfg.concept_head:
        raise ModelError(f"{path} has the {source.cfg.encoder} encoder"
                         f"{' with' if source.cfg.concept_head else ' without'} a concept head; "
                         f"this model needs {cfg.encoder}{' with' if cfg.concept_head else ' without'} one")
    tuned = cfg.fine_tune_blocks
    cfg.fine_tune_blocks = source.cfg.fine_tune_blocks  # where the encoder is split (its concept head copies)
    model = CaptionModel(cfg, vocab, pretrained_encoder=False, concepts=source.concepts)
    model.encoder.load_state_dict(source.encoder.state_dict())
    try:
        model.encoder.set_fine_tuning(tuned)
    except ValueError as exc:
        raise ModelError(f"{path}: {exc}") from exc
    if model.embedding is None:
        return model
    if source.embedding is not None:
        model.embedding.load_state_dict(source.embedding.state_dict())
        cfg.sentence_model = source.cfg.sentence_model
        return model
    head_path = find_embedding_head(path) or embedding_path_for(path)
    try:
        head, header = load_head_for(source, head_path)
    except CheckpointError as exc:
        raise ModelError(f"this decoder reads the image embedding, and {path} has no head for it: {exc}. "
                         f"Train one with `photocap train-embedding --model {path}`") from exc
    if head.cfg.inputs != "both" or head.cfg.hidden or head.cfg.concept_text:
        raise ModelError(f"{head_path}: only a linear head on the grid and concepts can go into a model")
    model.embedding.load_state_dict(head.state_dict())
    cfg.sentence_model = header.text_model
    return model


def _add_person_probe(path: Path, concepts: ConceptInput, items: Sequence[CaptionedImage], text: TextCorpus | None,
                      cfg: TrainConfig, device: torch.device) -> None:
    """Fit the person gate's probe (training/personprobe.py) and store it in the model file at ``path``."""
    from photocap.training.personprobe import fit_person_probe

    model, info = load_model(path, device)
    probe = fit_person_probe(concepts.vector.cpu(), [it.captions for it in items],
                             text.vectors if text is not None else None, text.captions if text is not None else (),
                             text_noise=cfg.text_noise, seed=cfg.seed)
    model.person_probe.copy_(probe)
    save_model(model, path, half=False, info=info)


def _train_forward(model: CaptionModel, cached: torch.Tensor, inputs: torch.Tensor,
                   concepts: ConceptInput | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One training step's forward: cached rows -> the decoder's logits (what DDP wraps). Rows
    without positions (a text caption, a photo batch trained without its grid) skip the encoder."""
    feats = grid_features(model, cached) if cached.size(1) else cached.new_zeros(len(cached), 0, model.cfg.feature_dim)
    return model.decoder(feats, inputs, concepts)


def _lr_at(step: int, total: int, cfg: TrainConfig, base: float) -> float:
    """Linear warm-up then cosine decay to 5% of the base rate."""
    if step < cfg.warmup_steps:
        return base * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_destination(path) as tmp:
        torch.save(obj, tmp)


def train(
    splits: DatasetSplits,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    out_dir: Path,
    *,
    cache_root: Path,
    device: str | torch.device = "cpu",
    resume: Path | None = None,
    init: Path | None = None,
    on_progress: Progress | None = None,
    encoder_weights: Path | None = None,
    text: TextCorpus | None = None,
    encoder_from: Path | None = None,
) -> TrainResult:
    """Train a captioner on ``splits.train``, selecting on ``splits.dev``.

    ``encoder_weights``: ImageNet state_dict file for a new model's encoder (needed by
    resnet50 / inception-v3); unused with ``resume`` / ``init``, never stored in outputs.
    ``text``: caption text without photos, trained beside the photos' captions (the decoder must read
    the image embedding: ``sentence_dim``). ``encoder_from``: a model file whose encoder a new model
    starts from (frozen unless ``fine_tune_blocks``), with the image-embedding head beside it.
    """
    started = time.monotonic()
    rank = distributed.join(device)  # under torchrun: this process's rank, its shard and its device
    device = rank.device
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    emit = on_progress or (lambda event: None)
    set_seed(cfg.seed)

    state: dict[str, Any] | None = None
    if resume is not None:
        state = torch.load(resume, map_location="cpu", weights_only=True)
        model_cfg = ModelConfig.from_dict(json.loads(state["model_config"]))
        cfg = TrainConfig.from_dict(json.loads(state["train_config"]))
        vocab = Vocabulary.from_dict(json.loads(state["vocab"]))
        concepts = ConceptSet.from_dict(json.loads(state["concepts"])) if state.get("concepts") else None
        model = CaptionModel(model_cfg, vocab, pretrained_encoder=False, concepts=concepts)
        model.load_state_dict(state["model"])
    elif init is not None:
        top_blocks = model_cfg.fine_tune_blocks
        model, _ = load_model(init)
        vocab, model_cfg = model.vocab, model.cfg
        try:
            model.encoder.set_fine_tuning(top_blocks)
        except ValueError as exc:
            raise ModelError(f"{init}: {exc}") from exc
        if model.concepts is None:  # the caller decides, not the file's training history
            model_cfg.fine_tune_blocks = top_blocks
        # (with a concept head the split between cached trunk and top stays where the model was built)
    else:
        vocab = Vocabulary.build([*(c for it in splits.train for c in it.captions),
                                  *(text.captions if text is not None else ())], cfg.min_freq)
        if encoder_from is not None:
            model = model_on_encoder(model_cfg, vocab, encoder_from)
        else:
            try:
                model = CaptionModel(model_cfg, vocab, pretrained_encoder=True, encoder_weights=encoder_weights,
                                     concepts=bundled_concepts() if model_cfg.concept_head else None)
            except EncoderWeightsError as exc:
                raise ModelError(str(exc)) from exc
    model.to(device)
    model.encoder.eval()  # frozen BatchNorm statistics, also in fine-tuned blocks

    with rank.main_first():  # only rank 0 writes the feature cache
        train_items, train_feats = encode_split_features(model, splits.train, cache_root, device, emit,
                                                         "features:train")
        dev_items, dev_feats = encode_split_features(model, splits.dev, cache_root, device, emit, "features:dev")
    if cfg.val_images:
        dev_items, dev_feats = dev_items[: cfg.val_images], dev_feats[: cfg.val_images]
    train_concepts = split_concepts(model, train_feats, device)
    data = _Data(train_items, model, train_concepts)
    if len(data) == 0:
        raise ValueError("no usable training captions")
    texts = None
    if text is not None:
        if not model.cfg.sentence_dim:
            raise ModelError("training on caption text needs a model whose decoder reads the image embedding "
                             "(sentence_dim); start from one, or from a model with an image-embedding head")
        habits = ClassifierHabits.measure(train_concepts.to("cpu"),
                                          [it.captions for it in train_items], model.concepts, model.cfg.concept_slots)
        texts = _TextBatches(text, model, habits, cfg)

    groups = [{"params": [p for p in model.decoder.parameters() if p.requires_grad], "base_lr": cfg.lr}]
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    if encoder_params:
        groups.append({"params": encoder_params, "base_lr": cfg.encoder_lr})
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    photo_batches = math.ceil(len(data) / cfg.batch_size)
    text_batches = math.ceil(texts.per_epoch / cfg.batch_size) if texts is not None else 0
    steps_per_epoch = photo_batches + text_batches
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)

    forward = rank.data_parallel(model, _train_forward, unused_parameters=bool(encoder_params))
    step, epoch, best, bad_epochs = 0, 0, -1.0, 0
    history: list[dict[str, Any]] = []
    # Re-seed after the feature cache: building it (or not, when it exists) must not change the run.
    torch.manual_seed(cfg.seed)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        for group, base in zip(optimizer.param_groups, (cfg.lr, cfg.encoder_lr)):
            group.setdefault("base_lr", base)  # checkpoints from before encoder fine-tuning lack it
        step, epoch = int(state["step"]), int(state["epoch"])
        best, bad_epochs = float(state["best"]), int(state["bad_epochs"])
        history = json.loads(state["history"])
        torch.set_rng_state(state["rng"])

    def checkpoint() -> None:
        if not rank.main:
            return
        _atomic_torch_save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "step": step, "epoch": epoch, "best": best, "bad_epochs": bad_epochs,
            "rng": torch.get_rng_state(), "history": json.dumps(history),
            "model_config": json.dumps(model_cfg.to_dict()), "train_config": json.dumps(asdict(cfg)),
            "vocab": json.dumps(vocab.to_dict()),
            "concepts": json.dumps(model.concepts.to_dict()) if model.concepts is not None else "",
        }, out_dir / "last.ckpt")

    best_path = out_dir / "best.safetensors"
    try:
        while epoch < cfg.epochs and bad_epochs < cfg.patience and (not cfg.max_steps or step < cfg.max_steps):
            epoch_start = time.monotonic()
            epoch_seed = cfg.seed * 1000 + epoch
            order = torch.randperm(len(data), generator=torch.Generator().manual_seed(epoch_seed))
            text_order = texts.order(epoch_seed) if texts is not None else None
            schedule = _schedule(photo_batches, text_batches, epoch_seed)
            first_batch = step - epoch * steps_per_epoch  # > 0 when resuming mid-epoch
            losses = []
            model.decoder.train()
            for b in range(first_batch, steps_per_epoch):
                if cfg.max_steps and step >= cfg.max_steps:
                    break
                kind, n = schedule[b]
                if kind == "text":
                    picked = rank.shard(text_order[n * cfg.batch_size : (n + 1) * cfg.batch_size])
                    caps, concepts = texts.batch(picked, epoch_seed * 100_000 + n)
                    cached = torch.zeros(len(caps), 0, model.cfg.feature_dim, device=device)  # (B, 0, C): no photo
                    concepts = concepts.to(device)
                else:
                    idx = rank.shard(order[n * cfg.batch_size : (n + 1) * cfg.batch_size])
                    caps = data.captions[idx]  # (B, L)
                    rows = data.image_index[idx]
                    cached = train_feats[rows].to(device).float()  # (B, P, C or C')
                    concepts = train_concepts.rows(rows.to(device)) if train_concepts is not None else None
                    if cfg.grid_dropout and random.Random(epoch_seed * 100_000 + n).random() < cfg.grid_dropout:
                        cached = cached[:, :0]  # this batch as a text caption is: no grid
                caps = caps[:, : int((caps != vocab.pad_id).sum(1).max())]
                caps = caps.to(device)
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(step, total_steps, cfg, group["base_lr"])
                logits, extras = forward(cached, caps[:, :-1], concepts)  # (B, L-1, V [+ 2K])
                loss = caption_loss(logits, caps[:, 1:], extras, vocab.pad_id,
                                    cfg.label_smoothing, cfg.attention_reg)
                loss = rank.weigh(loss, (caps[:, 1:] != vocab.pad_id).sum())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                step += 1
                losses.append(rank.reported(loss))
                emit({"phase": "train", "epoch": epoch + 1, "epochs": cfg.epochs, "done": b + 1,
                      "total": steps_per_epoch, "loss": losses[-1], "step": step})
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    checkpoint()
            epoch += 1
            scores, predictions = rank.from_main(  # scored on rank 0; every rank agrees on the best and on stopping
                lambda: evaluate_features(model, dev_items, dev_feats, beam=cfg.val_beam, device=device))
            improved = scores.get("CIDEr", 0.0) > best
            if improved:
                best, bad_epochs = scores["CIDEr"], 0
                if rank.main:
                    save_model(model, best_path, half=False, info={"dev_scores": scores, "epoch": epoch})
            else:
                bad_epochs += 1
            record = {"epoch": epoch, "step": step, "train_loss": sum(losses) / max(1, len(losses)),
                      "dev": scores, "best": improved, "seconds": round(time.monotonic() - epoch_start, 1),
                      "lr": optimizer.param_groups[0]["lr"],
                      "samples": {k: predictions[k] for k in list(predictions)[:3]}}
            history.append(record)
            if rank.main:
                with open(out_dir / "log.jsonl", "a", encoding="utf-8") as log:
                    log.write(json.dumps(record) + "\n")
            emit({"phase": "epoch", **record})
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        raise

    if model.embedding is not None and best_path.exists() and rank.main:
        _add_person_probe(best_path, train_concepts, train_items, text, cfg, device)

    if cfg.scst_epochs and rank.main:  # self-critical epochs are not distributed: rank 0 runs them alone
        if best_path.exists():  # continue from the best cross-entropy weights
            best_model, _ = load_model(best_path, device)
            model.load_state_dict(best_model.state_dict())
        best = self_critical(model, train_items, train_feats, dev_items, dev_feats, cfg, out_dir,
                             best_path, best, device=device, emit=emit, history=history,
                             train_concepts=train_concepts)

    best_scores = history and max((h["dev"] for h in history), key=lambda s: s.get("CIDEr", 0.0)) or {}
    return TrainResult(best_path if best_path.exists() else None, best_scores, epoch, step,
                       time.monotonic() - started, history)

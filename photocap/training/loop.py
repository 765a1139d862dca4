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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from photocap.errors import ModelError
from photocap.model.checkpoint import atomic_destination, load_model, save_model
from photocap.model.concepts import ConceptSet, bundled_concepts
from photocap.model.config import ModelConfig
from photocap.model.decoders import ConceptInput, caption_loss
from photocap.model.encoders_tv import EncoderWeightsError
from photocap.model.network import CaptionModel, Decoded
from photocap.model.vocab import Vocabulary
from photocap.training import distributed
from photocap.training.datasets import CaptionedImage, DatasetSplits
from photocap.training.features import FeatureCache, encoder_fingerprint

Progress = Callable[[dict[str, Any]], None]


@dataclass
class TrainConfig:
    epochs: int = 15
    batch_size: int = 64
    lr: float = 4e-4
    encoder_lr: float = 1e-4  # for the encoder's top blocks, when fine_tune_blocks > 0
    weight_decay: float = 0.0
    warmup_steps: int = 500
    label_smoothing: float = 0.1
    attention_reg: float = 1.0  # doubly stochastic attention (show-attend-tell only)
    grad_clip: float = 5.0
    patience: int = 4  # epochs without a better dev CIDEr before stopping
    min_freq: int = 5  # words seen fewer times become <unk>
    seed: int = 0
    val_beam: int | None = None  # beam width for dev scoring; None = the model's own beam_size
    val_images: int = 0  # 0 = the whole dev split
    checkpoint_every: int = 500  # steps between resume checkpoints (and at every epoch end)
    scst_epochs: int = 0  # self-critical (CIDEr reward) epochs after cross-entropy training
    scst_lr: float = 2e-5
    scst_samples: int = 5
    scst_temperature: float = 0.7  # below 1 keeps label smoothing's long tail out of the samples
    # Contrastive reward: minus this times a sample's best CIDEr-D against the other photos of its
    # batch, so a caption that fits every dog photo earns less than one that fits only its own.
    scst_contrast: float = 0.0
    max_steps: int = 0  # stop after this many steps in total (0 = no limit); for quick runs

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**data)


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
        width = max((len(r) for r in rows), default=2)
        self.captions = torch.full((len(rows), width), vocab.pad_id, dtype=torch.long)  # (N, L)
        for r, ids in enumerate(rows):
            self.captions[r, : len(ids)] = torch.tensor(ids)
        self.image_index = torch.tensor(img, dtype=torch.long)  # (N,)

    def __len__(self) -> int:
        return len(self.image_index)


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class _Encoded(torch.nn.Module):
    """What the feature cache stores for a model: grid features, or the trunk's output when fine-tuning."""

    def __init__(self, encoder: torch.nn.Module, top_blocks: int) -> None:
        super().__init__()
        self.encoder, self.top_blocks = encoder, top_blocks

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.top_blocks:
            return self.encoder.trunk(images, self.top_blocks)  # (B, P, C')
        return self.encoder(images)  # (B, P, C)


def grid_features(model: CaptionModel, cached: torch.Tensor) -> torch.Tensor:
    """Cached rows (B, P, C or C') -> the decoder's grid features (B, P, C)."""
    k = model.encoder.split_blocks
    return model.encoder.top(cached, k) if k else cached


def _train_forward(model: CaptionModel, cached: torch.Tensor, inputs: torch.Tensor,
                   concepts: ConceptInput | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One training step's forward: cached rows -> the decoder's logits (what DDP wraps)."""
    return model.decoder(grid_features(model, cached), inputs, concepts)


def split_concepts(model: CaptionModel, cached: torch.Tensor, device: torch.device,
                   batch_size: int = 256) -> ConceptInput | None:
    """Each cached image's concepts (N, R), on ``device``; None for a model without a concept head."""
    if model.concepts is None:
        return None
    parts = [model.concepts_from_trunk(cached[i : i + batch_size].to(device).float())
             for i in range(0, len(cached), batch_size)]
    if not parts:
        return ConceptInput(torch.zeros(0, 0, dtype=torch.long, device=device), torch.zeros(0, 0, device=device))
    return ConceptInput(torch.cat([c.words for c in parts]), torch.cat([c.scores for c in parts]))


def _lr_at(step: int, total: int, cfg: TrainConfig, base: float) -> float:
    """Linear warm-up then cosine decay to 5% of the base rate."""
    if step < cfg.warmup_steps:
        return base * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_destination(path) as tmp:
        torch.save(obj, tmp)


def encode_split_features(model: CaptionModel, items: Sequence[CaptionedImage], cache_root: Path,
                          device: torch.device, on_progress: Progress | None = None,
                          phase: str = "features") -> tuple[list[CaptionedImage], torch.Tensor]:
    """Cached features (N, P, C) float16 for ``items``; unreadable images are dropped.

    With ``fine_tune_blocks`` they are the frozen trunk's output; see :func:`grid_features`."""
    cfg = model.cfg
    k = model.encoder.split_blocks
    cache = FeatureCache(cache_root, encoder_fingerprint(model.encoder, cfg.encoder, cfg.image_size, k))

    def report(done: int, total: int) -> None:
        if on_progress:
            on_progress({"phase": phase, "done": done, "total": total})

    failed = set(cache.build([it.image for it in items], _Encoded(model.encoder, k), cfg.image_size,
                             device=device, on_progress=report))
    kept = [it for it in items if it.image not in failed]
    if on_progress and failed:
        on_progress({"phase": "warning", "message": f"{len(failed)} unreadable images skipped",
                     "examples": [str(p) for p in list(failed)[:3]]})
    return kept, cache.load([it.image for it in kept])


def caption_features(model: CaptionModel, items: Sequence[CaptionedImage], feats: torch.Tensor,
                     *, beam: int | None, device: torch.device, batch_size: int = 100,
                     length_penalty: float | None = None, concept_force: float | None = None,
                     concept_bonus: float | None = None) -> dict[str, Decoded]:
    """Caption cached ``feats`` with beam search: item key -> :class:`Decoded`.

    ``beam`` / ``length_penalty`` / ``concept_force`` / ``concept_bonus``: None = the model's own."""
    model.eval()
    out: dict[str, Decoded] = {}
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            cached = feats[start : start + batch_size].to(device).float()
            chunk = grid_features(model, cached)  # (b, P, C)
            concepts = model.concepts_from_trunk(cached)
            for item, decoded in zip(items[start : start + batch_size],
                                     model.decode_features(chunk, beam, length_penalty, concepts, concept_force,
                                                           concept_bonus)):
                out[item.key] = decoded
    return out


def evaluate_features(model: CaptionModel, items: Sequence[CaptionedImage], feats: torch.Tensor,
                      *, beam: int | None, device: torch.device, batch_size: int = 100,
                      tokenize: str = "simple", metrics: Sequence[str] = ("BLEU", "CIDEr"),
                      length_penalty: float | None = None, concept_force: float | None = None,
                      concept_bonus: float | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """Caption ``feats`` with beam search and score against the items' references.

    ``beam`` / ``length_penalty`` / ``concept_force`` / ``concept_bonus``: None = the model's own."""
    from photocap.training.metrics import score_captions

    decoded = caption_features(model, items, feats, beam=beam, device=device, batch_size=batch_size,
                               length_penalty=length_penalty, concept_force=concept_force,
                               concept_bonus=concept_bonus)
    predictions = {key: d.text for key, d in decoded.items()}
    references = {it.key: list(it.captions) for it in items}
    return score_captions(predictions, references, metrics=tuple(metrics), tokenize=tokenize), predictions


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
) -> TrainResult:
    """Train a captioner on ``splits.train``, selecting on ``splits.dev``.

    ``encoder_weights``: ImageNet state_dict file for a new model's encoder (needed by
    resnet50 / inception-v3); unused with ``resume`` / ``init``, never stored in outputs.
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
        vocab = Vocabulary.build((c for it in splits.train for c in it.captions), cfg.min_freq)
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

    groups = [{"params": [p for p in model.decoder.parameters() if p.requires_grad], "base_lr": cfg.lr}]
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    if encoder_params:
        groups.append({"params": encoder_params, "base_lr": cfg.encoder_lr})
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
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
            order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
            first_batch = step - epoch * steps_per_epoch  # > 0 when resuming mid-epoch
            losses = []
            model.decoder.train()
            for b in range(first_batch, steps_per_epoch):
                if cfg.max_steps and step >= cfg.max_steps:
                    break
                idx = rank.shard(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
                caps = data.captions[idx]  # (B, L)
                caps = caps[:, : int((caps != vocab.pad_id).sum(1).max())]
                rows = data.image_index[idx]
                concepts = train_concepts.rows(rows.to(device)) if train_concepts is not None else None
                caps = caps.to(device)
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(step, total_steps, cfg, group["base_lr"])
                cached = train_feats[rows].to(device).float()
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

    if cfg.scst_epochs and rank.main:  # self-critical epochs are not distributed: rank 0 runs them alone
        from photocap.training.scst import self_critical

        if best_path.exists():  # continue from the best cross-entropy weights
            best_model, _ = load_model(best_path, device)
            model.load_state_dict(best_model.state_dict())
        best = self_critical(model, train_items, train_feats, dev_items, dev_feats, cfg, out_dir,
                             best_path, best, device=device, emit=emit, history=history,
                             train_concepts=train_concepts)

    best_scores = history and max((h["dev"] for h in history), key=lambda s: s.get("CIDEr", 0.0)) or {}
    return TrainResult(best_path if best_path.exists() else None, best_scores, epoch, step,
                       time.monotonic() - started, history)

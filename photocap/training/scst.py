"""Self-critical sequence training (Rennie et al. 2017) with a CIDEr-D reward.

Each image's ``scst_samples`` captions, sampled at ``scst_temperature``, are scored by CIDEr-D less
``scst_contrast`` times their best CIDEr-D against the other photos of the batch (so captions do
not collapse onto a few templates); the baseline is the mean reward of the image's other samples
(Luo 2020). Why these settings, with figures: docs/training.md and docs/decisions/self-critical.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from photocap.model.beam import sample, sequence_logprob
from photocap.model.checkpoint import save_model
from photocap.model.decoders import ConceptInput
from photocap.model.network import CaptionModel
from photocap.training.config import TrainConfig
from photocap.training.datasets import CaptionedImage
from photocap.training.evaluate import evaluate_features, grid_features
from photocap.training.metrics import CiderD

IMAGES_PER_BATCH = 16


def self_critical(model: CaptionModel, train_items: Sequence[CaptionedImage], train_feats: torch.Tensor,
                  dev_items: Sequence[CaptionedImage], dev_feats: torch.Tensor, cfg: TrainConfig, out_dir: Path,
                  best_path: Path, best: float, *, device: torch.device,
                  emit: Callable[[dict[str, Any]], None], history: list[dict[str, Any]],
                  train_concepts: ConceptInput | None = None) -> float:
    """Fine-tune ``model.decoder`` for ``cfg.scst_epochs`` epochs; returns the best dev CIDEr.

    Each epoch's record is appended to ``history`` and to ``out_dir/log.jsonl``.
    """
    vocab = model.vocab
    cider = CiderD({it.key: list(it.captions) for it in train_items})
    params = [p for p in model.decoder.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.scst_lr)
    n = cfg.scst_samples
    # Its own seeded generator: the samples depend on the seed and the starting weights only, so
    # one run and a run resumed after cross-entropy (or started from its checkpoint) agree.
    generator = torch.Generator(device=device).manual_seed(cfg.seed + 104729)
    steps = (len(train_items) + IMAGES_PER_BATCH - 1) // IMAGES_PER_BATCH
    for epoch in range(cfg.scst_epochs):
        started = time.monotonic()
        order = torch.randperm(len(train_items), generator=torch.Generator().manual_seed(cfg.seed + 7919 * epoch))
        rewards_seen: list[float] = []
        for b in range(steps):
            idx = order[b * IMAGES_PER_BATCH : (b + 1) * IMAGES_PER_BATCH]
            with torch.no_grad():  # the encoder stays as cross-entropy training left it
                feats = grid_features(model, train_feats[idx].to(device).float())  # (B, P, C)
            concepts = train_concepts.rows(idx.to(device)) if train_concepts is not None else None
            model.decoder.eval()  # no dropout: the samples and their scores come from one distribution
            ids = sample(model.decoder, feats, start_id=vocab.start_id, end_id=vocab.end_id, pad_id=vocab.pad_id,
                         banned_ids=model.banned_ids, max_len=model.cfg.max_len, temperature=cfg.scst_temperature,
                         generator=generator, concepts=concepts, samples=n)  # (B*n, T)
            logprob = sequence_logprob(model.decoder, feats, ids, start_id=vocab.start_id, pad_id=vocab.pad_id,
                                       banned_ids=model.banned_ids, concepts=concepts, samples=n)  # (B*n,)
            texts = [model.text(row, model.concept_words(concepts, r // n)) for r, row in enumerate(ids.tolist())]
            keys = [train_items[i].key for i in idx.tolist() for _ in range(n)]
            scores = cider.score(keys, texts)
            if cfg.scst_contrast:
                batch_keys = [train_items[i].key for i in idx.tolist()]
                fits_others = cider.best_other(texts, [[k for k in batch_keys if k != key] for key in keys])
                scores = [s - cfg.scst_contrast * o for s, o in zip(scores, fits_others)]
            reward = torch.tensor(scores, device=device).view(-1, n)  # (B, n)
            baseline = (reward.sum(dim=1, keepdim=True) - reward) / (n - 1)  # (B, n)
            advantage = (reward - baseline).view(-1)  # (B*n,)
            loss = -(advantage * logprob).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            rewards_seen.append(reward.mean().item())
            emit({"phase": "train", "epoch": f"scst {epoch + 1}", "epochs": cfg.scst_epochs, "done": b + 1,
                  "total": steps, "loss": rewards_seen[-1]})
        scores, predictions = evaluate_features(model, dev_items, dev_feats, beam=cfg.val_beam, device=device)
        improved = scores.get("CIDEr", 0.0) > best
        if improved:
            best = scores["CIDEr"]
            save_model(model, best_path, half=False, info={"dev_scores": scores, "scst_epoch": epoch + 1})
        record = {"epoch": f"scst-{epoch + 1}", "train_reward": sum(rewards_seen) / max(1, len(rewards_seen)),
                  "dev": scores, "best": improved, "seconds": round(time.monotonic() - started, 1),
                  "samples": {k: predictions[k] for k in list(predictions)[:3]}}
        history.append(record)
        with open(out_dir / "log.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
        emit({"phase": "epoch", "train_loss": -record["train_reward"], **record})
    return best

"""Training the image-embedding head: frozen encoder outputs of photos -> their captions' sentence embeddings.

The recipe (``photocap train-embedding``): the encoder's pooled grid features and ImageNet logits of
each train photo (computed once and cached), the sentence model's embeddings of its captions (also
cached), a projection (:class:`~photocap.model.embedding.ImageEmbeddingHead`) trained with the symmetric
InfoNCE loss of CLIP (in-batch negatives, a learned temperature) for a few epochs, one of each
photo's captions drawn per epoch. The epoch kept is the best on the dev split's sentence recall@10:
each dev photo's first caption as the query among all dev photos.

Nothing here imports the sentence model: the front end passes its ``embed`` function (texts ->
unit rows) and the encoder's ``encode`` function (images -> grid, logits), so this module depends
on the model layer only.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from photocap.model.embedding import EmbeddingConfig, ImageEmbeddingHead
from photocap.training.datasets import CaptionedImage
from photocap.training.features import PREPROCESS_VERSION, _Images

Progress = Callable[[dict[str, Any]], None]
Encode = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]  # (B,3,S,S) -> (B,P,C), (B,1000)
Embed = Callable[[list[str]], np.ndarray]  # texts -> (n, D) unit rows


@dataclass
class EmbeddingTrainConfig:
    """The recipe's settings (the defaults are the bundled image-embedding head's)."""

    inputs: str = "both"  # grid | concepts | both
    hidden: int = 0  # 0: linear projection; else an MLP of this width
    dropout: float = 0.1
    epochs: int = 10
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.5  # measured: 0.01 and 0.5 tie on dev R@10 (0.644, 0.645); an MLP overfits sooner
    temperature: float = 0.05  # initial; learned (as CLIP's logit scale), kept within [0.01, 1]
    seed: int = 0
    concept_text: bool = False  # add the concept words' sentence vectors (needs class_text)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EmbeddingData:
    """One split's inputs and targets."""

    keys: list[str]
    pooled: torch.Tensor  # (N, C) float32: mean of the encoder's grid
    logits: torch.Tensor | None  # (N, 1000) float32 ImageNet logits, None without a concept head
    text: torch.Tensor  # (N, K, D) float32 unit rows: the sentence embeddings of each photo's K captions


@dataclass
class EmbeddingTrainResult:
    head: ImageEmbeddingHead
    dev: dict[str, float]  # the kept epoch's dev recall@1/5/10
    epoch: int  # which epoch was kept (1-based)
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _digest(parts: Sequence[str]) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def encode_photos(images: Sequence[Path], encode: Encode, image_size: int, *, encoder_id: str,
                  cache_root: Path | None = None, batch_size: int = 32, workers: int = 1,
                  on_progress: Progress | None = None, phase: str = "encoding") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pooled grid (N, C) and logits (N, 1000) (or None) of ``images``, cached in ``cache_root`` by the
    encoder's identity and the list of files. An unreadable image raises (datasets check them first)."""
    cache = None
    if cache_root is not None:
        key = _digest([encoder_id, PREPROCESS_VERSION, str(image_size), *map(str, images)])
        cache = Path(cache_root) / f"pixel-inputs-{encoder_id}-{key}.npz"  # its old name: older caches are used
        if cache.is_file():
            with np.load(cache) as z:
                return torch.from_numpy(z["pooled"]), (torch.from_numpy(z["logits"]) if "logits" in z else None)
    pooled, logits = [], []
    loader = DataLoader(_Images(list(images), image_size), batch_size=batch_size, num_workers=workers)
    done = 0
    with torch.inference_mode():
        for idx, batch in loader:
            bad = torch.isnan(batch).flatten(1).any(dim=1)
            if bad.any():
                raise OSError(f"cannot read {images[int(idx[bad][0])]}")
            grid, lg = encode(batch)  # (B, P, C), (B, 1000)
            pooled.append(ImageEmbeddingHead.pool(grid).cpu())
            if lg is not None:
                logits.append(lg.float().cpu())
            done += len(idx)
            if on_progress:
                on_progress({"phase": phase, "done": done, "total": len(images)})
    p = torch.cat(pooled)
    lg_all = torch.cat(logits) if logits else None
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        arrays = {"pooled": p.numpy()} | ({"logits": lg_all.numpy()} if lg_all is not None else {})
        np.savez(tmp, **arrays)
        tmp.replace(cache)
    return p, lg_all


def embed_captions(items: Sequence[CaptionedImage], embed: Embed, *, per_photo: int = 5, text_model: str,
                   cache_root: Path | None = None) -> torch.Tensor:
    """The sentence embeddings of each item's first ``per_photo`` captions (cycled when it has fewer):
    (N, per_photo, D), cached by the text model id and the captions."""
    texts = [it.captions[k % len(it.captions)] for it in items for k in range(per_photo)]
    cache = None
    if cache_root is not None:
        cache = Path(cache_root) / f"caption-vectors-{text_model}-{_digest(texts)}.npy"
        if cache.is_file():
            return torch.from_numpy(np.load(cache))
    vectors = np.asarray(embed(texts), dtype=np.float32).reshape(len(items), per_photo, -1)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(cache)
    return torch.from_numpy(vectors)


def ranks(queries: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Query i's right answer is target i: its 0-based rank among all targets by cosine (unit rows)."""
    sims = queries @ targets.T  # (N, N)
    right = sims.diagonal().unsqueeze(1)  # (N, 1)
    return (sims > right).sum(dim=1)


def recall(rank: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    return {f"R@{k}": round(float((rank < k).float().mean()), 4) for k in ks}


def image_vectors(head: ImageEmbeddingHead, data: EmbeddingData, batch: int = 1024) -> torch.Tensor:
    """(N, D) unit vectors of a split's photos."""
    head.eval()
    with torch.no_grad():
        return torch.cat([head(data.pooled[i:i + batch], None if data.logits is None else data.logits[i:i + batch])
                          for i in range(0, len(data.keys), batch)])


def dev_recall(head: ImageEmbeddingHead, dev: EmbeddingData) -> dict[str, float]:
    """Sentence recall@1/5/10 of each dev photo with its first caption as the query."""
    return recall(ranks(dev.text[:, 0], image_vectors(head, dev)))


def class_texts(class_words: Sequence[str], embed: Embed) -> torch.Tensor:
    """The sentence vector of each ImageNet class's concept word: (classes, D)."""
    unique = sorted(set(class_words))
    table = dict(zip(unique, np.asarray(embed(unique), dtype=np.float32)))
    return torch.from_numpy(np.stack([table[w] for w in class_words]))


def train_embedding_head(train: EmbeddingData, dev: EmbeddingData, cfg: EmbeddingTrainConfig,
                         on_progress: Progress | None = None,
                         class_text: torch.Tensor | None = None) -> EmbeddingTrainResult:
    """Train an image-embedding head by the recipe; keep the epoch with the best dev recall@10 (ties: recall@1).

    ``class_text`` (classes, D): see :func:`class_texts`; required with ``cfg.concept_text``."""
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    head = ImageEmbeddingHead(EmbeddingConfig(inputs=cfg.inputs, grid_dim=train.pooled.shape[1],
                                 concept_dim=train.logits.shape[1] if train.logits is not None else 1000,
                                 hidden=cfg.hidden, dropout=cfg.dropout, out_dim=train.text.shape[2],
                                 concept_text=cfg.concept_text))
    if cfg.concept_text:
        if class_text is None:
            raise ValueError("concept_text needs the sentence vectors of the classes' concept words")
        head.class_text.copy_(class_text)
    x = head.inputs(train.pooled, train.logits)  # (N, in_dim)
    head.set_standardisation(x)
    log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / cfg.temperature)))
    plain = [p for name, p in head.named_parameters() if name != "mix"]  # the weights; not the mix or scale
    extra = [log_scale, *([head.mix] if cfg.concept_text else [])]
    opt = torch.optim.AdamW([{"params": plain}, {"params": extra, "weight_decay": 0.0}], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    n, per_photo = len(train.keys), train.text.shape[1]
    steps_per_epoch = max(1, n // cfg.batch_size)  # the last partial batch is dropped: fewer negatives
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    best: tuple[tuple[float, float], dict, dict, int] | None = None
    history = []
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        order = torch.randperm(n, generator=gen)
        pick = torch.randint(per_photo, (n,), generator=gen)  # one caption per photo this epoch
        losses = []
        for s in range(steps_per_epoch):
            rows = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            img = head.project(x[rows])  # (b, D)
            txt = train.text[rows, pick[rows]]  # (b, D)
            logits = img @ txt.T * log_scale.exp()  # (b, b)
            target = torch.arange(len(rows))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                log_scale.clamp_(0.0, math.log(100.0))
            losses.append(loss.item())
            if on_progress:
                on_progress({"phase": "train", "epoch": epoch, "epochs": cfg.epochs, "done": s + 1,
                             "total": steps_per_epoch, "loss": losses[-1]})
        scores = dev_recall(head, dev)
        row = {"epoch": epoch, "loss": round(sum(losses) / len(losses), 4),
               "temperature": round(float(1 / log_scale.detach().exp()), 4), **scores}
        if cfg.concept_text:
            row["concept_share"] = round(float(torch.sigmoid(head.mix.detach())), 4)
        history.append(row)
        key = (scores["R@10"], scores["R@1"])
        is_best = best is None or key > best[0]
        if is_best:
            best = (key, {k: v.clone() for k, v in head.state_dict().items()}, scores, epoch)
        if on_progress:
            on_progress({"phase": "epoch", **row, "best": is_best})
    assert best is not None
    head.load_state_dict(best[1])
    head.eval()
    return EmbeddingTrainResult(head, best[2], best[3], history, time.perf_counter() - start)

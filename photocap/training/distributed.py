"""``photocap train`` under ``torchrun``: DistributedDataParallel glue for training/loop.py.

torchrun starts one process per device and sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous
(MASTER_ADDR/PORT) in each one's environment; :func:`join` reads them. Without them (a plain
``photocap train``) everything here is a no-op of world size 1, so a single process runs exactly
the code it ran before.

What each promise needs, and where it is kept:

* Each rank trains on its shard of every global batch (:meth:`Rank.shard`): every rank draws the
  same seeded batch order and takes its contiguous part, so ``--batch-size`` stays the global
  batch and a 2-process run takes the same steps as a 1-process run.
* Gradients are averaged by DDP; :meth:`Rank.weigh` weights each rank's token-mean loss by its
  share of the batch's target tokens, so the averaged gradient is the gradient of the whole
  batch's token-mean loss (what one process computes), not a mean of unequal shards' means.
* Only rank 0 writes: the feature cache (built by rank 0 while the others wait,
  :meth:`Rank.main_first`), the dev score (computed on rank 0 and sent to all so they agree on the
  best epoch and on early stopping, :meth:`Rank.from_main`), checkpoints and the log.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

__all__ = ["Rank", "env_rank", "join", "leave"]


def env_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun), before any process group."""
    return int(os.environ.get("RANK", "0"))


@dataclass
class Rank:
    """This process's place in the run: rank, world size and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    _padding: bool = False  # this rank's shard of the current batch is a stand-in (weight 0)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (it writes the shared feature cache), then the others
        (they find it built and only read it)."""
        if not self.main:
            self.barrier()
        yield
        if self.main:
            self.barrier()

    def from_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` on rank 0 only; every rank gets its value."""
        if self.world == 1:
            return compute()
        box: list[Any] = [compute() if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous part of a global batch of row indices. A rank left without rows
        (a last batch smaller than the world) takes a stand-in row that :meth:`weigh` zeroes, so
        every rank still joins the gradient all-reduce."""
        if self.world == 1:
            return batch
        part = batch.tensor_split(self.world)[self.rank]
        self._padding = len(part) == 0
        return batch[:1] if self._padding else part

    def weigh(self, loss: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The loss to back-propagate: this shard's token-mean ``loss`` (over ``tokens`` targets)
        weighted so that DDP's average of the ranks' gradients is the whole batch's."""
        if self.world == 1:
            return loss
        mine = torch.zeros((), dtype=torch.float64, device=self.device) if self._padding else \
            tokens.detach().to(self.device, torch.float64)
        total = mine.clone()
        dist.all_reduce(total)
        return loss * (mine * self.world / total.clamp(min=1)).to(loss.dtype)

    def reported(self, weighted: torch.Tensor) -> float:
        """The whole batch's loss (the same number a single process reports), from :meth:`weigh`'s."""
        if self.world == 1:
            return weighted.item()
        value = weighted.detach().clone()
        dist.all_reduce(value)
        return value.item() / self.world

    def data_parallel(self, model: torch.nn.Module, forward: Callable[..., T], *,
                      unused_parameters: bool = False) -> Callable[..., T]:
        """``forward(model, *args)`` with its gradients averaged over the ranks (DDP). The DDP module
        wraps the whole model so every trained parameter (decoder and any fine-tuned encoder
        blocks) is synchronised; ``unused_parameters``: some of them may get no gradient."""
        if self.world == 1:
            return partial(forward, model)
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(_Forward(model, forward), device_ids=ids,
                                       find_unused_parameters=unused_parameters)


class _Forward(torch.nn.Module):
    """A module whose forward is the training step's: what DDP wraps."""

    def __init__(self, model: torch.nn.Module, forward: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self.step = forward

    def forward(self, *args: Any) -> Any:
        return self.step(self.model, *args)


def join(device: torch.device | str) -> Rank:
    """This process's :class:`Rank`: under torchrun (WORLD_SIZE > 1) the process group is joined
    (NCCL on CUDA, gloo otherwise) unless the caller already did, and a CUDA device becomes this
    rank's own (``cuda:LOCAL_RANK``)."""
    device = torch.device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 and not dist.is_initialized():
        return Rank(device=device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Rank(dist.get_rank(), dist.get_world_size(), device)


def leave() -> None:
    """Leave the process group (at the end of a torchrun process)."""
    if dist.is_initialized():
        dist.destroy_process_group()

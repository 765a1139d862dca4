"""``photocap train`` as DistributedDataParallel: 2 CPU processes (gloo, started with
torch.multiprocessing spawn and torchrun's environment) against 1 process of the same global batch.

Tolerance: with dropout off, the 2-process run computes the same global-batch gradient in a
different summation order, so its per-step losses match the 1-process run's to 1e-4 (relative)
and its final weights to 1e-4 (absolute; measured: at most 2e-5), except the attention's key bias,
whose gradient is zero in exact arithmetic (Adam turns its rounding noise into steps of +-lr).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from helpers import make_folder_dataset
from photocap.decoding.config import ModelConfig
from photocap.training.datasets import load_dataset
from photocap.training.config import TrainConfig
from photocap.training.loop import train

TINY = dict(encoder="efficientnet-lite0", arch="transformer", d_model=32, num_layers=1, num_heads=2, ff_dim=64,
            memory_layers=0, transformer_dropout=0.0, dropout=0.0, max_len=14)
# 12 training captions, global batch 11: 2 steps an epoch, the second of 1 row (rank 1 gets a stand-in
# row of weight 0); 3 epochs
CFG = dict(epochs=3, batch_size=11, lr=3e-3, warmup_steps=2, min_freq=1, val_beam=1, checkpoint_every=0,
           patience=10)
STOP_AT = 3  # the 2-process run is interrupted after this step (mid-epoch 2), then resumed
LOSS_RTOL = 1e-4
WEIGHT_ATOL = 1e-4


def _splits(dataset: Path):
    return load_dataset("folder", dataset, dev_fraction=0.25)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, dataset: str, out: str, cache: str) -> None:
    """One torchrun-like rank: interrupted at STOP_AT, then resumed from rank 0's checkpoint."""
    import torch.distributed as dist

    torch.set_num_threads(1)  # two ranks on two cores
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    losses: dict[int, float] = {}
    first = [True]

    def record(event):
        if event.get("phase") == "train":
            losses[event["step"]] = event["loss"]
            if first[0] and event["step"] == STOP_AT:  # every rank stops at the same step
                raise KeyboardInterrupt

    try:
        train(_splits(Path(dataset)), ModelConfig(**TINY), TrainConfig(**CFG), Path(out), cache_root=Path(cache),
              on_progress=record)
    except KeyboardInterrupt:
        pass
    first[0] = False
    dist.barrier()  # rank 0 has written last.ckpt
    stopped = torch.load(Path(out) / "last.ckpt", weights_only=True)["step"]
    train(_splits(Path(dataset)), ModelConfig(), TrainConfig(), Path(out), cache_root=Path(cache),
          resume=Path(out) / "last.ckpt", on_progress=record)
    Path(out, f"rank{rank}.json").write_text(json.dumps({"losses": losses, "stopped": stopped}))
    dist.destroy_process_group()


def test_two_gloo_processes_train_like_one_process_of_the_same_global_batch(tmp_path, sample_photos):
    (tmp_path / "data").mkdir()
    dataset = make_folder_dataset(tmp_path / "data", sample_photos, paraphrase=True)
    cache = tmp_path / "cache"
    one_losses: dict[int, float] = {}
    single = train(_splits(dataset), ModelConfig(**TINY), TrainConfig(**CFG), tmp_path / "one", cache_root=cache,
                   on_progress=lambda e: one_losses.__setitem__(e["step"], e["loss"]) if e["phase"] == "train"
                   else None)
    assert single.steps == 6

    two = tmp_path / "two"
    cache2 = tmp_path / "cache2"  # its own cache: rank 0 builds it while rank 1 waits
    mp.spawn(_rank_main, args=(2, _free_port(), str(dataset), str(two), str(cache2)), nprocs=2, join=True)

    r0, r1 = (json.loads((two / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["stopped"] == STOP_AT  # one checkpoint, mid-epoch, resumed from
    # only rank 0 wrote: one log line per epoch (two writers would have appended twice)
    log = [json.loads(line) for line in (two / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert sorted(p.name for p in two.iterdir()) == ["best.safetensors", "last.ckpt", "log.jsonl", "rank0.json",
                                                      "rank1.json"]
    assert sum(1 for _ in cache2.rglob("*.npy")) == 8 and not list(cache2.rglob("*.tmp"))
    # the same loss curve on both ranks (each reports the whole batch's loss) and as one process
    for losses in (r0["losses"], r1["losses"]):
        got = {int(k): v for k, v in losses.items()}
        assert sorted(got) == list(range(1, 7))
        for step, loss in one_losses.items():
            assert got[step] == pytest.approx(loss, rel=LOSS_RTOL), step
    a = torch.load(tmp_path / "one" / "last.ckpt", weights_only=True)
    b = torch.load(two / "last.ckpt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for k in a["model"]:
        x, y = a["model"][k].float(), b["model"][k].float()
        if k.endswith("in_proj_bias"):  # the key projection's bias gets an exactly-zero gradient (a softmax
            d = TINY["d_model"]          # does not see a shift), so Adam turns rounding noise into +-lr steps:
            x, y = torch.cat([x[:d], x[2 * d:]]), torch.cat([y[:d], y[2 * d:]])  # compare query and value
        assert torch.allclose(x, y, atol=WEIGHT_ATOL, rtol=0), (k, (x - y).abs().max())
    assert json.loads(a["history"])[-1]["dev"] == pytest.approx(json.loads(b["history"])[-1]["dev"], abs=1e-6)

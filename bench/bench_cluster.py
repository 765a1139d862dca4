"""What a cluster buys, measured on one machine: docs/cluster.md's figures.

    python bench/bench_cluster.py ray    [--n 24] [--batch-size 8] [--cpus 2]
    python bench/bench_cluster.py writer [--n 4000] [--batch-size 16]
    python bench/bench_cluster.py train  [--steps 12] [--batch-size 32]

``ray``: the same N camera-sized JPEGs (4000x3000) indexed by a local ``photocap index``
(index_folders with the bundled model) and by a local Ray cluster of ``--cpus`` CPUs (one caption
worker per CPU), each into a fresh index: the captions must be identical; prints both wall times,
the time to the first committed caption (model load, Ray start), and the steady rate after it.

``writer``: the single SQLite writer's ceiling, the one part of a Ray run that does not scale with
the cluster. (a) ``CaptionIndex.upsert_photos`` alone: rows a second committed in one transaction
per batch (caption, score, model, concepts), as the pipeline commits them; (b) the whole driver
path of ``index_folders`` (scan, probe with its content hash, decide, commit) with a remote
captioner that answers at once, on N small JPEGs: the photos a second one driver can take in.

``train``: ``torchrun --standalone --nproc-per-node P`` for P = 1 and 2 (gloo, CPU), the same
global batch, a recipe-sized transformer decoder on cached features: the loss of every step (the
curves must agree) and the median seconds a step.

CPU only; on a machine shared with other work, run under ``nice`` and state the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parent.parent


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


# --------------------------------------------------------------------------- ray


def tree_cpu() -> float:
    """CPU seconds (user + system) of this process and every live descendant (decode workers, Ray's
    daemons and caption workers), from /proc. Linux only."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    mine, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        mine.add(pid)
        todo.extend(p for p, pp in parent.items() if pp == pid and p not in mine)
    return sum(cpu.get(p, 0.0) for p in mine)


def bench_ray(n: int, batch_size: int, cpus: int) -> dict:
    from bench_index import BENCH_DIR, make_camera_jpegs

    from photocap.index.store import CaptionIndex
    from photocap.library.cluster import ClusterOptions, ray_captioning
    from photocap.library.captioning import default_captioner_factory
    from photocap.library.pipeline import IndexOptions, index_folders
    from photocap.library.workers import DecodePool
    from photocap.records import Outcome

    folder = BENCH_DIR / "cluster-photos"
    make_camera_jpegs(folder, n)
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    opts = IndexOptions(batch_size=batch_size)

    def run(name: str, factory, pool=None) -> tuple[dict, dict]:
        times: list[float] = []
        ready: list[float] = []
        cpu0 = tree_cpu()
        t0 = time.perf_counter()

        def on_progress(p) -> None:
            times.extend(time.perf_counter() - t0 for o in p.outcomes if o.outcome is Outcome.CAPTIONED)

        def timed():  # the model loaded (locally, or in every Ray worker)
            made = factory()
            ready.append(time.perf_counter() - t0)
            return made

        with CaptionIndex.open(work / f"{name}.db") as idx:
            summary = index_folders([folder], idx, timed, opts, on_progress=on_progress, embedder_factory=None,
                                    pool=pool)
            captions = {os.path.basename(r.path): r.caption for r in idx.iter_photos(folder)}
        wall = time.perf_counter() - t0
        cpu = tree_cpu() - cpu0  # before the workers go: their CPU time is still in /proc
        assert summary.captioned == n, summary
        # photos/s once the model is ready: decode + model + commit, without the model's load
        return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "model_ready_s": round(ready[0], 1),
                "first_caption_s": round(times[0], 1),
                "photos_per_s_after_model_ready": round(n / (times[-1] - ready[0]), 2)}, captions

    pool = DecodePool(None)  # the pipeline's default, kept alive until its CPU time is read
    local, a = run("local", default_captioner_factory(device="cpu"), pool)
    pool.shutdown(wait=True)
    t = time.perf_counter()
    with ray_captioning(ClusterOptions(num_cpus=cpus, device="cpu")) as factory:
        started = time.perf_counter() - t
        ray, b = run("ray", factory)
    ray["ray_init_s"] = round(started, 1)
    shutil.rmtree(work, ignore_errors=True)
    return {"photos": n, "size": "4000x3000 JPEG", "batch_size": batch_size, "ray_cpus": cpus,
            "same_captions": a == b, "local": local, "ray": ray, "load": load()}


# --------------------------------------------------------------------------- writer


class _InstantRemote:
    """A PathCaptioner that answers at once: the driver alone is timed."""

    model_id = "instant-v1"
    image_size = 224
    slots = 8

    def submit_paths(self, paths):
        from concurrent.futures import Future

        from photocap.records import Concept, Described

        f: Future = Future()
        f.set_result([Described(f"a photo number {i} of a dog on a beach", -0.7,
                                (Concept("dog", 0.9), Concept("beach", 0.6))) for i, _ in enumerate(paths)])
        return f


def bench_writer(n: int, batch_size: int) -> dict:
    from PIL import Image

    from photocap.index.store import CaptionIndex
    from photocap.records import PhotoUpdate
    from photocap.library.concepts import with_concepts
    from photocap.library.pipeline import IndexOptions, index_folders
    from photocap.records import CaptionSource, Concept

    work = Path(tempfile.mkdtemp(prefix="bench-writer-"))
    try:
        # (a) the upsert path alone
        concepts = (Concept("dog", 0.9), Concept("beach", 0.6))
        rows = [with_concepts(PhotoUpdate(f"/archive/{i // 1000:04d}/IMG_{i:06d}.jpg", 3_000_000 + i, i,
                                          content_hash=f"{i:040x}", width=4000, height=3000,
                                          caption=f"a photo number {i} of a dog on a beach", score=-0.7,
                                          model="instant-v1", source=CaptionSource.MODEL), concepts, "instant-v1")
                for i in range(n)]
        with CaptionIndex.open(work / "upsert.db") as idx:
            t = time.perf_counter()
            for start in range(0, n, batch_size):  # one transaction per batch, as the pipeline commits
                with idx.transaction():
                    idx.upsert_photos(rows[start : start + batch_size])
            upsert = n / (time.perf_counter() - t)
        # (b) the whole driver path, remote captioning instant
        folder = work / "photos"
        folder.mkdir()
        with Image.open(REPO / "examples" / "photos" / "chelsea.jpg") as src:
            base = src.convert("RGB").resize((320, 240))
        files = min(n, 2000)
        for i in range(files):
            base.putpixel((i % 320, i // 320 % 240), (i % 256, 0, 255))
            base.save(folder / f"p{i:05d}.jpg", quality=85)
        with CaptionIndex.open(work / "driver.db") as idx:
            t = time.perf_counter()
            summary = index_folders([folder], idx, _InstantRemote, IndexOptions(batch_size=batch_size),
                                    embedder_factory=None)
            driver = files / (time.perf_counter() - t)
        assert summary.captioned == files, summary
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"upsert_rows_per_s": round(upsert), "rows": n, "batch_size": batch_size,
            "driver_photos_per_s": round(driver), "driver_photos": files, "load": load()}


# --------------------------------------------------------------------------- train


def _rank(args: argparse.Namespace) -> None:
    """One torchrun rank: train, record each step's loss and time (rank 0 writes them)."""
    import torch

    from photocap.decoding.config import ModelConfig
    from photocap.training.datasets import load_dataset
    from photocap.training.config import TrainConfig
    from photocap.training.loop import train

    torch.set_num_threads(1)
    events: list[tuple[int, int, float, float]] = []

    def record(e) -> None:
        if e["phase"] == "train":
            events.append((e["epoch"], e["step"], e["loss"], time.perf_counter()))

    model = ModelConfig(encoder="efficientnet-lite0", arch="transformer", d_model=256, num_layers=3, num_heads=4,
                        ff_dim=1024, memory_layers=1, transformer_dropout=0.0, dropout=0.0, fine_tune_blocks=0)
    cfg = TrainConfig(epochs=1000, batch_size=args.batch_size, lr=5e-4, warmup_steps=5, min_freq=1, val_beam=1,
                      checkpoint_every=0, patience=1000, max_steps=args.steps, val_images=1)
    train(load_dataset("folder", Path(args.data), dev_fraction=0.1), model, cfg, Path(args.out),
          cache_root=Path(args.cache), on_progress=record)
    if int(os.environ.get("RANK", "0")) == 0:
        Path(args.out, "steps.json").write_text(json.dumps(events))


def _dataset(root: Path) -> Path:
    """The sample photos, mirrored and flipped (16 images), four captions each."""
    import csv

    from PIL import Image, ImageOps

    samples = {"astronaut.jpg": "a woman in a space suit smiling in front of a flag",
               "rocket.jpg": "a rocket standing on a launch pad under a blue sky",
               "chelsea.jpg": "a cat sitting on the floor looking to the side",
               "coffee.jpg": "a cup of coffee on a saucer on a table"}
    rows = []
    for name, caption in samples.items():
        with Image.open(REPO / "examples" / "photos" / name) as src:
            img = src.convert("RGB").resize((224, 224))
        for tag, im in (("", img), ("m-", ImageOps.mirror(img)), ("f-", ImageOps.flip(img)),
                        ("mf-", ImageOps.flip(ImageOps.mirror(img)))):
            im.save(root / f"{tag}{name}")
            for variant in (caption, caption.replace(" a ", " the ", 1), f"there is {caption}", f"{caption} here"):
                rows.append((f"{tag}{name}", variant))
    with open(root / "captions.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("image", "caption"), *rows])
    return root


def bench_train(steps: int, batch_size: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    data = work / "data"
    data.mkdir()
    _dataset(data)
    out: dict = {"steps": steps, "global_batch": batch_size, "load": load()}
    try:
        for procs in (1, 2):
            run = work / f"p{procs}"
            cmd = ["torchrun", "--standalone", f"--nproc-per-node={procs}", __file__, "_rank", "--data", str(data),
                   "--out", str(run), "--cache", str(work / "cache"), "--steps", str(steps),
                   "--batch-size", str(batch_size)]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True)
            wall = time.perf_counter() - t
            events = json.loads((run / "steps.json").read_text())
            # a step's time: between two reports inside an epoch (the dev score runs between epochs)
            gaps = [b[3] - a[3] for a, b in zip(events, events[1:]) if a[0] == b[0]]
            out[f"{procs}_process"] = {"losses": [e[2] for e in events], "wall_s": round(wall, 1),
                                       "median_step_s": round(statistics.median(gaps), 4), "steps_timed": len(gaps)}
        a, b = out["1_process"]["losses"], out["2_process"]["losses"]
        out["max_loss_rel_diff"] = max(abs(x - y) / abs(x) for x, y in zip(a, b))
        for key in ("1_process", "2_process"):
            out[key]["losses"] = [round(x, 5) for x in out[key]["losses"]]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["ray", "writer", "train", "_rank"])
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--data"), ap.add_argument("--out"), ap.add_argument("--cache")
    args = ap.parse_args()
    if args.what == "_rank":
        _rank(args)
        return
    if args.what == "ray":
        result = bench_ray(args.n or 24, args.batch_size or 8, args.cpus)
    elif args.what == "writer":
        result = bench_writer(args.n or 4000, args.batch_size or 16)
    else:
        result = bench_train(args.steps, args.batch_size or 32)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Index benchmarks: an unchanged re-index of many files, and captioning throughput.

    python bench/bench_index.py reindex [--n 100000]
        Re-index of an unchanged library of N tiny files (generated once under
        /tmp/photocap-bench). Target: under 10 s for 100,000 files.

    python bench/bench_index.py throughput [--n 32] [--model PATH] [--device auto] [--batch-size 16]
        End-to-end `index_folders` on N camera-sized (4000x3000) JPEGs versus
        the model alone on the same images already decoded. Target: the
        pipeline reaches at least 80% of the model-only rate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(os.environ.get("PHOTOCAP_BENCH_DIR", "/tmp/photocap-bench"))


def no_model():
    raise AssertionError("an unchanged re-index must not load the model")


def reindex(n: int) -> None:
    from photocap.index.store import CaptionIndex, PhotoUpdate
    from photocap.library.pipeline import IndexOptions, index_folders
    from photocap.library.scan import scan

    root = BENCH_DIR / f"reindex-{n}"
    db = BENCH_DIR / f"reindex-{n}.db"
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        for i in range(n):
            folder = root / f"{i // 500:04d}"
            if i % 500 == 0:
                folder.mkdir(parents=True)
            (folder / f"IMG_{i:07d}.jpg").write_bytes(b"\xff\xd8" + i.to_bytes(4, "little"))
        (root / ".complete").touch()
        print(f"generated {n:,} files in {time.perf_counter() - t:.1f} s")
        db.unlink(missing_ok=True)
    if not db.exists():
        with CaptionIndex.open(db) as idx:  # as a first index would leave it
            idx.upsert_photos(PhotoUpdate(e.path, e.size, e.mtime_ns, content_hash="x", caption="a photo",
                                          source="model", model="bench") for e in scan([root]))
    with CaptionIndex.open(db) as idx:
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            s = index_folders([root], idx, no_model, IndexOptions())
            runs.append(time.perf_counter() - t)
            assert s.unchanged == n and s.new == s.changed == s.missing == 0, s
    best = min(runs)
    print(f"re-index of {n:,} unchanged files: best {best:.2f} s, runs "
          + ", ".join(f"{r:.2f}" for r in runs) + f" ({n / best:,.0f} files/s; target < 10 s)")


def make_camera_jpegs(folder: Path, n: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    samples = sorted((Path(__file__).resolve().parent.parent / "examples" / "photos").glob("*.jpg"))
    paths = []
    rng = np.random.default_rng(0)
    for i in range(n):
        p = folder / f"DSC_{i:04d}.jpg"
        paths.append(p)
        if p.exists():
            continue
        with Image.open(samples[i % len(samples)]) as src:
            big = src.convert("RGB").resize((4000, 3000), Image.Resampling.BILINEAR)
        noise = rng.integers(-12, 12, size=(3000, 4000, 3), dtype=np.int16)  # sensor-like detail
        arr = np.clip(np.asarray(big, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(p, quality=92)
    return paths


def throughput(n: int, model: Path | None, device: str, batch_size: int, workers: int | None) -> None:
    from photocap.index.store import CaptionIndex
    from photocap.inference import Captioner
    from photocap.model.preprocess import open_image
    from photocap.library.workers import default_workers
    from photocap.library.pipeline import IndexOptions, index_folders

    folder = BENCH_DIR / "camera-4000x3000"
    t = time.perf_counter()
    paths = make_camera_jpegs(folder, n)
    mb = sum(p.stat().st_size for p in paths) / 1e6
    print(f"{n} JPEGs 4000x3000, {mb / n:.1f} MB each (ready in {time.perf_counter() - t:.1f} s)")
    captioner = Captioner(model, device=device)
    print(f"model {captioner.model_id} on {captioner.device}, input {captioner.image_size}px, "
          f"batch {batch_size}, decode workers {workers if workers is not None else default_workers()}, "
          f"CPUs {os.cpu_count()}")
    t = time.perf_counter()
    decoded = [open_image(p, captioner.image_size) for p in paths]
    decode_rate = n / (time.perf_counter() - t)
    captioner.caption_images(decoded[:batch_size])  # warm-up
    t = time.perf_counter()
    for i in range(0, n, batch_size):
        captioner.caption_images(decoded[i:i + batch_size])
    model_rate = n / (time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
        with CaptionIndex.open(Path(tmp) / "i.db") as idx:
            t = time.perf_counter()
            s = index_folders([folder], idx, lambda: captioner,
                              IndexOptions(batch_size=batch_size, workers=workers))
            pipe_rate = s.captioned / (time.perf_counter() - t)
    print(f"decode only (1 process):   {decode_rate:6.1f} images/s")
    print(f"model only (pre-decoded):  {model_rate:6.1f} images/s")
    print(f"pipeline end to end:       {pipe_rate:6.1f} images/s = {pipe_rate / model_rate:.0%} of model-only "
          f"(target >= 80%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("reindex")
    r.add_argument("--n", type=int, default=100_000)
    tp = sub.add_parser("throughput")
    tp.add_argument("--n", type=int, default=32)
    tp.add_argument("--model", type=Path, default=None)
    tp.add_argument("--device", default="auto")
    tp.add_argument("--batch-size", type=int, default=16)
    tp.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    if args.what == "reindex":
        reindex(args.n)
    else:
        throughput(args.n, args.model, args.device, args.batch_size, args.workers)


if __name__ == "__main__":
    main()

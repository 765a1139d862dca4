"""Index benchmarks: an unchanged re-index of many files, and captioning throughput.

    python bench/bench_index.py reindex [--n 100000]
        Re-index of an unchanged library of N tiny files (generated once under
        /tmp/photocap-bench). Target: under 10 s for 100,000 files.

    python bench/bench_index.py throughput [--n 32] [--model PATH] [--against PATH] [--device auto]
                                           [--batch-size 16] [--rounds 2]
        End-to-end `index_folders` on N camera-sized (4000x3000) JPEGs versus
        the model alone on the same images already decoded. Target: the
        pipeline reaches at least 80% of the model-only rate. With --against,
        a second model takes turns with the first in the same run, and the
        ratios of their rates are printed (e.g. a new model against the old).
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
    from photocap.index.store import CaptionIndex
    from photocap.records import PhotoUpdate
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
    for i in range(n):
        p = folder / f"DSC_{i:04d}.jpg"
        paths.append(p)
        if p.exists():
            continue
        with Image.open(samples[i % len(samples)]) as src:
            big = src.convert("RGB").resize((4000, 3000), Image.Resampling.BILINEAR)
        # sensor-like detail, its own for each photo (so none is a copy of another, however the
        # folder was grown)
        noise = np.random.default_rng(i).integers(-12, 12, size=(3000, 4000, 3), dtype=np.int16)
        arr = np.clip(np.asarray(big, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(p, quality=92)
    return paths


def model_only(captioner, decoded: list, batch_size: int) -> float:
    """Images/s of the model alone on photos already decoded (after one warm-up batch)."""
    captioner.describe_images(decoded[:batch_size])
    t = time.perf_counter()
    for i in range(0, len(decoded), batch_size):
        captioner.describe_images(decoded[i:i + batch_size])
    return len(decoded) / (time.perf_counter() - t)


def _rates(captioner, folder: Path, decoded: list, batch_size: int, workers: int | None) -> tuple[float, float]:
    """(model-only images/s on pre-decoded photos, end-to-end `index_folders` photos/s)."""
    from photocap.index.store import CaptionIndex
    from photocap.library.pipeline import IndexOptions, index_folders

    model_rate = model_only(captioner, decoded, batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        with CaptionIndex.open(Path(tmp) / "i.db") as idx:
            t = time.perf_counter()
            s = index_folders([folder], idx, lambda: captioner, IndexOptions(batch_size=batch_size, workers=workers))
            pipe_rate = s.captioned / (time.perf_counter() - t)
    return model_rate, pipe_rate


def throughput(n: int, model: Path | None, device: str, batch_size: int, workers: int | None,
               against: Path | None, rounds: int) -> None:
    from photocap.captioner import Captioner
    from photocap.library.workers import default_workers
    from photocap.imaging.preprocess import open_image

    folder = BENCH_DIR / "camera-4000x3000"
    t = time.perf_counter()
    paths = make_camera_jpegs(folder, n)
    mb = sum(p.stat().st_size for p in paths) / 1e6
    print(f"{n} JPEGs 4000x3000, {mb / n:.1f} MB each (ready in {time.perf_counter() - t:.1f} s)")
    captioners = [Captioner(model, device=device)] + ([Captioner(against, device=device)] if against else [])
    size = captioners[0].image_size
    print(f"batch {batch_size}, decode workers {workers if workers is not None else default_workers()}, "
          f"CPUs {os.cpu_count()}, {rounds} round(s), models taking turns")
    t = time.perf_counter()
    decoded = [open_image(p, size) for p in paths]
    print(f"decode only (1 process):   {n / (time.perf_counter() - t):6.1f} images/s")
    best: dict[int, tuple[float, float]] = {}
    for _ in range(rounds):  # taking turns, so a busy spell of the machine hits both
        for i, captioner in enumerate(captioners):
            m, p = _rates(captioner, folder, decoded, batch_size, workers)
            best[i] = (max(m, best.get(i, (0, 0))[0]), max(p, best.get(i, (0, 0))[1]))
    for i, captioner in enumerate(captioners):
        m, p = best[i]
        concepts = "with concepts" if captioner.has_concepts else "no concepts"
        print(f"{captioner.model_id} ({concepts}, {captioner.device}): model only {m:6.1f} images/s, "
              f"end to end {p:6.1f} photos/s = {p / m:.0%} of model-only")
    if against:
        (m0, p0), (m1, p1) = best[0], best[1]
        print(f"{captioners[0].model_id} against {captioners[1].model_id}: model only {m0 / m1:.2f}x, "
              f"end to end {p0 / p1:.2f}x")


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
    tp.add_argument("--against", type=Path, default=None, help="a second model file, measured in the same run")
    tp.add_argument("--rounds", type=int, default=2, help="turns each model takes (the best of them is kept)")
    args = ap.parse_args()
    if args.what == "reindex":
        reindex(args.n)
    else:
        throughput(args.n, args.model, args.device, args.batch_size, args.workers, args.against, args.rounds)


if __name__ == "__main__":
    main()

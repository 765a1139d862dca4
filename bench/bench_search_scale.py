"""Search at scale: the whole hybrid search (query embedding, words, meaning, fusion, the page's
records and the total) on synthetic photocap indexes of 100,000 and 1,000,000 photos, warm (the
embedder and the vector scan loaded, as the desktop app keeps them) and cold (`photocap search` in a
new process).

The indexes are built in /tmp (deleted afterwards): each photo's text vector is a mixture of the
all-MiniLM-L6-v2 embeddings of two Flickr8k captions plus a little noise (so neighbourhoods look like
real captions'), its caption the main component's caption; ``--image`` adds an image vector per photo
(another mixture), as a library captioned by a model with an image embedding has. Queries are real:
other Flickr8k captions and short queries. How the vectors are stored and scanned, and the methods
compared when that was chosen: docs/decisions/vector-storage.md.

    python bench/bench_search_scale.py                    # 100k and 1M (1M: about 10 min on 2 cores)
    python bench/bench_search_scale.py --sizes 100000 --image
"""

from __future__ import annotations

import argparse
import csv
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from photocap.index.store import CaptionIndex  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
CAPTIONS = DATASETS / "flickr8k" / "captions.txt"
DIM = 384
CHUNK = 50_000
SHORT_QUERIES = ["puppy", "kitten", "seaside", "kid on a bike", "dog on the beach", "snow", "a red car",
                 "people dancing at a party", "mountain lake", "surfing", "old man with a hat", "food"]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def read_captions() -> list[tuple[str, str]]:
    with open(CAPTIONS, newline="", encoding="utf-8") as f:
        return [(r["image"], r["caption"].strip()) for r in csv.DictReader(f)]


def base_and_queries(n_base: int, n_queries: int) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Embeddings of ``n_base`` captions (one per image) and of ``n_queries`` other captions (cached)."""
    cache = Path(tempfile.gettempdir()) / f"bench_search_scale_{n_base}_{n_queries}.npz"
    rows = read_captions()
    firsts: dict[str, str] = {}
    seconds: dict[str, str] = {}
    for image, cap in rows:
        if image not in firsts:
            firsts[image] = cap
        elif image not in seconds:
            seconds[image] = cap
    images = list(firsts)
    base_text = [firsts[i] for i in images[:n_base]]
    query_text = [seconds[i] for i in images[-n_queries:] if i in seconds][: n_queries - len(SHORT_QUERIES)]
    query_text += SHORT_QUERIES
    if cache.exists():
        z = np.load(cache)
        return base_text, z["base"], query_text, z["queries"]
    from photocap.meaning.text import TextEmbedder

    e = TextEmbedder()
    t0 = time.perf_counter()
    base = e.embed(base_text)
    queries = e.embed(query_text)
    print(f"embedded {len(base_text) + len(query_text)} captions in {time.perf_counter() - t0:.1f} s")
    np.savez(cache, base=base, queries=queries)
    return base_text, base, query_text, queries


def synth_chunks(n: int, base: np.ndarray, seed: int = 0):
    """(main component index, vectors) chunks of mixtures of two real embeddings plus noise."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        a = rng.integers(0, len(base), m)
        b = rng.integers(0, len(base), m)
        beta = rng.uniform(0.0, 0.6, (m, 1)).astype(np.float32)
        v = base[a] + beta * base[b] + rng.normal(0, 0.25 / np.sqrt(DIM), (m, DIM)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        yield a, v.astype(np.float32)


def build_index(db: Path, n: int, base_text: list[str], base: np.ndarray, image: bool = False) -> np.ndarray:
    """A photocap index of n captioned photos with text vectors (and, with ``image``, image vectors
    too, as a library captioned by a model with an image embedding has); returns the text vectors' matrix."""
    from photocap.meaning.text import MODEL_ID

    CaptionIndex.open(db).close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    matrix = np.empty((n, DIM), dtype=np.float32)
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    pid = 0
    for a, v in synth_chunks(n, base):
        m = len(a)
        matrix[pid:pid + m] = v
        bits = np.packbits(v > 0, axis=1)  # = photocap.index.vectors.sign_bits for 384 dimensions
        conn.executemany(
            "INSERT INTO photos (id, path, size, mtime_ns, caption, score, model, captioned_at, source, indexed_at) "
            "VALUES (?, ?, 1, 1, ?, -1.0, 'bench', '2024-01-01', 'model', '2024-01-01')",
            ((pid + i + 1, f"/photos/{(pid + i) // 1000:04d}/IMG_{pid + i:07d}.jpg", base_text[a[i]])
             for i in range(m)))
        conn.executemany(
            "INSERT INTO photo_vectors (photo_id, kind, model, vector, bits) VALUES (?, 'text', ?, ?, ?)",
            ((pid + i + 1, MODEL_ID, v[i].tobytes(), bits[i].tobytes()) for i in range(m)))
        if image:  # image vectors near the caption's meaning, not equal to it (another mixture)
            _, pv = next(synth_chunks(m, base, seed=pid + 1))
            pbits = np.packbits(pv > 0, axis=1)
            conn.executemany(
                "INSERT INTO photo_vectors (photo_id, kind, model, vector, bits) VALUES (?, 'pixels', ?, ?, ?)",  # the stored kind keeps its old name
                ((pid + i + 1, "bench-image-head", pv[i].tobytes(), pbits[i].tobytes()) for i in range(m)))
        pid += m
    conn.execute("COMMIT")
    conn.close()
    print(f"  built {n:,} photos in {time.perf_counter() - t0:.0f} s ({db.stat().st_size / 2**20:,.0f} MiB)")
    return matrix


def time_calls(fn, queries, repeat: int = 1) -> list[float]:
    out = []
    for _ in range(repeat):
        for q in queries:
            t0 = time.perf_counter()
            fn(q)
            out.append((time.perf_counter() - t0) * 1000)
    return out


def cold(code: str, *args: str) -> float:
    """Wall seconds of a new Python process running ``code`` (median of 3)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, *args], check=True, env=env, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def whole_search(idx: CaptionIndex, db: Path, query_text: list[str]) -> list[dict]:
    """The whole hybrid search (query embedding, words, meaning, fusion, the page's records and the
    total), warm (a loaded embedder and scan), and `photocap search` cold in a new process."""
    from photocap.library.search import SearchMode, query_embedder, search_page

    embed = query_embedder()
    texts = SHORT_QUERIES + query_text[:48]
    search_page(idx, texts[0], mode=SearchMode.HYBRID, embed=embed)
    emb = time_calls(embed, texts)
    words = time_calls(lambda t: search_page(idx, t, mode=SearchMode.WORDS, limit=20), texts)
    page = time_calls(lambda t: search_page(idx, t, mode=SearchMode.HYBRID, limit=20, embed=embed, count=False),
                      texts)
    lat = time_calls(lambda t: search_page(idx, t, mode=SearchMode.HYBRID, limit=20, embed=embed), texts)
    code = "import sys; from photocap.cli import cli; sys.argv[0] = 'photocap'; cli()"
    cold_s = cold(code, "search", "puppy on the beach", "--db", str(db), "--limit", "20")
    return [{"method": "query embedding alone", "p50": statistics.median(emb), "p95": pct(emb, 0.95)},
            {"method": "words search alone (+ total)", "p50": statistics.median(words), "p95": pct(words, 0.95)},
            {"method": "whole hybrid search, a page of 20", "p50": statistics.median(page), "p95": pct(page, 0.95)},
            {"method": "whole hybrid search (+ total); cold: `photocap search`", "p50": statistics.median(lat),
             "p95": pct(lat, 0.95), "cold_s": cold_s}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--image", action="store_true", help="every photo has an image vector too")
    args = ap.parse_args()
    base_text, base, query_text, _ = base_and_queries(6000, 200)
    print("| photos | what | warm p50 ms | warm p95 ms | cold s |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "index.db"
            build_index(db, n, base_text, base, image=args.image)
            with CaptionIndex.open(db) as idx:
                for r in whole_search(idx, db, query_text):
                    cold_s = f"{r['cold_s']:.2f}" if r.get("cold_s") is not None else ""
                    print(f"| {n:,} | {r['method']} | {r['p50']:.1f} | {r['p95']:.1f} | {cold_s} |", flush=True)


if __name__ == "__main__":
    main()

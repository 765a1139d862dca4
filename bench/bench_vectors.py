"""How to store and scan photo vectors for search by meaning: measured at 100k and 1M photos.

Builds synthetic photocap indexes in /tmp (deleted afterwards) whose vectors have the structure of
real ones: each is a mixture of the all-MiniLM-L6-v2 embeddings of two Flickr8k captions plus a
little noise (so neighbourhoods look like real captions', unlike random unit vectors); the photo's
caption is the main component's caption. Queries are real: other Flickr8k captions and short
queries, embedded by the same model. Methods:

  numpy-f32     float32 BLOBs loaded into one matrix, exact cosine (matrix @ query)
  sqlite-vec    vec0 virtual table (float[384], exact KNN); and bit[384] (Hamming KNN, 400 candidates)
  bits+rerank   photocap's: sign bits in memory (column-major uint64, XOR + np.bitwise_count),
                the nearest RERANK by Hamming re-ranked by exact cosine of float32 read from SQLite
                (CaptionIndex.nearest)

For each: warm query latency p50/p95 (the structure in memory, as the GUI keeps it), cold (a new
process opens the index, loads what it needs and runs one query), memory held, recall@10 against
exact cosine. Then the whole search: hybrid photocap.library.search.search (query embedding, words,
meaning, fusion, records) warm at each size, and a cold `photocap search` in a new process.

    python bench/bench_vectors.py                   # 100k and 1M (about 15 min on 2 cores)
    python bench/bench_vectors.py --sizes 100000
    python bench/bench_vectors.py --threshold       # the meaning threshold on Flickr8k dev captions

sqlite-vec needs `pip install sqlite-vec apsw` (Python's own sqlite3 here cannot load extensions).
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import resource
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
from photocap.records import VectorKind  # noqa: E402

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
    cache = Path(tempfile.gettempdir()) / f"bench_vectors_{n_base}_{n_queries}.npz"
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


def build_index(db: Path, n: int, base_text: list[str], base: np.ndarray, pixels: bool = False) -> np.ndarray:
    """A photocap index of n captioned photos with text vectors (and, with ``pixels``, image vectors
    too, as a library captioned by a model with a pixel head has); returns the text vectors' matrix."""
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
        if pixels:  # image vectors near the caption's meaning, not equal to it (another mixture)
            _, pv = next(synth_chunks(m, base, seed=pid + 1))
            pbits = np.packbits(pv > 0, axis=1)
            conn.executemany(
                "INSERT INTO photo_vectors (photo_id, kind, model, vector, bits) VALUES (?, 'pixels', ?, ?, ?)",
                ((pid + i + 1, "bench-pixel-head", pv[i].tobytes(), pbits[i].tobytes()) for i in range(m)))
        pid += m
    conn.execute("COMMIT")
    conn.close()
    print(f"  built {n:,} photos in {time.perf_counter() - t0:.0f} s ({db.stat().st_size / 2**20:,.0f} MiB)")
    return matrix


def exact_top(matrix: np.ndarray, q: np.ndarray, k: int = 10) -> np.ndarray:
    s = matrix @ q
    top = np.argpartition(-s, k)[:k]
    return top[np.argsort(-s[top])] + 1  # photo ids are row + 1


def recall(found: list[int], truth: np.ndarray) -> float:
    return len(set(found[:10]) & set(truth.tolist())) / 10


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


COLD_NUMPY = """
import sqlite3, sys, numpy as np
conn = sqlite3.connect(sys.argv[1])
rows = conn.execute("SELECT photo_id, vector FROM photo_vectors WHERE kind = 'text'").fetchall()
ids = np.array([r[0] for r in rows]); m = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
q = m[0]; s = m @ q; top = ids[np.argpartition(-s, 10)[:10]]
"""
COLD_BITS = """
import sys, numpy as np
from photocap.index.store import CaptionIndex
from photocap.meaning.text import MODEL_ID
with CaptionIndex.open(sys.argv[1], create=False) as idx:
    q = np.frombuffer(idx.connection.execute("SELECT vector FROM photo_vectors LIMIT 1").fetchone()[0], dtype="<f4")
    idx.nearest("text", MODEL_ID, q, 10)
"""
COLD_VEC = """
import sys, apsw, sqlite_vec
c = apsw.Connection(sys.argv[1]); c.enable_load_extension(True); c.load_extension(sqlite_vec.loadable_path())
q = list(c.execute("SELECT embedding FROM v WHERE rowid = 1"))[0][0]
list(c.execute("SELECT rowid, distance FROM v WHERE embedding MATCH ? AND k = 10", (q,)))
"""


def bench_sqlite_vec(path: Path, matrix: np.ndarray, queries: np.ndarray, truth: list[np.ndarray]) -> list[dict]:
    try:
        import apsw
        import sqlite_vec
    except ImportError:
        print("  sqlite-vec: skipped (pip install sqlite-vec apsw)")
        return []
    out = []
    n = len(matrix)
    for kind in ("float", "bit"):
        db = path.with_name(path.stem + f"-vec-{kind}.db")
        c = apsw.Connection(str(db))
        c.enable_load_extension(True)
        c.load_extension(sqlite_vec.loadable_path())
        t0 = time.perf_counter()
        c.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding {kind}[{DIM}])")
        c.execute("BEGIN")
        for start in range(0, n, CHUNK):
            block = matrix[start:start + CHUNK]
            if kind == "float":
                rows = ((start + i + 1, block[i].tobytes()) for i in range(len(block)))
                c.executemany("INSERT INTO v (rowid, embedding) VALUES (?, ?)", rows)
            else:
                bits = np.packbits(block > 0, axis=1)
                rows = ((start + i + 1, bits[i].tobytes()) for i in range(len(block)))
                c.executemany("INSERT INTO v (rowid, embedding) VALUES (?, vec_bit(?))", rows)
        c.execute("COMMIT")
        build_s = time.perf_counter() - t0
        k = 10 if kind == "float" else 400

        def query(q, c=c, kind=kind, k=k):
            arg = q.tobytes() if kind == "float" else np.packbits(q > 0).tobytes()
            sql = ("SELECT rowid FROM v WHERE embedding MATCH ? AND k = ?" if kind == "float" else
                   "SELECT rowid FROM v WHERE embedding MATCH vec_bit(?) AND k = ?")
            ids = [r[0] for r in c.execute(sql, (arg, k))]
            if kind == "bit":  # exact rerank of the candidates (from the matrix: the cheapest possible)
                rows = np.array(ids) - 1
                s = matrix[rows] @ q
                ids = (rows[np.argsort(-s)[:10]] + 1).tolist()
            return ids

        reps = queries[: 20 if n > 200_000 else 60]
        query(reps[0])
        lat = time_calls(query, reps)
        rec = statistics.mean(recall(query(q), t) for q, t in zip(queries[:50], truth[:50]))
        cold_s = cold(COLD_VEC, str(db)) if kind == "float" else None
        c.close()
        size = db.stat().st_size
        db.unlink()
        out.append({"method": f"sqlite-vec {kind}" + (" + rerank 400" if kind == "bit" else ""),
                    "p50": statistics.median(lat), "p95": pct(lat, 0.95), "cold_s": cold_s,
                    "memory_mb": None, "disk_mb": size / 2**20, "recall10": rec, "build_s": build_s})
    return out


def run_size(n: int, base_text, base, queries, query_text, tmp: Path,
             methods: tuple[str, ...] = ("numpy", "bits", "sqlite-vec", "search"), pixels: bool = False) -> list[dict]:
    from photocap.index import vectors
    from photocap.meaning.text import MODEL_ID

    print(f"\n== {n:,} photos")
    db = tmp / f"bench-{n}.db"
    matrix = build_index(db, n, base_text, base, pixels)
    truth = [exact_top(matrix, q) for q in queries]
    rows: list[dict] = []

    if "numpy" in methods:
        lat = time_calls(lambda q: exact_top(matrix, q), queries[:60])
        rows.append({"method": "numpy-f32 exact", "p50": statistics.median(lat), "p95": pct(lat, 0.95),
                     "cold_s": cold(COLD_NUMPY, str(db)), "memory_mb": matrix.nbytes / 2**20, "recall10": 1.0})

    with CaptionIndex.open(db) as idx:
        conn = idx.connection
        for rerank in (200, 400, 1000) if "bits" in methods else ():
            scan = vectors.VectorScan(VectorKind.TEXT, MODEL_ID)
            t0 = time.perf_counter()
            scan.refresh(conn)
            load_s = time.perf_counter() - t0

            def nearest(q, scan=scan, rerank=rerank):
                return [i for i, _ in vectors.nearest(conn, scan, q, 10, rerank=rerank)]

            nearest(queries[0])
            lat = time_calls(nearest, queries, repeat=1)
            rec = statistics.mean(recall(nearest(q), t) for q, t in zip(queries, truth))
            rows.append({"method": f"bits+rerank {rerank}", "p50": statistics.median(lat), "p95": pct(lat, 0.95),
                         "cold_s": cold(COLD_BITS, str(db)) if rerank == vectors.RERANK else None,
                         "memory_mb": scan.nbytes / 2**20, "recall10": rec, "load_s": load_s})
        if "sqlite-vec" in methods:
            rows += bench_sqlite_vec(db, matrix, queries, truth)
        del matrix
        gc.collect()
        if "search" in methods:
            rows += whole_search(idx, db, query_text)
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return rows


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


def print_table(results: dict[int, list[dict]]) -> None:
    print("\n| photos | method | warm p50 ms | warm p95 ms | cold s | memory MiB | recall@10 |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for n, rows in results.items():
        for r in rows:
            cold_s = f"{r['cold_s']:.2f}" if r.get("cold_s") is not None else ""
            mem = f"{r['memory_mb']:.0f}" if r.get("memory_mb") is not None else (
                f"(disk {r['disk_mb']:.0f})" if r.get("disk_mb") else "")
            rec = f"{r['recall10']:.3f}" if r.get("recall10") is not None else ""
            print(f"| {n:,} | {r['method']} | {r['p50']:.1f} | {r['p95']:.1f} | {cold_s} | {mem} | {rec} |")


def threshold() -> None:
    """Cosines of real queries to their photo, and of nonsense queries to the best photo, on
    Flickr8k dev (the photo text: its first caption; Flickr8k has no concepts)."""
    from photocap.meaning.text import TextEmbedder

    dev = set((DATASETS / "flickr8k" / "Flickr_8k.devImages.txt").read_text().split())
    caps: dict[str, list[str]] = {}
    for image, cap in read_captions():
        if image in dev:
            caps.setdefault(image, []).append(cap)
    images = sorted(caps)
    e = TextEmbedder()
    photos = e.embed([caps[i][0] for i in images])
    own = e.embed([caps[i][1] for i in images])
    own_cos = np.sum(photos * own, axis=1)
    nonsense = NONSENSE
    synonyms = ["puppy", "kitten", "seaside", "kid", "bike", "automobile", "youngster on a bicycle", "pooch",
                "ocean waves", "infant", "lady", "hound", "ball game", "winter", "mountaineer", "canine",
                "bathing suit", "bicycle race", "toddler", "pup"]
    ns = e.embed(nonsense) @ photos.T
    sy = e.embed(synonyms) @ photos.T
    print("sentence queries (another caption of the same photo), cosine to their photo:")
    for q in (0.05, 0.1, 0.25, 0.5):
        print(f"  {q:.0%} quantile {np.quantile(own_cos, q):.3f}")
    print("nonsense queries: best cosine in the library, and photos at >= t")
    for t in (0.25, 0.3, 0.35, 0.4):
        print(f"  t={t}: nonsense with any match {np.mean(ns.max(axis=1) >= t):.0%}, mean photos matched "
              f"{np.mean((ns >= t).sum(axis=1)):.1f}; synonyms with a match {np.mean(sy.max(axis=1) >= t):.0%}, "
              f"their mean photos {np.mean((sy >= t).sum(axis=1)):.1f}; sentence queries finding their photo "
              f"{np.mean(own_cos >= t):.0%}")
    print("gate g (the best match must reach it) and floor f (then every match above it counts)")
    for g, f in ((0.3, 0.2), (0.3, 0.25), (0.35, 0.25), (0.3, 0.3), (0.35, 0.3)):
        n_hits = np.where(ns.max(axis=1) >= g, (ns >= f).sum(axis=1), 0)
        s_hits = np.where(sy.max(axis=1) >= g, (sy >= f).sum(axis=1), 0)
        print(f"  g={g} f={f}: nonsense with any match {np.mean(n_hits > 0):.0%} (mean photos {n_hits.mean():.1f}), "
              f"synonyms with a match {np.mean(s_hits > 0):.0%} (mean photos {s_hits.mean():.1f})")
    for q, row in zip(nonsense, ns):
        print(f"  nonsense {q!r}: best {row.max():.3f} ({caps[images[int(row.argmax())]][0][:50]})")
    for q, row in zip(synonyms, sy):
        print(f"  synonym {q!r}: best {row.max():.3f} ({caps[images[int(row.argmax())]][0][:50]})")


NONSENSE = ["quarterly tax report", "asdf qwerty", "python exception traceback", "mortgage interest rate",
            "the history of the roman empire", "how to reset my password", "xkcd", "lorem ipsum dolor",
            "invoice number 4711", "quantum chromodynamics", "spreadsheet formula", "wifi password",
            "zzz", "pdf", "meeting notes tuesday", "cholesterol levels", "stock market crash", "recipe",
            "jazz", "philosophy", "error 404", "hello world", "tuesday", "insurance claim form"]
COCO_SYNONYMS = ["puppy", "kitten", "seaside", "kid", "bike", "automobile", "pooch", "infant", "lady", "hound",
                 "canine", "toddler", "pup", "feline", "vehicle", "meal", "aircraft", "kitchen appliance",
                 "motorbike", "ocean"]


def variants() -> None:
    """The text variants on COCO dev: photo = its first caption + its largest object as the concept;
    sentence queries = its second caption; short queries = the object names."""
    from photocap.library.meaning import TextVariant, embed_photos, photo_texts
    from photocap.library.search import MEANING_GATE
    from photocap.meaning.text import TextEmbedder
    from photocap.records import Concept

    folder = DATASETS / "coco-dev"
    caps: dict[str, list[str]] = {}
    with open(folder / "captions.txt", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            caps.setdefault(r["image"], []).append(r["caption"].strip())
    objects = json.loads((folder / "objects.json").read_text())
    images = sorted(caps)
    top = [objects[i][0][0] for i in images]
    e = TextEmbedder()
    sentences = e.embed([caps[i][1] for i in images])
    cats = sorted(set(top))
    short = e.embed(cats)
    nonsense, synonyms = e.embed(NONSENSE), e.embed(COCO_SYNONYMS)
    print(f"COCO dev, {len(images)} photos; gate {MEANING_GATE}")
    for variant in TextVariant:
        m = embed_photos(e, [photo_texts(caps[i][0], (Concept(t, 1.0),), variant=variant)
                             for i, t in zip(images, top)])
        sims = sentences @ m.T
        r1 = np.mean(np.argmax(sims, axis=1) == np.arange(len(images)))
        r10 = np.mean([j in np.argsort(-sims[j])[:10] for j in range(len(images))])
        cs = short @ m.T
        rc = np.mean([len(set(np.argsort(-cs[c])[:10]) & {j for j, t in enumerate(top) if t == cat})
                      / sum(t == cat for t in top) for c, cat in enumerate(cats)])
        ns, sy = (nonsense @ m.T).max(axis=1), (synonyms @ m.T).max(axis=1)
        print(f"  {variant:8} sentence R@1 {r1:.2f} R@10 {r10:.2f}; short-query R@10 {rc:.2f}; "
              f"nonsense past the gate {np.sum(ns >= MEANING_GATE)}/{len(NONSENSE)}; "
              f"synonyms past it {np.sum(sy >= MEANING_GATE)}/{len(COCO_SYNONYMS)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--base", type=int, default=6000, help="real captions the synthetic vectors mix")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threshold", action="store_true", help="only measure the meaning threshold")
    ap.add_argument("--methods", nargs="+", default=["numpy", "bits", "sqlite-vec", "search"],
                    choices=["numpy", "bits", "sqlite-vec", "search"])
    ap.add_argument("--variants", action="store_true", help="only compare the photo text variants (COCO dev)")
    ap.add_argument("--pixels", action="store_true",
                    help="every photo has an image vector too (a model with a pixel head): hybrid scans both")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.threshold or args.variants:
        if args.threshold:
            threshold()
        if args.variants:
            variants()
        return
    base_text, base, query_text, queries = base_and_queries(args.base, args.queries)
    results: dict[int, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-vectors-") as tmp:
        for n in args.sizes:
            results[n] = run_size(n, base_text, base, queries, query_text, Path(tmp), tuple(args.methods),
                                  args.pixels)
            print_table({n: results[n]})
    print_table(results)
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()

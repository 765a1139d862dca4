"""Search latency at a million captions (photocap search / CaptionIndex.search).

Builds (once, cached) an index of N synthetic captions drawn from a Flickr-like
grammar, then times CaptionIndex.search(query, limit=20) and count_matches for a
mix of queries: common and rare words, two and three words, phrases, prefixes.
Prints p50/p95/max in milliseconds. Target: p95 under 20 ms at 1,000,000.

    python bench/bench_search.py                 # 1,000,000 captions
    python bench/bench_search.py --n 100000 --db /tmp/s.db
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

SUBJECTS = ["man", "woman", "dog", "cat", "child", "girl", "boy", "group of people", "bird", "horse",
            "black dog", "brown dog", "white dog", "young boy", "little girl", "couple", "baby", "cyclist",
            "surfer", "skier", "football player", "crowd", "rocket", "car", "red car", "bus", "train", "boat"]
VERBS = ["running", "sitting", "standing", "playing", "riding a bike", "jumping", "walking", "swimming",
         "climbing a rock", "sleeping", "eating", "looking at the camera", "smiling", "throwing a ball",
         "catching a frisbee", "holding an umbrella", "wearing a hat", "parked", "waiting"]
PLACES = ["on the beach", "in a park", "on a street", "in the snow", "near a lake", "in the water",
          "on the grass", "in front of a building", "on a mountain", "in a field", "at night", "on a bench",
          "under a tree", "in a kitchen", "on a sofa", "by the sea", "in the city", "on a bridge",
          "at a birthday party", "in a forest"]
RARE = ["zeppelin", "kayak", "accordion", "lighthouse", "flamingo", "origami", "tractor", "cathedral",
        "waterfall", "saxophone", "pagoda", "iguana", "volcano", "carousel", "telescope"]

QUERIES = ["dog", "dogs running", "beach", "a dog on the beach", "man riding", "snow", "girl", "park",
           "red car", '"in the snow"', "cat sofa", "birth", "kayak", "lighthouse at night", "flamingo",
           "running", "people", "bike", "water", "mountain", "sleep", "smiling woman", "frisbee", "tree",
           "brown dog grass", "surf", "umbrella", "train bridge", "zeppelin", "volcano", "-dog cat",
           "dog OR cat", "boy jumping water", "hat", "kitchen", "bench", "forest", "a", "the"]


def caption(rng: random.Random) -> str:
    words = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(PLACES)]
    if rng.random() < 0.01:
        words.append("with a " + rng.choice(RARE))
    return ("a " if rng.random() < 0.85 else "the ") + " ".join(words)


def build(db: Path, n: int) -> None:
    import sqlite_utils

    from photocap.index.store import CaptionIndex

    CaptionIndex.open(db).close()  # schema + triggers
    rng = random.Random(0)
    t0 = time.perf_counter()
    database = sqlite_utils.Database(db)
    database.execute("PRAGMA synchronous = OFF")
    database["photos"].insert_all(
        ({"path": f"/photos/{i // 1000:04d}/IMG_{i:07d}.jpg", "size": 1000 + i, "mtime_ns": i,
          "caption": caption(rng), "score": -1.0, "model": "bench", "source": "model",
          "captioned_at": "2024-01-01T00:00:00+00:00", "indexed_at": "2024-01-01T00:00:00+00:00",
          "missing": 0} for i in range(n)),
        batch_size=5000,
    )
    database.execute("INSERT INTO captions_fts(captions_fts) VALUES ('optimize')")
    database.conn.commit()
    database.close()
    print(f"built {n:,} captions in {time.perf_counter() - t0:.1f} s")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    db = args.db or Path("/tmp/photocap-bench") / f"search-{args.n}.db"
    from photocap.index.store import CaptionIndex

    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        build(db, args.n)
    with CaptionIndex.open(db) as idx:
        n = idx.count()
        for q in QUERIES:  # warm the page cache
            idx.search(q, limit=20)
        search_ms: list[float] = []
        count_ms: list[float] = []
        per_query: dict[str, float] = {}
        for _ in range(args.rounds):
            for q in QUERIES:
                t = time.perf_counter()
                idx.search(q, limit=20)
                dt = (time.perf_counter() - t) * 1000
                search_ms.append(dt)
                per_query[q] = max(per_query.get(q, 0.0), dt)
                t = time.perf_counter()
                idx.count_matches(q)
                count_ms.append((time.perf_counter() - t) * 1000)
        matches = {q: idx.count_matches(q) for q in QUERIES}
    print(f"captions: {n:,}; {len(QUERIES)} queries x {args.rounds} rounds")
    print(f"search(limit=20): p50 {statistics.median(search_ms):.1f} ms, p95 {pct(search_ms, 0.95):.1f} ms, "
          f"max {max(search_ms):.1f} ms")
    print(f"count_matches:    p50 {statistics.median(count_ms):.1f} ms, p95 {pct(count_ms, 0.95):.1f} ms, "
          f"max {max(count_ms):.1f} ms")
    print("slowest queries (worst of rounds, matches):")
    for q, ms in sorted(per_query.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  {ms:7.1f} ms  {matches[q]:>8,}  {q!r}")


if __name__ == "__main__":
    main()

"""Hostile search text: a word repeated thousands of times, long phrases, many ORs.

FTS5's cost grows with every term of a query, and repeating a word used to make it
quadratic (1,000 repeats of "dog": 2.2 s, 4,000: 12 s on the 2-core development
machine; 20,000 over a minute). The query parser now merges repeated words and
refuses a query of more than MAX_QUERY_CHARS characters or MAX_QUERY_TERMS words
with a clear message. Prints the time of each query (ms) and what happened.

    python bench/bench_query.py                # 2,000 captions
    python bench/bench_query.py --n 100000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def queries() -> list[tuple[str, str]]:
    return [
        ("dog x 1,000", " ".join(["dog"] * 1000)),
        ("dog x 2,400", " ".join(["dog"] * 2400)),
        ("dog x 4,000", " ".join(["dog"] * 4000)),
        ("dog x 20,000", " ".join(["dog"] * 20000)),
        ("'dog OR cat' x 900", " ".join(["dog OR cat"] * 900)),
        ("-dog x 1,500", "cat " + " ".join(["-dog"] * 1500)),
        ("phrase of 2,000 words", '"' + " ".join(["dog"] * 2000) + '"'),
        ("60 distinct words", " ".join(f"w{i}" for i in range(60))),
        ("64 words OR'ed", " OR ".join(f"w{i}" for i in range(64))),
        ("100 distinct words", " ".join(f"w{i}" for i in range(100))),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="captions in the index")
    args = parser.parse_args()

    from photocap.errors import QueryError
    from photocap.index.store import CaptionIndex
    from photocap.records import PhotoUpdate

    with tempfile.TemporaryDirectory() as tmp:
        idx = CaptionIndex.open(Path(tmp) / "q.db")
        idx.upsert_photos(
            PhotoUpdate(f"/p/{i}.jpg", 1, i, caption=f"a dog runs on the beach w{i % 500}",
                        source="model", model="bench", score=0.0)
            for i in range(args.n)
        )
        print(f"{args.n:,} captions")
        for label, text in queries():
            t0 = time.perf_counter()
            try:
                hits = idx.search(text, limit=20)
                outcome = f"{len(hits)} hits"
            except QueryError as exc:
                outcome = f"refused: {exc}"
            ms = (time.perf_counter() - t0) * 1000
            print(f"{label:24} {len(text):7,} chars {ms:9.1f} ms  {outcome}")
        idx.close()


if __name__ == "__main__":
    main()

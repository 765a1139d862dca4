"""Where meaning results should end: the floor alone against a cut-off relative to the best match.

A cheap stand-in for an index (no model captioning): each of the 1,000 Flickr8k dev photos gets
its first human caption as its caption, embedded with the bundled sentence model as the index
does (caption only). Queries: another human caption of 300 of the photos (their photo should
stay in), the benchmark's 20 synonym queries, and the 24 nonsense queries. For each rule it
prints how many photos a query returns and how often a sentence query keeps its photo.

    python bench/bench_cutoff.py            # about a minute on two busy cores
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_meaning import DATA, SYNONYMS, f8k_dev  # noqa: E402

from photocap.library.meaning import embed_photos, photo_texts  # noqa: E402
from photocap.library.search import MEANING_GATE, MIN_MEANING, meaning_matches  # noqa: E402
from photocap.meaning.text import TextEmbedder  # noqa: E402

# Queries that mean nothing in a photo library: none should find a photo by meaning.
NONSENSE = ["quarterly tax report", "asdf qwerty", "python exception traceback", "mortgage interest rate",
            "the history of the roman empire", "how to reset my password", "xkcd", "lorem ipsum dolor",
            "invoice number 4711", "quantum chromodynamics", "spreadsheet formula", "wifi password",
            "zzz", "pdf", "meeting notes tuesday", "cholesterol levels", "stock market crash", "recipe",
            "jazz", "philosophy", "error 404", "hello world", "tuesday", "insurance claim form"]

RULES = (None, ("-", 0.25), ("-", 0.20), ("-", 0.15), ("*", 0.5), ("*", 0.6), ("*", 0.65), ("*", 0.7))


def main() -> None:
    captions: dict[str, list[str]] = {}
    with open(DATA / "flickr8k" / "captions.txt", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            captions.setdefault(row["image"], []).append(row["caption"].strip().rstrip(" .").strip())
    photos = [p for p in f8k_dev() if len(captions.get(p, ())) >= 2]
    embedder = TextEmbedder()
    index = embed_photos(embedder, [photo_texts(captions[p][0]) for p in photos])
    targets = list(range(0, len(photos), max(1, len(photos) // 300)))[:300]
    sentences = [captions[photos[i]][1] for i in targets]
    queries = embedder.embed(sentences + SYNONYMS + NONSENSE)

    def ranked(q: np.ndarray) -> list[tuple[int, float]]:
        cos = index @ q
        order = np.argsort(-cos)
        return [(int(i), float(cos[i])) for i in order]

    rankings = [ranked(q) for q in queries]
    n_s, n_y = len(sentences), len(SYNONYMS)
    print(f"{len(photos)} photos; {n_s} sentence, {n_y} synonym, {len(NONSENSE)} nonsense queries; "
          f"gate {MEANING_GATE}, floor {MIN_MEANING}")
    print(f"{'rule':>16} {'sentence kept':>14} {'sentence results':>17} {'synonym results':>16} "
          f"{'nonsense found':>15}")
    for rule in RULES:
        def matches(r: list[tuple[int, float]]) -> list[tuple[int, float]]:
            found = meaning_matches(r, MIN_MEANING, MEANING_GATE)  # the floor alone, then each rule
            if rule is not None and found:
                best = found[0][1]
                cut = best - rule[1] if rule[0] == "-" else best * rule[1]
                found = [(i, s) for i, s in found if s >= cut]
            return found

        got = [matches(r) for r in rankings]
        kept = sum(targets[k] in {i for i, _ in got[k]} for k in range(n_s)) / n_s
        sent = [len(g) for g in got[:n_s]]
        syn = [len(g) for g in got[n_s:n_s + n_y]]
        non = sum(bool(g) for g in got[n_s + n_y:])
        name = "floor only" if rule is None else f"best {rule[0]} {rule[1]:.2f}"
        print(f"{name:>16} {kept:>14.1%} {statistics.median(sent):>8.0f} (p90 {np.percentile(sent, 90):>4.0f})"
              f" {statistics.median(syn):>7.0f} (p90 {np.percentile(syn, 90):>4.0f}) {non:>15}")


if __name__ == "__main__":
    main()

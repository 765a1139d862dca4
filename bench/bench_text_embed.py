"""What embedding a photo's texts costs while indexing: its caption and its concept words.

    python bench/bench_text_embed.py [--captions PATH/TO/flickr8k/captions.txt] [--photos 512] [--rounds 3]

Indexing embeds each batch of 16 photos as 16 captions and 16 short concept lists ("dog, tennis
ball"). Prints the CPU time per photo (all of the sentence model's threads) and the wall time, for
the texts padded as one batch (as photocap did before 2026-12-06) and grouped by length (what
``TextEmbedder.embed`` does now), best of the rounds. Without ``--captions`` the captions are
made up from a few templates.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from pathlib import Path

CONCEPTS = ["dog, tennis ball", "cat", "pizza, plate", "bus", "elephant", "coffee, cup", "beach", "ski, snow"]


def captions(path: Path | None, n: int) -> list[str]:
    if path is None:
        subjects = ["a brown dog", "a young boy in a red shirt", "two women", "a man on a bicycle"]
        places = ["runs through the long grass of a park", "stands in front of a building", "is on the beach"]
        return [f"{s} {p}" for s, p in itertools.islice(itertools.cycle(itertools.product(subjects, places)), n)]
    with path.open(newline="", encoding="utf-8") as f:
        return [row["caption"].strip().lower() for row in itertools.islice(csv.DictReader(f), 0, 5 * n, 5)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--captions", type=Path, default=None, help="a Flickr8k captions.txt (image,caption)")
    ap.add_argument("--photos", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from photocap.meaning.text import TextEmbedder

    embedder = TextEmbedder()
    texts = captions(args.captions, args.photos)
    batches = [texts[i:i + 16] + [CONCEPTS[j % len(CONCEPTS)] for j in range(i, i + 16)]
               for i in range(0, len(texts), 16)]

    def padded(batch: list[str]) -> None:  # one batch, padded to its longest text
        embedder._run([e.ids for e in embedder._tokenizer.encode_batch(batch)])

    ways = {"one padded batch": padded, "grouped by length": embedder.embed}
    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, embed in ways.items():
            c, w = time.process_time(), time.perf_counter()
            for batch in batches:
                embed(batch)
            cpu[name] = min(cpu.get(name, float("inf")), (time.process_time() - c) / len(texts) * 1000)
            wall[name] = min(wall.get(name, float("inf")), (time.perf_counter() - w) / len(texts) * 1000)
    print(f"{len(texts)} photos (caption + concept words), batches of 16, best of {args.rounds}")
    for name in ways:
        print(f"  {name:18} {cpu[name]:5.2f} ms CPU per photo, {wall[name]:5.2f} ms wall")
    a, b = cpu["one padded batch"], cpu["grouped by length"]
    print(f"grouped by length against one padded batch: {b / a:.2f}x the CPU")


if __name__ == "__main__":
    main()

"""What the image embedding adds to search: retrieval by the image vector, by the caption's text, and both.

On Flickr8k dev (1,000 photos) and COCO dev (80 photos, ../shared/datasets/coco-dev):

* sentence queries: each Flickr8k dev photo's first human caption; recall@1/5/10 of that photo
  among the 1,000 by (a) image: cosine with the photo's image vector; (b) caption text: cosine
  with the sentence embedding of the model's own caption plus its confident concepts
  ("caption. dog, ball"); (c) fusion: the sum of both cosines (and reciprocal rank fusion, k=60);
* short queries: the category name of each COCO photo's largest annotated object (objects.json);
  recall@10 of that photo among the 80, and among the 80 mixed into the 1,000 Flickr8k dev photos;
* 20 synonym queries: the captions of the top 3 photos by the image vector (dev + COCO).

The bundled model captions the 1,080 photos once (Captioner with its image-embedding head, so the image
vectors are the ones photocap produces); the results are cached in /tmp by the model's and the
head's sha256.

    PYTHONPATH=. python bench/bench_embedding.py [--model M] [--head H] [--data-root ../shared/datasets]
    PYTHONPATH=. python bench/bench_embedding.py --overhead   # captioning images/s with and without the head
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

SYNONYMS = ["puppy", "kitten", "seaside", "kid", "bike", "automobile", "sofa", "meal", "ocean", "pup", "doggy",
            "infant", "bicycle", "lake", "mountain", "snow", "street", "laptop", "pizza", "elephant"]
CACHE = Path("/tmp/photocap-bench-embedding")


def _sha(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:16]


def _captions(folder: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with open(folder / "captions.txt", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["image"], []).append(row["caption"].strip())
    return out


def _run_captioner(paths: list[Path], model: Path | None, head: Path | None) -> list[dict]:
    """Caption + concepts + image vector of each photo, cached by the model's and head's sha256."""
    from photocap.captioner import Captioner
    from photocap.model.embedding import embedding_path_for, find_embedding_head
    from photocap.records import VECTOR_DTYPE
    from photocap.settings import default_model_path

    model = model or default_model_path()
    head = head or find_embedding_head(model) or embedding_path_for(model)
    key = hashlib.sha1(f"{_sha(model)} {_sha(head)} {len(paths)} {paths[0]} {paths[-1]}".encode()).hexdigest()[:16]
    cache = CACHE / f"described-{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    captioner = Captioner(model, embedding_head=head)
    rows, start = [], time.perf_counter()
    for r in captioner.caption_paths(paths, batch_size=16):
        if not hasattr(r, "caption"):
            sys.exit(f"cannot caption {r.path}: {r.reason}")
        rows.append({"path": r.path, "caption": r.caption, "concepts": [[c.word, c.score] for c in r.concepts],
                     "vector": np.frombuffer(r.image_vector, dtype=VECTOR_DTYPE).tolist()})
        if len(rows) % 200 == 0:
            print(f"  captioned {len(rows)}/{len(paths)} ({time.perf_counter() - start:.0f}s)", file=sys.stderr)
    CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(rows))
    return rows


def _ranks(sims: np.ndarray, right: np.ndarray) -> np.ndarray:
    """sims (Q, N), right (Q,) index of each query's photo -> its 0-based rank."""
    return (sims > sims[np.arange(len(right)), right][:, None]).sum(axis=1)


def _rrf(*sims: np.ndarray, k: int = 60) -> np.ndarray:
    """Reciprocal rank fusion of score matrices (Q, N): sum of 1 / (k + rank)."""
    total = np.zeros_like(sims[0])
    for s in sims:
        order = np.argsort(-s, axis=1)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(s.shape[1])[None, :].repeat(len(s), 0), axis=1)
        total += 1.0 / (k + 1 + rank)
    return total


def _recalls(rank: np.ndarray, ks=(1, 5, 10)) -> list[float]:
    return [float((rank < k).mean()) for k in ks]


def overhead(paths: list[Path], model: Path | None, rounds: int = 2, batch_size: int = 16) -> None:
    """What the image-embedding head adds to captioning: the same batch captioned with and without it, back to back
    (so a busy machine slows both alike; the median of the per-batch ratios), the head's own time on
    real encoder outputs, and what loading it adds to starting a Captioner."""
    import statistics

    import torch

    from photocap.captioner import Captioner
    from photocap.model.embedding import encoder_identity
    from photocap.model.preprocess import open_image, to_tensor

    batches = [torch.stack([to_tensor(open_image(p, 224)) for p in paths[i:i + batch_size]])
               for i in range(0, len(paths), batch_size)]
    for backend in ("onnx", "torch"):
        captioner = Captioner(model, device="cpu", backend=backend)
        head = captioner.image_head
        captioner.describe_tensors(batches[0])  # warm-up
        ratios, spent = [], {"with": 0.0, "without": 0.0}
        for r in range(rounds):
            for b in batches:
                took = {}
                for label in (("without", "with") if r % 2 == 0 else ("with", "without")):
                    captioner.image_head = head if label == "with" else None
                    t = time.perf_counter()
                    captioner.describe_tensors(b)
                    took[label] = time.perf_counter() - t
                    spent[label] += took[label]
                ratios.append(took["without"] / took["with"])
        captioner.image_head = head
        with torch.inference_mode():
            grid, logits = captioner.encoder_outputs(batches[0])
            t = time.perf_counter()
            for _ in range(50):
                head.from_grid(grid, logits)
            per_image = (time.perf_counter() - t) / (50 * len(batches[0]))
        n = rounds * sum(len(b) for b in batches)
        print(f"{captioner.backend}: {n / spent['without']:.1f} images/s without the image-embedding head, "
              f"{n / spent['with']:.1f} with it; median per-batch throughput ratio {statistics.median(ratios):.3f} "
              f"({len(ratios)} batch pairs); the head alone {per_image * 1e6:.0f} us per image = "
              f"{per_image * n / spent['without'] * 100:.2f} % of the captioning time")
    t = time.perf_counter()
    encoder_identity(captioner.model.encoder, captioner.model.cfg.encoder)
    ident = time.perf_counter() - t
    t = time.perf_counter()
    from photocap.model.embedding import find_embedding_head, load_embedding_head

    load_embedding_head(find_embedding_head(captioner.model_path))
    print(f"starting a Captioner with the head: + {ident:.3f}s (hashing the encoder's weights) "
          f"+ {time.perf_counter() - t:.3f}s (reading the head)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--head", type=Path, default=None, help="image-embedding head file (default: beside the model)")
    ap.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets")
    ap.add_argument("--overhead", action="store_true", help="only measure the captioning overhead (64 photos)")
    args = ap.parse_args()

    from photocap.library.concepts import confident
    from photocap.meaning.text import TextEmbedder
    from photocap.records import Concept

    f8k, coco = args.data_root / "flickr8k", args.data_root / "coco-dev"
    dev_names = (f8k / "Flickr_8k.devImages.txt").read_text().split()
    f8k_caps, coco_caps = _captions(f8k), _captions(coco)
    objects = json.loads((coco / "objects.json").read_text())
    coco_names = sorted(coco_caps)
    paths = [f8k / "Images" / n for n in dev_names] + [coco / "Images" / n for n in coco_names]
    if args.overhead:
        overhead(paths[:64], args.model)
        return
    rows = _run_captioner(paths, args.model, args.head)
    n_dev = len(dev_names)

    embedder = TextEmbedder()
    img = np.array([r["vector"] for r in rows], dtype=np.float32)  # (1080, 384)
    docs = [r["caption"] + "".join(". " + ", ".join(c.word for c in conf) for conf in
                                   [confident([Concept(w, s) for w, s in r["concepts"]])] if conf)
            for r in rows]
    txt = embedder.embed(docs)  # (1080, 384)
    print(f"image vectors: {img.shape}, norms {np.linalg.norm(img, axis=1).min():.4f}..{np.linalg.norm(img, axis=1).max():.4f}")
    print(f"caption documents, e.g. {docs[0]!r}")

    def table(title: str, q: np.ndarray, right: np.ndarray, cols: slice, ks) -> None:
        s_pix, s_txt = q @ img[cols].T, q @ txt[cols].T
        print(f"\n{title}")
        print(f"  {'':24s}" + "".join(f"R@{k:<6d}" for k in ks))
        for name, s in (("image", s_pix), ("caption text", s_txt), ("fusion: sum of cosines", s_pix + s_txt),
                        ("fusion: RRF k=60", _rrf(s_pix, s_txt))):
            print(f"  {name:24s}" + "".join(f"{v:<8.3f}" for v in _recalls(_ranks(s, right), ks)))

    queries = embedder.embed([f8k_caps[n][0] for n in dev_names])
    table(f"Flickr8k dev, sentence queries (first human caption), {n_dev} photos", queries, np.arange(n_dev),
          slice(0, n_dev), (1, 5, 10))

    largest = [objects[n][0][0] for n in coco_names]
    short = embedder.embed(largest)
    table(f"COCO dev, short queries (largest object's category), among its {len(coco_names)} photos", short,
          np.arange(len(coco_names)), slice(n_dev, None), (1, 5, 10))
    table(f"COCO dev short queries among {len(rows)} photos (80 COCO + {n_dev} Flickr8k dev as distractors)",
          short, np.arange(len(coco_names)) + n_dev, slice(0, None), (1, 5, 10))
    nonperson = np.array([c != "person" for c in largest])
    print(f"  ({int(nonperson.sum())} of the 80 queries are not 'person')")

    print("\nSynonym queries: top 3 by the image vector (model's caption; * = a COCO photo)")
    syn = embedder.embed(SYNONYMS) @ img.T
    for word, s in zip(SYNONYMS, syn):
        top = np.argsort(-s)[:3]
        shown = "; ".join(("*" if i >= n_dev else "") + rows[i]["caption"] for i in top)
        print(f"  {word:11s} {shown}")


if __name__ == "__main__":
    main()

"""Search by meaning: recall of words / meaning / image / hybrid on real indexes, and latency.

Builds (once; reruns only stat the files) real indexes with the bundled model in ``--work``:
``f8k.db`` (the 1,000 Flickr8k dev photos), ``coco.db`` (the 80 COCO dev photos) and ``all.db``
(both, 1,080), from copies of the photos under ``--work``/photos. Then, for each mode, it asks the
library's one search function (``photocap.library.search``; the bench never ranks anything itself):

* sentence queries: each Flickr8k dev photo's first human caption; recall@1/5/10 of that photo
  among the 1,000 and among the 1,080;
* short queries: each COCO category that is the largest annotated object of some COCO dev photo,
  by its name ("pizza"); recall@10 of those photos (all photos found in the top 10 over all
  photos with that largest object), in the 80-photo index and in the 1,080 one;
* 20 synonym queries: the top 3 captions of each mode (on the 1,080 index);
* latency of the whole search call (query embedding included), warm: p50/p95 over all queries.

A mode the library or the index can't serve (e.g. image before the index holds image vectors)
is reported as n/a with the reason.

    python bench/bench_meaning.py                       # everything, cached in /tmp/photocap-meaning
    python bench/bench_meaning.py --modes words hybrid --sentences 200
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if not DATA.is_dir():
    DATA = Path("/work/shared/datasets")
MODES = ("words", "meaning", "image", "hybrid", "text")  # text: meaning's text-vector ranking alone
SYNONYMS = ["puppy", "kitten", "seaside", "kid", "bike", "automobile", "sofa", "meal", "ocean", "pup",
            "doggy", "infant", "bicycle", "lake", "mountain", "snow", "street", "laptop", "pizza", "elephant"]
K = (1, 5, 10)


# ----------------------------------------------------------------------------- data


def first_captions(captions_csv: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(captions_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["image"], row["caption"].strip().rstrip(" .").strip())
    return out


def f8k_dev() -> list[str]:
    return [ln.strip() for ln in (DATA / "flickr8k" / "Flickr_8k.devImages.txt").read_text().splitlines()
            if ln.strip()]


def coco_largest() -> dict[str, str]:
    """COCO dev photo -> its largest annotated object's category."""
    objects = json.loads((DATA / "coco-dev" / "objects.json").read_text())
    return {name: objs[0][0] for name, objs in objects.items() if objs}


def copy_photos(work: Path) -> tuple[Path, Path]:
    f8k, coco = work / "photos" / "f8k", work / "photos" / "coco"
    f8k.mkdir(parents=True, exist_ok=True)
    coco.mkdir(parents=True, exist_ok=True)
    for name in f8k_dev():
        if not (f8k / name).exists():
            shutil.copy2(DATA / "flickr8k" / "Images" / name, f8k / name)
    for src in sorted((DATA / "coco-dev" / "Images").glob("*.jpg")):
        if not (coco / src.name).exists():
            shutil.copy2(src, coco / src.name)
    return f8k, coco


def build(work: Path) -> dict[str, Path]:
    """Index (or bring up to date: unchanged photos cost a stat) the three benchmark indexes."""
    from photocap.index.store import CaptionIndex
    from photocap.library.captioning import default_captioner_factory
    from photocap.library.pipeline import IndexOptions, index_folders

    f8k, coco = copy_photos(work)
    dbs = {"f8k": work / "f8k.db", "coco": work / "coco.db", "all": work / "all.db"}
    roots = {"f8k": [f8k], "coco": [coco], "all": [f8k, coco]}
    factory = default_captioner_factory(device="cpu")
    for key, db in dbs.items():
        t0 = time.perf_counter()
        if key == "all" and not db.exists():  # start from the Flickr8k one: only COCO's 80 to caption
            with CaptionIndex.open(dbs["f8k"]) as f8k_index:
                f8k_index.backup(db)
        with CaptionIndex.open(db) as index:
            s = index_folders(roots[key], index, factory, IndexOptions(workers=1))
        print(f"# {db.name}: {s.captioned} captioned, {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return dbs


# ----------------------------------------------------------------------------- searching

Search = Callable[[object, str, int], list[tuple[str, str, str]]]  # (index, query, limit) -> (name, caption, why)


@dataclass
class ModeResult:
    mode: str
    unavailable: str | None = None
    sentence: dict[str, dict[int, float]] = field(default_factory=dict)  # index key -> k -> recall
    short: dict[str, float] = field(default_factory=dict)  # index key -> recall@10 (micro)
    short_macro: dict[str, float] = field(default_factory=dict)
    synonyms: dict[str, list[str]] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)


def make_search(mode: str) -> tuple[Search | None, str | None]:
    """The library's search for ``mode``, as (index, query, limit) -> hits; or why it can't run.

    words / meaning / hybrid are :func:`photocap.library.search.search`'s modes; "image" and
    "text" are the two rankings its meaning mode fuses (image vectors, text vectors, each past its
    threshold rule and the query's exclusions), each alone: what each adds.
    """
    try:
        from photocap.library import search as lib_search
    except ImportError:
        lib_search = None
    if lib_search is None:
        if mode != "words":
            return None, "no photocap.library.search yet"

        def words(index, query: str, limit: int) -> list[tuple[str, str, str]]:
            return [(Path(h.record.path).name, h.record.caption or "", str(h.matched_by))
                    for h in index.search(query, limit=limit)]

        return words, None
    embed = None
    if mode != "words":
        from photocap.errors import MeaningUnavailable

        try:
            embed = lib_search.query_embedder()
        except MeaningUnavailable as exc:
            return None, str(exc)
    if mode in ("image", "text"):
        return one_ranking(lib_search, embed, mode)

    def run(index, query: str, limit: int) -> list[tuple[str, str, str]]:
        hits = lib_search.search(index, query, mode=mode, limit=limit, embed=embed)
        return [(Path(h.record.path).name, h.record.caption or "", why(h)) for h in hits]

    return run, None


def why(hit) -> str:
    out = []
    for m in hit.matched_by:
        m = str(m)
        score = {"meaning": hit.meaning_score, "image": hit.image_score}.get(m)
        out.append(f"{m} {score:.2f}" if score is not None else m)
    return ", ".join(out)


class _Embed:
    """The query embedder under another model id (one the index has no text vectors of)."""

    def __init__(self, embed, model_id: str) -> None:
        self._embed, self.model_id = embed, model_id

    def __call__(self, text: str):
        return self._embed(text)


def one_ranking(lib_search, embed, kind: str) -> tuple[Search | None, str | None]:
    """The library's meaning mode with one of its two vector rankings switched off: "image" asks
    for text vectors of a model the index has none of; "text" hides the index's image model."""
    from photocap.records import VectorKind

    def run(index, query: str, limit: int) -> list[tuple[str, str, str]]:
        if kind == "image":
            if not index.vectors.models(VectorKind.IMAGE):
                raise LookupError("the index holds no image vectors (no image-embedding head in the model yet)")
            hits = lib_search.search(index, query, mode="meaning", limit=limit, embed=_Embed(embed, "none"))
        else:
            image_model, lib_search._image_model = lib_search._image_model, lambda _index: None
            try:
                hits = lib_search.search(index, query, mode="meaning", limit=limit, embed=embed)
            finally:
                lib_search._image_model = image_model
        return [(Path(h.record.path).name, h.record.caption or "", why(h)) for h in hits]

    return run, None


def timed(search: Search, index, query: str, limit: int, latency: list[float]) -> list[tuple[str, str, str]]:
    t0 = time.perf_counter()
    hits = search(index, query, limit)
    latency.append((time.perf_counter() - t0) * 1000)
    return hits


def run_mode(mode: str, dbs: dict[str, Path], n_sentences: int | None) -> ModeResult:
    from photocap.index.store import CaptionIndex

    res = ModeResult(mode)
    search, why = make_search(mode)
    if search is None:
        res.unavailable = why
        return res
    sentences = first_captions(DATA / "flickr8k" / "captions.txt")
    dev = f8k_dev()[:n_sentences] if n_sentences else f8k_dev()
    largest = coco_largest()
    by_cat: dict[str, set[str]] = {}
    for name, cat in largest.items():
        by_cat.setdefault(cat, set()).add(name)
    indexes = {key: CaptionIndex.open(db, create=False, readonly_ok=True) for key, db in dbs.items()}
    try:
        try:
            search(indexes["all"], "warm up", 10)  # first call loads what it loads; not timed
        except Exception as exc:  # noqa: BLE001 - a mode the index can't serve
            res.unavailable = f"{type(exc).__name__}: {exc}"
            return res
        for key in ("f8k", "all"):
            found = {k: 0 for k in K}
            for name in dev:
                try:
                    got = [n for n, _c, _w in timed(search, indexes[key], sentences[name], 10, res.latency_ms)]
                except Exception as exc:  # noqa: BLE001 - a mode the index can't serve
                    res.unavailable = f"{type(exc).__name__}: {exc}"
                    return res
                for k in K:
                    found[k] += name in got[:k]
            res.sentence[key] = {k: found[k] / len(dev) for k in K}
        for key in ("coco", "all"):
            hit = total = 0
            macro: list[float] = []
            for cat, names in sorted(by_cat.items()):
                got = {n for n, _c, _w in timed(search, indexes[key], cat, 10, res.latency_ms)}
                hit += len(names & got)
                total += len(names)
                macro.append(len(names & got) / len(names))
            res.short[key] = hit / total
            res.short_macro[key] = statistics.mean(macro)
        for q in SYNONYMS:
            hits = timed(search, indexes["all"], q, 3, res.latency_ms)
            res.synonyms[q] = [f"{c} [{w}]" for _n, c, w in hits]
    finally:
        for idx in indexes.values():
            idx.close()
    return res


# ----------------------------------------------------------------------------- fusion grid

GRID_K = (10, 30, 60)
GRID_WORDS = (0.25, 0.5, 1.0)
GRID_MEANING = (1.0,)
GRID_IMAGE = (0.5, 1.0, 2.0)


def grid(dbs: dict[str, Path]) -> None:
    """Hybrid's recall for each (k, weights) of the library's fusion (``search.fuse``): the three
    rankings of each query are asked of the library once (``search.rankings``), then fused with
    every combination; prints one table row per combination."""
    import itertools

    from photocap.index.store import CaptionIndex
    from photocap.library import search as lib_search

    embed = lib_search.query_embedder()
    sentences = first_captions(DATA / "flickr8k" / "captions.txt")
    largest = coco_largest()
    by_cat: dict[str, set[str]] = {}
    for name, cat in largest.items():
        by_cat.setdefault(cat, set()).add(name)
    cached: dict[str, list] = {}  # index key -> [(wanted names, rankings, id -> name)]
    for key, queries in (("f8k", [(sentences[n], {n}) for n in f8k_dev()]),
                         ("coco", [(c, ns) for c, ns in sorted(by_cat.items())]),
                         ("all", [(c, ns) for c, ns in sorted(by_cat.items())])):
        with CaptionIndex.open(dbs[key], create=False, readonly_ok=True) as index:
            rows = []
            for q, wanted in queries:
                rows.append((wanted, lib_search.rankings(index, q, embed)))
            ids = {i for _w, r in rows for ranking in r for i, _ in ranking}
            names = {i: Path(rec.path).name for i, rec in index.records_by_id(sorted(ids)).items()}
        cached[key] = [(w, r, names) for w, r in rows]
        print(f"# {key}: {len(rows)} queries ranked", file=sys.stderr)

    def recall(key: str, k: float, weights: tuple[float, float, float], at: int) -> float:
        hit = total = 0
        for wanted, (words, meaning, image), names in cached[key]:
            got = {names[i] for i in lib_search.fuse(words, meaning, image, k=k, weights=weights)[:at]}
            hit += len(wanted & got)
            total += len(wanted)
        return hit / total

    print("| k | weights words / meaning / image | F8k dev sentence R@1 / R@5 / R@10 | "
          "short R@10 COCO 80 | short R@10 in 1,080 |")
    print("| --- | --- | --- | --- | --- |")
    combos = [(k, (w, m, p)) for k, w, m, p in itertools.product(GRID_K, GRID_WORDS, GRID_MEANING, GRID_IMAGE)]
    combos += [(k, (0.0, 1.0, p)) for k in GRID_K for p in GRID_IMAGE]  # meaning alone, for reference
    for k, weights in combos:
        s = " / ".join(f"{recall('f8k', k, weights, at):.3f}" for at in K)
        print(f"| {k} | {' / '.join(f'{x:g}' for x in weights)} | {s} | {recall('coco', k, weights, 10):.3f} | "
              f"{recall('all', k, weights, 10):.3f} |", flush=True)


# ----------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def report(results: list[ModeResult], n_sent: int, n_cats: int, n_coco: int) -> None:
    na = "n/a"
    print(f"sentence queries: {n_sent} Flickr8k dev first captions; short queries: {n_cats} COCO categories "
          f"({n_coco} photos); latency over every query of the mode, warm")
    print()
    print("| mode | F8k 1,000: R@1 / R@5 / R@10 | F8k in 1,080: R@1 / R@5 / R@10 | short R@10, COCO 80 | "
          "short R@10, in 1,080 | latency p50 / p95 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        if r.unavailable:
            print(f"| {r.mode} | {na} | {na} | {na} | {na} | {na} |")
            continue
        s = [" / ".join(f"{r.sentence[key][k]:.3f}" for k in K) for key in ("f8k", "all")]
        sh = [f"{r.short[key]:.3f} (per category {r.short_macro[key]:.3f})" for key in ("coco", "all")]
        lat = f"{statistics.median(r.latency_ms):.1f} / {pct(r.latency_ms, 0.95):.1f} ms"
        print(f"| {r.mode} | {s[0]} | {s[1]} | {sh[0]} | {sh[1]} | {lat} |")
    for r in results:
        if r.unavailable:
            print(f"\n{r.mode}: n/a ({r.unavailable})")
    print("\nsynonym queries, top 3 captions (1,080 index):")
    live = [r for r in results if not r.unavailable]
    for q in SYNONYMS:
        print(f"\n{q!r}")
        for r in live:
            print(f"  {r.mode:8} " + (" | ".join(r.synonyms[q]) if r.synonyms[q] else "(nothing)"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/photocap-meaning"))
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--sentences", type=int, default=None, help="only the first N dev photos' sentence queries")
    ap.add_argument("--grid", action="store_true",
                    help="hybrid's recall for a grid of the fusion's k and weights (search.fuse), then stop")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    dbs = build(args.work)
    if args.grid:
        grid(dbs)
        return
    results = [run_mode(m, dbs, args.sentences) for m in args.modes]
    cats = set(coco_largest().values())
    report(results, args.sentences or len(f8k_dev()), len(cats), len(coco_largest()))


if __name__ == "__main__":
    main()

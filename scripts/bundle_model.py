"""Turn a trained model into the bundled default: float16, a release id, decoding settings
chosen on dev splits, and their scores in the file's header.

    python scripts/bundle_model.py runs/f8k/best.safetensors --data ../shared/datasets/flickr8k \\
        --model-id photocap-flickr8k-v5 [--also-dev flickr8k:../shared/datasets/coco-dev] \\
        [--beams 3] [--length-penalties 0,0.5,0.7,1.0] [--concept-forces 0,0.3,0.5] [--concept-bonuses 0,0.5] \\
        [--decode-grids 1,0] [--person-gates 0,0.3] [--max-invented 0.2 --min-people-named 0.9] \\
        [--text captions.csv --memory 12000,6000 --memory-temperature 0.04 --memory-mixes 0,0.3] \\
        [--out models/photocap-default.safetensors]

Every (beam, length penalty, concept force, concept bonus) setting is scored with pycocoevalcap (PTB
tokenizer, as `photocap evaluate`) on the float16 weights, on the dev split of ``--data``
and on every ``--also-dev`` set (all of its images: a small everyday-photo set such as the
80 COCO photos). The setting with the best mean CIDEr over those sets is kept (among those
whose CIDEr on the training set's dev split reaches ``--floor``, if any does) and written
into the model's config, so every front end decodes it that way. Concept forces are only
tried for a model with a concept head. With ``--memory P,T`` the model gets a caption memory (DeCap's
bridge, ``photocap/training/memory.py``): P captions of the training split and T of ``--text``, and
the share of it the decoder reads (``--memory-mixes``; 0 = none) is chosen with the rest. Then the
model's ONNX graphs are exported beside it (``photocap export-graphs``: the torch-free captioner
needs them in the wheel). Prints one JSON line per setting and set, then the chosen one. No test
split is ever read.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def listed(text: str, kind: type) -> list:
    """"3,4" -> [3, 4] (``kind`` int) or "0,0.7" -> [0.0, 0.7] (``kind`` float)."""
    return [kind(x) for x in text.split(",") if x.strip()]


def every_image(spec: str):
    """"KIND:PATH" -> (the set's name, all its images, its objects or None): a small dev-only set such as
    coco-dev (its objects.json, when it has one, counts the people its captions invent or miss)."""
    from photocap.training.captionstats import load_objects
    from photocap.training.datasets import load_dataset

    kind, _, where = spec.partition(":")
    splits = load_dataset(kind, Path(where))
    objects = Path(where) / "objects.json"
    return (Path(where).name, [*splits.train, *splits.dev, *splits.test],
            load_objects(objects) if objects.is_file() else None)


def memory(args: argparse.Namespace, splits, cache: Path):
    """The caption memory ``--memory P,T`` asks for: P captions of the training split, T of ``--text``."""
    from photocap.meaning.text import MODEL_ID, TextEmbedder
    from photocap.training.memory import caption_memory
    from photocap.training.textdata import embed_cached, read_text_corpus

    photo_rows, text_rows = listed(args.memory, int)
    embedder = TextEmbedder()
    text = read_text_corpus(args.text, embedder.embed, MODEL_ID, cache) if args.text else None
    return caption_memory([c for it in splits.train for c in it.captions], text.vectors if text else None,
                          lambda texts: embed_cached(texts, embedder.embed, MODEL_ID, cache),
                          photo_rows=photo_rows, text_rows=text_rows, seed=args.memory_seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a trained model file (e.g. OUT/best.safetensors)")
    parser.add_argument("--data", type=Path, required=True, help="the training dataset (its dev split is used)")
    parser.add_argument("--kind", default="flickr8k",
                        help="dataset kind, as `photocap train --data` (default flickr8k)")
    parser.add_argument("--also-dev", action="append", default=[], metavar="KIND:PATH",
                        help="another dev set, all of whose images are scored (repeatable)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="feature cache (default: the user cache folder)")
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--beams", default="3", help="beam widths to try, comma-separated")
    parser.add_argument("--length-penalties", default="0,0.5,0.7,1.0", help="comma-separated")
    parser.add_argument("--concept-forces", default="0", help="comma-separated, 0 = never force a concept")
    parser.add_argument("--concept-bonuses", default="0", help="comma-separated, 0 = a forced concept always stays")
    parser.add_argument("--floor", type=float, default=0.0,
                        help="only settings whose CIDEr on the training set's dev split reaches this count "
                             "(e.g. the model being replaced: no regression where it was trained)")
    parser.add_argument("--decode-grids", default="1",
                        help="for a model that reads the image embedding: 1 = decode with the grid, 0 = without; "
                             "comma-separated")
    parser.add_argument("--person-gates", default="0", help="person gates to try (0 = off), comma-separated")
    parser.add_argument("--max-invented", type=float, default=1.0,
                        help="only settings that name a person in at most this share of the photos with none "
                             "annotated, on every set with objects.json")
    parser.add_argument("--min-people-named", type=float, default=0.0,
                        help="... and in at least this share of those whose largest object is a person")
    parser.add_argument("--text", type=Path, action="append", default=[],
                        help="caption text the model learnt from (for --memory), as `photocap train --text`")
    parser.add_argument("--memory", default="", metavar="P,T",
                        help="a caption memory of P training-split captions and T --text captions")
    parser.add_argument("--memory-temperature", type=float, default=0.04)
    parser.add_argument("--memory-mixes", default="1", help="shares of the memory to try (0 = none), comma-separated")
    parser.add_argument("--memory-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "photocap-default.safetensors")
    args = parser.parse_args()

    import torch

    from photocap.model.checkpoint import load_model, save_model
    from photocap.settings import cache_dir
    from photocap.training.captionstats import caption_stats
    from photocap.training.datasets import load_dataset
    from photocap.training.evaluate import encode_split_features, evaluate_features
    from photocap.training.metrics import METRICS

    device = torch.device("cpu")
    splits = load_dataset(args.kind, args.data)
    cache = args.cache_dir or cache_dir() / "features"
    with tempfile.TemporaryDirectory() as tmp:
        half = Path(tmp) / "half.safetensors"
        model, _ = load_model(args.model)
        model.cfg.model_id = args.model_id
        if args.memory:
            model.set_sentence_memory(memory(args, splits, cache), args.memory_temperature)
        save_model(model, half, half=True)
        model, _ = load_model(half)  # score exactly the weights that ship
    sets = [(f"{args.data.name} dev", splits.dev, None), *(every_image(spec) for spec in args.also_dev)]
    encoded = [(name, *encode_split_features(model, items, cache, device), objects) for name, items, objects in sets]
    forces = listed(args.concept_forces, float) if model.concepts is not None else [0.0]
    concept_settings = [(f, b) for f in forces for b in (listed(args.concept_bonuses, float) if f else [0.0])]
    reads_vector = bool(model.cfg.sentence_dim)
    grids = [bool(g) for g in listed(args.decode_grids, int)] if reads_vector else [model.cfg.decode_grid]
    gates = listed(args.person_gates, float) if reads_vector else [0.0]
    mixes = listed(args.memory_mixes, float) if model.cfg.memory_size else [1.0]
    best: tuple[float, tuple, dict[str, dict[str, float]]] | None = None
    for beam, penalty, (force, bonus), grid, gate, mix in itertools.product(
            listed(args.beams, int), listed(args.length_penalties, float), concept_settings, grids, gates, mixes):
        model.cfg.decode_grid, model.cfg.person_gate, model.cfg.memory_mix = grid, gate, mix
        results, allowed = {}, True
        for name, items, feats, objects in encoded:
            scores, predictions = evaluate_features(model, items, feats, beam=beam, length_penalty=penalty,
                                                    concept_force=force, concept_bonus=bonus, device=device,
                                                    tokenize="ptb", metrics=METRICS)
            stats = caption_stats(predictions, objects)
            results[name] = {"scores": {k: round(v, 4) for k, v in scores.items()}, "distinct": stats.distinct,
                             "words_used": stats.words_used, "images": len(items),
                             **({"nonperson_named": stats.nonperson_named, "people_invented": stats.people_invented,
                                 "people_absent": stats.people_absent, "people_named": stats.people_named,
                                 "people_largest": stats.people_largest} if objects else {})}
            if objects and (stats.people_invented > args.max_invented * stats.people_absent
                            or stats.people_named < args.min_people_named * stats.people_largest):
                allowed = False
            print(json.dumps({"beam": beam, "length_penalty": penalty, "concept_force": force,
                              "concept_bonus": bonus, "decode_grid": grid, "person_gate": gate,
                              **({"memory_mix": mix} if model.cfg.memory_size else {}), "set": name,
                              **results[name]["scores"], **{k: v for k, v in results[name].items() if k != "scores"}}),
                  flush=True)
        mean = sum(r["scores"]["CIDEr"] for r in results.values()) / len(results)
        if results[sets[0][0]]["scores"]["CIDEr"] < args.floor or not allowed:
            mean -= 10.0  # below the floor or over the people limits: chosen only if every setting is
        if best is None or mean > best[0]:
            best = (mean, (beam, penalty, force, bonus, grid, gate, mix), results)
    assert best is not None
    _, chosen, results = best
    (model.cfg.beam_size, model.cfg.length_penalty, model.cfg.concept_force, model.cfg.concept_bonus,
     model.cfg.decode_grid, model.cfg.person_gate, model.cfg.memory_mix) = chosen
    if model.cfg.memory_size and not model.cfg.memory_mix:
        model.set_sentence_memory(None)  # none of it read: the file does not carry it
    info = {
        "dev_scores": {k: round(v, 3) for k, v in results[sets[0][0]]["scores"].items()},
        "dev_sets": results,
        "scored_with": f"pycocoevalcap, PTB tokenizer, beam {model.cfg.beam_size}, length penalty "
                       f"{model.cfg.length_penalty:g}, concept force {model.cfg.concept_force:g}, bonus "
                       f"{model.cfg.concept_bonus:g}, decode grid {model.cfg.decode_grid}, person gate "
                       f"{model.cfg.person_gate:g}, caption memory {model.cfg.memory_size} x "
                       f"{model.cfg.memory_mix:g}; chosen by the "
                       f"mean CIDEr over {', '.join(results)}" + (f" with {sets[0][0]} CIDEr >= {args.floor:g}"
                                                                   if args.floor else ""),
        "trained_on": f"{args.kind} train split ({len(splits.train)} images, "
                      f"{sum(len(it.captions) for it in splits.train)} captions)",
        "card": "MODEL_CARD.md",
    }
    save_model(model, args.out, half=True, info=info)
    from photocap.captioner.graphs import Source, write_graphs
    from photocap.decoding.modelfile import model_stem, read_header

    write_graphs(Source.of(args.out, read_header(args.out)), args.out.parent, model_stem(args.out))
    print(json.dumps({"chosen": {"beam": model.cfg.beam_size, "length_penalty": model.cfg.length_penalty,
                                 "concept_force": model.cfg.concept_force, "concept_bonus": model.cfg.concept_bonus,
                                 "decode_grid": model.cfg.decode_grid, "person_gate": model.cfg.person_gate,
                                 "memory_size": model.cfg.memory_size, "memory_mix": model.cfg.memory_mix},
                      "out": str(args.out), **info["dev_scores"]}))


if __name__ == "__main__":
    main()

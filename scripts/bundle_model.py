"""Turn a trained model into the bundled default: float16, a release id, decoding settings
chosen on the dev split, and its dev scores in the file's header.

    python scripts/bundle_model.py runs/f8k/best.safetensors --data ../shared/datasets/flickr8k \\
        --model-id photocap-flickr8k-v4 [--beams 3] [--length-penalties 0,0.5,0.7,1.0] \\
        [--out models/photocap-default.safetensors]

Every (beam, length penalty) pair is scored on the dev split of the float16 weights with
pycocoevalcap (PTB tokenizer, as `photocap evaluate`); the best CIDEr is kept and written
into the model's config, so every front end decodes it that way. Prints one JSON line per
setting, then the chosen one. The test split is never read.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def listed(text: str, kind: type) -> list:
    """"3,4" -> [3, 4] (``kind`` int) or "0,0.7" -> [0.0, 0.7] (``kind`` float)."""
    return [kind(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a trained model file (e.g. OUT/best.safetensors)")
    parser.add_argument("--data", type=Path, required=True, help="the dataset (its dev split is used)")
    parser.add_argument("--kind", default="flickr8k", help="dataset kind, as `photocap train --data` (default flickr8k)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="feature cache (default: the user cache folder)")
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--beams", default="3", help="beam widths to try, comma-separated")
    parser.add_argument("--length-penalties", default="0,0.5,0.7,1.0", help="comma-separated")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "photocap-default.safetensors")
    args = parser.parse_args()

    import torch

    from photocap.model.checkpoint import load_model, save_model
    from photocap.settings import cache_dir
    from photocap.training.datasets import load_dataset
    from photocap.training.loop import encode_split_features, evaluate_features
    from photocap.training.metrics import METRICS

    device = torch.device("cpu")
    splits = load_dataset(args.kind, args.data)
    with tempfile.TemporaryDirectory() as tmp:
        half = Path(tmp) / "half.safetensors"
        model, _ = load_model(args.model)
        model.cfg.model_id = args.model_id
        save_model(model, half, half=True)
        model, _ = load_model(half)  # score exactly the weights that ship
    dev, feats = encode_split_features(model, splits.dev, args.cache_dir or cache_dir() / "features", device)
    best: tuple[float, int, float, dict[str, float]] | None = None
    for beam in listed(args.beams, int):
        for penalty in listed(args.length_penalties, float):
            scores, _ = evaluate_features(model, dev, feats, beam=beam, length_penalty=penalty, device=device,
                                          tokenize="ptb", metrics=METRICS)
            print(json.dumps({"beam": beam, "length_penalty": penalty, **{k: round(v, 4) for k, v in scores.items()}}),
                  flush=True)
            if best is None or scores["CIDEr"] > best[0]:
                best = (scores["CIDEr"], beam, penalty, scores)
    assert best is not None
    _, model.cfg.beam_size, model.cfg.length_penalty, scores = best
    info = {
        "dev_scores": {k: round(v, 3) for k, v in scores.items()},
        "scored_with": f"pycocoevalcap, PTB tokenizer, {args.kind} dev split ({len(dev)} images), "
                       f"beam {model.cfg.beam_size}, length penalty {model.cfg.length_penalty:g}",
        "trained_on": f"{args.kind} train split ({len(splits.train)} images, "
                      f"{sum(len(it.captions) for it in splits.train)} captions)",
        "card": "MODEL_CARD.md",
    }
    save_model(model, args.out, half=True, info=info)
    print(json.dumps({"chosen": {"beam": model.cfg.beam_size, "length_penalty": model.cfg.length_penalty},
                      "out": str(args.out), **info["dev_scores"]}))


if __name__ == "__main__":
    main()

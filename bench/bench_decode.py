"""Decoding speed of the transformer decoder: cached step-wise decoding versus
recomputing the whole prefix at every step (what `step` did before it kept
per-layer key/value caches).

    python bench/bench_decode.py [--n 64] [--beam 3] [--threads 2] [--model PATH]

Uses the bundled model on the sample photos (repeated to N images), encodes
them once (with their concepts, for a model that reads them), then times beam search and temperature sampling (as self-critical
training uses it, 5 samples per image here) with each step implementation. Prints
images per second and the speed-up; checks the two give the same captions. Also times beam
search copying the decoder's per-image state at every step (what it did before
``Decoder.static_state``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "photos"


def prefix_step(decoder, tokens, state):
    """The reference: re-run the decoder (teacher-forcing ``forward``) over the whole prefix, keep the last position."""
    import torch

    from photocap.model.decoders import ConceptInput

    prefix = torch.cat([state["prefix"], tokens.unsqueeze(1)], dim=1)  # (N, t)
    concepts = ConceptInput(state["concept_words"], state["concept_scores"]) if "concept_words" in state else None
    logits = decoder(state["feats"], prefix, concepts)[0][:, -1]  # (N, V)
    return logits, {**state, "prefix": prefix}


def prefix_init(decoder, feats, concepts=None):
    state = {"feats": feats, "prefix": feats.new_empty((feats.size(0), 0)).long()}
    if concepts is not None:
        state["concept_words"], state["concept_scores"] = concepts.words, concepts.scores
    return state


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from photocap.model.beam import sample
    from photocap.model.checkpoint import load_model
    from photocap.model.decoders import TransformerDecoder
    from photocap.model.preprocess import load_image
    from photocap.settings import default_model_path

    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model or default_model_path())
    if not isinstance(model.decoder, TransformerDecoder):
        raise SystemExit("this benchmark is for transformer-decoder models")
    photos = sorted(EXAMPLES.glob("*.jpg"))
    images = torch.stack([load_image(photos[i % len(photos)], model.cfg.image_size) for i in range(args.n)])
    with torch.no_grad():
        feats, concepts = model.encode(images)  # (N, P, C), the photos' concepts (None without a concept head)
    vocab, decoder = model.vocab, model.decoder
    cls = type(decoder)
    read = concepts.top(model.cfg.concept_slots) if concepts is not None and model.cfg.concept_slots else None

    def beam():
        return model.decode_features(feats, args.beam, concepts=concepts)

    def sampling():
        torch.manual_seed(0)
        return sample(decoder, feats, samples=5, start_id=vocab.start_id, end_id=vocab.end_id,
                      pad_id=vocab.pad_id, banned_ids=model.banned_ids, max_len=model.cfg.max_len, temperature=0.7,
                      concepts=read)

    decoder.static_state = lambda key: False  # reorder the per-image entries too, as before static_state
    beam_reorder_all, _ = timed(beam)
    del decoder.static_state
    results = {}
    for name in ("cached", "prefix"):
        if name == "prefix":
            decoder.step = prefix_step.__get__(decoder, cls)
            decoder.init_state = prefix_init.__get__(decoder, cls)
        results[name] = (timed(beam), timed(sampling))
    (beam_cached, caps_cached), (sample_cached, ids_cached) = results["cached"]
    (beam_prefix, caps_prefix), (sample_prefix, ids_prefix) = results["prefix"]
    same = [d.text for d in caps_cached] == [d.text for d in caps_prefix]
    print(f"{model.cfg.model_id}, {args.n} images, {args.threads} threads")
    print(f"beam {args.beam}:  cached {args.n / beam_cached:7.1f} img/s   prefix {args.n / beam_prefix:7.1f} img/s   "
          f"speed-up {beam_prefix / beam_cached:.2f}x   same captions: {same}")
    print(f"beam {args.beam}, copying the per-image cross-attention keys/values at every reordering: "
          f"{args.n / beam_reorder_all:.1f} img/s (static_state: {beam_reorder_all / beam_cached:.2f}x)")
    print(f"sample x5: cached {args.n / sample_cached:7.1f} img/s   prefix {args.n / sample_prefix:7.1f} img/s   "
          f"speed-up {sample_prefix / sample_cached:.2f}x   same samples: {torch.equal(ids_cached, ids_prefix)}")


if __name__ == "__main__":
    main()

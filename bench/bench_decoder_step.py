"""Does the decoder step pay on ONNX Runtime? The transformer's one-token step, torch against an
ONNX Runtime session of the same step, side by side.

    python bench/bench_decoder_step.py [--model PATH] [--threads 2] [--steps 8] [--repeat 50]

Exports ``TransformerDecoder.step`` itself (traced through a wrapper that turns its state dict into
positional inputs: the per-image cross-attention keys/values and concept slots, the per-row
self-attention caches) with dynamic rows, images and cache length, checks the session against
torch at other sizes than the traced ones, and times one step at the row counts beam search runs:
beam 3 on 1 / 4 / 16 images, and 16 images with the second bank of constrained beams (6 rows per
image). The caches hold ``--steps`` words, mid-caption. Prints ms per step and the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path


def step_graph(decoder, keys: list[str]):
    """A module whose forward(tokens, *state entries in ``keys`` order) is ``decoder.step``."""
    from torch import nn

    class Step(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = decoder

        def forward(self, tokens, *entries):
            logits, new = self.decoder.step(tokens, dict(zip(keys, entries)))
            return (logits, *[new[k] for k in keys if not self.decoder.static_state(k)])

    return Step().eval()


def make_state(model, images: int, per: int, steps: int, seed: int):
    """A mid-caption state: ``images`` random photos' memory, ``per`` rows each, ``steps`` words in."""
    import torch

    from photocap.model.decoders import ConceptInput

    gen = torch.Generator().manual_seed(seed)
    cfg, decoder = model.cfg, model.decoder
    feats = torch.randn(images, 49, cfg.feature_dim, generator=gen).abs()
    concepts = None
    if decoder.slots:
        words = torch.randint(0, cfg.concept_words, (images, decoder.slots), generator=gen)
        concepts = ConceptInput(words, torch.rand(images, decoder.slots, generator=gen).sort(1, descending=True)[0])
    with torch.no_grad():
        state = decoder.init_state(feats, concepts)
        state = decoder.rows_per_image(state, per)
        for _ in range(steps):
            tokens = torch.randint(4, cfg.vocab_size + 2 * decoder.slots, (images * per,), generator=gen)
            _, state = decoder.step(tokens, state)
    tokens = torch.randint(4, cfg.vocab_size + 2 * decoder.slots, (images * per,), generator=gen)
    tokens[::2] = cfg.vocab_size  # some rows feed a copied concept back in
    return tokens, state


def session_for(model, threads: int, folder: Path):
    import onnxruntime as ort
    import torch

    tokens, state = make_state(model, images=2, per=3, steps=3, seed=0)
    keys = list(state)
    graph = step_graph(model.decoder, keys)
    outputs = ["logits", *[f"new_{k}" for k in keys if not model.decoder.static_state(k)]]
    dynamic = {"tokens": {0: "rows"}, "logits": {0: "rows"}}
    for k in keys:
        dynamic[k] = {0: "images"} if model.decoder.static_state(k) else {0: "rows", 2: "length"}
        if not model.decoder.static_state(k):
            dynamic[f"new_{k}"] = {0: "rows", 2: "length_plus_one"}
    path = folder / "step.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings: sizes turned into Python numbers are checked below
        torch.onnx.export(graph, (tokens, *[state[k] for k in keys]), str(path), opset_version=17,
                          input_names=["tokens", *keys], output_names=outputs, dynamic_axes=dynamic, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]), keys


def feed(tokens, state, keys):
    return {"tokens": tokens.numpy(), **{k: state[k].contiguous().numpy() for k in keys}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from photocap.model.checkpoint import load_model
    from photocap.model.decoders import TransformerDecoder
    from photocap.settings import default_model_path

    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model or default_model_path())
    if not isinstance(model.decoder, TransformerDecoder):
        raise SystemExit("this benchmark is for transformer-decoder models")
    print(f"{model.cfg.model_id}: d_model {model.cfg.d_model}, {model.cfg.num_layers} layers, vocabulary "
          f"{model.cfg.vocab_size}; torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads")
    with tempfile.TemporaryDirectory() as tmp:
        session, keys = session_for(model, args.threads, Path(tmp))
        print(f"{'images x rows':>14} {'torch':>10} {'ONNX Runtime':>13} {'speed-up':>10} {'max |diff|':>11}")
        for images, per in ((1, 3), (4, 3), (16, 3), (16, 6)):
            tokens, state = make_state(model, images, per, args.steps, seed=images * 10 + per)
            with torch.inference_mode():
                want = model.decoder.step(tokens, state)[0]
                start = time.perf_counter()
                for _ in range(args.repeat):
                    model.decoder.step(tokens, state)
                torch_ms = (time.perf_counter() - start) / args.repeat * 1e3
            inputs = feed(tokens, state, keys)
            got = torch.from_numpy(session.run(["logits"], inputs)[0])
            diff = float((got - want).abs().max())
            if not diff < 1e-3:
                raise SystemExit(f"the ONNX step differs from torch by {diff:.3g} at {images} x {per} rows")
            start = time.perf_counter()
            for _ in range(args.repeat):
                session.run(None, feed(tokens, state, keys))  # the numpy views are made per step, as a search would
            ort_ms = (time.perf_counter() - start) / args.repeat * 1e3
            print(f"{images:>7} x {per:<4} {torch_ms:>7.2f} ms {ort_ms:>10.2f} ms {torch_ms / ort_ms:>9.2f}x "
                  f"{diff:>11.1e}")


if __name__ == "__main__":
    main()

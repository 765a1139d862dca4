"""Encoder backends side by side: torch against ONNX Runtime, in one run, taking turns.

    python bench/bench_backend.py [--n 32] [--model PATH] [--batch-size 16] [--rounds 2] [--workers N]

Per backend: the encoder alone and the decoder's beam search alone (images/s, and the decoder's
share of the model's time), the model alone on decoded photos (images/s), and end-to-end
`index_folders` on N camera-sized (4000x3000) JPEGs (photos/s). The best of the rounds is kept,
so a busy spell of the machine hits both backends. CPU only (ONNX Runtime runs the encoder on the CPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_index import BENCH_DIR, _rates, make_camera_jpegs  # noqa: E402


def _split(captioner, decoded: list, batch_size: int) -> tuple[float, float]:
    """(encoder-only images/s, decoder-only images/s) on decoded photos, batch by batch."""
    import torch

    from photocap.model.preprocess import to_tensor

    batches = [torch.stack([to_tensor(img) for img in decoded[i:i + batch_size]])
               for i in range(0, len(decoded), batch_size)]
    enc = dec = 0.0
    with torch.inference_mode():
        captioner._encode(batches[0])  # warm-up
        for batch in batches:
            t = time.perf_counter()
            feats, concepts, _ = captioner._encode(batch)
            enc += time.perf_counter() - t
            t = time.perf_counter()
            captioner.model.decode_features(feats.float(), captioner.beam, captioner.length_penalty, concepts,
                                            captioner.concept_force)
            dec += time.perf_counter() - t
    return len(decoded) / enc, len(decoded) / dec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    import torch

    from photocap.inference import Captioner
    from photocap.library.workers import default_workers
    from photocap.model.preprocess import open_image

    folder = BENCH_DIR / "camera-4000x3000"
    t = time.perf_counter()
    paths = make_camera_jpegs(folder, args.n)
    print(f"{args.n} JPEGs 4000x3000 (ready in {time.perf_counter() - t:.1f} s)")
    t = time.perf_counter()
    captioners = {"torch": Captioner(args.model, device="cpu", backend="torch")}
    print(f"torch backend loaded in {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    captioners["onnx"] = Captioner(args.model, device="cpu", backend="onnx")
    print(f"onnx backend ready in {time.perf_counter() - t:.2f} s (export + check on first use, else the cache)")
    assert captioners["onnx"].backend == "onnx", "the ONNX encoder fell back to torch"
    size = captioners["torch"].image_size
    decoded = [open_image(p, size) for p in paths]
    decoded = [img if img.size == (size, size) else img.resize((size, size)) for img in decoded]
    print(f"{captioners['torch'].model_id}, batch {args.batch_size}, CPUs {os.cpu_count()}, torch threads "
          f"{torch.get_num_threads()}, decode workers "
          f"{args.workers if args.workers is not None else default_workers()}, {args.rounds} round(s)")
    if hasattr(os, "getloadavg"):
        print("load average before: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    best: dict[str, list[float]] = {k: [0.0, 0.0, 0.0, 0.0] for k in captioners}
    for _ in range(args.rounds):
        for name, captioner in captioners.items():
            e, d = _split(captioner, decoded, args.batch_size)
            m, p = _rates(captioner, folder, decoded, args.batch_size, args.workers)
            best[name] = [max(a, b) for a, b in zip(best[name], (e, d, m, p))]
    print(f"{'backend':8} {'encoder':>10} {'decoder':>10} {'dec share':>9} {'model':>10} {'end to end':>11}")
    for name, (e, d, m, p) in best.items():
        share = (1 / d) / (1 / e + 1 / d)
        print(f"{name:8} {e:7.1f}/s {d:9.1f}/s {share:9.0%} {m:7.1f}/s {p:8.1f}/s")
    (e0, _, m0, p0), (e1, _, m1, p1) = best["onnx"], best["torch"]
    print(f"onnx against torch: encoder {e0 / e1:.2f}x, model only {m0 / m1:.2f}x, end to end {p0 / p1:.2f}x")
    if hasattr(os, "getloadavg"):
        print("load average after: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()

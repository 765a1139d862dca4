"""Encoder backends side by side: torch against ONNX Runtime, in one run, taking turns.

    python bench/bench_backend.py [--n 32] [--model PATH] [--batch-size 16] [--rounds 2] [--workers N]
                                  [--baseline REF[:BACKEND]]...

Per backend: the encoder alone and the decoder's beam search alone (images/s, and the decoder's
share of the model's time), the model alone on decoded photos (images/s), and end-to-end
`index_folders` on N camera-sized (4000x3000) JPEGs (photos/s). The best of the rounds is kept,
so a busy spell of the machine hits both backends; the model-only ratio is also printed round by
round (the two backends timed back to back) with its median, which a fast spell of one does not
skew. CPU only (ONNX Runtime runs the encoder on the CPU).

Each end-to-end figure is a fresh process (as `photocap index` is: its decode workers start with
it; the model is loaded and warmed up before the clock starts). ``--baseline REF`` also times
photocap as of git commit REF with the torch backend (``REF:onnx``: with ONNX Runtime), from a
worktree of that commit, taking turns with the others: "today's" indexing speed, for a change to
the pipeline itself. It may be given more than once. A baseline runs the bundled model of its
commit, unless ``--model`` names one model for all (to time the code alone).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_index import BENCH_DIR, make_camera_jpegs, model_only  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# Run in a child process whose PYTHONPATH puts one photocap tree first; uses only the API that
# every photocap since the ONNX backend has (Captioner, CaptionIndex, index_folders, IndexOptions).
_CHILD = """
import json, sys, tempfile, time
from pathlib import Path

def main():
    folder, model, backend, batch, workers = sys.argv[1:6]
    from PIL import Image
    import photocap
    from photocap.captioner import Captioner
    from photocap.index.store import CaptionIndex
    from photocap.library.pipeline import IndexOptions, index_folders
    cap = Captioner(model, device="cpu", backend=backend)
    cap.describe_images([Image.new("RGB", (cap.image_size, cap.image_size), (i * 9, 90, 200)) for i in range(16)])
    opts = IndexOptions(batch_size=int(batch), workers=None if workers == "default" else int(workers))
    with tempfile.TemporaryDirectory() as tmp:
        with CaptionIndex.open(Path(tmp) / "i.db") as idx:
            t = time.perf_counter()
            s = index_folders([folder], idx, lambda: cap, opts)
            rate = s.captioned / (time.perf_counter() - t)
    print(json.dumps({"rate": rate, "photocap": photocap.__file__, "backend": cap.backend}))

if __name__ == "__main__":
    main()
"""


def end_to_end(tree: Path, folder: Path, model: Path, backend: str, batch_size: int, workers: int | None) -> float:
    """Photos/s of `index_folders` in a fresh process running the photocap in ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(model), backend, str(batch_size),
                          "default" if workers is None else str(workers)],
                         env=env, cwd=tree, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert Path(result["photocap"]).resolve().is_relative_to(tree.resolve()), result
    assert result["backend"] == backend, f"{backend} fell back to {result['backend']}"
    return result["rate"]


def baseline_tree(ref: str) -> Path:
    """A worktree of ``ref`` (made once under the bench folder)."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"], check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = BENCH_DIR / f"photocap-{sha[:12]}"
    if not (tree / "photocap").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(tree), sha],
                       check=True, capture_output=True)
    return tree


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
    ap.add_argument("--baseline", metavar="REF[:BACKEND]", action="append", default=[],
                    help="also time end to end photocap as of this git commit, with its own defaults and the "
                         "torch backend (or the one named); repeatable")
    args = ap.parse_args()

    import torch

    from photocap.captioner import Captioner
    from photocap.library.workers import default_workers
    from photocap.imaging.preprocess import open_image

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
    model_path = captioners["torch"].model_path
    bases = {}
    for spec in args.baseline:
        ref, _, backend = spec.partition(":")
        bases[spec] = (baseline_tree(ref), backend or "torch")
        print(f"baseline: photocap at {ref} ({bases[spec][0].name}), {bases[spec][1]} backend, its default workers")
    size = captioners["torch"].image_size
    decoded = [open_image(p, size) for p in paths]
    decoded = [img if img.size == (size, size) else img.resize((size, size)) for img in decoded]
    print(f"{captioners['torch'].model_id}, batch {args.batch_size}, CPUs {os.cpu_count()}, torch threads "
          f"{torch.get_num_threads()}, decode workers "
          f"{args.workers if args.workers is not None else default_workers()}, {args.rounds} round(s)")
    if hasattr(os, "getloadavg"):
        print("load average before: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    best: dict[str, list[float]] = {k: [0.0, 0.0, 0.0, 0.0] for k in captioners}
    paired: list[float] = []  # each round's model-only ratio, the two backends timed back to back
    base_rates = dict.fromkeys(bases, 0.0)
    for _ in range(args.rounds):
        models = {}
        for name, captioner in captioners.items():
            e, d = _split(captioner, decoded, args.batch_size)
            models[name] = m = model_only(captioner, decoded, args.batch_size)
            p = end_to_end(REPO, folder, model_path, name, args.batch_size, args.workers)
            best[name] = [max(a, b) for a, b in zip(best[name], (e, d, m, p))]
        paired.append(models["onnx"] / models["torch"])
        for spec, (tree, backend) in bases.items():
            model = model_path if args.model else tree / "models" / "photocap-default.safetensors"
            base_rates[spec] = max(base_rates[spec], end_to_end(tree, folder, model, backend, args.batch_size, None))
    print(f"{'backend':8} {'encoder':>10} {'decoder':>10} {'dec share':>9} {'model':>10} {'end to end':>11}")
    for name, (e, d, m, p) in best.items():
        share = (1 / d) / (1 / e + 1 / d)
        print(f"{name:8} {e:7.1f}/s {d:9.1f}/s {share:9.0%} {m:7.1f}/s {p:8.1f}/s")
    (e0, _, m0, p0), (e1, _, m1, p1) = best["onnx"], best["torch"]
    print(f"onnx against torch: encoder {e0 / e1:.2f}x, model only {m0 / m1:.2f}x, end to end {p0 / p1:.2f}x")
    # The bests may come from different spells of a host whose speed varies; each round's own ratio does not.
    print("model only, onnx against torch round by round: " + ", ".join(f"{r:.2f}x" for r in paired)
          + f" (median {statistics.median(paired):.2f}x)")
    for spec, rate in base_rates.items():
        print(f"baseline {spec}: end to end {rate:.1f}/s; this tree against it: "
              f"onnx {p0 / rate:.2f}x, torch {p1 / rate:.2f}x")
    if hasattr(os, "getloadavg"):
        print("load average after: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()

"""Captioners side by side on the CPU: this tree's ONNX captioner (no torch) and torch captioner, and
photocap as of other commits, in one run, taking turns.

    python bench/bench_backend.py [--n 32] [--model PATH] [--batch-size 16] [--rounds 2] [--workers N]
                                  [--baseline REF[:BACKEND]]... [--startup]

Each configuration runs in a fresh process whose PYTHONPATH puts its photocap tree first (a git
worktree of REF for ``--baseline``, made once under the bench folder), and reports: the model alone
on decoded photos (images/s, after a warm-up batch) and end-to-end `index_folders` on N camera-sized
(4000x3000) JPEGs (photos/s; the model loaded and warmed up before the clock starts). The best of the
rounds is kept, so a busy spell of the machine hits every configuration; the model-only ratio of the
ONNX captioner to each baseline is also printed round by round (timed back to back) with its median.
``--startup`` also times `photocap caption` on one photo, start to exit, per configuration (the best
of 3). A baseline runs the bundled model of its commit unless ``--model`` names one for all.
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

from bench_index import BENCH_DIR, make_camera_jpegs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# The API every photocap since the ONNX encoder has: Captioner (photocap.captioner, earlier
# photocap.inference), CaptionIndex, index_folders, IndexOptions.
_CHILD = """
import json, sys, tempfile, time
from pathlib import Path

def main():
    folder, model, backend, batch, workers, n = sys.argv[1:7]
    batch, n = int(batch), int(n)
    from PIL import Image
    import photocap
    if (Path(photocap.__file__).parent / "captioner").is_dir():  # (not by ImportError: an editable
        from photocap.captioner import Captioner                  # install's finder may supply it)
    else:
        from photocap.inference import Captioner
    from photocap.index.store import CaptionIndex
    from photocap.library.pipeline import IndexOptions, index_folders
    cap = Captioner(model, device="cpu", backend=backend)
    size = cap.image_size
    photos = sorted(Path(folder).glob("*.jpg"))[:n]
    decoded = []
    for p in photos:
        img = Image.open(p)
        img.draft("RGB", (size * 2, size * 2))
        decoded.append(img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
    cap.describe_images(decoded[:batch])
    t = time.perf_counter()
    for i in range(0, len(decoded), batch):
        cap.describe_images(decoded[i:i + batch])
    model_rate = len(decoded) / (time.perf_counter() - t)
    opts = IndexOptions(batch_size=batch, workers=None if workers == "default" else int(workers))
    with tempfile.TemporaryDirectory() as tmp:
        with CaptionIndex.open(Path(tmp) / "i.db") as idx:
            t = time.perf_counter()
            s = index_folders([folder], idx, lambda: cap, opts)
            rate = s.captioned / (time.perf_counter() - t)
    print(json.dumps({"model": model_rate, "end_to_end": rate, "photocap": photocap.__file__,
                      "backend": cap.backend}))

main()
"""


def run_child(tree: Path, folder: Path, model: Path, backend: str, batch_size: int, workers: int | None,
              n: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(model), backend, str(batch_size),
                           "default" if workers is None else str(workers), str(n)],
                          env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"photocap in {tree} ({backend}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["photocap"]).resolve().is_relative_to(tree.resolve()), result
    assert backend == "auto" or result["backend"] == backend, f"{backend} fell back to {result['backend']}"
    return result


def startup(tree: Path, model: Path, backend: str, photo: Path) -> float:
    """Seconds from start to exit of `photocap caption PHOTO` (best of 3)."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONWARNINGS="ignore")
    code = "from photocap.cli import cli; cli()"
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, "caption", "--backend", backend, "--model", str(model),
                        str(photo)], env=env, cwd=tree, check=True, capture_output=True)
        best = min(best, time.perf_counter() - t)
    return best


def baseline_tree(ref: str) -> Path:
    """A worktree of ``ref`` (made once under the bench folder)."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"], check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = BENCH_DIR / f"photocap-{sha[:12]}"
    if not (tree / "photocap").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(tree), sha],
                       check=True, capture_output=True)
    return tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--baseline", metavar="REF[:BACKEND]", action="append", default=[],
                    help="also time photocap as of this git commit with the backend named (default: auto, the "
                         "commit's own default); repeatable")
    ap.add_argument("--startup", action="store_true", help="also time `photocap caption` on one photo")
    args = ap.parse_args()

    folder = BENCH_DIR / "camera-4000x3000"
    paths = make_camera_jpegs(folder, args.n)
    here_model = args.model or REPO / "models" / "photocap-default.safetensors"
    configs = {"onnx": (REPO, "onnx", here_model), "torch": (REPO, "torch", here_model)}
    for spec in args.baseline:
        ref, _, backend = spec.partition(":")
        tree = baseline_tree(ref)
        configs[spec] = (tree, backend or "auto", args.model or tree / "models" / "photocap-default.safetensors")
    print(f"{args.n} JPEGs 4000x3000, batch {args.batch_size}, CPUs {os.cpu_count()}, {args.rounds} round(s); "
          + "; ".join(f"{k}: {t.name} {b}" for k, (t, b, _) in configs.items()))
    if hasattr(os, "getloadavg"):
        print("load average before: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    best = {k: {"model": 0.0, "end_to_end": 0.0} for k in configs}
    paired: dict[str, list[float]] = {k: [] for k in configs if k != "onnx"}
    for _ in range(args.rounds):
        rates = {}
        for name, (tree, backend, model) in configs.items():
            rates[name] = run_child(tree, folder, model, backend, args.batch_size, args.workers, args.n)
            for key in best[name]:
                best[name][key] = max(best[name][key], rates[name][key])
        for name in paired:
            paired[name].append(rates["onnx"]["model"] / rates[name]["model"])
    print(f"{'captioner':24} {'model only':>11} {'end to end':>11}")
    for name, r in best.items():
        print(f"{name:24} {r['model']:8.1f}/s {r['end_to_end']:8.1f}/s")
    for name in paired:
        print(f"onnx against {name}: model only {best['onnx']['model'] / best[name]['model']:.2f}x, end to end "
              f"{best['onnx']['end_to_end'] / best[name]['end_to_end']:.2f}x; model only round by round "
              + ", ".join(f"{r:.2f}x" for r in paired[name]) + f" (median {statistics.median(paired[name]):.2f}x)")
    if args.startup:
        for name, (tree, backend, model) in configs.items():
            print(f"startup, `photocap caption` on one photo, {name}: {startup(tree, model, backend, paths[0]):.2f} s")
    if hasattr(os, "getloadavg"):
        print("load average after: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()

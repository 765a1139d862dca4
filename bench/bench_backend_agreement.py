"""Do the two captioners (torch, and the ONNX graphs without torch) give the same results? Captions a
folder (or a file list) with ``--backend torch`` and ``--backend onnx`` and counts identical captions,
and the largest differences of the concepts' scores and of the image vectors.

    python bench/bench_backend_agreement.py ../shared/datasets/coco-dev/Images
    python bench/bench_backend_agreement.py ../shared/datasets/flickr8k/Images \\
        --list ../shared/datasets/flickr8k/Flickr_8k.devImages.txt

Prints one JSON line: images, identical captions, identical top concepts, the worst concept-score
and image-vector differences, and the pairs that differ.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--list", type=Path, default=None, help="file names to read from FOLDER, one a line")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    from photocap.captioner import Captioner

    if args.list is not None:
        paths = [args.folder / line.strip() for line in args.list.read_text().splitlines() if line.strip()]
    else:
        paths = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    runs = {}
    for backend in ("torch", "onnx"):
        captioner = Captioner(args.model, device="cpu", backend=backend)
        assert captioner.backend == backend, f"{backend} asked, {captioner.backend} runs"
        runs[backend] = {r.path: r for r in captioner.caption_paths(paths, batch_size=args.batch)}
    same = [p for p in runs["torch"] if runs["torch"][p].caption == runs["onnx"][p].caption]
    top = [p for p in runs["torch"]
           if [c.word for c in runs["torch"][p].concepts[:1]] == [c.word for c in runs["onnx"][p].concepts[:1]]]
    differ = [(Path(p).name, runs["torch"][p].caption, runs["onnx"][p].caption)
              for p in runs["torch"] if p not in set(same)]
    score_diff = vector_diff = 0.0
    for p, t in runs["torch"].items():
        o = runs["onnx"][p]
        ts, os_ = {c.word: c.score for c in t.concepts}, {c.word: c.score for c in o.concepts}
        score_diff = max([score_diff, *(abs(ts[w] - os_[w]) for w in ts.keys() & os_.keys())])
        if t.image_vector is not None and o.image_vector is not None:
            diff = np.abs(np.frombuffer(t.image_vector, np.float32) - np.frombuffer(o.image_vector, np.float32))
            vector_diff = max(vector_diff, float(diff.max()))
    print(json.dumps({"images": len(runs["torch"]), "identical_captions": len(same),
                      "identical_top_concept": len(top), "max_concept_score_diff": score_diff,
                      "max_image_vector_diff": vector_diff, "differ": differ[:20]}))


if __name__ == "__main__":
    main()

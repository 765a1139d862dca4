"""What the concept head costs, and why it runs the original top blocks.

    python bench/bench_concepts.py [--n 64] [--threads 2] [--model PATH] [--photos DIR]

The bundled model fine-tunes its encoder's top block for captions; the ImageNet classifier was
trained on the original block's output. The concept head therefore runs frozen copies of the
original top block and head beside the tuned ones. This prints:

- encoder images/s without concepts, with the concept head, and the ratio;
- how often the classifier's top concept stays the same if it were fed the *tuned* block's
  features instead (the shortcut that would cost nothing), on the photos given (default: the
  sample photos and scikit-image's, if installed, repeated to N).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "photos"


def _photos(folder: Path | None) -> list:
    from PIL import Image

    if folder is not None:
        return [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.jpg"))]
    images = [Image.open(p).convert("RGB") for p in sorted(EXAMPLES.glob("*.jpg"))]
    try:
        from skimage import data

        for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                     "retina", "colorwheel", "eagle"):
            images.append(Image.fromarray(getattr(data, name)()).convert("RGB"))
        images.append(Image.fromarray(data.stereo_motorcycle()[0]).convert("RGB"))
    except ImportError:
        pass
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--photos", type=Path, default=None, help="a folder of JPEGs to check agreement on")
    args = parser.parse_args()

    import torch

    from photocap.model.checkpoint import load_model
    from photocap.model.preprocess import to_tensor
    from photocap.settings import default_model_path

    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model or default_model_path())
    encoder = model.encoder
    if encoder.concept_head is None:
        raise SystemExit("this model has no concept head")
    size = model.cfg.image_size
    photos = _photos(args.photos)
    batch = torch.stack([to_tensor(photos[i % len(photos)].resize((size, size))) for i in range(args.n)])

    def timed(fn) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            with torch.inference_mode():
                for i in range(0, args.n, 16):
                    fn(batch[i : i + 16])
            best = min(best, time.perf_counter() - start)
        return args.n / best

    plain = timed(encoder)
    with_concepts = timed(encoder.encode)
    print(f"{model.cfg.model_id}, {args.n} images, {args.threads} threads")
    print(f"encoder without concepts: {plain:6.1f} images/s")
    print(f"encoder with concepts:    {with_concepts:6.1f} images/s ({with_concepts / plain:.2f}x, "
          f"{(1 / with_concepts - 1 / plain) * 1000:.1f} ms a photo for the original top block, head and classifier)")

    with torch.inference_mode():
        unique = torch.stack([to_tensor(p.resize((size, size))) for p in photos])
        grid, logits = encoder.encode(unique)
        shortcut = encoder.concept_head.fc(grid.mean(dim=1))  # the tuned block's features, classified
        words = model.class_word
        original, tuned = words[logits.argmax(1)], words[shortcut.argmax(1)]
    same = int((original == tuned).sum())
    print(f"top concept through the tuned block agrees with the original's on {same} of {len(photos)} photos")
    for i in range(len(photos)):
        if original[i] != tuned[i]:
            print(f"  photo {i}: original {model.concepts.words[int(original[i])].word!r}, "
                  f"tuned {model.concepts.words[int(tuned[i])].word!r}")


if __name__ == "__main__":
    main()

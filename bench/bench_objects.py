"""Where captions miss a photo's largest object: in the caption, or already in the concepts?

    python bench/bench_objects.py DIR [--model PATH] [--concept-force P] [--misses]

DIR holds ``Images/`` and ``objects.json`` (file name -> [[COCO category, area], ...], largest
first), as ``../shared/datasets/coco-dev/`` does. For the photos whose largest object is not a
person, it prints how many captions name that object (photocap's own rule,
``photocap.training.captionstats.names_object``, the one `photocap evaluate` uses), and how many
of the photo's concepts (the encoder's ImageNet classifier, through the concept table) name it:
first, or anywhere in the top 5. A miss whose object is in no concept cannot be mended by the
decoder (copying, forcing): it needs a better concept source. ``--misses`` lists each miss with
its caption and top concepts.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="a folder with Images/ and objects.json")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--concept-force", type=float, default=None, help="default: the model's own setting")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--misses", action="store_true", help="list every photo whose caption misses its object")
    args = ap.parse_args()

    from photocap.captioner import Captioner
    from photocap.imaging.preprocess import open_image
    from photocap.training.captionstats import load_largest_objects, names_object

    largest = load_largest_objects(args.data / "objects.json")
    names = sorted(n for n, obj in largest.items() if obj != "person" and (args.data / "Images" / n).is_file())
    captioner = Captioner(args.model, device="cpu", concept_force=args.concept_force)
    rows = []
    for i in range(0, len(names), args.batch_size):
        chunk = names[i:i + args.batch_size]
        images = [open_image(args.data / "Images" / n, captioner.image_size) for n in chunk]
        for name, d in zip(chunk, captioner.describe_images(images)):
            obj = largest[name]
            ranks = [r for r, c in enumerate(d.concepts) if names_object(c.word, obj)]
            rows.append((name, obj, d.caption, d.concepts, names_object(d.caption, obj), ranks[0] if ranks else None))

    n = len(rows)
    named = [r for r in rows if r[4]]
    missed = [r for r in rows if not r[4]]
    print(f"{captioner.model_id}, concept force {captioner.concept_force}: {n} photos whose largest object "
          f"is not a person")
    print(f"  the caption names it:            {len(named):3} ({len(named) / n:.0%})")
    print(f"  the top concept names it:        {sum(r[5] == 0 for r in rows):3}")
    print(f"  some concept of the top 5 does:  {sum(r[5] is not None for r in rows):3} "
          f"(the most copying could reach: {sum(r[5] is not None or r[4] for r in rows) / n:.0%})")
    print(f"  missed, though the top concept names it:     {sum(r[5] == 0 for r in missed):3}")
    print(f"  missed, though a lower concept names it:     {sum(r[5] not in (None, 0) for r in missed):3}")
    print(f"  missed, and no concept names it:             {sum(r[5] is None for r in missed):3}")
    if args.misses:
        for name, obj, caption, concepts, _, rank in missed:
            top = ", ".join(f"{c.word} {c.score:.2f}" for c in concepts[:3])
            where = "no concept" if rank is None else f"concept {rank + 1}"
            print(f"{obj:>14} ({where:>10}) {caption}  [{top}]  {name}")


if __name__ == "__main__":
    main()

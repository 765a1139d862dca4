"""The user's own photos: a folder with a captions CSV, or (image, caption) rows such as the
captions a user wrote in photocap's index; both split by seed."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from photocap.errors import DatasetError
from photocap.training.datasets.common import (
    CaptionedImage,
    Collector,
    DatasetProblems,
    DatasetSplits,
    Options,
    first_existing,
    nothing_usable_message,
    read_caption_csv,
    seeded_split,
)


def load_folder(path: Path, options: Options) -> DatasetSplits:
    folder = path.parent if path.is_file() else path
    captions = options.captions_file or (path if path.is_file() else None)
    if captions is None:
        captions = first_existing([folder / "captions.csv"], want_dir=False)
    if captions is None or not captions.is_file():
        raise DatasetError(
            f"No captions file for the photos in {folder}: looked for "
            f"{captions or folder / 'captions.csv'}. Write a CSV with the header 'image,caption' "
            "(image paths relative to the folder, one caption per row) and pass it there or "
            "with --captions."
        )
    problems = DatasetProblems()
    collector = Collector(folder, problems, options.check_images)
    read_caption_csv(captions, collector, dedupe=True)
    items = collector.items()
    train, dev, test = seeded_split(items, options)
    source = f"folder at {folder} (captions: {captions.name}), seeded split (seed {options.seed})"
    return DatasetSplits(train, dev, test, problems, source)


def split_captioned(rows: Iterable[tuple[Path, str]], root: Path, *, seed: int = 0, dev_fraction: float = 0.1,
                    source: str = "") -> DatasetSplits:
    """A seeded train/dev split of (image path, caption) rows, e.g. the captions a user wrote
    in photocap's index ("personalise"). Keys are paths relative to ``root``; images that no
    longer exist and empty captions are counted as problems."""
    problems = DatasetProblems()
    items: dict[str, list[str]] = {}
    images: dict[str, Path] = {}
    for image, caption in rows:
        image = Path(image)
        if not caption or not caption.strip():
            problems.add("empty_captions", str(image))
            continue
        if not image.is_file():
            problems.add("missing_images", str(image))
            continue
        try:
            key = image.relative_to(root).as_posix()
        except ValueError:
            key = image.as_posix()
        items.setdefault(key, []).append(" ".join(caption.split()))
        images[key] = image
    manifest = {k: CaptionedImage(k, images[k], tuple(c)) for k, c in items.items()}
    train, dev, test = seeded_split(manifest, Options(seed, dev_fraction, 0.0, None, True))
    splits = DatasetSplits(train, dev, test, problems, source or f"captions under {root}")
    if not (train or dev):
        raise DatasetError(nothing_usable_message(splits))
    return splits


def load_index(path: Path, options: Options) -> DatasetSplits:
    """The ``index`` kind needs the caption index, which training does not import: the
    front end reads the user's captions and calls :func:`split_captioned`."""
    raise DatasetError(
        "The 'index' dataset is read from photocap's caption index: use "
        "`photocap train --data index FOLDER` (with --db for another index)."
    )

"""Dataset readers: every supported layout becomes one manifest format.

``load_dataset(kind, path)`` returns :class:`DatasetSplits`: lists of
:class:`CaptionedImage` for train, dev and test, plus a :class:`DatasetProblems`
tally of the bad data that was skipped. Bad rows are counted and reported, never
fatal; :class:`~photocap.errors.DatasetError` is raised only when the layout is
not recognised or nothing usable remains.

Kinds:

``flickr8k``
    The Kaggle layout (``Images/`` + ``captions.txt``, a CSV with header
    ``image,caption``) or the original layout (``Flickr8k.token.txt`` with lines
    ``name.jpg#N<TAB>caption``, images in ``Flicker8k_Dataset/``,
    ``Flickr8k_Dataset/`` or ``Images/``). The official split files
    ``Flickr_8k.{train,dev,test}Images.txt`` are used when present (beside the
    captions file, in the dataset folder, or in a ``Flickr8k_text/`` subfolder);
    images listed in no split are then left out. Without split files the split is
    seeded. A Karpathy ``dataset_flickr8k.json`` is accepted too.
``coco``
    A COCO captions JSON (``captions_train2014.json`` style) with its image
    folder, or a folder holding ``annotations/captions_*.json``
    (``captions_val*.json`` becomes dev), or a Karpathy ``dataset_coco.json``.
``folder``
    The user's own photos: a folder plus a CSV (``captions.csv`` in it, or
    ``captions_file=``) with columns ``image,caption``; seeded split.
``index``
    The captions a user wrote in photocap's index; the front end reads them (training
    never imports the index) and calls :func:`split_captioned`.

Nothing here imports torch; nothing happens at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from photocap.errors import DatasetError
from photocap.training.datasets.coco import load_coco
from photocap.training.datasets.common import (
    CaptionedImage,
    DatasetProblems,
    DatasetSplits,
    Options,
    nothing_usable_message,
)
from photocap.training.datasets.flickr8k import load_flickr8k
from photocap.training.datasets.folder import load_folder, load_index, split_captioned

__all__ = [
    "CaptionedImage",
    "DatasetProblems",
    "DatasetSplits",
    "KINDS",
    "load_dataset",
    "split_captioned",
]

KINDS = ("flickr8k", "coco", "folder", "index")


def load_dataset(
    kind: str,
    path: Path,
    *,
    seed: int = 0,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.0,
    captions_file: Path | None = None,
    check_images: bool = True,
) -> DatasetSplits:
    """Read the dataset of ``kind`` at ``path`` into train/dev/test splits.

    ``seed``, ``dev_fraction`` and ``test_fraction`` drive the seeded split used
    when the dataset has no official one (official splits ignore them). The seeded
    split ranks images by a hash of ``(seed, key)``: it does not depend on row
    order and moves few images when images are added. ``captions_file`` overrides
    where the captions are read from (flickr8k and folder kinds).
    ``check_images=True`` stats image files (never decodes them) and drops the
    captions of images that do not exist.
    """
    readers: dict[str, Callable[..., DatasetSplits]] = {
        "flickr8k": load_flickr8k,
        "coco": load_coco,
        "folder": load_folder,
        "index": load_index,
    }
    if kind not in readers:
        raise DatasetError(f"Unknown dataset kind {kind!r}; use one of: {', '.join(KINDS)}.")
    if not (0.0 <= dev_fraction < 1.0 and 0.0 <= test_fraction < 1.0
            and dev_fraction + test_fraction < 1.0):
        raise DatasetError(
            f"dev_fraction ({dev_fraction}) and test_fraction ({test_fraction}) must each be "
            "in [0, 1) and leave something for training."
        )
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"The {kind} dataset path {path} does not exist.")
    path = path.resolve()
    options = Options(seed, dev_fraction, test_fraction,
                      Path(captions_file).expanduser().resolve() if captions_file else None,
                      check_images)
    splits = readers[kind](path, options)
    if not (splits.train or splits.dev or splits.test):
        raise DatasetError(nothing_usable_message(splits))
    return splits

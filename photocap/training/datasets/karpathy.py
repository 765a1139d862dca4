"""Karpathy's split files (dataset_flickr8k.json, dataset_coco.json): images with their split and sentences."""

from __future__ import annotations

from pathlib import Path

from photocap.errors import DatasetError
from photocap.training.datasets.common import (
    FLICKR_IMAGE_DIRS,
    CaptionedImage,
    Collector,
    DatasetProblems,
    DatasetSplits,
    Options,
    key_of,
    load_json,
)


def looks_like_karpathy(path: Path) -> bool:
    return path.name.startswith("dataset_") and path.suffix.lower() == ".json"


_KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "dev", "test": "test"}


def load_karpathy(path: Path, options: Options, kind: str) -> DatasetSplits:
    """Karpathy's ``dataset_*.json``: images with ``filename``, ``split``, ``sentences``."""
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path} is not a Karpathy split file: it needs an 'images' list.")
    entries = [e for e in data["images"] if isinstance(e, dict)]
    first = entries[0] if entries else {}
    first_rel = _karpathy_key(first) if first else None
    root = None
    candidates = [path.parent, path.parent.parent]
    candidates += [d / name for d in candidates for name in FLICKR_IMAGE_DIRS]
    for candidate in candidates:
        if candidate.is_dir() and (first_rel is None or (candidate / first_rel).is_file()):
            root = candidate
            break
    if root is None:
        if options.check_images:
            raise DatasetError(
                f"No image folder found for {path}: looked for {first_rel} under "
                f"{', '.join(str(c) for c in candidates)}."
            )
        root = path.parent
    problems = DatasetProblems()
    collector = Collector(root, problems, options.check_images)
    split_of: dict[str, str] = {}
    for number, entry in enumerate(data["images"]):
        where = f"{path.name} images[{number}]"
        key = _karpathy_key(entry) if isinstance(entry, dict) else None
        sentences = entry.get("sentences") if isinstance(entry, dict) else None
        if not key or not isinstance(sentences, list):
            problems.add("unreadable_rows", f"{where}: needs filename and sentences")
            continue
        split_of[key] = _KARPATHY_SPLITS.get(str(entry.get("split")), "train")
        if not sentences:
            problems.add("images_without_captions", f"{where}: {key} has no sentences")
        for s_number, sentence in enumerate(sentences):
            raw = sentence.get("raw") if isinstance(sentence, dict) else None
            if raw is None and isinstance(sentence, dict) and isinstance(sentence.get("tokens"), list):
                raw = " ".join(map(str, sentence["tokens"]))
            collector.add(key, raw, f"{where}.sentences[{s_number}]")
    items = collector.items()
    splits: dict[str, list[CaptionedImage]] = {"train": [], "dev": [], "test": []}
    for key in sorted(items):
        splits[split_of[key]].append(items[key])
    source = f"{kind} (karpathy split file) at {path}"
    return DatasetSplits(splits["train"], splits["dev"], splits["test"], problems, source)


def _karpathy_key(entry: dict) -> str | None:
    name = entry.get("filename")
    if not isinstance(name, str) or not name.strip():
        return None
    folder = entry.get("filepath")
    return key_of(f"{folder}/{name}" if isinstance(folder, str) and folder else name)

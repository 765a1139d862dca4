"""COCO captions JSONs (captions_train2014.json style) and their image folders."""

from __future__ import annotations

from pathlib import Path

from photocap.errors import DatasetError
from photocap.training.datasets.common import (
    CaptionedImage,
    Collector,
    DatasetProblems,
    DatasetSplits,
    Options,
    first_existing,
    key_of,
    load_json,
    seeded_split,
)
from photocap.training.datasets.karpathy import load_karpathy, looks_like_karpathy


def load_coco(path: Path, options: Options) -> DatasetSplits:
    if path.is_file():
        if looks_like_karpathy(path):
            return load_karpathy(path, options, "coco")
        return _load_coco_files(path.parent, [path], options)
    karpathy = first_existing([path / "dataset_coco.json"], want_dir=False)
    files = sorted(path.glob("annotations/captions_*.json")) or sorted(path.glob("captions_*.json"))
    if not files:
        if karpathy is not None:
            return load_karpathy(karpathy, options, "coco")
        raise DatasetError(
            f"No COCO captions found in {path}: looked for annotations/captions_*.json, "
            "captions_*.json and dataset_coco.json. Point PATH at the captions JSON or its folder."
        )
    return _load_coco_files(path, files, options)


def _load_coco_files(root: Path, files: list[Path], options: Options) -> DatasetSplits:
    """COCO captions JSONs: ``*train*`` files make train, ``*val*`` files dev (if both exist)."""
    train_files = [f for f in files if "val" not in f.stem.lower() and "test" not in f.stem.lower()]
    dev_files = [f for f in files if "val" in f.stem.lower()]
    if not train_files:  # e.g. only captions_val2014.json given: split it
        train_files, dev_files = dev_files or files, []
    problems = DatasetProblems()
    train_items: dict[str, CaptionedImage] = {}
    for f in train_files:
        train_items.update(_read_coco_json(f, problems, options))
    source = f"coco at {root} ({', '.join(f.name for f in train_files + dev_files)})"
    if dev_files:
        dev_items: dict[str, CaptionedImage] = {}
        for f in dev_files:
            dev_items.update(_read_coco_json(f, problems, options))
        train = [train_items[k] for k in sorted(train_items) if k not in dev_items]
        dev = [dev_items[k] for k in sorted(dev_items)]
        return DatasetSplits(train, dev, [], problems, source + ", val file as dev")
    train, dev, test = seeded_split(train_items, options)
    return DatasetSplits(train, dev, test, problems, source + f", seeded split (seed {options.seed})")


def _read_coco_json(path: Path, problems: DatasetProblems, options: Options) -> dict[str, CaptionedImage]:
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DatasetError(
            f"{path} is not a COCO captions file: it needs 'images' (id, file_name) and "
            "'annotations' (image_id, caption) lists."
        )
    names: dict[object, str] = {}
    for number, entry in enumerate(data["images"]):
        if isinstance(entry, dict) and isinstance(entry.get("file_name"), str) \
                and "id" in entry and entry["file_name"].strip():
            names[entry["id"]] = key_of(entry["file_name"])
        else:
            problems.add("unreadable_rows", f"{path.name} images[{number}]: needs id and file_name")
    image_dir = _coco_image_dir(path, next(iter(names.values()), None))
    if image_dir is None:
        if options.check_images:
            split = _coco_split_name(path)
            raise DatasetError(
                f"No image folder found for {path}: looked for {split}/ and images/{split}/ "
                f"beside it and one level up, and for the images beside the JSON. "
                "Unpack the images there."
            )
        image_dir = path.parent / _coco_split_name(path)
    collector = Collector(image_dir, problems, options.check_images)
    for number, ann in enumerate(data["annotations"]):
        where = f"{path.name} annotations[{number}]"
        if not isinstance(ann, dict) or "image_id" not in ann or "caption" not in ann:
            problems.add("unreadable_rows", f"{where}: needs image_id and caption")
            continue
        key = names.get(ann["image_id"])
        if key is None:
            problems.add("captions_without_image", f"{where}: image_id {ann['image_id']!r} is not in 'images'")
            continue
        identity = ("id", ann["id"]) if isinstance(ann.get("id"), (int, str)) else None
        collector.add(key, ann["caption"], where, identity)
    items = collector.items()
    for key in sorted(set(names.values()) - set(collector.captions)):
        problems.add("images_without_captions", f"{path.name}: {key} has no captions")
    return items


def _coco_split_name(path: Path) -> str:
    stem = path.stem
    return stem.split("_", 1)[1] if stem.startswith("captions_") and "_" in stem else stem


def _coco_image_dir(path: Path, first_name: str | None) -> Path | None:
    """The folder holding the images: checked by looking for the first listed image."""
    split = _coco_split_name(path)
    here, up = path.parent, path.parent.parent
    candidates = [here / split, up / split, here / "images" / split, up / "images" / split,
                  here, here / "images", up / "images", up]
    for candidate in candidates:
        if candidate.is_dir() and (first_name is None or (candidate / first_name).is_file()):
            return candidate
    return None

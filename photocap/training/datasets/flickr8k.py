"""Flickr8k: the Kaggle layout (captions.txt CSV) and the original one (Flickr8k.token.txt),
with the official split files when present."""

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
    first_existing,
    is_utf8_clean,
    key_of,
    read_caption_csv,
    read_text,
    seeded_split,
)
from photocap.training.datasets.karpathy import load_karpathy


_FLICKR_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "dev": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}


def load_flickr8k(path: Path, options: Options) -> DatasetSplits:
    if path.is_file() and path.suffix.lower() == ".json":
        return load_karpathy(path, options, "flickr8k")
    root = path.parent if path.is_file() else path
    captions = options.captions_file or (path if path.is_file() else None)
    if captions is None:
        captions = first_existing(
            [root / "captions.txt", root / "Flickr8k.token.txt",
             root / "Flickr8k_text" / "Flickr8k.token.txt"], want_dir=False)
    if captions is None:
        karpathy = first_existing([root / "dataset_flickr8k.json"], want_dir=False)
        if karpathy is not None:
            return load_karpathy(karpathy, options, "flickr8k")
        raise DatasetError(
            f"No Flickr8k captions found in {root}: looked for captions.txt (Kaggle layout), "
            "Flickr8k.token.txt or Flickr8k_text/Flickr8k.token.txt (original layout). "
            "Point PATH at the folder that holds them, or pass the captions file."
        )
    search = [root, captions.parent, captions.parent.parent]
    image_dir = first_existing(d / name for d in search for name in FLICKR_IMAGE_DIRS)
    if image_dir is None:
        nested = first_existing(d / "Flickr8k_Dataset" / "Flicker8k_Dataset" for d in search)
        image_dir = nested
    if image_dir is None:
        if options.check_images:
            raise DatasetError(
                f"No Flickr8k image folder found near {captions}: looked for "
                f"{', '.join(FLICKR_IMAGE_DIRS)} in {root}. Unpack the images there."
            )
        image_dir = root / "Images"

    problems = DatasetProblems()
    collector = Collector(image_dir, problems, options.check_images)
    text = read_text(captions)
    first_line = text.split("\n", 1)[0]
    if "\t" in first_line:
        layout = "original layout"
        _read_flickr_token_lines(text, captions.name, collector)
    else:
        layout = "kaggle layout"
        # Identical captions by different annotators are legitimate here: no dedupe.
        read_caption_csv(captions, collector, dedupe=False)
    items = collector.items()

    split_files = _find_flickr_split_files(root, captions.parent)
    source = f"flickr8k ({layout}) at {root}"
    if split_files:
        train, dev, test, note = _apply_split_files(items, split_files, collector)
        source += f", {note}"
    else:
        train, dev, test = seeded_split(items, options)
        source += f", seeded split (seed {options.seed})"
    return DatasetSplits(train, dev, test, problems, source)


def _read_flickr_token_lines(text: str, name: str, collector: Collector) -> None:
    """Lines ``image.jpg#N<TAB>caption``; a missing ``#N`` is tolerated."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        left, tab, caption = line.partition("\t")
        if not tab or not left.strip():
            collector.problems.add("unreadable_rows", f"{where}: expected image#N<TAB>caption")
            continue
        image, _, index = left.strip().rpartition("#")
        if not image:
            image, index = left.strip(), ""
        key = key_of(image)
        collector.add(key, caption, where, identity=(key, index) if index else None)


def _find_flickr_split_files(root: Path, captions_dir: Path) -> dict[str, Path]:
    dirs: list[Path] = []
    for d in (captions_dir, captions_dir / "Flickr8k_text", root, root / "Flickr8k_text"):
        if d not in dirs:
            dirs.append(d)
    found = {}
    for split, filename in _FLICKR_SPLIT_FILES.items():
        hit = first_existing((d / filename for d in dirs), want_dir=False)
        if hit is not None:
            found[split] = hit
    return found


def _apply_split_files(
    items: dict[str, CaptionedImage], files: dict[str, Path], collector: Collector
) -> tuple[list[CaptionedImage], list[CaptionedImage], list[CaptionedImage], str]:
    """Official splits; without a train file, train is every image in no other split."""
    problems = collector.problems
    named: dict[str, list[str]] = {}
    for split, path in files.items():
        keys = []
        for number, line in enumerate(read_text(path).splitlines(), start=1):
            key = key_of(line)
            if not key:
                continue
            if not is_utf8_clean(key):
                problems.add("unreadable_rows", f"{path.name} line {number}: not valid UTF-8")
                continue
            keys.append(key)
        named[split] = keys
    if "train" not in named:
        others = {k for split in named.values() for k in split}
        named["train"] = [k for k in items if k not in others]
    out: dict[str, list[CaptionedImage]] = {}
    for split in ("train", "dev", "test"):
        chosen: dict[str, CaptionedImage] = {}
        for key in named.get(split, []):
            if key in items:
                chosen[key] = items[key]
            elif key not in collector.captions:
                if collector.checker.exists(collector.image_path(key)):
                    problems.add("images_without_captions",
                                 f"{files[split].name}: {key} has no captions")
                else:
                    problems.add("missing_images",
                                 f"{files[split].name}: {key} has no captions and no image file")
            # else: captioned but missing on disk, already counted
        out[split] = [chosen[k] for k in sorted(chosen)]
    note = "official splits (" + ", ".join(
        f"{s}: {files[s].name}" if s in files else f"{s}: {'rest' if s == 'train' else 'none'}"
        for s in ("train", "dev", "test")) + ")"
    return out["train"], out["dev"], out["test"], note

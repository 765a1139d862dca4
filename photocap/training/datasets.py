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
    Not implemented yet (see :func:`_load_index`).

Nothing here imports torch; nothing happens at import time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from photocap.errors import DatasetError

__all__ = [
    "CaptionedImage",
    "DatasetProblems",
    "DatasetSplits",
    "KINDS",
    "load_dataset",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif")
_EXAMPLES_PER_FIELD = 3
_FLICKR_IMAGE_DIRS = ("Images", "Flicker8k_Dataset", "Flickr8k_Dataset", "images")
_FLICKR_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "dev": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}


@dataclass(frozen=True)
class CaptionedImage:
    """One image and its reference captions."""

    key: str  #: stable id: the image path relative to the image folder (POSIX separators)
    image: Path  #: absolute path of the image file
    captions: tuple[str, ...]  #: raw caption strings (whitespace-normalised, not tokenised)


@dataclass
class DatasetProblems:
    """Bad data that was skipped: counted and reported, not fatal by itself.

    ``missing_images``: distinct images named by the captions, a split file or a
    COCO image list whose file does not exist. ``captions_without_image``: caption
    rows dropped because their image does not exist (or, in COCO, is not listed).
    ``images_without_captions``: images named in a split file or COCO image list
    that have no usable caption. ``unreadable_rows``: rows that could not be
    parsed (short, garbled, not UTF-8). ``duplicate_rows``: rows repeating an
    earlier one (same ``name#N`` line, same COCO annotation id, or in a folder CSV
    the same image and caption); dropped. Identical captions written by different
    annotators (Flickr8k has 9) are kept.
    """

    missing_images: int = 0
    captions_without_image: int = 0
    empty_captions: int = 0
    unreadable_rows: int = 0
    duplicate_rows: int = 0
    images_without_captions: int = 0
    examples: list[str] = field(default_factory=list)  #: a few human-readable examples
    _per_field: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def add(self, name: str, example: str | None = None, count: int = 1) -> None:
        """Count ``count`` problems of kind ``name`` and keep ``example`` if few are kept yet."""
        setattr(self, name, getattr(self, name) + count)
        if example is not None:
            kept = self._per_field.get(name, 0)
            if kept < _EXAMPLES_PER_FIELD:
                self._per_field[name] = kept + 1
                self.examples.append(example)

    @property
    def total(self) -> int:
        """Number of problems of every kind."""
        return (
            self.missing_images + self.captions_without_image + self.empty_captions
            + self.unreadable_rows + self.duplicate_rows + self.images_without_captions
        )

    def summary(self) -> str:
        """One line such as ``"2 missing images, 1 empty caption"`` (``"no problems"`` if none)."""
        parts = []
        for name, label in (
            ("missing_images", "missing image"),
            ("captions_without_image", "caption without image"),
            ("images_without_captions", "image without captions"),
            ("empty_captions", "empty caption"),
            ("unreadable_rows", "unreadable row"),
            ("duplicate_rows", "duplicate row"),
        ):
            n = getattr(self, name)
            if n:
                parts.append(f"{n} {label}{'' if n == 1 else 's'}")
        return ", ".join(parts) if parts else "no problems"


@dataclass
class DatasetSplits:
    """The manifest: train/dev/test lists (each sorted by key) and what was skipped."""

    train: list[CaptionedImage]
    dev: list[CaptionedImage]
    test: list[CaptionedImage]
    problems: DatasetProblems
    source: str  #: e.g. "flickr8k (kaggle layout) at PATH, official splits"


# --------------------------------------------------------------------------- entry point


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
        "flickr8k": _load_flickr8k,
        "coco": _load_coco,
        "folder": _load_folder,
        "index": _load_index,
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
    options = _Options(seed, dev_fraction, test_fraction,
                       Path(captions_file).expanduser().resolve() if captions_file else None,
                       check_images)
    splits = readers[kind](path, options)
    if not (splits.train or splits.dev or splits.test):
        raise DatasetError(_nothing_usable_message(splits))
    return splits


KINDS = ("flickr8k", "coco", "folder", "index")


@dataclass(frozen=True)
class _Options:
    seed: int
    dev_fraction: float
    test_fraction: float
    captions_file: Path | None
    check_images: bool


def _load_index(path: Path, options: _Options) -> DatasetSplits:
    """The ``index`` kind needs the caption index, which training does not import: the
    front end reads the user's captions and calls :func:`split_captioned`."""
    raise DatasetError(
        "The 'index' dataset is read from photocap's caption index: use "
        "`photocap train --data index FOLDER` (with --db for another index)."
    )


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
    train, dev, test = _seeded_split(manifest, _Options(seed, dev_fraction, 0.0, None, True))
    splits = DatasetSplits(train, dev, test, problems, source or f"captions under {root}")
    if not (train or dev):
        raise DatasetError(_nothing_usable_message(splits))
    return splits


def _nothing_usable_message(splits: DatasetSplits) -> str:
    problems = splits.problems
    lines = [f"No usable captioned images in {splits.source} ({problems.summary()})."]
    if problems.examples:
        lines.append("For example:")
        lines.extend(f"  {example}" for example in problems.examples[:6])
    lines.append("Check that the captions name image files that exist under the image folder.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- shared machinery


class _ImageChecker:
    """Cheap existence checks: one directory listing per folder, stat as a fallback."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._listings: dict[Path, frozenset[str]] = {}

    def exists(self, image: Path) -> bool:
        if not self.enabled:
            return True
        folder = image.parent
        names = self._listings.get(folder)
        if names is None:
            try:
                names = frozenset(os.listdir(folder))
            except OSError:
                names = frozenset()
            self._listings[folder] = names
        return image.name in names or image.is_file()


class _Collector:
    """Gathers captions per image key, in first-seen order, counting bad rows."""

    def __init__(self, image_root: Path, problems: DatasetProblems, check_images: bool) -> None:
        self.image_root = image_root
        self.problems = problems
        self.checker = _ImageChecker(check_images)
        self.captions: dict[str, list[str]] = {}
        self.seen: set[object] = set()

    def add(self, key: str, caption: object, where: str, identity: object | None = None) -> None:
        """Add one caption row; ``identity`` (if given) detects repeated rows."""
        if identity is not None:
            if identity in self.seen:
                self.problems.add("duplicate_rows", f"{where}: repeats an earlier row")
                return
            self.seen.add(identity)
        if not isinstance(caption, str):
            self.problems.add("unreadable_rows", f"{where}: caption is not text")
            return
        if not _is_utf8_clean(caption) or not _is_utf8_clean(key):
            self.problems.add("unreadable_rows", f"{where}: not valid UTF-8 (re-save the file as UTF-8)")
            return
        text = " ".join(caption.split())
        if not text:
            self.problems.add("empty_captions", f"{where}: empty caption for {key}")
            return
        self.captions.setdefault(key, []).append(text)

    def image_path(self, key: str) -> Path:
        return self.image_root / key

    def items(self) -> dict[str, CaptionedImage]:
        """Captioned images whose file exists; the others are counted as problems."""
        out: dict[str, CaptionedImage] = {}
        for key, captions in self.captions.items():
            image = self.image_path(key)
            if not self.checker.exists(image):
                self.problems.add("missing_images", f"image not found: {image}")
                self.problems.add("captions_without_image", None, count=len(captions))
                continue
            out[key] = CaptionedImage(key, image, tuple(captions))
        return out


def _is_utf8_clean(text: str) -> bool:
    """False when ``text`` holds bytes smuggled in by ``surrogateescape`` decoding."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_text(path: Path) -> str:
    """The file's text; invalid UTF-8 bytes survive as surrogates, caught per row later."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"Cannot read {path}: {error.strerror or error}.") from error
    return data.decode("utf-8-sig", errors="surrogateescape")


def _key_of(name: str) -> str:
    """Normalise an image name from a captions file into a key (POSIX, no leading ./)."""
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _rank(seed: int, key: str) -> bytes:
    return hashlib.sha1(f"{seed}\0{key}".encode("utf-8", "surrogateescape")).digest()


def _seeded_split(
    items: dict[str, CaptionedImage], options: _Options
) -> tuple[list[CaptionedImage], list[CaptionedImage], list[CaptionedImage]]:
    """Deterministic split with exact sizes: images ranked by a hash of (seed, key)."""
    keys = sorted(items, key=lambda k: _rank(options.seed, k))
    n = len(keys)
    n_test = round(n * options.test_fraction)
    n_dev = round(n * options.dev_fraction)
    if options.test_fraction > 0 and n_test == 0 and n >= 3:
        n_test = 1
    if options.dev_fraction > 0 and n_dev == 0 and n - n_test >= 2:
        n_dev = 1
    test = sorted(keys[:n_test])
    dev = sorted(keys[n_test:n_test + n_dev])
    train = sorted(keys[n_test + n_dev:])
    return [items[k] for k in train], [items[k] for k in dev], [items[k] for k in test]


def _iter_csv_rows(text: str, where: str, problems: DatasetProblems) -> Iterator[tuple[int, list[str]]]:
    """(line number, row) for each CSV row; rows the csv module rejects are counted."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            problems.add("unreadable_rows", f"{where} line {reader.line_num}: {error}")
            continue
        if row:
            yield reader.line_num, row


_IMAGE_COLUMNS = ("image", "image_name", "filename", "file_name", "file", "path", "photo")
_CAPTION_COLUMNS = ("caption", "captions", "text", "description", "comment")


def _read_caption_csv(path: Path, collector: _Collector, *, dedupe: bool) -> None:
    """Feed an ``image,caption`` CSV (header optional) into ``collector``."""
    problems = collector.problems
    rows = _iter_csv_rows(_read_text(path), path.name, problems)
    first = next(rows, None)
    if first is None:
        return
    header = [cell.strip().lower() for cell in first[1]]
    image_col = next((header.index(c) for c in _IMAGE_COLUMNS if c in header), None)
    caption_col = next((header.index(c) for c in _CAPTION_COLUMNS if c in header), None)
    n_header = len(header)
    if image_col is None or caption_col is None:
        if first[1][0].strip().lower().endswith(IMAGE_SUFFIXES):
            image_col, caption_col, n_header = 0, 1, 2  # no header: image,caption
            rows = _chain([first], rows)
        else:
            raise DatasetError(
                f"{path} has no 'image' and 'caption' columns (first row: {first[1]!r}). "
                "Give it a header row 'image,caption' and one caption per row."
            )
    n_cols = max(image_col, caption_col) + 1
    for line, row in rows:
        where = f"{path.name} line {line}"
        if len(row) < n_cols or not row[image_col].strip():
            problems.add("unreadable_rows", f"{where}: expected image,caption, got {row!r}")
            continue
        caption = row[caption_col]
        if caption_col == n_header - 1 and len(row) > n_header:
            caption = ",".join(row[caption_col:])  # unquoted commas inside the last column
        key = _key_of(row[image_col])
        identity = (key, " ".join(caption.split())) if dedupe else None
        collector.add(key, caption, where, identity)


def _chain(first: Iterable[tuple[int, list[str]]], rest: Iterator[tuple[int, list[str]]]):
    yield from first
    yield from rest


def _first_existing(candidates: Iterable[Path], want_dir: bool = True) -> Path | None:
    for candidate in candidates:
        if candidate.is_dir() if want_dir else candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------- flickr8k


def _load_flickr8k(path: Path, options: _Options) -> DatasetSplits:
    if path.is_file() and path.suffix.lower() == ".json":
        return _load_karpathy(path, options, "flickr8k")
    root = path.parent if path.is_file() else path
    captions = options.captions_file or (path if path.is_file() else None)
    if captions is None:
        captions = _first_existing(
            [root / "captions.txt", root / "Flickr8k.token.txt",
             root / "Flickr8k_text" / "Flickr8k.token.txt"], want_dir=False)
    if captions is None:
        karpathy = _first_existing([root / "dataset_flickr8k.json"], want_dir=False)
        if karpathy is not None:
            return _load_karpathy(karpathy, options, "flickr8k")
        raise DatasetError(
            f"No Flickr8k captions found in {root}: looked for captions.txt (Kaggle layout), "
            "Flickr8k.token.txt or Flickr8k_text/Flickr8k.token.txt (original layout). "
            "Point PATH at the folder that holds them, or pass the captions file."
        )
    search = [root, captions.parent, captions.parent.parent]
    image_dir = _first_existing(d / name for d in search for name in _FLICKR_IMAGE_DIRS)
    if image_dir is None:
        nested = _first_existing(d / "Flickr8k_Dataset" / "Flicker8k_Dataset" for d in search)
        image_dir = nested
    if image_dir is None:
        if options.check_images:
            raise DatasetError(
                f"No Flickr8k image folder found near {captions}: looked for "
                f"{', '.join(_FLICKR_IMAGE_DIRS)} in {root}. Unpack the images there."
            )
        image_dir = root / "Images"

    problems = DatasetProblems()
    collector = _Collector(image_dir, problems, options.check_images)
    text = _read_text(captions)
    first_line = text.split("\n", 1)[0]
    if "\t" in first_line:
        layout = "original layout"
        _read_flickr_token_lines(text, captions.name, collector)
    else:
        layout = "kaggle layout"
        # Identical captions by different annotators are legitimate here: no dedupe.
        _read_caption_csv(captions, collector, dedupe=False)
    items = collector.items()

    split_files = _find_flickr_split_files(root, captions.parent)
    source = f"flickr8k ({layout}) at {root}"
    if split_files:
        train, dev, test, note = _apply_split_files(items, split_files, collector)
        source += f", {note}"
    else:
        train, dev, test = _seeded_split(items, options)
        source += f", seeded split (seed {options.seed})"
    return DatasetSplits(train, dev, test, problems, source)


def _read_flickr_token_lines(text: str, name: str, collector: _Collector) -> None:
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
        key = _key_of(image)
        collector.add(key, caption, where, identity=(key, index) if index else None)


def _find_flickr_split_files(root: Path, captions_dir: Path) -> dict[str, Path]:
    dirs: list[Path] = []
    for d in (captions_dir, captions_dir / "Flickr8k_text", root, root / "Flickr8k_text"):
        if d not in dirs:
            dirs.append(d)
    found = {}
    for split, filename in _FLICKR_SPLIT_FILES.items():
        hit = _first_existing((d / filename for d in dirs), want_dir=False)
        if hit is not None:
            found[split] = hit
    return found


def _apply_split_files(
    items: dict[str, CaptionedImage], files: dict[str, Path], collector: _Collector
) -> tuple[list[CaptionedImage], list[CaptionedImage], list[CaptionedImage], str]:
    """Official splits; without a train file, train is every image in no other split."""
    problems = collector.problems
    named: dict[str, list[str]] = {}
    for split, path in files.items():
        keys = []
        for number, line in enumerate(_read_text(path).splitlines(), start=1):
            key = _key_of(line)
            if not key:
                continue
            if not _is_utf8_clean(key):
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


# --------------------------------------------------------------------------- coco


def _load_coco(path: Path, options: _Options) -> DatasetSplits:
    if path.is_file():
        if _looks_like_karpathy(path):
            return _load_karpathy(path, options, "coco")
        return _load_coco_files(path.parent, [path], options)
    karpathy = _first_existing([path / "dataset_coco.json"], want_dir=False)
    files = sorted(path.glob("annotations/captions_*.json")) or sorted(path.glob("captions_*.json"))
    if not files:
        if karpathy is not None:
            return _load_karpathy(karpathy, options, "coco")
        raise DatasetError(
            f"No COCO captions found in {path}: looked for annotations/captions_*.json, "
            "captions_*.json and dataset_coco.json. Point PATH at the captions JSON or its folder."
        )
    return _load_coco_files(path, files, options)


def _load_coco_files(root: Path, files: list[Path], options: _Options) -> DatasetSplits:
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
    train, dev, test = _seeded_split(train_items, options)
    return DatasetSplits(train, dev, test, problems, source + f", seeded split (seed {options.seed})")


def _load_json(path: Path) -> object:
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise DatasetError(f"Cannot read {path} as JSON: {error}.") from error


def _read_coco_json(path: Path, problems: DatasetProblems, options: _Options) -> dict[str, CaptionedImage]:
    data = _load_json(path)
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
            names[entry["id"]] = _key_of(entry["file_name"])
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
    collector = _Collector(image_dir, problems, options.check_images)
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


# --------------------------------------------------------------------------- karpathy


def _looks_like_karpathy(path: Path) -> bool:
    return path.name.startswith("dataset_") and path.suffix.lower() == ".json"


_KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "dev", "test": "test"}


def _load_karpathy(path: Path, options: _Options, kind: str) -> DatasetSplits:
    """Karpathy's ``dataset_*.json``: images with ``filename``, ``split``, ``sentences``."""
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path} is not a Karpathy split file: it needs an 'images' list.")
    entries = [e for e in data["images"] if isinstance(e, dict)]
    first = entries[0] if entries else {}
    first_rel = _karpathy_key(first) if first else None
    root = None
    candidates = [path.parent, path.parent.parent]
    candidates += [d / name for d in candidates for name in _FLICKR_IMAGE_DIRS]
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
    collector = _Collector(root, problems, options.check_images)
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
    return _key_of(f"{folder}/{name}" if isinstance(folder, str) and folder else name)


# --------------------------------------------------------------------------- folder


def _load_folder(path: Path, options: _Options) -> DatasetSplits:
    folder = path.parent if path.is_file() else path
    captions = options.captions_file or (path if path.is_file() else None)
    if captions is None:
        captions = _first_existing([folder / "captions.csv"], want_dir=False)
    if captions is None or not captions.is_file():
        raise DatasetError(
            f"No captions file for the photos in {folder}: looked for "
            f"{captions or folder / 'captions.csv'}. Write a CSV with the header 'image,caption' "
            "(image paths relative to the folder, one caption per row) and pass it there or "
            "with --captions."
        )
    problems = DatasetProblems()
    collector = _Collector(folder, problems, options.check_images)
    _read_caption_csv(captions, collector, dedupe=True)
    items = collector.items()
    train, dev, test = _seeded_split(items, options)
    source = f"folder at {folder} (captions: {captions.name}), seeded split (seed {options.seed})"
    return DatasetSplits(train, dev, test, problems, source)

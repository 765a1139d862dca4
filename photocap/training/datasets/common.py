"""What every dataset reader shares: the manifest types, the bad-row tally, caption
collection, the CSV reader and the seeded split. Nothing here imports torch."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from photocap.errors import DatasetError
from photocap.settings import IMAGE_SUFFIXES

_CSV_IMAGE_SUFFIXES = tuple(sorted(IMAGE_SUFFIXES))  # a header-less CSV starts with an image name
_EXAMPLES_PER_FIELD = 3
FLICKR_IMAGE_DIRS = ("Images", "Flicker8k_Dataset", "Flickr8k_Dataset", "images")


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


@dataclass(frozen=True)
class Options:
    """``load_dataset``'s reading options, passed to every reader."""

    seed: int
    dev_fraction: float
    test_fraction: float
    captions_file: Path | None
    check_images: bool


def nothing_usable_message(splits: DatasetSplits) -> str:
    problems = splits.problems
    lines = [f"No usable captioned images in {splits.source} ({problems.summary()})."]
    if problems.examples:
        lines.append("For example:")
        lines.extend(f"  {example}" for example in problems.examples[:6])
    lines.append("Check that the captions name image files that exist under the image folder.")
    return "\n".join(lines)


class ImageChecker:
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


class Collector:
    """Gathers captions per image key, in first-seen order, counting bad rows."""

    def __init__(self, image_root: Path, problems: DatasetProblems, check_images: bool) -> None:
        self.image_root = image_root
        self.problems = problems
        self.checker = ImageChecker(check_images)
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
        if not is_utf8_clean(caption) or not is_utf8_clean(key):
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


def is_utf8_clean(text: str) -> bool:
    """False when ``text`` holds bytes smuggled in by ``surrogateescape`` decoding."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_text(path: Path) -> str:
    """The file's text; invalid UTF-8 bytes survive as surrogates, caught per row later."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"Cannot read {path}: {error.strerror or error}.") from error
    return data.decode("utf-8-sig", errors="surrogateescape")


def key_of(name: str) -> str:
    """Normalise an image name from a captions file into a key (POSIX, no leading ./)."""
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _rank(seed: int, key: str) -> bytes:
    return hashlib.sha1(f"{seed}\0{key}".encode("utf-8", "surrogateescape")).digest()


def seeded_split(
    items: dict[str, CaptionedImage], options: Options
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


def read_caption_csv(path: Path, collector: Collector, *, dedupe: bool) -> None:
    """Feed an ``image,caption`` CSV (header optional) into ``collector``."""
    problems = collector.problems
    rows = _iter_csv_rows(read_text(path), path.name, problems)
    first = next(rows, None)
    if first is None:
        return
    header = [cell.strip().lower() for cell in first[1]]
    image_col = next((header.index(c) for c in _IMAGE_COLUMNS if c in header), None)
    caption_col = next((header.index(c) for c in _CAPTION_COLUMNS if c in header), None)
    n_header = len(header)
    if image_col is None or caption_col is None:
        if first[1][0].strip().lower().endswith(_CSV_IMAGE_SUFFIXES):
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
        key = key_of(row[image_col])
        identity = (key, " ".join(caption.split())) if dedupe else None
        collector.add(key, caption, where, identity)


def _chain(first: Iterable[tuple[int, list[str]]], rest: Iterator[tuple[int, list[str]]]):
    yield from first
    yield from rest


def first_existing(candidates: Iterable[Path], want_dir: bool = True) -> Path | None:
    for candidate in candidates:
        if candidate.is_dir() if want_dir else candidate.is_file():
            return candidate
    return None


def load_json(path: Path) -> object:
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise DatasetError(f"Cannot read {path} as JSON: {error}.") from error

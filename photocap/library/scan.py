"""Find photos under folders, cheaply, and fingerprint their content.

The scan is the hot path of a re-index: for an unchanged library it is all the
work there is. It uses :func:`os.scandir` (the file type comes from the
directory entry, so no extra system call) and exactly one ``stat`` per image
file, and never opens a file.

Rules:

* only files whose lower-case suffix is in :data:`photocap.settings.IMAGE_SUFFIXES`
  (or the ``suffixes`` given) are yielded; ``.xmp`` sidecars never are;
* hidden files and folders (name starting with ``.``) are skipped; photocap's own
  stale temp files among them are noted in ``ScanStats.temp_files`` for removal;
* ``exclude`` globs are matched against each entry's name, its path relative to the
  root it was found under, and its absolute path (``fnmatch`` rules, ``*`` also
  crosses ``/``); an excluded folder is not entered (:func:`excluded`, also used by
  the watcher through :func:`wanted`, so the rule lives here only);
* roots are made absolute and resolved (:func:`normalise_roots`): a library reached
  through a symbolic link and its target are one library, with one set of paths;
* symbolic links are not followed unless ``follow_symlinks``; when they are,
  each folder is entered at most once (tracked by ``(st_dev, st_ino)``), so link
  loops end.

:func:`content_hash` identifies a file's content so that a moved or renamed photo
keeps its caption; see its docstring for what it reads.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat as stat_mod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from photocap.errors import MissingRootError
from photocap.metadata.atomic import TEMP_SUFFIX
from photocap.settings import IMAGE_SUFFIXES

SIDECAR_SUFFIX = ".xmp"

# content_hash: files up to this size are hashed whole; larger ones are sampled.
HASH_CHUNK = 1 << 20  # 1 MiB
HASH_WHOLE_LIMIT = 3 * HASH_CHUNK
HASH_PREFIX = "b2s1:"  # scheme id, so a future scheme can tell old hashes apart


@dataclass(frozen=True, slots=True)
class ScanEntry:
    """One image file found by the scan, with its stat fingerprint."""

    path: str  # absolute path, as found (symlinked folders keep their link name)
    size: int
    mtime_ns: int

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9


@dataclass
class ScanStats:
    """What a scan saw besides the images it yielded (for summaries and tests)."""

    folders: int = 0
    files: int = 0  # images yielded
    skipped_hidden: int = 0
    skipped_excluded: int = 0
    skipped_unsupported: int = 0  # suffix known to photocap but not decodable here (e.g. HEIC)
    loops: int = 0  # folders not entered again when following symlinks
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    temp_files: list[str] = field(default_factory=list)  # photocap temp files seen (maybe stale)


@dataclass(frozen=True)
class Root:
    """A folder or file to index or watch, as photocap stores its paths."""

    path: str  # absolute, symbolic links resolved
    alias: str | None = None  # the absolute path as given, when a link led to ``path``

    @property
    def is_dir(self) -> bool:
        return os.path.isdir(self.path)

    def contains(self, path: str) -> bool:
        return path == self.path or is_under(path, self.path)


def resolve(path: str | os.PathLike[str]) -> str:
    """The path photocap stores for ``path``: absolute, ``~`` expanded, links resolved."""
    return os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(path))))


def is_under(path: str, folder: str) -> bool:
    """True if ``path`` is strictly below ``folder`` (both absolute)."""
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def normalise_roots(roots: Iterable[str | os.PathLike[str]], *, must_exist: bool = True) -> list[Root]:
    """THE root rule: resolved roots, without duplicates or roots nested in another root.

    ``~/Pictures`` (a link to ``/data/photos``) and ``/data/photos`` are one root,
    ``/data/photos``. With ``must_exist`` a root that is not there raises
    :class:`~photocap.errors.MissingRootError` (an unmounted drive?).
    """
    found: dict[str, Root] = {}
    for raw in roots:
        given = os.path.abspath(os.path.expanduser(os.fspath(raw)))
        real = os.path.realpath(given)
        if must_exist and not os.path.exists(real):
            raise MissingRootError(given)
        if real not in found or found[real].alias is None:
            found[real] = Root(real, given if given != real else None)
    kept: list[Root] = []
    for path in sorted(found):
        if not any(is_under(path, k.path) for k in kept if os.path.isdir(k.path) or not must_exist):
            kept.append(found[path])
    return kept


def supported_suffixes() -> frozenset[str]:
    """Image suffixes this installation can decode: HEIC/HEIF only with pillow-heif."""
    import importlib.util

    if importlib.util.find_spec("pillow_heif") is not None:
        return IMAGE_SUFFIXES
    return IMAGE_SUFFIXES - {".heic", ".heif"}


def excluded(patterns: tuple[str, ...], name: str, rel: str, absolute: str) -> bool:
    """THE exclude rule for one entry: a glob matches its name, its path below the root,
    or its absolute path."""
    return any(
        fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(absolute, p)
        for p in patterns
    )


def wanted(path: str, root: str, *, exclude: tuple[str, ...] = (),
           suffixes: frozenset[str] | None = None) -> bool:
    """Whether the scan of ``root`` would yield ``path`` (for paths met one at a time, e.g.
    by the watcher): a photo suffix, no hidden part below the root, nothing excluded."""
    if not is_image_path(path, suffixes):
        return False
    parts = os.path.relpath(path, root).split(os.sep)
    if any(part.startswith(".") for part in parts):
        return False
    for i, name in enumerate(parts):
        rel = os.sep.join(parts[: i + 1])
        if excluded(exclude, name, rel, os.path.join(root, rel)):
            return False
    return True


def scan(
    roots: Iterable[str | os.PathLike[str]],
    *,
    exclude: Iterable[str] = (),
    follow_symlinks: bool = False,
    suffixes: frozenset[str] | None = None,
    stats: ScanStats | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[ScanEntry]:
    """Yield every image file under ``roots`` (folders or single files).

    Roots are taken as given (pass :func:`normalise_roots`' paths to store resolved
    paths), made absolute; a root that is not there raises ``FileNotFoundError``
    before anything is yielded for it. Unreadable folders are recorded in
    ``stats.errors`` and skipped. Order: depth first, entries of a folder in name order.
    """
    wanted = supported_suffixes() if suffixes is None else suffixes
    patterns = tuple(exclude)
    st = stats if stats is not None else ScanStats()
    seen_dirs: set[tuple[int, int]] = set()
    for root in roots:
        root_abs = os.path.abspath(os.fspath(root))
        root_stat = os.stat(root_abs)  # FileNotFoundError / PermissionError to the caller
        if not stat_mod.S_ISDIR(root_stat.st_mode):
            suffix = os.path.splitext(root_abs)[1].lower()
            if suffix in wanted and suffix != SIDECAR_SUFFIX:
                st.files += 1
                yield ScanEntry(root_abs, root_stat.st_size, root_stat.st_mtime_ns)
            elif suffix in IMAGE_SUFFIXES:
                st.skipped_unsupported += 1
            continue
        yield from _walk(root_abs, wanted, patterns, follow_symlinks, st, seen_dirs, should_stop)


def _walk(
    root: str,
    wanted: frozenset[str],
    patterns: tuple[str, ...],
    follow: bool,
    st: ScanStats,
    seen_dirs: set[tuple[int, int]],
    should_stop: Callable[[], bool] | None,
) -> Iterator[ScanEntry]:
    if follow:
        rs = os.stat(root)
        if (rs.st_dev, rs.st_ino) in seen_dirs:
            st.loops += 1
            return
        seen_dirs.add((rs.st_dev, rs.st_ino))
    prefix_len = len(root.rstrip(os.sep)) + 1
    stack = [root]
    while stack:
        if should_stop is not None and should_stop():
            return
        folder = stack.pop()
        st.folders += 1
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            st.errors.append((folder, exc.strerror or str(exc)))
            continue
        subdirs: list[str] = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                st.skipped_hidden += 1
                if name.endswith(TEMP_SUFFIX):
                    st.temp_files.append(entry.path)
                continue
            if patterns and excluded(patterns, name, entry.path[prefix_len:], entry.path):
                st.skipped_excluded += 1
                continue
            try:
                if entry.is_dir(follow_symlinks=follow):
                    if follow:
                        ds = entry.stat(follow_symlinks=True)
                        key = (ds.st_dev, ds.st_ino)
                        if key in seen_dirs:
                            st.loops += 1
                            continue
                        seen_dirs.add(key)
                    subdirs.append(entry.path)
                    continue
                suffix = os.path.splitext(name)[1].lower()
                if not entry.is_file(follow_symlinks=follow):
                    odd = _not_a_file(entry) if suffix in wanted else None
                    if odd is not None:  # named like a photo, but nothing to read: say so, never open it
                        st.errors.append((entry.path, odd))
                    continue  # (a link to a file, when not following links, is passed over quietly)
                if suffix not in wanted or suffix == SIDECAR_SUFFIX:
                    if suffix in IMAGE_SUFFIXES:
                        st.skipped_unsupported += 1
                    continue
                fs = entry.stat(follow_symlinks=follow)
            except OSError as exc:
                st.errors.append((entry.path, exc.strerror or str(exc)))
                continue
            st.files += 1
            yield ScanEntry(entry.path, fs.st_size, fs.st_mtime_ns)
        stack.extend(reversed(subdirs))  # pop() then visits them in name order


def _not_a_file(entry: os.DirEntry[str]) -> str | None:
    """Why an entry named like a photo is not one (None: a link to a file, not followed)."""
    import stat

    try:
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            os.stat(entry.path)  # raises for a link to nothing
            return None
    except FileNotFoundError:
        return "a symbolic link to nothing (its target is gone)"
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISFIFO(mode):
        return "not a photo file: it is a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "not a photo file: it is a socket"
    return "not a photo file: it is a device or another special file"


def content_hash(path: str | os.PathLike[str]) -> str:
    """A content fingerprint used to recognise a moved, renamed or touched photo.

    BLAKE2b (128-bit digest) over the file size and, for files up to 3 MiB, the
    whole file; for larger files, three 1 MiB samples: the start, the middle and
    the end. So hashing a 24 MB camera JPEG reads 3 MiB, not 24.

    The samples cover the parts of an image file that change when it is edited:
    the header (EXIF/XMP, where metadata edits land) and the compressed pixel
    stream (any pixel edit re-encodes it and almost always changes the size and
    the tail). An edit confined to unsampled middle bytes with the size unchanged
    would go unnoticed (the photo would keep its caption); that trade-off makes a
    re-index after a rename of thousands of photos cheap. The value is prefixed
    with a scheme id (``b2s1:``).
    """
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        h.update(size.to_bytes(8, "little"))
        if size <= HASH_WHOLE_LIMIT:
            while chunk := f.read(HASH_CHUNK):
                h.update(chunk)
        else:
            for offset in (0, (size - HASH_CHUNK) // 2, size - HASH_CHUNK):
                f.seek(offset)
                h.update(f.read(HASH_CHUNK))
    return HASH_PREFIX + h.hexdigest()


def is_image_path(path: str | os.PathLike[str], suffixes: frozenset[str] | None = None) -> bool:
    """True if ``path`` looks like a photo the scan would yield (suffix, not hidden, not a sidecar)."""
    p = Path(path)
    wanted = supported_suffixes() if suffixes is None else suffixes
    suffix = p.suffix.lower()
    return suffix in wanted and suffix != SIDECAR_SUFFIX and not p.name.startswith(".")

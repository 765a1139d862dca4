"""Replace a file atomically: temp file in the same folder, verify, rename over.

If anything fails (writing, verifying, the original changing meanwhile), the
original is left exactly as it was and the temp file is removed. A writer killed
outright (SIGKILL, power loss) cannot remove its temp file: the writer holds an
exclusive ``flock`` on it while it lives, so a later run tells a stale temp file
from one being written (:func:`is_stale_temp`) and removes it (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from photocap.errors import MetadataError

try:  # POSIX; elsewhere a temp file is judged by its age alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

TEMP_SUFFIX = ".photocap-tmp"
# ".<photo name>.<8 hex digits>.photocap-tmp", as replace() names them
TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")
STALE_AFTER_S = 5.0  # unlocked and this old: its writer is gone (younger: maybe between creating and locking it)
STALE_AFTER_UNLOCKED_S = 3600.0  # where locks are not available


def is_temp_name(name: str) -> bool:
    """True for the name of one of photocap's own temp files."""
    return name.endswith(TEMP_SUFFIX) and TEMP_NAME.match(name) is not None


def is_stale_temp(path: Path, *, now: float | None = None) -> bool:
    """True if ``path`` is a photocap temp file whose writer is gone (safe to delete)."""
    if not is_temp_name(path.name):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        age = (time.time() if now is None else now) - os.fstat(fd).st_ctime
        if fcntl is None:
            return age >= STALE_AFTER_UNLOCKED_S
        if age < STALE_AFTER_S:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live writer holds it
        return True
    finally:
        os.close(fd)


def remove_stale_temps(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Delete the stale photocap temp files among ``paths``; return those removed."""
    removed = []
    for raw in paths:
        path = Path(raw)
        if is_stale_temp(path):
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(str(path))
    return removed


def name_max(folder: Path) -> int:
    """The longest file name (in bytes) the file system under ``folder`` takes (255 if unknown)."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def fits(path: Path) -> bool:
    """Whether ``path``'s name is short enough for its folder's file system."""
    return len(os.fsencode(path.name)) <= name_max(path.parent)


def temp_name(target: Path) -> str:
    """A hidden temp name beside ``target``, shortened so it is never longer than the limit.

    ``.NAME.<random>.photocap-tmp``, with NAME cut (at a character boundary) where the whole
    would pass the file system's name limit: a photo with a 250-byte name still gets one.
    """
    tail = f".{secrets.token_hex(4)}{TEMP_SUFFIX}"
    room = name_max(target.parent) - len(tail) - 1
    name = target.name
    while name and len(os.fsencode(name)) > room:
        name = name[: max(0, min(len(name) - 1, room))]
    return f".{name}{tail}"


Signature = tuple[int, int, int]  # size, mtime_ns, inode


def signature(path: Path) -> Signature | None:
    """Size, mtime and inode: what must not change between reading and replacing a file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace(
    target: Path,
    data: bytes,
    *,
    verify: Callable[[Path], None],
    expected: tuple[int, int, int] | None,
    keep_mtime: bool,
) -> None:
    """Write ``data`` over ``target`` atomically, after ``verify(temp_path)`` passes.

    ``expected`` is :func:`signature` of ``target`` when it was read (None: it did not
    exist); if the file changed since, nothing is replaced.  Mode, owner (where
    permitted), extended attributes and, with ``keep_mtime``, the modification time
    of an existing target are carried over.
    """
    folder = target.parent
    temp = folder / temp_name(target)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise MetadataError(
            f"{target}: can't create a file in {folder} ({exc.strerror or exc})"
        ) from exc
    try:
        _lock(fd)  # held until the temp file is renamed or removed: it is not stale
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        if expected is not None:
            st = target.stat()
            try:
                os.chown(temp, st.st_uid, st.st_gid)
            except OSError:
                pass  # owner kept only where permitted
            shutil.copystat(target, temp)  # mode, times, xattrs
            if not keep_mtime:
                os.utime(temp)
        verify(temp)
        if signature(target) != expected:
            raise MetadataError(f"{target}: changed while photocap was writing; left as it is")
        os.replace(temp, target)
    except BaseException as exc:
        try:
            temp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise MetadataError(f"{target}: can't replace the file ({exc.strerror or exc})") from exc
        raise
    finally:
        os.close(fd)
    _fsync_dir(folder)


def _lock(fd: int) -> None:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass  # a file system without locks: the age rule still protects it

"""Replace a file atomically: temp file in the same folder, verify, rename over.

If anything fails (writing, verifying, the original changing meanwhile), the
original is left exactly as it was and the temp file is removed.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from photocap.errors import MetadataError

TEMP_SUFFIX = ".photocap-tmp"


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


def signature(path: Path) -> tuple[int, int, int] | None:
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
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
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
    _fsync_dir(folder)

"""One bad file never stops a run: any failure while handling a photo becomes a MetadataError.

The readers and writers raise :class:`MetadataError` for every problem they know
about. A hostile file may still trip something nobody foresaw (a codec's own
exception, an exhausted stack); :func:`per_file` turns that into a per-file
error naming the file, so ``photocap write``/``read`` over a folder go on to
the next photo. Ctrl-C and exits pass through unchanged.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from photocap.errors import MetadataError, PhotocapError

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def per_file(path: str | Path, doing: str) -> Iterator[None]:
    """Run the block for one file; unexpected errors become a MetadataError naming it."""
    try:
        yield
    except PhotocapError:
        raise
    except OSError as exc:
        raise MetadataError(f"{path}: can't {doing} ({exc.strerror or exc})") from exc
    except Exception as exc:  # noqa: BLE001 - includes RecursionError, MemoryError: one file fails, not the run
        raise MetadataError(
            f"{path}: photocap could not {doing} ({type(exc).__name__}: {exc}); the file was left "
            "as it was. This is a bug in photocap: please report it, with the file if you can."
        ) from exc


def guarded(doing: str) -> Callable[[F], F]:
    """Decorate a function whose first argument is a photo's path with :func:`per_file`."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            with per_file(path, doing):
                return fn(path, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate

"""What the watcher tells its front end: :class:`WatchEvent` values, made from the
pipeline's :class:`~photocap.records.FileOutcome` values by :func:`event_for`."""

from __future__ import annotations

import errno
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from photocap.errors import PhotocapError
from photocap.records import FileOutcome, Outcome, Stage


class EventKind(StrEnum):
    STARTED = "started"  # the watcher is running (reason: what it watches)
    CAUGHT_UP = "caught_up"  # the start-up incremental index finished (reason: its summary)
    CAPTIONED = "captioned"  # a photo got a caption (path, caption; batch: model batch size)
    WRITTEN = "written"  # a caption was written into the photo (--write-metadata)
    MOVED = "moved"  # a photo or folder moved; its caption(s) followed (path -> dest)
    MISSING = "missing"  # a photo was deleted or moved away: flagged missing in the index
    FAILED = "failed"  # a photo could not be captioned or written (reason)
    SKIPPED = "skipped"  # a photo was left alone on purpose (reason), or ignored
    ERROR = "error"  # a folder-level problem: folder gone, watch limit, model/database error
    STOPPED = "stopped"  # the watcher stopped (reason: why)


STARTED, CAUGHT_UP, CAPTIONED, WRITTEN, MOVED, MISSING, FAILED, SKIPPED, ERROR, STOPPED = EventKind
EVENT_KINDS = tuple(EventKind)


class WatchError(PhotocapError):
    """The watcher cannot run (no folder can be watched, inotify limits)."""


@dataclass(frozen=True)
class WatchEvent:
    """Something the watcher did or noticed; sent to ``on_event``."""

    kind: EventKind
    path: str | None = None
    caption: str | None = None
    reason: str | None = None
    dest: str | None = None  # MOVED: the new path
    batch: int | None = None  # CAPTIONED: how many photos the model captioned in that batch
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict without empty fields: ``{"event": kind, ...}``."""
        d = {k: v for k, v in asdict(self).items() if v is not None and k != "kind"}
        return {"event": str(self.kind), **d}


_REUSED = {
    Outcome.ADOPTED: "kept the description already in the photo",
    Outcome.COPIED: "same content as an indexed photo; caption reused",
    Outcome.KEPT: "same content as before; caption kept",
}


def event_for(o: FileOutcome, batch: int | None = None) -> WatchEvent | None:
    """The watch event for one outcome (None for outcomes the watcher does not report)."""
    if o.stage is Stage.WRITE:
        if o.outcome is Outcome.WRITTEN:
            return WatchEvent(WRITTEN, o.path, caption=o.caption)
        if o.outcome is Outcome.FAILED:
            return WatchEvent(FAILED, o.path, reason=f"caption not written into the photo: {o.reason}")
        if o.outcome is Outcome.SKIPPED and o.reason:
            return WatchEvent(SKIPPED, o.path, reason=o.reason)
        return None
    if o.outcome is Outcome.CAPTIONED:
        return WatchEvent(CAPTIONED, o.path, caption=o.caption, batch=batch)
    if o.outcome in _REUSED and o.caption:
        return WatchEvent(CAPTIONED, o.path, caption=o.caption, reason=_REUSED[o.outcome])
    if o.outcome is Outcome.MOVED:
        return WatchEvent(MOVED, o.previous, dest=o.path)
    if o.outcome is Outcome.MISSING:
        return WatchEvent(MISSING, o.path)
    if o.outcome is Outcome.FAILED:
        return WatchEvent(FAILED, o.path, reason=o.reason)
    return None


def inotify_limit_message(exc: OSError, root: str) -> str | None:
    """A user message for an inotify limit error (ENOSPC watches, EMFILE instances), else None."""
    if exc.errno == errno.ENOSPC:
        key, value = "max_user_watches", 524288
        what = "the inotify watch limit was reached (one watch per folder)"
    elif exc.errno == errno.EMFILE:
        key, value = "max_user_instances", 512
        what = ("the inotify instance limit (or the open-file limit) was reached "
                "(too many programs watching files)")
    else:
        return None
    current = _read_sysctl(f"/proc/sys/fs/inotify/{key}")
    now = f" (now {current})" if current else ""
    return (
        f"{root}: cannot watch: {what}{now}. Raise it with\n"
        f"  sudo sysctl fs.inotify.{key}={value}\n"
        f"and make it permanent with\n"
        f"  echo fs.inotify.{key}={value} | sudo tee /etc/sysctl.d/90-photocap-watch.conf"
    )


def _read_sysctl(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None

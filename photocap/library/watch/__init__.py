"""``photocap watch``: keep the index (and, optionally, the photos' metadata) current while
photos arrive.

* ``watcher``  :class:`Watcher`: lifecycle, the worker thread, catch-up, hand-over to the pipeline
* ``changes``  what a filesystem event means: settle-queue entries, caption moves, missing flags
* ``settle``   the settle queue: a file is read only once it is completely written
* ``roots``    the watched folders on a watchdog observer; lost and returning drives
* ``events``   :class:`WatchEvent` values, made from the pipeline's per-file outcomes

watchdog and PIL are imported only when a watcher runs.
"""

from photocap.library.watch.events import (
    CAPTIONED,
    CAUGHT_UP,
    ERROR,
    EVENT_KINDS,
    FAILED,
    MISSING,
    MOVED,
    SKIPPED,
    STARTED,
    STOPPED,
    WRITTEN,
    EventKind,
    WatchError,
    WatchEvent,
    inotify_limit_message,
)
from photocap.library.watch.watcher import Watcher, WatchOptions

__all__ = [
    "CAPTIONED", "CAUGHT_UP", "ERROR", "EVENT_KINDS", "FAILED", "MISSING", "MOVED", "SKIPPED", "STARTED",
    "STOPPED", "WRITTEN", "EventKind", "WatchError", "WatchEvent", "Watcher", "WatchOptions",
    "inotify_limit_message",
]

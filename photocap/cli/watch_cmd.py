"""``photocap watch``: caption photos as they arrive in folders.

A thin layer over :class:`photocap.library.watch.Watcher`: options in, one line per
event out (or one JSON object per line with ``--json``). The watcher (and
through the pipeline, torch) is imported inside the command.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from photocap.cli._common import (
    backend_option,
    batch_size_option,
    db_option,
    device_option,
    echo_json,
    json_option,
    model_option,
    resolve_db,
    user_errors,
    warn,
    workers_option,
)

if TYPE_CHECKING:
    from photocap.library.watch import WatchEvent


@click.command()
@click.argument("folders", nargs=-1, required=True,
                type=click.Path(file_okay=False, path_type=Path))
@db_option
@click.option("--write-metadata", is_flag=True,
              help="Also write each new caption into the photo (description and alt-text; "
              "see `photocap write`). The watcher ignores its own writes.")
@device_option
@backend_option
@batch_size_option
@click.option("--settle", type=click.FloatRange(0.05, 3600), default=2.0, show_default=True,
              metavar="SECONDS",
              help="A file is read only once its size and modification time have not changed "
              "for this long (and it decodes completely).")
@workers_option
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Skip files and folders matching GLOB. Repeatable.")
@click.option("--no-catch-up", is_flag=True,
              help="Do not index the folders on start (only react to new events).")
@model_option
@json_option
def watch(
    folders: tuple[Path, ...],
    db_path: Path | None,
    write_metadata: bool,
    device: str,
    backend: str,
    batch_size: int,
    settle: float,
    workers: int | None,
    exclude: tuple[str, ...],
    no_catch_up: bool,
    model_path: Path | None,
    as_json: bool,
) -> None:
    """Watch FOLDERS and caption new photos into the index as they arrive.

    On start, photos added while the watcher was not running are indexed
    (incrementally: unchanged photos cost one stat). Then new and changed
    photos are captioned once they are completely written, in batches; moved
    or renamed photos and folders keep their captions; deleted photos are
    flagged missing. A folder that disappears (an unmounted drive) is reported
    and watched again when it comes back. Ctrl-C or SIGTERM stops cleanly;
    a restart picks up where it stopped.

    Prints one line per captioned photo (path and caption) on stdout, and
    problems with their reasons on stderr; --json prints every event as one
    JSON object per line on stdout instead.

    \b
    Examples:
      photocap watch ~/Pictures
      photocap watch ~/Pictures /media/usb/DCIM --write-metadata
      photocap watch ~/Downloads --settle 5 --device cpu --batch-size 8
      photocap watch ~/Pictures --json | jq -r 'select(.event=="captioned") | .caption'

    \b
    To run it in the background as a systemd user service, see
    packaging/systemd/photocap-watch.service.
    """
    from photocap.library.captioning import default_captioner_factory
    from photocap.library.pipeline import IndexOptions
    from photocap.library.watch import Watcher, WatchOptions

    if model_path is not None and not model_path.is_file():
        raise click.BadParameter(f"{model_path}: no such model file.", param_hint="--model")
    existing = [f for f in folders if f.is_dir()]
    if not existing:
        raise click.UsageError("None of the folders exists: " + ", ".join(map(str, folders)))
    for f in folders:
        if f not in existing:
            warn(f"{f}: not found (drive not mounted?); it will be watched when it appears.")
    options = WatchOptions(
        index=IndexOptions(batch_size=batch_size, workers=workers, exclude=exclude,
                           write_metadata=write_metadata),
        settle=settle,
        catch_up=not no_catch_up,
    )
    printer = _Printer(as_json)
    with user_errors():
        watcher = Watcher(folders, resolve_db(db_path), options,
                          default_captioner_factory(model_path, device=device, backend=backend), printer)
        previous = _on_sigterm(watcher.request_stop)
        try:
            watcher.run_forever()
        finally:
            signal.signal(signal.SIGTERM, previous)


def _on_sigterm(stop: Callable[[], None]) -> Any:
    """Make SIGTERM stop the watcher like Ctrl-C does; return the previous handler."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    return signal.signal(signal.SIGTERM, handler)


class _Printer:
    """Prints watch events: a line each (stdout for captions, stderr for the rest), or JSON."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def __call__(self, e: WatchEvent) -> None:
        from photocap.library.watch import EventKind

        if self.as_json:
            echo_json(e.to_dict())
            return
        path = _short(e.path)
        if e.kind is EventKind.CAPTIONED:
            note = f"  ({e.reason})" if e.reason else ""
            click.echo(f"{path}: {e.caption}{note}")
        elif e.kind is EventKind.WRITTEN:
            warn(f"written: {path}")
        elif e.kind is EventKind.MOVED:
            count = f" ({e.reason})" if e.reason else ""
            warn(f"moved: {path} -> {_short(e.dest)}{count}")
        elif e.kind is EventKind.MISSING:
            warn(f"missing: {path}")
        elif e.kind in (EventKind.FAILED, EventKind.SKIPPED):
            warn(f"{e.kind}: {path}: {e.reason}")
        elif e.kind is EventKind.ERROR:
            warn(f"error: {path + ': ' if e.path else ''}{e.reason}")
        elif e.kind is EventKind.STARTED:
            warn(f"Watching {path}" if e.reason == "watching" else f"{path}: {e.reason}")
        elif e.kind is EventKind.CAUGHT_UP:
            warn(f"Caught up: {e.reason} Waiting for new photos (Ctrl-C to stop).")
        elif e.kind is EventKind.STOPPED:
            warn("Stopped." if e.reason == "stopped" else f"Stopped: {e.reason}")


def _short(path: str | None) -> str:
    """A path relative to the current folder when below it, else as is."""
    if not path:
        return ""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel

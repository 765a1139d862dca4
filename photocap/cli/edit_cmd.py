"""``photocap set-caption`` and ``photocap clear-caption``: a person's captions from the
command line, through the same library path as the desktop app's Save."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click

from photocap.cli._common import (
    db_option,
    device_option,
    echo_json,
    json_option,
    model_option,
    resolve_db,
    user_errors,
    warn,
)
from photocap.records import FileOutcome, Outcome, SkipReason

SET_EPILOG = """
\b
Examples:
  photocap set-caption "Grandma's 80th birthday" party/*.jpg
  photocap set-caption "Our house in winter" house.jpg --write-metadata
  photocap caption trip/*.jpg > captions.tsv   # edit the captions, then:
  photocap set-caption --from captions.tsv --write-metadata
"""

CLEAR_EPILOG = """
\b
Examples:
  photocap clear-caption party/IMG_0001.jpg
  photocap clear-caption party/*.jpg --write-metadata
"""

write_metadata_option = click.option(
    "--write-metadata", is_flag=True,
    help="Also write the caption into each photo (description and alt text, as `photocap write`).",
)
force_option = click.option(
    "--force", is_flag=True,
    help="With --write-metadata: replace a description someone else wrote into the photo.",
)


def _read_pairs(source: Path) -> list[tuple[Path, str]]:
    """``path<TAB>caption`` lines (what `photocap caption` prints), or a CSV with
    ``path,caption`` columns (a header row ``path,caption`` or ``image,caption`` is skipped)."""
    text = sys.stdin.read() if str(source) == "-" else source.read_text(encoding="utf-8")
    rows: list[list[str]]
    if "\t" in text:
        rows = [line.split("\t", 1) for line in text.splitlines() if line.strip()]
    else:
        rows = [r for r in csv.reader(text.splitlines()) if r]
    pairs = []
    for i, row in enumerate(rows, 1):
        if len(row) != 2:
            raise click.BadParameter(f"line {i}: expected a path and a caption", param_hint="--from")
        path, caption = row[0].strip(), row[1].strip()
        if i == 1 and path.lower() in ("path", "image", "file") and caption.lower() == "caption":
            continue
        pairs.append((Path(path), caption))
    return pairs


def _print(o: FileOutcome, as_json: bool) -> bool:
    """Print one outcome; True if it is a failure."""
    if as_json:
        echo_json(o.to_dict())
    elif o.outcome is Outcome.SET:
        click.echo(f"set      {o.path}: {o.caption}")
    elif o.outcome is Outcome.CLEARED:
        click.echo(f"cleared  {o.path}")
    elif o.outcome is Outcome.CAPTIONED:
        click.echo(f"model    {o.path}: {o.caption}")
    elif o.outcome is Outcome.WRITTEN and o.write is not None:
        click.echo(f"wrote    {o.write.written_path}  ({o.write.target})")
    elif o.outcome is Outcome.SKIPPED and o.skip is not SkipReason.UP_TO_DATE:
        warn(f"skipped  {o.path}: {o.reason}")
    elif o.outcome is Outcome.FAILED:
        warn(f"failed   {o.path}: {o.reason}")
    return o.outcome is Outcome.FAILED


@click.command(epilog=SET_EPILOG)
@click.argument("args", nargs=-1, metavar="[CAPTION] PHOTO...")
@click.option("--from", "from_file", type=click.Path(path_type=Path, allow_dash=True), default=None,
              help="Read 'path<TAB>caption' lines (or a path,caption CSV) instead; '-' reads stdin.")
@db_option
@write_metadata_option
@force_option
@json_option
def set_caption(args: tuple[str, ...], from_file: Path | None, db_path: Path | None, write_metadata: bool,
                force: bool, as_json: bool) -> None:
    """Make CAPTION your own caption of each PHOTO (or each line of --from).

    Your caption is kept through re-indexing, moves and edits, and the model never
    replaces it (unless `photocap index --recaption --force`). A photo not indexed yet is
    added to the index. With --write-metadata it is also written into the photo, recorded
    there as your words, so it survives even a lost index.
    """
    from photocap.index.store import CaptionIndex
    from photocap.library import edit, sync

    if from_file is not None:
        if args:
            raise click.UsageError("Give either CAPTION PHOTO... or --from FILE, not both.")
        pairs = _read_pairs(from_file)
    else:
        if len(args) < 2:
            raise click.UsageError("Give a caption and at least one photo: set-caption CAPTION PHOTO...")
        pairs = [(Path(p), args[0]) for p in args[1:]]
    if not pairs:
        raise click.UsageError("No photos given.")
    write = sync.WriteOptions(force=force) if write_metadata else None
    failed = 0
    with user_errors(), CaptionIndex.open(resolve_db(db_path)) as idx:
        for path, caption in pairs:
            for o in edit.set_caption(idx, path, caption, write=write):
                failed += _print(o, as_json)
    if failed == len(pairs):
        raise SystemExit(1)


@click.command(epilog=CLEAR_EPILOG)
@click.argument("photos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
@model_option
@device_option
@write_metadata_option
@force_option
@json_option
def clear_caption(photos: tuple[Path, ...], db_path: Path | None, model_path: Path | None, device: str,
                  write_metadata: bool, force: bool, as_json: bool) -> None:
    """Take away your caption of each PHOTO; the model captions it again now.

    With --write-metadata the model's caption is written into the photo, replacing your
    words that photocap wrote there (anyone else's description only with --force).
    """
    from photocap.index.store import CaptionIndex
    from photocap.library import edit, sync
    from photocap.library.captioning import default_captioner_factory
    from photocap.library.pipeline import IndexOptions, Progress

    failed = 0

    def on_outcome(o: FileOutcome) -> None:
        nonlocal failed
        failed += _print(o, as_json)

    def on_progress(p: Progress) -> None:
        for o in p.outcomes:
            on_outcome(o)

    write = sync.WriteOptions(force=force) if write_metadata else None
    with user_errors(), CaptionIndex.open(resolve_db(db_path), create=False) as idx:
        edit.clear_captions(idx, photos, default_captioner_factory(model_path, device=device),
                            options=IndexOptions(workers=0), write=write, on_outcome=on_outcome,
                            on_progress=on_progress)
    if failed and failed == len(photos):
        raise SystemExit(1)
